"""Supervised Forward-Forward network with the label written into the image (paper §3.3).

The model hands the training loop named per-layer losses; it never steps an optimiser itself.
Every layer's input is detached, so each loss trains exactly one layer (and "readout" only the
linear softmax readout).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import labels as label_ops
from .blackbox import BlackBox
from .config import ModelConfig, ObjectiveConfig, per_layer
from .errors import FFError
from .layers import FFLayer, FFLinear, FFLocal, local_grid, normalize
from .objectives import GOODNESS, LOSSES


def make_layers(model: ModelConfig, input_dim: int, image_shape: tuple[int, int, int] | None,
                peer_lambda: float | None = None) -> list[FFLayer]:
    """The hidden layers: dense (`model.hidden` = units per layer), or with `model.local_kernel` > 0
    locally connected, each on the map of the layer below (`model.hidden` = channels per location)."""
    options = dict(activation=model.activation, norm=model.norm, norm_eps=model.norm_eps, init=model.init,
                   peer_lambda=model.peer_lambda if peer_lambda is None else peer_lambda,
                   peer_decay=model.peer_decay)
    layers: list[FFLayer] = []
    if model.local_kernel:
        assert image_shape is not None, "local layers need the image shape"
        shape = tuple(image_shape)
        geometry = zip(model.hidden, *(per_layer(model, f"local_{k}") for k in ("kernel", "stride", "padding")))
        for i, (channels, kernel, stride, padding) in enumerate(geometry):
            if min(local_grid(shape[1:], kernel, stride, padding)) < 1:
                raise FFError(f"hidden layer {i}: a {kernel} x {kernel} field with padding {padding} does not fit "
                              f"its {shape[1]} x {shape[2]} input map; lower model.local_kernel or add padding.")
            layers.append(FFLocal(shape, channels, kernel, stride=stride, padding=padding, **options))
            shape = layers[-1].out_shape
        return layers
    sizes = [input_dim, *model.hidden]
    return [FFLinear(n_in, n_out, **options) for n_in, n_out in zip(sizes[:-1], sizes[1:])]


class FFClassifier(nn.Module):
    def __init__(self, *, input_dim: int, num_classes: int, model: ModelConfig, objective: ObjectiveConfig,
                 image_shape: tuple[int, int, int] | None = None):
        super().__init__()
        assert input_dim > num_classes, "the label is written into the first pixels: the image is too small"
        self.num_classes = num_classes
        self.objective = objective
        self.layers = nn.ModuleList(make_layers(model, input_dim, image_shape))
        units = [layer.out_features for layer in self.layers]
        self.norm, self.norm_eps = model.norm, model.norm_eps
        # stage i sits between hidden layer i and layer i + 1
        self.blackboxes = nn.ModuleList(
            BlackBox(model.blackbox, n, model.blackbox_strength, seed=i) for i, n in enumerate(units[:-1])
        )
        self.goodness = GOODNESS[objective.goodness].fn
        self.loss_fn = LOSSES[objective.loss]
        self.loss_options = {"alpha": objective.symba_alpha} if objective.loss == "symba" else {}
        default = GOODNESS[objective.goodness].default_threshold
        self.thresholds = [objective.threshold if objective.threshold is not None else default(n) for n in units]
        # goodness per unit for sum goodness, as is for mean goodness: the same scale whatever the width
        self.goodness_scales = [abs(default(n)) for n in units]
        self.predict_from = objective.predict_layers_from
        readout_in = sum(units[self.predict_from :])
        self.readout = nn.Linear(readout_in, num_classes) if model.readout else None
        if self.readout is not None:
            nn.init.zeros_(self.readout.weight)
            nn.init.zeros_(self.readout.bias)

    @property
    def ways(self) -> tuple[str, ...]:
        """The ways this model can predict."""
        return ("softmax", "goodness", "combined") if self.readout is not None else ("goodness",)

    @property
    def validation_method(self) -> str:
        """How to predict during training: the configured way, or for "best" the one-pass readout."""
        if self.objective.predict != "best":
            return self.objective.predict
        return "softmax" if self.readout is not None else "goodness"

    # ---- forward passes -------------------------------------------------------------------
    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(N, D) inputs -> each hidden layer's activity (N, units); inputs are detached per layer."""
        out = []
        for i, layer in enumerate(self.layers):
            y = layer(x)
            out.append(y)
            x = self.blackboxes[i](y) if i < len(self.blackboxes) else y
        return out

    def readout_features(self, acts: list[torch.Tensor]) -> torch.Tensor:
        """Normalised, detached activities of the prediction layers, side by side (N, sum units)."""
        return torch.cat([normalize(a.detach(), self.norm, self.norm_eps) for a in acts[self.predict_from :]], 1)

    def unlabelled(self, images: torch.Tensor) -> torch.Tensor:
        """The input that carries no label: here the neutral label (0.1 in every label pixel)."""
        return label_ops.neutral(images, self.num_classes, self.objective.neutral_value)

    def readout_logits(self, images: torch.Tensor) -> torch.Tensor:
        """One pass of the unlabelled input; (B, D) -> (B, C) logits."""
        assert self.readout is not None, "this model was built without a readout"
        return self.readout(self.readout_features(self.activities(self.unlabelled(images))))

    def label_goodness(self, images: torch.Tensor) -> torch.Tensor:
        """Goodness of every image with every label in ONE batched pass: (B, D) -> (B, C, layers)."""
        x = label_ops.every_label(images, self.num_classes, self.objective.label_value)  # (B*C, D)
        g = torch.stack([self.goodness(a) for a in self.activities(x)], dim=1)  # (B*C, layers)
        return g.view(images.shape[0], self.num_classes, len(self.layers))

    def combined_scores(self, logits: torch.Tensor, goodness: torch.Tensor) -> torch.Tensor:
        """Readout logits (B, C) and the prediction layers' goodness (B, C, layers) -> (B, C): the
        readout's log-probabilities plus `goodness_weight` times each label's goodness per unit (a mean
        goodness as is), summed over the layers. Both are evidence from the same layers by different
        routes; their errors differ, so together they err less."""
        scales = torch.tensor(self.goodness_scales[self.predict_from :], device=goodness.device)
        evidence = (goodness.float() / scales).sum(dim=2)
        return logits.float().log_softmax(dim=1) + self.objective.goodness_weight * evidence

    @torch.no_grad()
    def predictions(self, images: torch.Tensor, ways: tuple[str, ...]) -> dict[str, torch.Tensor]:
        """Predicted classes (B,) by each of `ways`: the readout ("softmax"), summed goodness ("goodness"),
        or both ("combined"). Each pass is made once, however many ways need it."""
        assert set(ways) <= {"softmax", "goodness", "combined"}, f"predict by {ways}: resolve 'best' first"
        scores = {}
        if {"softmax", "combined"} & set(ways):
            scores["softmax"] = self.readout_logits(images)
        if {"goodness", "combined"} & set(ways):
            goodness = self.label_goodness(images)[:, :, self.predict_from :]
            scores["goodness"] = goodness.sum(dim=2)
        if "combined" in ways:
            scores["combined"] = self.combined_scores(scores["softmax"], goodness)
        return {how: scores[how].argmax(dim=1) for how in ways}

    def predict(self, images: torch.Tensor, how: str = "softmax") -> torch.Tensor:
        """Predicted classes (B,) by one way (see `predictions`)."""
        return self.predictions(images, (how,))[how]

    # ---- training objectives --------------------------------------------------------------
    def layer_loss(self, index: int, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Objective of layer `index` on positive and negative activities ((P, units), (N, units)).

        Either side may be empty: a separate positive or negative ("sleep") phase.
        """
        g_pos, g_neg = self.goodness(pos), self.goodness(neg)
        theta = self.thresholds[index]
        loss = self.loss_fn(g_pos, g_neg, theta, self.objective.temperature, **self.loss_options)
        stats, right = {}, []  # right: fraction of samples on the right side of the threshold
        if g_pos.numel():
            stats["g_pos"] = g_pos.detach().mean()
            right.append((g_pos.detach() > theta).float().mean())
        if g_neg.numel():
            stats["g_neg"] = g_neg.detach().mean()
            right.append((g_neg.detach() < theta).float().mean())
        stats["acc"] = sum(right) / len(right)
        return loss, stats

    def positive_negative(
        self, images: torch.Tensor, labels: torch.Tensor, probs: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images with their true label (B, D), and with wrong ones: (B, D), or (B*(C-1), D) for "all".

        Hard negatives are sampled from `probs` when given; without them (no readout yet), random.
        """
        negatives, value = self.objective.negatives, self.objective.label_value
        neg_images = images
        if negatives == "all":
            wrong = label_ops.all_wrong(labels, self.num_classes)
            neg_images = images.repeat_interleave(self.num_classes - 1, dim=0)
        elif negatives == "hard" and probs is not None:
            wrong = label_ops.hard_wrong(labels, probs)
        else:
            wrong = label_ops.random_wrong(labels, self.num_classes)
        return (
            label_ops.overlay(images, labels, self.num_classes, value),
            label_ops.overlay(neg_images, wrong, self.num_classes, value),
        )

    def layer_losses(self, pos: torch.Tensor, neg: torch.Tensor, phase: str = "both") -> tuple[dict, dict, list]:
        """Every layer's loss on positive and negative inputs, its statistics, and the positive
        activities. Phase "positive" or "negative" keeps one kind of data alone (paper §3.5)."""
        pos, neg = (pos, neg[:0]) if phase == "positive" else (pos[:0], neg) if phase == "negative" else (pos, neg)
        x = torch.cat([pos, neg])  # (P + N, D): one matmul per layer for both kinds of data
        batch = pos.shape[0]
        losses, stats, positive = {}, {}, []
        for i, layer in enumerate(self.layers):
            z = layer.pre_activation(x)
            y = layer.activation(z)
            loss, stats[f"layer{i}"] = self.layer_loss(i, y[:batch], y[batch:])
            if layer.peer_lambda > 0 and batch:
                loss = loss + layer.peer_loss(z[:batch], y[:batch])
            losses[f"layer{i}"] = loss
            positive.append(y[:batch])
            x = self.blackboxes[i](y) if i < len(self.blackboxes) else y
        return losses, stats, positive

    def losses(
        self, images: torch.Tensor, labels: torch.Tensor, phase: str = "both"
    ) -> tuple[dict[str, torch.Tensor], dict]:
        """Named losses for one minibatch: one per layer, plus "readout"; and detached statistics.

        phase "positive" or "negative" trains the layers on that kind of data alone (paper §3.5).
        """
        probs, readout_loss = None, None
        if self.readout is not None:
            with torch.no_grad():
                features = self.readout_features(self.activities(self.unlabelled(images)))
            logits = self.readout(features).float()  # hard negatives are sampled from fp32 probabilities
            readout_loss = F.cross_entropy(logits, labels)
            readout_acc = (logits.detach().argmax(1) == labels).float().mean()
            probs = logits.detach().softmax(dim=1)
        pos, neg = self.positive_negative(images, labels, probs)
        losses, stats, _ = self.layer_losses(pos, neg, phase)
        if readout_loss is not None:  # after the layers: a divergence is reported at its source first
            losses["readout"], stats["readout"] = readout_loss, {"acc": readout_acc}
        return losses, stats
