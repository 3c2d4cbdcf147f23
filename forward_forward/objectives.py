"""Goodness functions and layer losses, registered by name (paper §2).

A goodness maps a layer's activity (B, D) to one number per sample (B,); a loss turns the
goodness of positive and negative samples into the layer's scalar objective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Goodness:
    fn: Callable[[torch.Tensor], torch.Tensor]  # (B, D) -> (B,)
    default_threshold: Callable[[int], float]  # number of units -> theta


GOODNESS: dict[str, Goodness] = {
    # MATLAB recipe: theta = number of units, i.e. a mean square of 1 per unit.
    "sum_squares": Goodness(lambda y: y.pow(2).sum(dim=1), lambda units: float(units)),
    "mean_squares": Goodness(lambda y: y.pow(2).mean(dim=1), lambda units: 1.0),
    # The sum of activities without squaring, which the paper says "also works well".
    "sum_abs": Goodness(lambda y: y.abs().sum(dim=1), lambda units: float(units)),
    "mean_abs": Goodness(lambda y: y.abs().mean(dim=1), lambda units: 1.0),
    # Negated forms: positive data must have LOW activity ("min ssq" in the paper's CIFAR table).
    "neg_sum_squares": Goodness(lambda y: -y.pow(2).sum(dim=1), lambda units: -float(units)),
    "neg_mean_squares": Goodness(lambda y: -y.pow(2).mean(dim=1), lambda units: -1.0),
    "neg_sum_abs": Goodness(lambda y: -y.abs().sum(dim=1), lambda units: -float(units)),
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
    return g_pos.repeat_interleave(g_neg.shape[0] // g_pos.shape[0])


def symba_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, temperature: float,
               alpha: float = 4.0) -> torch.Tensor:
    """SymBa (Lee & Song 2023): softplus(-alpha (G+ - G-) / T) on each positive/negative pair.

    It needs no threshold and pushes the pair apart symmetrically, so neither side dominates.
    """
    return F.softplus(-alpha * (_pair(g_pos, g_neg) - g_neg) / temperature).mean()


def hinge_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, temperature: float) -> torch.Tensor:
    """A margin loss: positives must clear theta + T and negatives stay below theta - T; zero beyond."""
    return 0.5 * (_mean(F.relu(theta + temperature - g_pos)) + _mean(F.relu(g_neg - theta + temperature)))


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "logistic": logistic_loss,
    "symba": symba_loss,
    "hinge": hinge_loss,
}
