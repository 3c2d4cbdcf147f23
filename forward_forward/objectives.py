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
}


def logistic_loss(g_pos: torch.Tensor, g_neg: torch.Tensor, theta: float, temperature: float) -> torch.Tensor:
    """Mean of -log p(positive) over positives and -log p(negative) over negatives, p = sigmoid((g - theta) / T).

    Averaged over all 2B samples, its gradient on sum-of-squares goodness equals the MATLAB code's
    (which drops the factor 2 of d(y^2)/dy but sums the positive and negative means), so the
    recipe's learning rates carry over unchanged. softplus stays finite where log(sigmoid) underflows.
    """
    return 0.5 * (F.softplus(-(g_pos - theta) / temperature).mean() + F.softplus((g_neg - theta) / temperature).mean())


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "logistic": logistic_loss,
}
