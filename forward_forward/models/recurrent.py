"""The recurrent top-down net (paper §4) under both training methods: Forward-Forward, and its
backprop twin. `model.iterations > 0` chooses them for `model.kind = ff` and `backprop`.

FF: the label is the top "layer", clamped for the whole run: positive runs carry the true label,
negative runs a wrong one (random, hard or every one). Each hidden layer's loss is its goodness at
every iteration against its threshold, through that iteration only: the states of the previous
iteration, above and below, are detached, so nothing crosses a layer or an iteration backwards.
Prediction runs every label at once (B * C rows, one pass per iteration) and picks the label with the
highest goodness over `model.predict_iterations`; the one-pass readout reads the bottom-up pass.

Backprop: the same layers and top-down weights unrolled over the iterations and trained end to end by
cross-entropy; the top "layer" is its own output, a softmax on the top hidden layer, fed back down.
"""

from __future__ import annotations

from dataclasses import replace
from typing import ClassVar

import torch

from ..config import Config, ModelConfig, ObjectiveConfig, OptimConfig
from ..errors import FFError
from ..recurrence import TopDown
from .backprop import BackpropNetwork
from .base import readout_features
from .ff import FFNetwork


def check_recurrent(cfg: Config) -> None:
    """What the recurrent net cannot take, whichever way it is trained."""
    m = cfg.model
    wrong = [t for t in m.predict_iterations if not 1 <= t <= m.iterations]
    if not m.predict_iterations or wrong or len(set(m.predict_iterations)) != len(m.predict_iterations):
        raise FFError(f"model.predict_iterations must list distinct iterations between 1 and model.iterations = "
                      f"{m.iterations}; got {m.predict_iterations!r}.")
    why = []
    if m.residual:
        why.append("model.residual")
    if m.overlap:
        why.append("model.overlap")
    if m.fast_weights:
        why.append("model.fast_weights")
    if cfg.optim.greedy_steps:
        why.append("optim.greedy_steps (every layer takes part in every iteration)")
    if cfg.run.parallel == "pipeline":
        why.append("run.parallel = pipeline (each layer reads the one above it; use run.parallel = data)")
    if why:
        raise FFError(f"the recurrent net (model.iterations = {m.iterations}) cannot take {'; '.join(why)}: "
                      "turn it off, or set model.iterations = 0.")


class RecurrentFFNetwork(FFNetwork):
    """FF on the recurrent top-down net; every other part (negatives, losses, readout, ways to
    predict) is the feed-forward FF network's."""

    recomputes_readout = False  # its neutral pass iterates: model.readout_recompute is the feed-forward net's
    pipelines = False  # each layer reads the one above it, so no stage runs alone
    figures: ClassVar[tuple[str, ...]] = (*FFNetwork.figures, "iterations")  # and its goodness over the iterations

    def __init__(self, *, data_shape: tuple[int, ...], num_classes: int, model: ModelConfig,
                 objective: ObjectiveConfig):
        # the label rides after the image as C extra values, which `split` hands to the top layer
        super().__init__(data_shape=data_shape, num_classes=num_classes, model=model,
                         objective=replace(objective, label_coding="extra"))
        self.objective = objective
        self.labels_apart = False  # `split` reads the coded input: it is built
        self.topdown = TopDown.build(self.stack, num_classes, model)
        self.predict_iterations = list(model.predict_iterations)

    @property
    def stack_input_shape(self) -> tuple[int, ...]:
        return self.data_shape

    def param_groups(self, optim: OptimConfig) -> list[dict]:
        """The feed-forward net's groups, and the top-down weights with their layers' learning rates."""
        return super().param_groups(optim) + self.topdown.param_groups(optim.lr, optim.weight_decay, optim.layer_lr)

    @staticmethod
    def label_in_input(cfg: Config) -> bool:
        return False  # the label is the top layer

    @staticmethod
    def check(cfg: Config) -> None:
        FFNetwork.check(cfg)
        check_recurrent(cfg)
        if not FFNetwork.label_in_input(cfg):
            raise FFError(f"the recurrent net's top layer is the label, and objective.negatives = "
                          f"{cfg.objective.negatives} has none: use random, hard or all.")
        if cfg.objective.label_coding != "auto":
            raise FFError("the recurrent net's label is its top layer, not part of its input: leave "
                          "objective.label_coding = auto.")
        changed = [f for f, default in (("label_value", "one"), ("neutral_value", 0.1))
                   if getattr(cfg.objective, f) != default]
        if changed:
            raise FFError(f"the recurrent net normalises the label vector before its top-down weights read it, so "
                          f"the scale of its values cannot matter: leave objective.{changed[0]} at its default.")

    def split(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Coded inputs (B, D + C) -> the images (B, *data_shape) and the label vectors (B, C)."""
        width = x.shape[1] - self.num_classes
        return x[:, :width].reshape(x.shape[0], *self.data_shape), x[:, width:]

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Coded inputs -> each hidden layer's activity after the last iteration."""
        return self.topdown.run(self.stack, *self.split(x))

    def trajectory(self, x: torch.Tensor) -> torch.Tensor:
        """Coded inputs (B, ...) -> every layer's goodness at every iteration (B, iterations + 1, layers),
        iteration 0 being the bottom-up pass."""
        rows: list[torch.Tensor] = []
        self.topdown.run(self.stack, *self.split(x), each=lambda t, step: rows.append(torch.stack(
            [self.goodness_terms(i, a).mean(dim=1) for i, a in enumerate(step.act)], dim=1)))
        return torch.stack(rows, dim=1)

    def layer_goodness(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, ...) coded inputs -> every layer's goodness averaged over the predict iterations (B, layers)."""
        return self.trajectory(inputs)[:, self.predict_iterations].mean(dim=1)

    def neutral_features(self, images: torch.Tensor) -> torch.Tensor:
        """The readout's input: the bottom-up pass of the image alone (the paper's single forward pass)."""
        return self.readout_features(self.stack.activities(images))

    def train_layers(self, x: torch.Tensor, batch: int, trained: list[int], upto: int,
                     losses: dict, stats: dict, keep: bool) -> list[torch.Tensor]:
        """Each trained layer's loss at every iteration, averaged over the iterations; its statistics
        averaged likewise, with the loss of each iteration beside them (`loss_t1`, ...)."""
        images, top = self.split(x)
        iterations = self.topdown.iterations
        with torch.no_grad():  # the bottom-up pass only starts the iterations; it is not trained
            states = self.stack.activities(images)
        for t in range(1, iterations + 1):
            step = self.topdown.step(self.stack, images, states, top, trained=frozenset(trained))
            for i in trained:
                loss, layer_stats = self.layer_objective(i, step.pre[i], step.act[i], batch)
                loss = self.release(loss / iterations, step.act[i])
                losses[f"layer{i}"] = losses.get(f"layer{i}", 0) + loss
                totals = stats.setdefault(f"layer{i}", {})
                for key, value in layer_stats.items():
                    totals[key] = totals.get(key, 0) + value / iterations
                totals[f"loss_t{t}"] = loss.detach() * iterations
            states = [a.detach() for a in step.act]
        return []

    def _layers_to_run(self, active: frozenset[str]) -> tuple[list[int], int]:
        trained = [i for i in range(len(self.stack)) if f"layer{i}" in active]
        return trained, len(self.stack) if trained else 0  # every layer takes part in every iteration

    def matmul_flops_per_image(self, active: frozenset[str] | None = None) -> float:
        """The bottom-up pass, then per iteration every layer's bottom-up and top-down maps (forward, and
        the weight gradient for a trained layer) for the positive and negative runs; the readout's pass."""
        active = frozenset(self.loss_names) if active is None else active
        trained, _ = self._layers_to_run(active)
        up = sum(layer.macs for layer in self.stack.layers)
        run = [layer.macs + down for layer, down in zip(self.stack.layers, self.topdown.macs)]  # one iteration
        samples = 1 + self.negatives.per_image if trained else 0
        flops = 2 * samples * (up + self.topdown.iterations * sum((2 if i in trained else 1) * m
                                                                  for i, m in enumerate(run)))
        wants_readout = self.readout is not None and "readout" in active
        by_readout = self.negatives.needs_probs and self.objective.sample_from == "softmax"
        if wants_readout or by_readout:
            flops += self.prediction_flops_per_image("softmax")  # the bottom-up pass the readout reads, and its logits
        if self.negatives.needs_probs and not by_readout:  # sampled from every label's run
            flops += self.prediction_flops_per_image("goodness")
        if wants_readout:
            flops += 2 * self._readout_weights  # the readout's weight gradient (its forward is the pass above)
        return flops

    def prediction_flops_per_image(self, way: str) -> int:
        """The bottom-up pass and the readout's logits ("softmax"); every label's run: the bottom-up pass and
        each iteration's bottom-up and top-down maps ("goodness"); or both ("combined")."""
        up = sum(layer.macs for layer in self.stack.layers)
        run = [layer.macs + down for layer, down in zip(self.stack.layers, self.topdown.macs)]  # one iteration
        flops = 0
        if way in ("softmax", "combined"):
            flops += 2 * up + 2 * self._readout_weights
        if way in ("goodness", "combined"):
            flops += 2 * self.num_classes * (up + self.topdown.iterations * sum(run))
        return flops

    @property
    def _readout_weights(self) -> int:
        return self.readout.weight.numel() if self.readout is not None else 0


class RecurrentBackpropNetwork(BackpropNetwork):
    """The recurrent net unrolled over its iterations and trained end to end by cross-entropy; its
    prediction is the mean of its output's logits over `model.predict_iterations`."""

    def __init__(self, *, data_shape: tuple[int, ...], num_classes: int, model: ModelConfig,
                 objective: ObjectiveConfig):
        super().__init__(data_shape=data_shape, num_classes=num_classes, model=model, objective=objective)
        self.topdown = TopDown.build(self.stack, num_classes, model)
        self.predict_iterations = list(model.predict_iterations)

    @staticmethod
    def check(cfg: Config) -> None:
        BackpropNetwork.check(cfg)
        check_recurrent(cfg)

    def param_groups(self, optim: OptimConfig) -> list[dict]:
        return super().param_groups(optim) + self.topdown.param_groups(optim.lr, optim.weight_decay, optim.layer_lr)

    def _output(self, states: list[torch.Tensor]) -> torch.Tensor:
        return self.readout(readout_features(states[-1:], self.norm, self.norm_eps, detach=False))

    def unroll(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """(B, ...) images -> the hidden states after the last iteration, and the output's logits averaged
        over the predict iterations; the graph is kept through every layer and iteration."""
        states = self.stack(images, detach=False).act
        logits = self._output(states)
        kept = []
        for t in range(1, self.topdown.iterations + 1):
            states = self.topdown.step(self.stack, images, states, logits.softmax(dim=1), detach=False).act
            logits = self._output(states)
            if t in self.predict_iterations:
                kept.append(logits)
        return states, torch.stack(kept).mean(dim=0)

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.unroll(x)[0]

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        return self.unroll(images)[1]

    def matmul_flops_per_image(self) -> float:
        """Forward, input-gradient and weight-gradient matmuls of the bottom-up pass, every iteration and
        every output."""
        up = sum(layer.macs for layer in self.stack.layers)
        per_iteration = up + sum(self.topdown.macs) + self.readout.weight.numel()
        return 3 * 2 * (up + self.readout.weight.numel() + self.topdown.iterations * per_iteration)
