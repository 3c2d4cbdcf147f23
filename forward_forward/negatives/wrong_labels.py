"""Negatives that are the real image with a wrong label (paper §3.3): random, hard or every one; and, to
show what it costs, the article notebook's label drawn from all classes, the true one included."""

from __future__ import annotations

import torch

from .. import labels as label_ops
from ..coding import LabelCoding
from ..config import Config
from ..errors import FFError
from .base import Negatives


class WrongLabels(Negatives):
    """Positive: each image with its true label. Negative: images with labels from `wrong`."""

    def wrong(self, images: torch.Tensor, labels: torch.Tensor,
              probs: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (images of the negatives, their wrong labels)."""
        raise NotImplementedError

    def make(self, images, labels, coding: LabelCoding, probs=None, model=None):
        neg_images, wrong = self.wrong(images, labels, probs)
        return coding.write(images, labels), coding.write(neg_images, wrong)


class RandomWrong(WrongLabels):
    """A wrong label drawn uniformly for each image."""

    in_place = True  # the real image, in its own row, with another label

    def wrong(self, images, labels, probs):
        return images, label_ops.random_wrong(labels, self.num_classes)


class AnyLabel(WrongLabels):
    """A label drawn uniformly from all C classes, the true one included, as the article's notebook draws
    them: about one "negative" in C is the positive itself, pushed down while its twin is pushed up. Not
    a recipe: a named option, so the cost of that bug can be measured (`objective.negatives = any_label`)."""

    def wrong(self, images, labels, probs):
        return images, torch.randint(0, self.num_classes, labels.shape, device=labels.device)


class HardWrong(WrongLabels):
    """A wrong label sampled in proportion to the model's belief in it: the readout's (MATLAB recipe) or,
    with objective.sample_from = goodness, the softmax of each label's goodness. On text this is the
    paper's teacher forcing: the real window with a wrong next character the network predicts."""

    needs_probs = True
    in_place = True
    reads = ("sample_from", "sample_temperature")

    @staticmethod
    def check(cfg: Config) -> None:
        if cfg.objective.sample_from == "softmax" and not cfg.model.readout:
            raise FFError("objective.negatives = hard samples from the softmax readout: set model.readout = true, "
                          "or sample from goodness (objective.sample_from = goodness).")

    def wrong(self, images, labels, probs):
        assert probs is not None, "hard negatives are sampled from the readout's probabilities"
        return images, label_ops.hard_wrong(labels, probs)


class AllWrong(WrongLabels):
    """Every wrong label of every image: C - 1 negatives per image, image-major."""

    @property
    def per_image(self) -> int:
        return self.num_classes - 1

    def wrong(self, images, labels, probs):
        return images.repeat_interleave(self.num_classes - 1, dim=0), label_ops.all_wrong(labels, self.num_classes)
