"""How a layer normalises its input (`model.norm`, `model.norm_scope`), by name.

The paper's normalisation (rms, l2) removes the length of the activity below, so a layer cannot
read the previous layer's goodness and must use its direction. On a map, `position` scope does
this at every position separately, so a bright region cannot drown a dim one. layernorm also
removes the mean (DeeperForward); batchnorm normalises each channel over the batch with running
statistics for prediction (Trifecta).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn


def _rms(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / (x.pow(2).mean(dim=1, keepdim=True).sqrt() + eps)


def _l2(x: torch.Tensor, eps: float) -> torch.Tensor:
    return x / (x.norm(dim=1, keepdim=True) + eps)


def _layernorm(x: torch.Tensor, eps: float) -> torch.Tensor:
    x = x - x.mean(dim=1, keepdim=True)
    return x / (x.pow(2).mean(dim=1, keepdim=True) + eps).sqrt()


# the norms that scale each sample alone; batchnorm reads the batch and is a module (InputNorm)
PER_SAMPLE = {"rms": _rms, "l2": _l2, "layernorm": _layernorm}


# the per-sample norms that only scale a row: its factor from the row's sum of squares and its length,
# which normalises an input that is never built (a label kept apart from its image: coding.Written)
ROW_SCALES: dict[str, Callable[[torch.Tensor, int, float], torch.Tensor]] = {
    "rms": lambda squares, n, eps: 1.0 / ((squares / n).sqrt() + eps),
    "l2": lambda squares, n, eps: 1.0 / (squares.sqrt() + eps),
}


def per_sample(kind: str) -> str:
    """`kind`, or rms in place of a norm that reads the batch: what scales one sample where a
    prediction must not depend on its batch (the readout's features, the top-down input)."""
    return kind if kind in PER_SAMPLE else "rms"


def normalize(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """Scale each row (dim 1) to unit RMS ("rms") or unit length ("l2") without subtracting the mean;
    "layernorm" subtracts the mean first and divides by the standard deviation."""
    if kind not in PER_SAMPLE:
        raise ValueError(f"{kind!r} is not a per-sample norm (one of {sorted(PER_SAMPLE)})")
    return PER_SAMPLE[kind](x, eps)


class InputNorm(nn.Module):
    """(B, *in_shape) or (B, in_features) -> (B, in_features), normalised as `kind` and `scope` say."""

    def __init__(self, kind: str, scope: str, in_shape: tuple[int, ...], eps: float):
        super().__init__()
        assert kind in NORMS, f"unknown norm {kind!r}"
        self.kind, self.eps, self.in_shape = kind, eps, tuple(in_shape)
        self.per_position = scope == "position" and len(in_shape) == 3
        # no affine part: a learnt scale would let a layer pass its goodness up again
        self.batchnorm = (nn.BatchNorm2d(in_shape[0], affine=False) if len(in_shape) == 3
                          else nn.BatchNorm1d(in_shape[0], affine=False)) if kind == "batchnorm" else None

    @property
    def scales_rows(self) -> bool:
        """Whether it scales each whole row by one factor, which `row_scale` gives."""
        return self.kind in ROW_SCALES and not self.per_position

    def row_scale(self, squares: torch.Tensor) -> torch.Tensor:
        """(R,) sums of squares of whole input rows -> (R,) the factor this norm multiplies each row by."""
        return ROW_SCALES[self.kind](squares, math.prod(self.in_shape), self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch = x.shape[0]
        if self.batchnorm is not None:
            return self.batchnorm(x.reshape(batch, *self.in_shape)).flatten(1)
        if self.per_position:  # (B, C, H*W): each position's channels
            return normalize(x.reshape(batch, self.in_shape[0], -1), self.kind, self.eps).flatten(1)
        return normalize(x.flatten(1), self.kind, self.eps)


NORMS = {"rms": "unit root mean square", "l2": "unit length", "layernorm": "zero mean, unit variance",
         "batchnorm": "per channel over the batch"}


def reads_batch(kind: str) -> bool:
    """Whether norm `kind` scales a sample by the others in its batch: a step of it cannot be split into
    micro-batches or run twice without changing what it computes (or, for batchnorm, its running statistics)."""
    return kind in NORMS and kind not in PER_SAMPLE
