"""Forward-Forward layers: normalise the incoming vector, apply a linear map, then an activation.

The normalisation (paper §2) removes the length of the previous layer's activity, so a layer
cannot read the previous layer's goodness and must use the direction of its activity instead.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class StraightThroughReLU(nn.Module):
    """ReLU forward, identity backward: silent units still receive a gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + (torch.relu(x) - x).detach()


ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "relu_st": StraightThroughReLU,
}


def normalize(x: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    """Scale each row to unit RMS ("rms") or unit length ("l2") without subtracting the mean."""
    if kind == "rms":
        return x / (x.pow(2).mean(dim=1, keepdim=True).sqrt() + eps)
    return x / (x.norm(dim=1, keepdim=True) + eps)


class FFLayer(nn.Module):
    """What every FF layer shares: input normalisation and detach, the activation, peer normalisation.

    Peer normalisation keeps a running mean of every unit's activity and pushes each unit's
    pre-activation toward the layer's average, which revives units that stopped firing (MATLAB
    recipe). Subclasses supply `transform`, the weighted map from normalised input to pre-activation.
    """

    def __init__(self, out_features: int, *, activation: str, norm: str, norm_eps: float, peer_lambda: float,
                 peer_decay: float):
        super().__init__()
        assert activation in ACTIVATIONS, f"unknown activation {activation!r}"
        assert norm in ("rms", "l2"), f"unknown norm {norm!r}"
        self.out_features = out_features
        self.norm, self.norm_eps = norm, norm_eps
        self.activation = ACTIVATIONS[activation]()
        self.peer_lambda, self.peer_decay = peer_lambda, peer_decay
        # Starts at 0.5 as in the MATLAB code; a buffer so it is saved and moved with the model.
        self.register_buffer("mean_activity", torch.full((out_features,), 0.5))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in) -> (B, out) activity; the input is detached so no derivative reaches earlier layers."""
        return self.activation(self.pre_activation(x))

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        # float(): under bf16 autocast the matmul is bfloat16, but a goodness near theta = 2000 needs
        # fp32 (bfloat16 resolves 2000 only to steps of 16); a no-op in fp32.
        return self.transform(normalize(x.detach(), self.norm, self.norm_eps)).float()

    def peer_loss(self, pre_activation: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
        """Surrogate whose gradient on each pre-activation is lambda * (unit mean - layer mean) / B.

        It is applied to the pre-activation, not through the ReLU, as in the MATLAB code; the
        running mean is updated here, from positive data only.
        """
        with torch.no_grad():
            self.mean_activity.mul_(self.peer_decay).add_(activity.mean(dim=0), alpha=1 - self.peer_decay)
            push = self.peer_lambda * (self.mean_activity - self.mean_activity.mean())
        return (pre_activation.mean(dim=0) * push).sum()


class FFLinear(FFLayer):
    """A fully connected FF layer."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "relu", norm: str = "rms",
                 norm_eps: float = 1e-8, init: str = "hinton", peer_lambda: float = 0.0, peer_decay: float = 0.9):
        super().__init__(out_features, activation=activation, norm=norm, norm_eps=norm_eps,
                         peer_lambda=peer_lambda, peer_decay=peer_decay)
        self.linear = nn.Linear(in_features, out_features)
        if init == "hinton":
            nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(in_features))
            nn.init.zeros_(self.linear.bias)

    @property
    def weight(self) -> nn.Parameter:
        return self.linear.weight

    @property
    def bias(self) -> nn.Parameter:
        return self.linear.bias

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        return self.linear.weight.detach()


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
                 init: str = "hinton", peer_lambda: float = 0.0, peer_decay: float = 0.9):
        in_channels, height, width = in_shape
        grid = local_grid((height, width), kernel, stride, padding)
        assert min(grid) > 0, f"a {kernel}x{kernel} field with padding {padding} does not fit a {height}x{width} map"
        super().__init__(channels * grid[0] * grid[1], activation=activation, norm=norm, norm_eps=norm_eps,
                         peer_lambda=peer_lambda, peer_decay=peer_decay)
        self.in_shape, self.out_shape = tuple(in_shape), (channels, *grid)
        self.in_features = in_channels * height * width
        self.kernel, self.stride, self.padding = kernel, stride, padding
        fan_in = in_channels * kernel * kernel
        self.weight = nn.Parameter(torch.empty(grid[0] * grid[1], fan_in, channels))
        self.bias = nn.Parameter(torch.zeros(channels, grid[0] * grid[1]))
        # hinton: N(0, 1/fan_in) as for the dense layer; torch: nn.Linear's uniform(+-1/sqrt(fan_in))
        if init == "hinton":
            nn.init.normal_(self.weight, std=1.0 / math.sqrt(fan_in))
        else:
            nn.init.uniform_(self.weight, -1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))

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
    return tuple((n + 2 * padding - kernel) // stride + 1 for n in size)
