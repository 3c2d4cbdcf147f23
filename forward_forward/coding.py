"""Label codings: how a label enters a supervised FF network's input (paper §3.3), by name
(`objective.label_coding`).

A coding turns images and labels into the network's input: the true label for positive data, a
wrong one for negative data, a neutral input that names no class for the readout, and every label
at once for prediction by goodness. Unsupervised networks use `NoLabel`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import labels as label_ops
from .errors import FFError


class LabelCoding:
    """The identity: the input carries no label (unsupervised FF, the backprop twin)."""

    reads_neutral_value = True  # the neutral input is objective.neutral_value's (a coding whose is not says so)
    # the inputs the label is written to and the ones that keep the image, as slices of the flat input;
    # None: the label is not at fixed inputs of its own, and cannot be kept apart (`Written`)
    label_columns: slice | None = None
    image_columns: slice | None = None

    def __init__(self, data_shape: tuple[int, ...], num_classes: int, value: str = "one", neutral_value: float = 0.1):
        self.data_shape, self.num_classes = tuple(data_shape), num_classes
        self.value, self.neutral_value = value, neutral_value

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One sample's input as the first layer sees it."""
        return self.data_shape

    def write(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(B, *data_shape) images and (B,) labels -> (B, *input_shape) inputs that carry the labels."""
        return images

    def neutral(self, images: torch.Tensor) -> torch.Tensor:
        """(B, *data_shape) -> (B, *input_shape) inputs that name no class."""
        return images

    def every_label(self, images: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> (B*C, ...): each image once with each label, image-major (rows b*C .. b*C+C-1)."""
        batch = images.shape[0]
        repeated = images.repeat_interleave(self.num_classes, dim=0)
        labels = torch.arange(self.num_classes, device=images.device).repeat(batch)
        return self.write(repeated, labels)

    def _hot(self, images: torch.Tensor, labels: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """(R, C) one-hot rows; with value "max" the hot entry is each image's maximum (the article's notebook).
        Row r belongs to image `source[r]` (default: image r)."""
        hot = label_ops.one_hot(labels, self.num_classes, images.dtype)
        if self.value == "max":
            peak = images.flatten(1).amax(dim=1, keepdim=True)
            hot = hot * (peak if source is None else peak[source])
        return hot

    def place(self, images: torch.Tensor, values: torch.Tensor | float) -> torch.Tensor:
        """(B, *data_shape) images and (B, C) label values (or one value for all) -> (B, *input_shape)
        inputs with the values at `label_columns` (a coding with label columns provides it)."""
        raise NotImplementedError(f"{type(self).__name__} does not write labels at inputs of their own")

    def every_label_apart(self, images: torch.Tensor) -> Written:
        """`every_label(images)` as a `Written`: each image is kept once."""
        assert self.label_columns is not None, f"{type(self).__name__} has no label inputs of its own"
        batch, classes = images.shape[0], self.num_classes
        source = torch.arange(batch, device=images.device).repeat_interleave(classes)
        labels = torch.arange(classes, device=images.device).repeat(batch)
        return Written(images, source, self._hot(images, labels, source), self)


NoLabel = LabelCoding


class Pixels(LabelCoding):
    """The one-hot label in the first C values of the flattened image (MATLAB code); the input keeps
    its shape. On MNIST those are blank corner pixels; on other data they overwrite features."""

    def __init__(self, data_shape: tuple[int, ...], num_classes: int, value: str = "one", neutral_value: float = 0.1):
        super().__init__(data_shape, num_classes, value, neutral_value)
        if math.prod(data_shape) <= num_classes:
            raise FFError(f"objective.label_coding = pixels writes {num_classes} labels into the first values of "
                          f"each input, and an input of shape {data_shape} has no room; use channels.")
        self.label_columns, self.image_columns = slice(0, num_classes), slice(num_classes, math.prod(data_shape))

    def place(self, images: torch.Tensor, values: torch.Tensor | float) -> torch.Tensor:
        out = images.clone()
        out.view(out.shape[0], -1)[:, : self.num_classes] = values
        return out

    def write(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.place(images, self._hot(images, labels))

    def neutral(self, images: torch.Tensor) -> torch.Tensor:
        return self.place(images, self.neutral_value)


class Channels(LabelCoding):
    """The label as C extra input channels, each constant over the image (one plane per class), for
    layers that see patches (local, convolutional): every patch sees the label. Nothing of the image
    is overwritten. A dense layer on them sees H * W copies of the label: its input is (C0 + C) / C0
    times longer, which scales the effective learning rate of RMS-normalised inputs by as much;
    use `extra` for dense layers.
    """

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (self.data_shape[0] + self.num_classes, *self.data_shape[1:])

    def _planes(self, images: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(B, C) values -> (B, C, *spatial) planes, concatenated after the image's channels."""
        spatial = images.shape[2:]
        planes = rows.view(*rows.shape, *([1] * len(spatial))).expand(*rows.shape, *spatial)
        return torch.cat([images, planes], dim=1)

    def write(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self._planes(images, self._hot(images, labels))

    def neutral(self, images: torch.Tensor) -> torch.Tensor:
        rows = images.new_full((images.shape[0], self.num_classes), self.neutral_value)
        return self._planes(images, rows)


class Extra(LabelCoding):
    """The label as C extra inputs after the flattened image: nothing is overwritten and the input
    grows by C values only (dense layers, tabular data)."""

    def __init__(self, data_shape: tuple[int, ...], num_classes: int, value: str = "one", neutral_value: float = 0.1):
        super().__init__(data_shape, num_classes, value, neutral_value)
        pixels = math.prod(data_shape)
        self.label_columns, self.image_columns = slice(pixels, pixels + num_classes), slice(0, pixels)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return (math.prod(self.data_shape) + self.num_classes,)

    def place(self, images: torch.Tensor, values: torch.Tensor | float) -> torch.Tensor:
        if not isinstance(values, torch.Tensor):
            values = images.new_full((images.shape[0], self.num_classes), values)
        return torch.cat([images.flatten(1), values], dim=1)

    def write(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.place(images, self._hot(images, labels))

    def neutral(self, images: torch.Tensor) -> torch.Tensor:
        return self.place(images, self.neutral_value)


class Pattern(LabelCoding):
    """The label as a fixed texture over the whole image (the spatially extended labels of Scodellaro
    et al., 2023, for conv FF): class k adds its own pattern of +-0.5 (+-0.5 times the image's maximum
    with label_value = max), drawn once from a generator seeded by k, to every pixel and channel. Every
    patch of every position sees the label, and the input keeps its shape; the neutral input is the
    image alone, the mean of the patterns over many classes."""

    reads_neutral_value = False

    def __init__(self, data_shape: tuple[int, ...], num_classes: int, value: str = "one", neutral_value: float = 0.1):
        super().__init__(data_shape, num_classes, value, neutral_value)
        signs = [torch.randint(0, 2, data_shape, generator=torch.Generator().manual_seed(k))
                 for k in range(num_classes)]
        self.patterns = torch.stack(signs).float() - 0.5  # (classes, *data_shape)

    def write(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        pattern = self.patterns.to(images.device, images.dtype)[labels]
        if self.value == "max":
            pattern = pattern * images.flatten(1).amax(dim=1).view(-1, *([1] * len(self.data_shape)))
        return images + pattern

    def neutral(self, images: torch.Tensor) -> torch.Tensor:
        return images


@dataclass(frozen=True)
class Written:
    """Coded inputs kept apart as images and label values: row r is image `source[r]` with `values[r]`
    at the coding's `label_columns`. A dense first layer then multiplies each image once, however many
    rows carry it with another label (every label, for prediction by goodness); any other reader takes
    `dense()`, the tensor `write` would have made."""

    images: torch.Tensor  # (B, *data_shape)
    source: torch.Tensor  # (R,) long: the image of each row
    values: torch.Tensor  # (R, C): the label values of each row
    coding: LabelCoding

    def dense(self) -> torch.Tensor:
        return self.coding.place(self.images[self.source], self.values)

    def image_part(self) -> torch.Tensor:
        """(B, inputs) each image's values at the inputs the label leaves: `image_columns`, once per image."""
        return self.images.flatten(1)[:, self.coding.image_columns]


LABEL_CODINGS: dict[str, type[LabelCoding]] = {"pixels": Pixels, "channels": Channels, "extra": Extra,
                                               "pattern": Pattern}
AUTO = "auto"  # objective.label_coding: pixels where the data leaves room for them, else extra


def resolve(name: str, data_shape: tuple[int, ...], label_room: bool = True, first_layer: str = "dense") -> str:
    """The coding `name` stands for: "auto" writes over an image's first pixels only where they are
    blank in every training image (MNIST's corner, as the paper does), never over features, and only
    for a first layer that reads them (a conv layer's shared filters would see the corner only at the
    corner: it gets channels); otherwise the label gets inputs of its own: channels for a map layer,
    extra inputs for a dense one."""
    if name != AUTO:
        return name
    if len(data_shape) != 3:
        return "extra"
    from .layers import LAYERS  # late: layers import torch modules that import this one

    if not label_room:
        return "channels" if LAYERS[first_layer].reads_map else "extra"
    return LAYERS[first_layer].auto_coding
