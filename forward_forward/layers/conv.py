"""The convolutional FF layer: receptive fields with shared weights, optional max pooling."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .base import FFLayer
from .local import local_grid


class FFConv(FFLayer):
    """A convolutional FF layer on a (C, H, W) map: `channels` k x k filters, `stride` apart, on the
    map zero padded by `padding`, then p x p max pooling (stride p) of the pre-activation.

    Pooling the pre-activation equals pooling the activity for the monotone activations (relu,
    leaky_relu, relu_st) and keeps one shape for both, so goodness, peer normalisation and the
    next layer all see the pooled map.
    """

    def __init__(self, in_shape: tuple[int, int, int], channels: int, kernel: int, *, stride: int = 1,
                 padding: int = 0, pool: int = 1, activation: str = "relu", norm: str = "rms",
                 norm_eps: float = 1e-8, init: str = "hinton", peer_lambda: float = 0.0, peer_decay: float = 0.9,
                 norm_scope: str = "layer"):
        grid = local_grid(in_shape[1:], kernel, stride, padding)
        assert min(grid) > 0, f"a {kernel}x{kernel} filter with padding {padding} does not fit a {in_shape} map"
        pooled = (grid[0] // pool, grid[1] // pool)
        assert min(pooled) > 0, f"{pool} x {pool} pooling does not fit a {grid} map"
        super().__init__(in_shape, (channels, *pooled), activation=activation, norm=norm, norm_eps=norm_eps,
                         peer_lambda=peer_lambda, peer_decay=peer_decay, norm_scope=norm_scope)
        self.grid, self.pool = grid, pool
        self.filter_shape = (in_shape[0], kernel, kernel)  # what one row of dense_weight() is
        self.conv = nn.Conv2d(in_shape[0], channels, kernel, stride=stride, padding=padding)
        if init == "hinton":  # N(0, 1/fan_in), as for the dense layer; torch: Conv2d's default
            nn.init.normal_(self.conv.weight, std=1.0 / math.sqrt(in_shape[0] * kernel * kernel))
            nn.init.zeros_(cast(torch.Tensor, self.conv.bias))  # Conv2d has a bias by default

    @property
    def weight(self) -> torch.Tensor:
        return self.conv.weight

    @property
    def macs(self) -> int:
        return self.conv.weight.numel() * self.grid[0] * self.grid[1]

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        x = x.view(-1, *self.in_shape)
        if self.conv.weight.is_contiguous(memory_format=torch.channels_last):  # run.channels_last: inputs too
            x = x.contiguous(memory_format=torch.channels_last)
        z = self.conv(x)
        if self.pool > 1:
            z = F.max_pool2d(z, self.pool)
        return z.flatten(1)  # (B, channels * H' * W'), channel-major

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        """The filters as (channels, C*k*k) rows: what a weight figure draws."""
        return self.conv.weight.detach().flatten(1)
