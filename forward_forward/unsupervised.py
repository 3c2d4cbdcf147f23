"""Unsupervised Forward-Forward (paper §3.2): real images against hybrid images, no label anywhere.

The layers learn to tell real digits from hybrids. Classes enter only through the linear softmax
readout on the normalised activities of the chosen layers (by default all but the first, i.e. the
last three of four), trained alongside on detached features, or afterwards by `ff probe`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .config import ModelConfig, ObjectiveConfig
from .hybrid import hybrid_images
from .model import FFClassifier


class FFUnsupervised(FFClassifier):
    def __init__(self, *, input_dim: int, num_classes: int, model: ModelConfig, objective: ObjectiveConfig,
                 image_shape: tuple[int, int, int]):
        super().__init__(input_dim=input_dim, num_classes=num_classes, model=model, objective=objective,
                         image_shape=image_shape)
        self.image_shape = tuple(image_shape)
        self.blur_passes = objective.hybrid_blur_passes

    @property
    def ways(self) -> tuple[str, ...]:
        return ("softmax",)  # goodness says real-or-hybrid, not which class

    @property
    def validation_method(self) -> str:
        return "softmax"

    def unlabelled(self, images: torch.Tensor) -> torch.Tensor:
        return images  # no label is ever written into the image

    def predictions(self, images: torch.Tensor, ways: tuple[str, ...]) -> dict[str, torch.Tensor]:
        assert ways == ("softmax",), f"an unsupervised network predicts by its readout only, not by {ways}"
        return super().predictions(images, ways)

    def positive_negative(self, images: torch.Tensor, labels: torch.Tensor, probs=None):
        """The images themselves, and as many hybrids of pairs of them."""
        return images, hybrid_images(images, self.image_shape, self.blur_passes)

    def losses(self, images: torch.Tensor, labels: torch.Tensor, phase: str = "both"):
        """One loss per layer (real vs hybrid, labels unused), plus the readout's on detached features."""
        losses, stats, real = self.layer_losses(*self.positive_negative(images, labels), phase)
        if self.readout is not None and real[0].shape[0]:  # the real images' activities, already computed
            logits = self.readout(self.readout_features(real))
            losses["readout"] = F.cross_entropy(logits, labels)
            stats["readout"] = {"acc": (logits.detach().argmax(1) == labels).float().mean()}
        return losses, stats
