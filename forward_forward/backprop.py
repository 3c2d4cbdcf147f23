"""The backprop baseline: the same layers as the FF network, trained end to end with cross-entropy.

Same widths, activation, input normalisation, initialisation and black-box stages as `FFClassifier`;
the image carries no label, and a linear output layer on the last hidden layer's normalised activity
gives the class. It speaks the training loop's interface (named losses, `predict`), so every FF run
has a like-for-like backprop run one config field away (`model.kind = "backprop"`).

A black-box stage's output carries no derivative, so backprop cannot train any layer below one:
exactly the situation FF was proposed for (paper §8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blackbox import BlackBox
from .config import ModelConfig, ObjectiveConfig
from .layers import normalize
from .model import make_layers


class BackpropClassifier(nn.Module):
    ways = ("softmax",)
    validation_method = "softmax"

    def __init__(self, *, input_dim: int, num_classes: int, model: ModelConfig, objective: ObjectiveConfig,
                 image_shape: tuple[int, int, int] | None = None):
        super().__init__()
        self.num_classes = num_classes
        self.objective = objective
        # the FF layers themselves, for the identical parametrisation and init; `activities` skips their detach
        self.layers = nn.ModuleList(make_layers(model, input_dim, image_shape, peer_lambda=0.0))
        units = [layer.out_features for layer in self.layers]
        self.blackboxes = nn.ModuleList(
            BlackBox(model.blackbox, n, model.blackbox_strength, seed=i) for i, n in enumerate(units[:-1])
        )
        self.norm, self.norm_eps = model.norm, model.norm_eps
        self.readout = nn.Linear(units[-1], num_classes)  # the output layer

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, D) images -> each hidden layer's activity, with the graph kept across layers."""
        out = []
        for i, layer in enumerate(self.layers):
            y = layer.activation(layer.transform(normalize(x, self.norm, self.norm_eps)).float())
            out.append(y)
            x = self.blackboxes[i](y) if i < len(self.blackboxes) else y
        return out

    def unlabelled(self, images: torch.Tensor) -> torch.Tensor:
        return images  # the image alone is the input

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.readout(normalize(self.activities(images)[-1], self.norm, self.norm_eps))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, how: str = "softmax") -> torch.Tensor:
        assert how == "softmax", f"a backprop network predicts by its output layer only, not by {how!r}"
        return self.logits(images).argmax(dim=1)

    def predictions(self, images: torch.Tensor, ways: tuple[str, ...]) -> dict[str, torch.Tensor]:
        return {how: self.predict(images, how) for how in ways}

    def losses(self, images: torch.Tensor, labels: torch.Tensor, phase: str = "both"):
        """One loss for the whole stack: cross-entropy at the output, backpropagated through every layer."""
        assert phase == "both", "a backprop network has no separate positive and negative phases"
        logits = self.logits(images)
        acc = (logits.detach().argmax(1) == labels).float().mean()
        return {"output": F.cross_entropy(logits, labels)}, {"output": {"acc": acc}}
