"""Goodness functions and layer losses, registered by name (paper §2).

A goodness maps a layer's activity (..., D) to one number (...,): for the whole layer, or with a
`Scope` for each region or channel group of it. A loss turns the goodness of positive and negative
samples, (P, K) and (N, K) for K goodness terms per sample, into the layer's scalar objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from .errors import FFError


@dataclass(frozen=True)
class Goodness:
    fn: Callable[[torch.Tensor], torch.Tensor]  # (..., D) -> (...,)
    default_threshold: Callable[[int], float]  # number of units -> theta
    # the default threshold asks for an activity of 1 a unit on average: out of reach of an activation
    # that keeps every unit below 1 (config warns)
    unit_activity: bool = False


GOODNESS: dict[str, Goodness] = {
    # MATLAB recipe: theta = number of units, i.e. a mean square of 1 per unit.
    "sum_squares": Goodness(lambda y: y.pow(2).sum(dim=-1), lambda units: float(units), unit_activity=True),
    "mean_squares": Goodness(lambda y: y.pow(2).mean(dim=-1), lambda units: 1.0, unit_activity=True),
    # The sum of activities without squaring, which the paper says "also works well".
    "sum_abs": Goodness(lambda y: y.abs().sum(dim=-1), lambda units: float(units), unit_activity=True),
    "mean_abs": Goodness(lambda y: y.abs().mean(dim=-1), lambda units: 1.0, unit_activity=True),
    # Negated forms: positive data must have LOW activity ("min ssq" in the paper's CIFAR table).
    "neg_sum_squares": Goodness(lambda y: -y.pow(2).sum(dim=-1), lambda units: -float(units)),
    "neg_mean_squares": Goodness(lambda y: -y.pow(2).mean(dim=-1), lambda units: -1.0),
    "neg_sum_abs": Goodness(lambda y: -y.abs().sum(dim=-1), lambda units: -float(units)),
    # Scale-free: D sum(y^4) / sum(y^2)^2, 1 when every unit is equally active, D when one unit is (about 6
    # for a random ReLU layer). Scaling a layer's weights cannot change it, so a phase of positive data
    # alone cannot win by raising every activity, which the next phase of negatives would then undo: an
    # attempt at the paper's question whether the positive and negative phases can be separated (§3.5).
    "peak": Goodness(lambda y: y.shape[-1] * y.pow(4).sum(dim=-1) / y.pow(2).sum(dim=-1).pow(2).clamp_min(1e-12),
                     lambda units: 8.0),
}


def _mean(t: torch.Tensor) -> torch.Tensor:
    """Mean that is 0 for an empty side (a positive-only or negative-only phase)."""
    return t.sum() / max(t.numel(), 1)


def logistic_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, temperature: float) -> torch.Tensor:
    """Mean of -log p(positive) over positives and -log p(negative) over negatives, p = sigmoid((g - theta) / T).

    Averaged over all 2B samples, its gradient on sum-of-squares goodness equals the MATLAB code's
    (which drops the factor 2 of d(y^2)/dy but sums the positive and negative means), so the
    recipe's learning rates carry over unchanged. softplus stays finite where log(sigmoid) underflows.
    """
    return 0.5 * (_mean(F.softplus(-(g_pos - theta) / temperature)) + _mean(F.softplus((g_neg - theta) / temperature)))


def _pair(g_pos: torch.Tensor, g_neg: torch.Tensor) -> torch.Tensor:
    """Positive goodness repeated to line up with the negatives (k negatives per image, image-major)."""
    return g_pos.repeat_interleave(g_neg.shape[0] // g_pos.shape[0], dim=0)


def symba_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, temperature: float,
               alpha: float = 4.0) -> torch.Tensor:
    """SymBa (Lee & Song 2023): softplus(-alpha (G+ - G-) / T) on each positive/negative pair.

    It needs no threshold and pushes the pair apart symmetrically, so neither side dominates.
    """
    return F.softplus(-alpha * (_pair(g_pos, g_neg) - g_neg) / temperature).mean()


def hinge_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, temperature: float) -> torch.Tensor:
    """A margin loss: positives must clear theta + T and negatives stay below theta - T; zero beyond."""
    return 0.5 * (_mean(F.relu(theta + temperature - g_pos)) + _mean(F.relu(g_neg - theta + temperature)))


@dataclass(frozen=True)
class Scope:
    """What each goodness of a layer is computed over: `groups` groups of channels, each split into
    square patches of `region` x `region` positions (0: the whole map). The paper's open question:
    "can FF benefit from multiple goodness functions computed from individual image areas?" (§8).
    """

    groups: int = 1
    region: int = 0

    def split(self, y: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
        """(B, units) activity of a layer of `shape` ((C, H, W), or (units,): one position) ->
        (B, groups, regions, units per term). A map whose side is not a multiple of `region` is
        zero padded: the border patches hold fewer real positions (zeros add nothing to a sum goodness
        and dilute a mean), and keep a full patch's threshold (`size`)."""
        batch = y.shape[0]
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        y = y.reshape(batch, self.groups, c // self.groups, h, w)
        if self.region <= 0 or (h, w) == (1, 1):
            return y.reshape(batch, self.groups, 1, c // self.groups * h * w)  # no -1: a batch may be empty
        r = self.region
        y = F.pad(y, (0, -w % r, 0, -h % r))
        rows, cols = y.shape[3] // r, y.shape[4] // r
        y = y.reshape(batch, self.groups, c // self.groups, rows, r, cols, r).permute(0, 1, 3, 5, 2, 4, 6)
        return y.reshape(batch, self.groups, rows * cols, c // self.groups * r * r)

    def size(self, shape: tuple[int, ...]) -> int:
        """Units in one goodness term of a layer of `shape`."""
        c, h, w = shape if len(shape) == 3 else (shape[0], 1, 1)
        if self.region <= 0 or (h, w) == (1, 1):
            return c // self.groups * h * w
        return c // self.groups * self.region**2


def _layer_scope(objective, num_classes: int) -> Scope:
    return Scope()


def _region_scope(objective, num_classes: int) -> Scope:
    return Scope(region=objective.region_size)


def _channel_scope(objective, num_classes: int) -> Scope:
    return Scope(groups=objective.channel_groups or num_classes)


# objective.goodness_scope: (objective config, number of classes) -> the Scope of every layer
SCOPES: dict[str, Callable[..., Scope]] = {"layer": _layer_scope, "region": _region_scope, "channels": _channel_scope}


def scope_of(objective, num_classes: int, stack) -> Scope:
    """objective.goodness_scope's Scope for the layers of `stack`, checked against their channels."""
    scope = SCOPES[objective.goodness_scope](objective, num_classes)
    for i, layer in enumerate(stack.layers):
        if layer.out_shape[0] % scope.groups:
            raise FFError(f"objective.goodness_scope = {objective.goodness_scope} splits every layer's channels into "
                          f"{scope.groups} groups, and hidden layer {i} has {layer.out_shape[0]}: make each layer's "
                          f"channels a multiple of {scope.groups} (model.hidden) or set objective.channel_groups.")
    check_regions(scope, stack)
    return scope


def check_regions(scope: Scope, stack) -> None:
    """Goodness per region needs a layer with a map: on vector layers alone it would be the whole layer's."""
    if scope.region and not any(len(layer.out_shape) == 3 for layer in stack.layers):
        raise FFError("objective.goodness_scope = region splits maps into patches, and every hidden layer here is a "
                      "vector: use local or conv layers (model.layer), or goodness_scope = layer.")


@dataclass(frozen=True)
class Loss:
    """A layer's loss on the goodness of its positive and negative data (`objective.loss`)."""

    fn: Callable[..., torch.Tensor]  # (g_pos (B,), g_neg (kB,), theta, temperature, **options) -> scalar
    pairs: bool = False  # scores each positive against its own negatives: every step needs both sides
    options: tuple[tuple[str, str], ...] = ()  # (fn's keyword, the objective field that sets it)
    thresholded: bool = True  # scores goodness against objective.threshold (symba compares the two sides instead)

    def keywords(self, objective) -> dict[str, float]:
        """`fn`'s own options, read from the objective config."""
        return {keyword: getattr(objective, field) for keyword, field in self.options}


LOSSES: dict[str, Loss] = {
    "logistic": Loss(logistic_loss),
    "symba": Loss(symba_loss, pairs=True, options=(("alpha", "symba_alpha"),), thresholded=False),
    "hinge": Loss(hinge_loss),
}
