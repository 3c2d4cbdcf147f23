"""The fully connected FF layer."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import FFLayer


class FFLinear(FFLayer):
    """A fully connected FF layer."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "relu", norm: str = "rms",
                 norm_eps: float = 1e-8, init: str = "hinton", peer_lambda: float = 0.0, peer_decay: float = 0.9,
                 norm_scope: str = "layer", in_shape: tuple[int, ...] | None = None):
        """in_shape: the shape of the input below when it is a map (for per-position normalisation)."""
        super().__init__(in_shape or (in_features,), (out_features,), activation=activation, norm=norm,
                         norm_eps=norm_eps, peer_lambda=peer_lambda, peer_decay=peer_decay, norm_scope=norm_scope)
        self.linear = nn.Linear(in_features, out_features)
        if init == "hinton":
            nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(in_features))
            nn.init.zeros_(self.linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.linear.bias

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    @property
    def macs(self) -> int:
        return self.linear.weight.numel()

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        return self.linear.weight.detach()
