"""Hybrid-image negatives for unsupervised FF (paper §3.2).

A random bit image is blurred repeatedly with [1/4, 1/2, 1/4] horizontally and vertically and
thresholded at 0.5. The mask keeps one image where it is 1 and another where it is 0, so the
hybrid has the short-range statistics of real images but a long-range shape that belongs to no
class. Everything is batched on the images' device; nothing loops over images.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..config import Config, changed_fields
from ..errors import FFError
from .base import Negatives

_TAPS = (0.25, 0.5, 0.25)


def blur_masks(count: int, height: int, width: int, passes: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """(count, height, width) binary masks with large coherent regions; more passes, larger regions."""
    # drawn where the images are (no copy from the host), unless a CPU generator is given
    where = "cpu" if generator is not None else device
    bits = torch.randint(0, 2, (count, 1, height, width), generator=generator, device=where).float().to(device)
    taps = torch.tensor(_TAPS, device=device)
    horizontal, vertical = taps.view(1, 1, 1, 3), taps.view(1, 1, 3, 1)
    for _ in range(passes):
        # replicate padding: zeros at the border would bias edge pixels toward 0
        bits = F.conv2d(F.pad(bits, (1, 1, 0, 0), mode="replicate"), horizontal)
        bits = F.conv2d(F.pad(bits, (0, 0, 1, 1), mode="replicate"), vertical)
    return (bits[:, 0] > 0.5).float()


def partners(count: int, generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """For each image index i, another index j != i (a random shift of the batch, never zero)."""
    if count < 2:
        return torch.zeros(count, dtype=torch.long, device=device)
    # a tensor, not a number: reading it back would wait for the device
    where = "cpu" if generator is not None else device
    shift = torch.randint(1, count, (1,), generator=generator, device=where).to(device)
    return (torch.arange(count, device=device) + shift) % count


def hybrid_images(images: torch.Tensor, image_shape: tuple[int, int, int], passes: int,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) images (or flattened) -> hybrids of the same shape: mask * image_i + (1 - mask) * image_j,
    j != i."""
    channels, height, width = image_shape
    count = images.shape[0]
    mask = blur_masks(count, height, width, passes, generator, images.device).unsqueeze(1)  # (B, 1, H, W)
    a = images.view(count, channels, height, width)
    b = a[partners(count, generator, images.device)]
    return (mask * a + (1 - mask) * b).view(images.shape)


class Hybrid(Negatives):
    """Unsupervised FF: real images against hybrids of two of them; no label in the input."""

    labelled = False
    reads = ("hybrid_blur_passes",)

    @staticmethod
    def check(cfg: Config) -> None:
        o = cfg.objective
        if cfg.optim.micro_batch == 1:
            raise FFError("objective.negatives = hybrid mixes two images of a micro-batch, and optim.micro_batch = 1 "
                          "holds one: set it to 2 or more, or to 0.")
        if o.predict in ("goodness", "combined") or not cfg.model.readout:
            raise FFError("objective.negatives = hybrid learns without labels, so classes come from the readout: "
                          "set model.readout = true and objective.predict = softmax (or best).")
        if o.label_coding not in ("auto", "pixels"):  # pixels: what configs before label codings say
            raise FFError("objective.negatives = hybrid puts no label in the input, so objective.label_coding "
                          "has nothing to code: leave it at auto.")
        changed = changed_fields(cfg, "objective", ("label_value", "neutral_value"))
        if changed:
            raise FFError(f"objective.negatives = hybrid puts no label in the input, so {' and '.join(changed)} "
                          "would set nothing: leave them at their defaults.")

    def __init__(self, objective, num_classes, data_shape):
        super().__init__(objective, num_classes, data_shape)
        if len(self.data_shape) != 3:
            raise FFError(f"objective.negatives = hybrid mixes images under a 2-D mask, and this data has shape "
                          f"{self.data_shape}, not (channels, height, width): choose another strategy.")

    def make(self, images, labels, coding, probs=None, model=None):
        return images, hybrid_images(images, self.data_shape, self.objective.hybrid_blur_passes)
