"""The locally connected FF layer: receptive fields without weight sharing (paper §3.2)."""

from __future__ import annotations

import math
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from .base import FFLayer


class FFLocal(FFLayer):
    """A locally connected FF layer: receptive fields without weight sharing (paper §3.2).

    Input: a (C, H, W) map, flattened. The output is a (channels, H', W') map on a grid of
    locations `stride` apart; every location has its own weights over the k x k patch (all C
    channels) of the input, zero padded by `padding`. One unfold and one batched matmul over
    locations: no loop over them. weight: (H'*W', C*k*k, channels), for location, patch element
    (channel, row, column), output channel.
    """

    def __init__(self, in_shape: tuple[int, int, int], channels: int, kernel: int, *, stride: int = 1,
                 padding: int = 0, activation: str = "relu", norm: str = "rms", norm_eps: float = 1e-8,
                 init: str = "hinton", peer_lambda: float = 0.0, peer_decay: float = 0.9, norm_scope: str = "layer"):
        in_channels, height, width = in_shape
        grid = local_grid((height, width), kernel, stride, padding)
        assert min(grid) > 0, f"a {kernel}x{kernel} field with padding {padding} does not fit a {height}x{width} map"
        super().__init__(in_shape, (channels, *grid), activation=activation, norm=norm, norm_eps=norm_eps,
                         peer_lambda=peer_lambda, peer_decay=peer_decay, norm_scope=norm_scope)
        self.kernel, self.stride, self.padding = kernel, stride, padding
        fan_in = in_channels * kernel * kernel
        self.weight = nn.Parameter(torch.empty(grid[0] * grid[1], fan_in, channels))
        self.bias = nn.Parameter(torch.zeros(channels, grid[0] * grid[1]))
        # hinton: N(0, 1/fan_in) as for the dense layer; torch: nn.Linear's uniform(+-1/sqrt(fan_in))
        if init == "hinton":
            nn.init.normal_(self.weight, std=1.0 / math.sqrt(fan_in))
        else:
            nn.init.uniform_(self.weight, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

    @property
    def macs(self) -> int:
        return self.weight.numel()

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        patches = F.unfold(x.view(-1, *self.in_shape), self.kernel, padding=self.padding,
                           stride=self.stride)  # (B, C*k*k, L)
        # (L, B, C*k*k) @ (L, C*k*k, channels): one batched matmul; bmm is ~2x faster on a contiguous operand
        out = torch.bmm(patches.permute(2, 0, 1).contiguous(), self.weight)
        return (out.permute(1, 2, 0) + self.bias).reshape(x.shape[0], -1)  # (B, channels*L), channel-major

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        """The equivalent dense (out, in) weight matrix, zero outside each receptive field."""
        eye = torch.eye(self.in_shape[0] * self.in_shape[1] * self.in_shape[2], device=self.weight.device)
        return (self.transform(eye) - self.bias.reshape(1, -1)).T


def local_grid(size: tuple[int, int], kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """Rows and columns of the locations of k x k fields, `stride` apart, on a map zero padded by `padding`."""
    return cast("tuple[int, int]", tuple((n + 2 * padding - kernel) // stride + 1 for n in size))
