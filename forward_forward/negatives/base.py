"""What every negative-data strategy provides."""

from __future__ import annotations

import torch

from ..coding import LabelCoding
from ..config import Config, ObjectiveConfig


class Negatives:
    labelled = True  # the input carries a label; False: unsupervised FF, the input is the image alone
    needs_probs = False  # `make` needs the model's class probabilities (objective.sample_from)
    uses_network = False  # `make` runs the whole network (it writes text): no layer pipeline can
    makes_data = False  # the negatives are the network's own images (its generator's) or text, not the data's
    in_place = False  # each negative is its own sample's input in that sample's row: what fast weights need
    reads: tuple[str, ...] = ()  # the objective fields of its own it reads; set elsewhere they are refused

    def __init__(self, objective: ObjectiveConfig, num_classes: int, data_shape: tuple[int, ...]):
        self.objective, self.num_classes, self.data_shape = objective, num_classes, tuple(data_shape)

    @classmethod
    def takes_label(cls, cfg: Config) -> bool:
        """Whether `cfg`'s input carries a label (what `labelled` says of a built strategy)."""
        return cls.labelled

    @staticmethod
    def check(cfg: Config) -> None:
        """Raise FFError for a config this strategy cannot honour, naming the fields."""

    def generator_for(self, units: list[int], activation, eps: float):
        """The generator this strategy samples from, built over hidden layers of `units`; None: it needs none."""
        return None

    @property
    def per_image(self) -> int:
        """Negative inputs made for each positive one."""
        return 1

    def make(self, images: torch.Tensor, labels: torch.Tensor, coding: LabelCoding,
             probs: torch.Tensor | None = None, model=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, *data_shape) images, (B,) labels -> positive inputs (B, ...) and negative inputs
        (B * per_image, ...), both already coded for the first layer."""
        raise NotImplementedError
