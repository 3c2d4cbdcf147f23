"""Channel-wise competitive Forward-Forward: no negative data, no label in the input.

CwComp (Papachristodoulou et al., "Convolutional Channel-wise Competitive Learning for the
Forward-Forward Algorithm", AAAI 2024): every layer's channels are split into one group per class,
the goodness of a group is the evidence for its class, and each layer's loss is the cross-entropy
of the softmax over classes of those goodnesses (per unit, divided by objective.temperature). The
correct class's channels are pushed up and every other class's down in one positive pass: the
competition between groups replaces negative data. With goodness_scope = region every patch of
positions competes on its own (the spatial goodness of ASGE, 2025), each with its own loss term.

Every layer's input is detached, as in FF: each loss trains exactly one layer (with model.overlap,
that layer and the one below it). Prediction needs
one pass, not one per label: by goodness (the class log-probabilities summed over the prediction
layers), by the linear softmax readout on their activities, or by both.
"""

from __future__ import annotations

from typing import ClassVar, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..config import WAYS, Config, ModelConfig, ObjectiveConfig
from ..errors import FFError
from ..negatives import NEGATIVES
from ..objectives import GOODNESS, Scope, check_regions
from ..stack import LayerStack
from .base import LayerLosses, check_batch, readout_features, sparsity


class CompetitiveNetwork(LayerLosses):
    # ff plot's: each class's score by every layer for one image stands for FF's activity with and without the label
    figures: ClassVar[tuple[str, ...]] = ("curves", "goodness", "evidence", "weights", "confusion", "layer_error")

    def __init__(self, *, data_shape: tuple[int, ...], num_classes: int, model: ModelConfig,
                 objective: ObjectiveConfig):
        super().__init__()
        self.num_classes, self.data_shape = num_classes, tuple(data_shape)
        self.objective = objective
        self.stack = LayerStack.build(model, self.data_shape)
        region = objective.region_size if objective.goodness_scope == "region" else 0
        self.scope = Scope(groups=num_classes, region=region)
        check_regions(self.scope, self.stack)
        for i, layer in enumerate(self.stack.layers):
            if layer.out_shape[0] % num_classes:
                raise FFError(f"model.kind = competitive gives each of the {num_classes} classes an equal group of "
                              f"every layer's channels, and hidden layer {i} has {layer.out_shape[0]}: make "
                              f"model.hidden multiples of {num_classes}.")
        self.goodness = GOODNESS[objective.goodness].fn
        default = GOODNESS[objective.goodness].default_threshold
        # goodness per unit, so the softmax's sharpness does not grow with a group's size
        self.goodness_scales = [abs(default(self.scope.size(layer.out_shape))) for layer in self.stack.layers]
        self.norm, self.norm_eps = model.norm, model.norm_eps
        self._add_readout(model, objective, num_classes)

    @staticmethod
    def label_in_input(cfg: Config) -> bool:
        """Whether the label enters the input (objective.label_coding matters)."""
        return False

    @staticmethod
    def check(cfg: Config) -> None:
        o, defaults = cfg.objective, ObjectiveConfig()
        strategies = [field for strategy in NEGATIVES.values() for field in strategy.reads]
        for name in dict.fromkeys(("negatives", "loss", "threshold", "label_coding", "label_value", "neutral_value",
                                   *strategies)):
            if getattr(o, name) != getattr(defaults, name):
                raise FFError(f"model.kind = competitive uses no negative data and no label in the input, so "
                              f"objective.{name} = {getattr(o, name)!r} would be ignored: leave it at its default.")
        if o.goodness_scope not in ("layer", "region"):  # its groups are the classes: no other scope is built
            raise FFError(f"model.kind = competitive always splits channels into one group per class, so "
                          f"objective.goodness_scope = {o.goodness_scope} cannot apply: set it to layer (each "
                          "group's whole map) or region.")
        if cfg.optim.phase_steps:
            raise FFError("model.kind = competitive has no negative data to sleep on: set optim.phase_steps = 0.")
        LayerLosses.check_readout(cfg)

    # ---- what the loop and the tools ask -----------------------------------------------------
    @property
    def ways(self) -> tuple[str, ...]:
        return WAYS if self.readout is not None else ("goodness",)

    @property
    def validation_method(self) -> str:
        """How to predict during training: the configured way, or for "best" the layers' own goodness."""
        return "goodness" if self.objective.predict == "best" else self.objective.predict

    def unlabelled(self, images: torch.Tensor) -> torch.Tensor:
        return images  # the label never enters the input

    @torch.no_grad()
    def layer_sparsity(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float]]:
        acts = self.activities(images)
        return {f"layer{i}": {k: float(v) for k, v in sparsity(a).items()} for i, a in enumerate(acts)}

    @torch.no_grad()
    def features(self, images: torch.Tensor, layers: list[int]) -> torch.Tensor:
        acts = self.activities(images)
        return readout_features([acts[i] for i in layers], self.norm, self.norm_eps)

    # ---- goodness and prediction -------------------------------------------------------------
    def class_logits(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """Layer `index`'s activity (B, units) -> (B, classes, regions): each class group's goodness
        per unit, divided by the temperature."""
        terms = self.goodness(self.scope.split(y, self.stack.layers[index].out_shape))
        return terms.float() / (self.goodness_scales[index] * self.objective.temperature)

    def layer_scores(self, acts: list[torch.Tensor]) -> torch.Tensor:
        """Every layer's activity -> (B, classes, layers): each layer's class log-probabilities, averaged
        over its regions."""
        return torch.stack([self.class_logits(i, a).log_softmax(dim=1).mean(dim=2) for i, a in enumerate(acts)], dim=2)

    @torch.no_grad()
    def label_goodness(self, images: torch.Tensor) -> torch.Tensor:
        """(B, ...) images -> (B, classes, layers) evidence for every class by every layer, from one pass."""
        return self.layer_scores(self.activities(images))

    @torch.no_grad()
    def predictions(self, images: torch.Tensor, ways: tuple[str, ...],
                    goodness_weight: float | None = None) -> dict[str, torch.Tensor]:
        """Predicted classes (B,) by each of `ways`, all from one pass: the class groups' goodness
        ("goodness"), the readout ("softmax"), or the readout's log-probabilities plus `goodness_weight`
        (default objective.goodness_weight) times the goodness scores ("combined")."""
        return {how: s.argmax(dim=1) for how, s in self.scores(images, ways, goodness_weight).items()}

    def scores(self, images: torch.Tensor, ways: tuple[str, ...],
               goodness_weight: float | None = None) -> dict[str, torch.Tensor]:
        """(B, C) scores by each of `ways`, from one pass (see `predictions`)."""
        if not set(ways) <= set(self.ways):
            raise FFError(f"this network predicts by {' or '.join(self.ways)}, not by {', '.join(ways)}.")
        check_batch(images, self.data_shape, self.stack.layers[0].mean_activity)
        acts = self.activities(images)
        scores = {"goodness": self.layer_scores(acts)[:, :, self.predict_from :].sum(dim=2)}
        if self.readout is not None:
            scores["softmax"] = self.readout(readout_features(acts[self.predict_from :], self.norm,
                                                              self.norm_eps)).float()
            weight = self.objective.goodness_weight if goodness_weight is None else goodness_weight
            scores["combined"] = scores["softmax"].log_softmax(dim=1) + weight * scores["goodness"]
        return {how: scores[how] for how in ways}

    @torch.no_grad()
    def class_log_probs(self, images: torch.Tensor, ways: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """(B, C) log-probabilities: the softmax of each way's scores."""
        return {how: s.float().log_softmax(dim=1) for how, s in self.scores(images, ways).items()}

    def predict(self, images: torch.Tensor, how: str = "goodness") -> torch.Tensor:
        return self.predictions(images, (how,))[how]

    # ---- training objective ------------------------------------------------------------------
    def forward(self, images: torch.Tensor, labels: torch.Tensor, active: frozenset[str] | None = None,
                phase: str = "both") -> tuple[dict[str, torch.Tensor], dict]:
        """Named losses, one per active layer plus "readout", for one minibatch of real data."""
        assert phase == "both", "a competitive network has no negative phase"
        check_batch(images, self.data_shape, self.stack.layers[0].mean_activity)
        active = frozenset(self.loss_names) if active is None else active
        trained = [i for i in range(len(self.stack)) if f"layer{i}" in active]
        wants_readout = self.readout is not None and "readout" in active
        upto = len(self.stack) if wants_readout else max(trained, default=-1) + 1
        losses, stats = {}, {}
        kept: list[torch.Tensor] = []  # the prediction layers' activities, for the readout

        def settle(i: int, z: torch.Tensor, y: torch.Tensor) -> None:
            """Layer i's loss, as soon as the layer has run; backpropagated at once with release_graphs."""
            if wants_readout and i >= self.predict_from:
                kept.append(y.detach())
            if i not in trained:
                return
            logits = self.class_logits(i, y)  # (B, classes, regions)
            loss = F.cross_entropy(logits, labels[:, None].expand(-1, logits.shape[2]))
            if self.stack.layers[i].peer_lambda > 0:
                loss = loss + self.stack.layers[i].peer_loss(z, y)
            losses[f"layer{i}"] = self.release(loss, y)
            stats[f"layer{i}"] = {"acc": (logits.detach().mean(dim=2).argmax(dim=1) == labels).float().mean()}

        self.stack(images, upto=upto, frozen=frozenset(range(upto)) - set(trained), each=settle, keep=False)
        if wants_readout:
            features = readout_features(kept, self.norm, self.norm_eps)
            logits = cast(nn.Linear, self.readout)(features).float()
            losses["readout"] = F.cross_entropy(logits, labels)
            stats["readout"] = {"acc": (logits.detach().argmax(1) == labels).float().mean()}
        return losses, stats

    def losses(self, images: torch.Tensor, labels: torch.Tensor, phase: str = "both"):
        return self(images, labels, phase=phase)

    def matmul_flops_per_image(self, active: frozenset[str] | None = None) -> float:
        """Forward and weight-gradient passes of every trained layer (inputs are detached) and the readout."""
        macs = sum(layer.macs for layer in self.stack.layers)
        readout = self.readout.weight.numel() if self.readout is not None else 0
        return 2 * 2 * (macs + readout)
