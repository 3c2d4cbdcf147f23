"""The Forward-Forward network: supervised with the label in the input (paper §3.3), or unsupervised
with hybrid negatives (§3.2), by its negative-data strategy; never a subclass per variant. (The recurrent
net, models/recurrent.py, subclasses it for another pass through the same layers.)

The model hands the training loop named per-layer losses; it never steps an optimiser itself.
Every layer's input is detached, so each loss trains exactly one layer (with model.overlap, that
layer and the one below it), and "readout" only the linear softmax readout.
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar, Hashable, cast

import torch
import torch.nn.functional as F
from torch import nn

from .. import fast_weights
from ..coding import LABEL_CODINGS, NoLabel, resolve
from ..config import WAYS, Config, ModelConfig, ObjectiveConfig, changed_fields, per_layer
from ..errors import FFError
from ..layers import ACTIVATIONS, normalize, per_sample, reads_batch
from ..negatives import NEGATIVES
from ..objectives import GOODNESS, LOSSES, scope_of
from ..stack import LayerStack
from .base import LayerLosses, accept_legacy_keys, check_batch, readout_features, sparsity
from .recomputed_readout import RecomputedReadout


class FFNetwork(LayerLosses):
    _repeat_key: Hashable | None = None
    # inputs kept at once (see repeat_key): the loop keeps one per micro-batch of a step (optim.micro_batch)
    repeat_slots = 1
    trains_on_negatives = True  # each layer tells objective.negatives' negatives from the real data
    has_fast_weights = True  # model.fast_weights: each layer's memory of the string's earlier windows
    recomputes_readout = True  # model.readout_recompute: the readout's input recomputed in its backward pass
    pipelines = True  # run.parallel = pipeline: its step's pieces (training/pipeline.py) run a stage each
    # what ff plot draws of its runs (the label-goodness figures need the label in the input: figures_of)
    figures: ClassVar[tuple[str, ...]] = ("curves", "goodness", "activity", "weights", "confusion", "layer_error")

    def __init__(self, *, data_shape: tuple[int, ...], num_classes: int, model: ModelConfig,
                 objective: ObjectiveConfig):
        super().__init__()
        self.num_classes, self.data_shape = num_classes, tuple(data_shape)
        self.objective = objective
        self._repeated: dict[Hashable, torch.Tensor] = {}  # (key, layer) -> what the layer read, oldest first
        self.negatives = NEGATIVES[objective.negatives](objective, num_classes, data_shape)
        # auto is resolved against the data by train(); built directly, an image gets pixels
        first_layer = per_layer(model, "layer")[0]
        coding = (LABEL_CODINGS[resolve(objective.label_coding, data_shape, first_layer=first_layer)]
                  if self.negatives.labelled else NoLabel)
        self.coding = coding(data_shape, num_classes, objective.label_value, objective.neutral_value)
        self.stack = LayerStack.build(model, self.stack_input_shape)
        self.fast = fast_weights.build(model)
        self.norm, self.norm_eps = model.norm, model.norm_eps
        self.goodness = GOODNESS[objective.goodness].fn
        self.loss_fn = LOSSES[objective.loss].fn
        self.loss_options = LOSSES[objective.loss].keywords(objective)
        self.scope = scope_of(objective, num_classes, self.stack)
        sizes = [self.scope.size(layer.out_shape) for layer in self.stack.layers]  # units per goodness term
        default = GOODNESS[objective.goodness].default_threshold
        # theta of each layer: read by figures, which draw it beside the goodness histograms
        self.thresholds = [objective.threshold if objective.threshold is not None else default(n) for n in sizes]
        # goodness per unit for sum goodness, as is for mean goodness: the same scale whatever the width
        self.goodness_scales = [abs(default(n)) for n in sizes]
        self._add_readout(model, objective, num_classes)
        self.recompute_readout = model.readout_recompute and self.readout is not None
        # generated negatives on images: decoders and a prior over this stack, trained beside it
        self.generator = self.negatives.generator_for(self.stack.units, ACTIVATIONS[model.activation](),
                                                      model.norm_eps)
        # prediction by goodness keeps every label apart from its image (coding.Written) where the first
        # layer reads it so: each image is multiplied once, not once per label
        self.labels_apart = (self.coding.label_columns is not None and self.stack.layers[0].takes_apart
                             and self.fast is None)
        accept_legacy_keys(self)

    @property
    def stack_input_shape(self) -> tuple[int, ...]:
        """What the first hidden layer reads: the coded input (the recurrent net reads the image alone)."""
        return self.coding.input_shape

    # ---- config checks that belong to this kind of model ------------------------------------
    @staticmethod
    def label_in_input(cfg: Config) -> bool:
        """Whether the label enters the input (objective.label_coding matters)."""
        return NEGATIVES[cfg.objective.negatives].takes_label(cfg)

    @staticmethod
    def check(cfg: Config) -> None:
        coding = LABEL_CODINGS.get(cfg.objective.label_coding)  # auto resolves to one that reads it
        unread = coding is not None and not coding.reads_neutral_value
        if unread and changed_fields(cfg, "objective", ("neutral_value",)):
            raise FFError(f"objective.label_coding = {cfg.objective.label_coding} makes the neutral input the image "
                          "alone, so objective.neutral_value would set nothing: leave it at its default.")
        LayerLosses.check_readout(cfg)
        if cfg.model.readout_recompute:
            why = [reason for refused, reason in (
                (not NEGATIVES[cfg.objective.negatives].takes_label(cfg),
                 f"objective.negatives = {cfg.objective.negatives}: its readout reads the training pass, not its own"),
                (cfg.model.fast_weights, "model.fast_weights: their memory would be read twice"),
                (reads_batch(cfg.model.norm),
                 f"model.norm = {cfg.model.norm}: it reads the batch, and its running statistics would move twice"),
            ) if refused]
            if why:
                raise FFError(f"model.readout_recompute runs the readout's neutral pass again, which this run cannot "
                              f"repeat ({'; '.join(why)}): set it to false.")

    # ---- what the loop and the tools ask -----------------------------------------------------
    @property
    def ways(self) -> tuple[str, ...]:
        """The ways this model can predict."""
        if not self.negatives.labelled:
            return ("softmax",)  # goodness says real-or-negative, not which class
        return WAYS if self.readout is not None else ("goodness",)

    @property
    def validation_method(self) -> str:
        """How to predict during training: the configured way, or for "best" the one-pass readout."""
        if self.objective.predict != "best":
            return self.objective.predict
        return "softmax" if self.readout is not None else "goodness"

    # ---- forward passes ---------------------------------------------------------------------
    def with_label(self, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Images -> inputs that carry `labels` (unchanged for an unsupervised network)."""
        return self.coding.write(images, labels)

    def unlabelled(self, images: torch.Tensor) -> torch.Tensor:
        """The input that carries no label: the neutral label, or the image alone when unsupervised."""
        return self.coding.neutral(images)

    @torch.no_grad()
    def layer_sparsity(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float]]:
        """Each layer's Hoyer sparsity and dead units on these images with their true labels (positive data)."""
        acts = self.activities(self.with_label(images, labels))
        return {f"layer{i}": {k: float(v) for k, v in sparsity(a).items()} for i, a in enumerate(acts)}

    def neutral_features(self, images: torch.Tensor) -> torch.Tensor:
        """The readout's input: one pass of the neutral input, each prediction layer's normalised
        activity kept as the layer runs (nothing else of a layer outlives the next)."""
        acts: list[torch.Tensor] = []
        self.stack(self.unlabelled(images), each=lambda i, z, y: acts.append(y), keep=False,
                   recall=fast_weights.recall_for(self.fast))
        return self.readout_features(acts)

    def stream_features(self, images: torch.Tensor, take: Callable[[slice, torch.Tensor], None]) -> None:
        """One pass of the neutral input that hands each prediction layer's normalised, detached activity
        to `take(columns, features)`, with its columns in the readout's input, as soon as the layer has run,
        and keeps nothing: `neutral_features` without the whole of them at once."""
        norm, start = per_sample(self.norm), 0

        def each(i: int, z: torch.Tensor, y: torch.Tensor) -> None:
            nonlocal start
            if i >= self.predict_from:
                take(slice(start, start + y.shape[1]), normalize(y.detach(), norm, self.norm_eps))
                start += y.shape[1]

        self.stack(self.unlabelled(images), each=each, keep=False, recall=fast_weights.recall_for(self.fast))

    def neutral_logits(self, images: torch.Tensor) -> torch.Tensor:
        """The readout's fp32 logits on one pass of the neutral input, with a graph to the readout alone where
        grad is enabled; with model.readout_recompute, its input is never held whole (recomputed_readout.py)."""
        readout = cast(nn.Linear, self.readout)
        if self.recompute_readout:
            return cast(torch.Tensor, RecomputedReadout.apply(readout.weight, readout.bias, self, images))
        with torch.no_grad():
            features = self.neutral_features(images)
        return readout(features).float()

    def readout_features(self, acts: list[torch.Tensor]) -> torch.Tensor:
        """Normalised, detached activities of the prediction layers, side by side (B, sum units)."""
        return readout_features(acts[self.predict_from :], self.norm, self.norm_eps)

    @torch.no_grad()
    def features(self, images: torch.Tensor, layers: list[int]) -> torch.Tensor:
        """(B, ...) images -> normalised activities of `layers` for the unlabelled input (for probes)."""
        acts = self.activities(self.unlabelled(images))
        return readout_features([acts[i] for i in layers], self.norm, self.norm_eps)

    def goodness_terms(self, index: int, y: torch.Tensor) -> torch.Tensor:
        """Layer `index`'s activity (B, units) -> its goodness terms (B, K): one per region or channel
        group of objective.goodness_scope, one for the whole layer."""
        return self.goodness(self.scope.split(y, self.stack.layers[index].out_shape)).flatten(1)

    def layer_goodness(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, ...) coded inputs -> every layer's goodness (B, layers), the mean of its terms."""
        return self.goodness_of(self.activities(inputs))

    def goodness_of(self, acts: list[torch.Tensor]) -> torch.Tensor:
        """Every layer's activity (B, units) -> its goodness (B, layers), the mean of its terms."""
        return torch.stack([self.goodness_terms(i, a).mean(dim=1) for i, a in enumerate(acts)], dim=1)

    def readout_logits(self, images: torch.Tensor) -> torch.Tensor:
        """One pass of the unlabelled input; (B, ...) -> (B, C) logits."""
        assert self.readout is not None, "this model was built without a readout"
        return self.readout(self.neutral_features(images))

    def label_goodness(self, images: torch.Tensor) -> torch.Tensor:
        """Goodness of every image with every label in ONE batched pass: (B, ...) -> (B, C, layers)."""
        assert self.negatives.labelled, "an unsupervised network has no label to score"
        if self.fast is not None:
            return self._label_goodness_with_memory(images)
        block = self._images_in_heap(images)
        if block < images.shape[0]:
            return torch.cat([self.label_goodness(images[start : start + block])
                              for start in range(0, images.shape[0], block)])
        if self.labels_apart:  # the first layer multiplies each image once, not once per label
            g = self.goodness_of(self.stack.activities(self.coding.every_label_apart(images)))  # (B*C, layers)
        else:
            g = self.layer_goodness(self.coding.every_label(images))
        return g.view(images.shape[0], self.num_classes, len(self.stack))

    def _images_in_heap(self, images: torch.Tensor) -> int:
        """Images whose every-label pass fits in one block of the CPU heap (all of them on a GPU, or in
        training, where a batch's statistics may be read): ten rows an image make a layer's activity of a
        1000-image batch 80 MB at 2000 units, which glibc maps afresh for every op, and the page faults
        took half of `hinton-mnist`'s prediction time in bf16 (`benchmarks/predict_throughput.py`)."""
        from ..training.host_memory import rows_in_heap  # late: the training package imports the models

        if images.device.type != "cpu" or self.training:
            return images.shape[0]
        widest = max([math.prod(self.stack_input_shape), *self.stack.units])
        return max(1, rows_in_heap(widest * 4) // self.num_classes)  # fp32 activities: 4 bytes a value

    def _label_goodness_with_memory(self, images: torch.Tensor) -> torch.Tensor:
        """label_goodness with fast weights: the labels label-major (copy c = every window with label c),
        each window's memory read from the earlier windows with their real next characters."""
        assert self.fast is not None
        batch, classes = images.shape[0], self.num_classes
        self.fast.check_rows(batch)
        labels = torch.arange(classes, device=images.device).repeat_interleave(batch)
        x = self.coding.write(images.repeat(classes, *[1] * (images.dim() - 1)), labels)
        reference = fast_weights.next_characters(images, self.fast.positions)
        acts = self.stack.activities(x, recall=fast_weights.recall_for(self.fast, classes, reference))
        g = torch.stack([self.goodness_terms(i, a).mean(dim=1) for i, a in enumerate(acts)], dim=1)
        return g.view(classes, batch, len(self.stack)).transpose(0, 1)

    def combined_scores(self, logits: torch.Tensor, goodness: torch.Tensor,
                        goodness_weight: float | None = None) -> torch.Tensor:
        """Readout logits (B, C) and the prediction layers' goodness (B, C, layers) -> (B, C): the
        readout's log-probabilities plus `goodness_weight` (default objective.goodness_weight) times
        each label's goodness per unit (a mean goodness as is), summed over the layers. Both are
        evidence from the same layers by different routes; their errors differ, so together they err less."""
        weight = self.objective.goodness_weight if goodness_weight is None else goodness_weight
        scales = torch.tensor(self.goodness_scales[self.predict_from :], device=goodness.device)
        evidence = (goodness.float() / scales).sum(dim=2)
        return logits.float().log_softmax(dim=1) + weight * evidence

    @torch.no_grad()
    def predictions(self, images: torch.Tensor, ways: tuple[str, ...],
                    goodness_weight: float | None = None) -> dict[str, torch.Tensor]:
        """Predicted classes (B,) by each of `ways`: the readout ("softmax"), summed goodness ("goodness"),
        or both ("combined"). Each pass is made once, however many ways need it."""
        if not set(ways) <= set(self.ways):
            raise FFError(f"this network predicts by {' or '.join(self.ways)}, not by {', '.join(ways)}.")
        check_batch(images, self.data_shape, self.stack.layers[0].mean_activity)
        scores = {}
        if {"softmax", "combined"} & set(ways):
            scores["softmax"] = self.readout_logits(images)
        if {"goodness", "combined"} & set(ways):
            goodness = self.label_goodness(images)[:, :, self.predict_from :]
            scores["goodness"] = goodness.sum(dim=2)
        if "combined" in ways:
            scores["combined"] = self.combined_scores(scores["softmax"], goodness, goodness_weight)
        return {how: scores[how].argmax(dim=1) for how in ways}

    def predict(self, images: torch.Tensor, how: str = "softmax") -> torch.Tensor:
        """Predicted classes (B,) by one way (see `predictions`)."""
        return self.predictions(images, (how,))[how]

    @torch.no_grad()
    def class_log_probs(self, images: torch.Tensor, ways: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """(B, C) log-probabilities of the classes by each of `ways`: the readout's softmax, the softmax of
        each label's goodness per unit summed over the prediction layers, or of the combined scores.
        What hard and generated negatives sample from, and what bits per character are measured on."""
        if not set(ways) <= set(self.ways):
            raise FFError(f"this network predicts by {' or '.join(self.ways)}, not by {', '.join(ways)}.")
        check_batch(images, self.data_shape, self.stack.layers[0].mean_activity)
        scores = {}
        if {"softmax", "combined"} & set(ways):
            scores["softmax"] = self.readout_logits(images).float()
        if {"goodness", "combined"} & set(ways):
            goodness = self.label_goodness(images)[:, :, self.predict_from :]
            scales = torch.tensor(self.goodness_scales[self.predict_from :], device=goodness.device)
            scores["goodness"] = (goodness.float() / scales).sum(dim=2)
        if "combined" in ways:
            scores["combined"] = self.combined_scores(scores["softmax"], goodness)
        return {how: scores[how].log_softmax(dim=1) for how in ways}

    def sampling_probs(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C) probabilities hard and generated negatives draw from: objective.sample_from's
        log-probabilities divided by objective.sample_temperature, through a softmax."""
        logp = self.class_log_probs(images, (self.objective.sample_from,))[self.objective.sample_from]
        return (logp / self.objective.sample_temperature).softmax(dim=1)

    # ---- training objectives ----------------------------------------------------------------
    def layer_loss(self, index: int, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Objective of layer `index` on positive and negative activities ((P, units), (N, units)): with
        several goodness terms per sample, each region or channel group has its own loss term.

        Either side may be empty: a separate positive or negative ("sleep") phase.
        """
        return self.goodness_loss(index, self.goodness_terms(index, pos), self.goodness_terms(index, neg))

    def goodness_loss(self, index: int, g_pos: torch.Tensor, g_neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """`layer_loss` from the goodness terms of the positives and negatives ((P, K), (N, K))."""
        theta = self.thresholds[index]
        loss = self.loss_fn(g_pos, g_neg, theta, self.objective.temperature, **self.loss_options)
        stats: dict[str, torch.Tensor | float]
        right: list[torch.Tensor]
        stats, right = {}, []  # right: fraction of samples on the right side of the threshold
        if g_pos.numel():
            stats["g_pos"] = g_pos.detach().mean()
            right.append((g_pos.detach() > theta).float().mean())
        if g_neg.numel():
            stats["g_neg"] = g_neg.detach().mean()
            right.append((g_neg.detach() < theta).float().mean())
        stats["acc"] = sum(right) / len(right)
        return loss, stats

    def layer_objective(self, index: int, z: torch.Tensor, y: torch.Tensor, batch: int) -> tuple[torch.Tensor, dict]:
        """What layer `index` is trained on, given its pre-activation and activity on `batch` positives
        followed by the negatives: `layer_loss` plus the peer-normalisation term (positives only)."""
        # goodness of every row at once, split afterwards: the backward pass then scatters (B, K) terms, not
        # (B, units) activities, into the whole batch
        g = self.goodness_terms(index, y)
        loss, stats = self.goodness_loss(index, g[:batch], g[batch:])
        if self.stack.layers[index].peer_lambda > 0 and batch:
            loss = loss + self.stack.layers[index].peer_loss(z[:batch], y[:batch])
        return loss, stats

    def _layers_to_run(self, active: frozenset[str]) -> tuple[list[int], int]:
        """The layers whose losses are active, and how many layers the pass runs: up to the highest
        active one, or all of them when the unsupervised readout (which reads this pass) is active."""
        trained = [i for i in range(len(self.stack)) if f"layer{i}" in active]
        unsupervised_readout = self.readout is not None and "readout" in active and not self.negatives.labelled
        every_layer = unsupervised_readout or "generator" in active  # both read the whole pass
        return trained, len(self.stack) if every_layer else max(trained, default=-1) + 1

    def train_layers(self, x: torch.Tensor, batch: int, trained: list[int], upto: int,
                     losses: dict, stats: dict, keep: bool) -> list[torch.Tensor]:
        """Run the coded inputs x (`batch` positives, then the negatives) through the first `upto`
        layers, putting each trained layer's loss into `losses` and its statistics into `stats` as
        soon as the layer has run (backpropagated at once under release_graphs). With `keep`, returns
        the positives' detached activities (what the unsupervised readout reads)."""
        kept: list[torch.Tensor] = []

        def settle(i: int, z: torch.Tensor, y: torch.Tensor) -> None:
            if keep:
                kept.append(y[:batch].detach())
            if i not in trained:
                return
            loss, stats[f"layer{i}"] = self.layer_objective(i, z, y, batch)
            losses[f"layer{i}"] = self.release(loss, y)

        # hard negatives are drawn from the readout's pass through the trained layer: new inputs every step
        repeats = (self._repeat_key is not None and len(trained) == 1 and not keep and self.fast is None
                   and not self.negatives.needs_probs)
        start = trained[0] if repeats else 0
        # batchnorm's running statistics move on every pass of a frozen layer: those layers run every step
        if start and any(getattr(m, "track_running_stats", False) for m in self.stack.layers[:start].modules()):
            start = 0
        if start:  # the frozen layers below the trained one ran on these inputs in an earlier step
            entry = (self._repeat_key, start)
            if entry not in self._repeated:
                while len(self._repeated) >= self.repeat_slots:  # the oldest goes
                    del self._repeated[next(iter(self._repeated))]
                self._repeated[entry] = self.stack.input_of(start, x)
            x = self._repeated[entry]
        self.stack(x, upto=upto, start=start,  # (P + N, ...): one matmul per layer for both
                   frozen=frozenset(range(upto)) - set(trained), each=settle, keep=False,
                   recall=fast_weights.recall_for(self.fast, copies=2))  # memory: the positives
        return kept

    @property
    def repeat_key(self) -> Hashable | None:
        """Set by the training loop before each step: steps with the same key feed their one trained
        layer the same input (a greedy schedule that draws negatives once per chunk), so the frozen
        layers below it run once per key, not once per step. The inputs of the last `repeat_slots` keys
        are kept (a step split into micro-batches has a key for each). None (the default) keeps nothing."""
        return self._repeat_key

    @repeat_key.setter
    def repeat_key(self, key: Hashable | None) -> None:
        self._repeat_key = key
        if key is None:
            self._repeated.clear()

    def forward(self, images: torch.Tensor, labels: torch.Tensor, active: frozenset[str] | None = None,
                phase: str = "both") -> tuple[dict[str, torch.Tensor], dict]:
        """Named losses for one minibatch, one per active layer plus "readout", and detached statistics.

        active: the losses wanted on this step (default every one of `loss_names`): a greedy schedule
        asks for one. Layers below an active one run without a graph; layers above it do not run.
        phase "positive" or "negative" trains the layers on that kind of data alone (paper §3.5).
        """
        check_batch(images, self.data_shape, self.stack.layers[0].mean_activity)
        active = frozenset(self.loss_names) if active is None else active
        wants_readout = self.readout is not None and "readout" in active
        losses: dict[str, torch.Tensor] = {}
        stats: dict[str, dict] = {}
        probs = readout_loss = None
        by_readout = self.negatives.needs_probs and self.objective.sample_from == "softmax"
        if self.negatives.labelled and (wants_readout or by_readout):
            # the readout reads one pass of the neutral input; hard negatives may be sampled from it (in fp32)
            with torch.set_grad_enabled(torch.is_grad_enabled() and wants_readout):
                logits = self.neutral_logits(images)
            if wants_readout:
                # backpropagated now under release_graphs: its graph would hold the features all step
                readout_loss = self.release(F.cross_entropy(logits, labels), logits)
                readout_acc = (logits.detach().argmax(1) == labels).float().mean()
            probs = (logits.detach() / self.objective.sample_temperature).softmax(dim=1)
        if self.negatives.needs_probs and not by_readout:
            probs = self.sampling_probs(images)
        trained, upto = self._layers_to_run(active)
        kept: list[torch.Tensor] = []
        wants_generator = self.generator is not None and "generator" in active
        if upto == 0:  # the readout alone (a greedy readout step): no layer, no negatives
            batch = 0
        else:
            pos, neg = self.negatives.make(images, labels, self.coding, probs, self)
            pos, neg = (pos, neg[:0]) if phase == "positive" else (pos[:0], neg) if phase == "negative" else (pos, neg)
            batch = pos.shape[0]
            kept = self.train_layers(torch.cat([pos, neg]), batch, trained, upto, losses, stats,
                                     keep=wants_generator or (wants_readout and not self.negatives.labelled))
        if wants_generator and batch:  # the decoders learn from real images and their codes
            assert self.generator is not None
            loss, stats["generator"] = self.generator.loss(images, kept)
            losses["generator"] = self.release(loss, loss)
            if self.training:  # a forward pass outside training leaves the prior's codes as they are
                self.generator.remember(kept[-1], labels)
        if wants_readout and not self.negatives.labelled and batch:
            logits = cast(nn.Linear, self.readout)(self.readout_features(kept)).float()  # the readout's pass ran
            readout_loss = F.cross_entropy(logits, labels)
            readout_acc = (logits.detach().argmax(1) == labels).float().mean()
        if readout_loss is not None:  # after the layers: a divergence is reported at its source first
            losses["readout"], stats["readout"] = readout_loss, {"acc": readout_acc}
        return losses, stats

    def losses(self, images: torch.Tensor, labels: torch.Tensor, phase: str = "both"):
        """Every named loss of one minibatch: `forward` with all losses active."""
        return self(images, labels, phase=phase)

    def prediction_flops_per_image(self, way: str) -> int:
        """Matmul FLOPs of predicting one image by `way`: the neutral pass and the readout's logits
        ("softmax"), every label's pass ("goodness", whose first layer multiplies the image once where
        `labels_apart`), or both ("combined")."""
        macs = [layer.macs for layer in self.stack.layers]
        flops = 0
        if way in ("softmax", "combined"):
            flops += 2 * sum(macs) + 2 * cast(nn.Linear, self.readout).weight.numel()
        if way in ("goodness", "combined"):
            labels = self.num_classes
            if self.labels_apart:  # the image's inputs once, the C label inputs once per row
                first = self.stack.layers[0]
                image_inputs = first.in_features - labels
                flops += 2 * first.out_features * (image_inputs + labels * labels) + 2 * labels * sum(macs[1:])
            else:
                flops += 2 * labels * sum(macs)
        return flops

    def matmul_flops_per_image(self, active: frozenset[str] | None = None) -> float:
        """Matmul FLOPs of one training image in a step with `active` losses (default all): positive and
        negative forward and weight-gradient passes of the trained layers (inputs are detached, so no
        input gradients), forward passes of the layers below them, the neutral pass and the readout."""
        active = frozenset(self.loss_names) if active is None else active
        trained, upto = self._layers_to_run(active)
        macs = [layer.macs for layer in self.stack.layers]
        samples = 1 + self.negatives.per_image if upto else 0
        flops = sum(2 * (2 if i in trained else 1) * macs[i] * samples for i in range(upto))  # 2 FLOPs per MAC
        wants_readout = self.readout is not None and "readout" in active
        by_readout = self.negatives.needs_probs and self.objective.sample_from == "softmax"
        if self.negatives.labelled and (wants_readout or by_readout):
            flops += self.prediction_flops_per_image("softmax")  # the neutral pass and its logits
        if self.negatives.needs_probs and not by_readout:
            flops += self.prediction_flops_per_image("goodness")  # every label's pass, to sample from its goodness
        if wants_readout:  # weight gradient, and the forward pass where no neutral pass made it (unsupervised)
            flops += (2 if self.negatives.labelled else 4) * cast(nn.Linear, self.readout).weight.numel()
            if self.recompute_readout:  # the neutral pass again, for the weight gradient
                flops += 2 * sum(macs)
        if self.generator is not None and "generator" in active:  # each decoder's forward and weight gradient
            flops += 4 * sum(p.numel() for name, p in self.generator.decoders.named_parameters() if "weight" in name)
        return flops
