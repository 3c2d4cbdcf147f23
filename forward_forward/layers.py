"""Forward-Forward layers: normalise the incoming vector, apply a linear map, then an activation.

The normalisation (paper §2) removes the length of the previous layer's activity, so a layer
cannot read the previous layer's goodness and must use the direction of its activity instead.
"""

from __future__ import annotations

import math

import torch
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


class FFLinear(nn.Module):
    """A fully connected FF layer with optional peer normalisation (MATLAB recipe).

    Peer normalisation keeps a running mean of every unit's activity and pushes each unit's
    pre-activation toward the layer's average, which revives units that stopped firing.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        activation: str = "relu",
        norm: str = "rms",
        norm_eps: float = 1e-8,
        init: str = "hinton",
        peer_lambda: float = 0.0,
        peer_decay: float = 0.9,
    ):
        super().__init__()
        assert activation in ACTIVATIONS, f"unknown activation {activation!r}"
        assert norm in ("rms", "l2"), f"unknown norm {norm!r}"
        self.norm, self.norm_eps = norm, norm_eps
        self.linear = nn.Linear(in_features, out_features)
        self.activation = ACTIVATIONS[activation]()
        self.peer_lambda, self.peer_decay = peer_lambda, peer_decay
        # Starts at 0.5 as in the MATLAB code; a buffer so it is saved and moved with the model.
        self.register_buffer("mean_activity", torch.full((out_features,), 0.5))
        if init == "hinton":
            nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(in_features))
            nn.init.zeros_(self.linear.bias)

    @property
    def out_features(self) -> int:
        return self.linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in) -> (B, out) activity; the input is detached so no derivative reaches earlier layers."""
        return self.activation(self.pre_activation(x))

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(normalize(x.detach(), self.norm, self.norm_eps))

    def peer_loss(self, pre_activation: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
        """Surrogate whose gradient on each pre-activation is lambda * (unit mean - layer mean) / B.

        It is applied to the pre-activation, not through the ReLU, as in the MATLAB code; the
        running mean is updated here, from positive data only.
        """
        with torch.no_grad():
            self.mean_activity.mul_(self.peer_decay).add_(activity.mean(dim=0), alpha=1 - self.peer_decay)
            push = self.peer_lambda * (self.mean_activity - self.mean_activity.mean())
        return (pre_activation.mean(dim=0) * push).sum()
