"""The backprop twin: the same layer stack as the FF network, trained end to end with cross-entropy.

Same layer types, widths, activation, input normalisation, initialisation and black-box stages as
`FFNetwork`; the image carries no label, and a linear output layer on the last hidden layer's
normalised activity gives the class. It runs the same `LayerStack` with the detach between layers
switched off, so every FF run has a like-for-like backprop run one config field away
(`model.kind = "backprop"`).

A black-box stage's output carries no derivative, so backprop cannot train any layer below one:
exactly the situation FF was proposed for (paper §8).
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .. import fast_weights
from ..config import Config, ModelConfig, ObjectiveConfig, OptimConfig
from ..errors import FFError
from ..stack import LayerStack, decay_groups
from .base import accept_legacy_keys, check_batch, readout_features, sparsity


class BackpropNetwork(nn.Module):
    ways = ("softmax",)
    validation_method = "softmax"
    loss_names = ["output"]
    has_peer_loss = False  # built with peer_lambda = 0: its one loss is end to end
    trains_on_negatives = False  # cross-entropy on the real images alone
    has_fast_weights = True  # as the FF network's, so the twin of a run with them has them too
    figures: ClassVar[tuple[str, ...]] = ("curves", "weights", "confusion")  # ff plot's: no goodness to draw
    # what FF reads and the twin never does: refused when set, put back to their defaults in a preset's
    # twin (--set model.kind=backprop) and in a sweep's grid points of this kind
    ignores = ("model.peer_lambda", "model.peer_decay", "model.readout", "optim.readout_lr",
               "optim.readout_weight_decay",
               *(f"objective.{name}" for name in ObjectiveConfig.__dataclass_fields__ if name != "predict"))

    def __init__(self, *, data_shape: tuple[int, ...], num_classes: int, model: ModelConfig,
                 objective: ObjectiveConfig):
        super().__init__()
        self.num_classes, self.data_shape = num_classes, tuple(data_shape)
        self.objective = objective
        self.stack = LayerStack.build(model, self.data_shape, peer_lambda=0.0)  # no peer loss: one end-to-end loss
        self.fast = fast_weights.build(model)  # memory of a string's earlier windows, as the FF network's
        self.norm, self.norm_eps = model.norm, model.norm_eps
        self.predict_from = 0
        self.readout = nn.Linear(self.stack.units[-1], num_classes)  # the output layer
        accept_legacy_keys(self)

    @staticmethod
    def label_in_input(cfg: Config) -> bool:
        """Whether the label enters the input (objective.label_coding matters)."""
        return False

    @staticmethod
    def check(cfg: Config) -> None:
        if cfg.objective.predict in ("goodness", "combined"):
            raise FFError("model.kind = backprop predicts by its output layer: set objective.predict = softmax.")
        if cfg.model.overlap:
            raise FFError("model.kind = backprop trains every layer through all the layers above it: set "
                          "model.overlap = false.")
        if cfg.optim.phase_steps or cfg.optim.greedy_steps:
            raise FFError("model.kind = backprop trains end to end: set optim.phase_steps and optim.greedy_steps to 0.")

    @property
    def layers(self) -> nn.ModuleList:
        return self.stack.layers

    @property
    def prediction_layers(self) -> list[int]:
        return list(range(len(self.stack)))

    def param_groups(self, optim: OptimConfig) -> list[dict]:
        """One learning rate and weight cost for the whole network: the output layer is one more layer
        (its own two groups, as checkpoints of earlier versions hold them)."""
        return (self.stack.param_groups(optim.lr, optim.weight_decay, optim.layer_lr)
                + decay_groups(self.readout.named_parameters(), optim.lr, optim.weight_decay))

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, ...) images -> each hidden layer's activity, with the graph kept across layers."""
        return self.stack(x, detach=False, recall=fast_weights.recall_for(self.fast)).act

    @torch.no_grad()
    def layer_sparsity(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float]]:
        """Each layer's Hoyer sparsity and dead units on these images."""
        acts = self.activities(images)
        return {f"layer{i}": {k: float(v) for k, v in sparsity(a).items()} for i, a in enumerate(acts)}

    def unlabelled(self, images: torch.Tensor) -> torch.Tensor:
        return images  # the image alone is the input

    @torch.no_grad()
    def features(self, images: torch.Tensor, layers: list[int]) -> torch.Tensor:
        acts = self.activities(images)
        return readout_features([acts[i] for i in layers], self.norm, self.norm_eps)

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.readout(readout_features(self.activities(images)[-1:], self.norm, self.norm_eps, detach=False))

    @torch.no_grad()
    def predict(self, images: torch.Tensor, how: str = "softmax") -> torch.Tensor:
        if how != "softmax":
            raise FFError(f"a backprop network predicts by its output layer (softmax) only, not by {how}.")
        check_batch(images, self.data_shape, self.readout.weight)
        return self.logits(images).argmax(dim=1)

    def predictions(self, images: torch.Tensor, ways: tuple[str, ...],
                    goodness_weight: float | None = None) -> dict[str, torch.Tensor]:
        return {how: self.predict(images, how) for how in ways}

    @torch.no_grad()
    def class_log_probs(self, images: torch.Tensor, ways: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """(B, C) log-probabilities of the output layer's softmax, the one way this network has."""
        for how in ways:
            self.predict(images[:0], how)  # the same checks and errors as predict
        return dict.fromkeys(ways, self.logits(images).float().log_softmax(dim=1))

    def forward(self, images: torch.Tensor, labels: torch.Tensor, active: frozenset[str] | None = None,
                phase: str = "both") -> tuple[dict[str, torch.Tensor], dict]:
        """One loss for the whole stack: cross-entropy at the output, backpropagated through every layer."""
        assert phase == "both", "a backprop network has no separate positive and negative phases"
        check_batch(images, self.data_shape, self.readout.weight)
        logits = self.logits(images)
        acc = (logits.detach().argmax(1) == labels).float().mean()
        return {"output": F.cross_entropy(logits, labels)}, {"output": {"acc": acc}}

    def losses(self, images: torch.Tensor, labels: torch.Tensor, phase: str = "both"):
        return self(images, labels, phase=phase)

    def matmul_flops_per_image(self) -> float:
        """Forward, input-gradient and weight-gradient matmuls of every layer and the output layer."""
        macs = sum(layer.macs for layer in self.stack.layers) + self.readout.weight.numel()
        return 3 * 2 * macs
