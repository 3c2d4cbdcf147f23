"""What every Forward-Forward layer shares: normalise the incoming vector, apply a weighted map, then an activation.

The normalisation (paper §2) removes the length of the previous layer's activity, so a layer
cannot read the previous layer's goodness and must use the direction of its activity instead.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from ..coding import Written
from .norms import InputNorm


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
# activations that keep every unit below 1 in size (config warns of thresholds they cannot reach); a plugin
# that registers such an activation adds its name
BOUNDED: set[str] = {"tanh", "sigmoid"}


class FFLayer(nn.Module):
    """What every FF layer shares: input normalisation and detach, the activation, peer normalisation.

    Peer normalisation keeps a running mean of every unit's activity and pushes each unit's
    pre-activation toward the layer's average, which revives units that stopped firing (MATLAB
    recipe). Subclasses supply `transform`, the weighted map from normalised input to pre-activation.
    """

    in_shape: tuple[int, ...]  # one sample's input: (features,) or a (C, H, W) map
    out_shape: tuple[int, ...]  # one sample's activity as the next layer sees it; it is flat (B, out_features)
    in_features: int
    mean_activity: torch.Tensor  # a registered buffer

    def __init__(self, in_shape: tuple[int, ...], out_shape: tuple[int, ...], *, activation: str, norm: str,
                 norm_eps: float, peer_lambda: float, peer_decay: float, norm_scope: str = "layer"):
        super().__init__()
        assert activation in ACTIVATIONS, f"unknown activation {activation!r}"
        self.in_shape, self.out_shape = tuple(in_shape), tuple(out_shape)
        self.in_features, self.out_features = math.prod(in_shape), math.prod(out_shape)
        self.input_norm = InputNorm(norm, norm_scope, self.in_shape, norm_eps)
        self.activation = ACTIVATIONS[activation]()
        self.peer_lambda, self.peer_decay = peer_lambda, peer_decay
        self.mean_over_processes = False  # set by training.distributed.wrap in a data-parallel run
        # Starts at 0.5 as in the MATLAB code; a buffer so it is saved and moved with the model.
        self.register_buffer("mean_activity", torch.full((self.out_features,), 0.5))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """(B, in_features) normalised input -> (B, out_features) pre-activation."""
        raise NotImplementedError

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one sample's forward pass (for FLOP counts)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, *in_shape) -> (B, out_features) activity; the input is detached so no derivative reaches
        earlier layers."""
        return self.activation(self.pre_activation(x))

    @property
    def takes_apart(self) -> bool:
        """Whether `pre_activation` reads a `coding.Written` input without building it (a dense layer can)."""
        return False

    def pre_activation(self, x: torch.Tensor | Written, detach: bool = True) -> torch.Tensor:
        """(B, *in_shape) or (B, in_features) -> (B, out_features). `detach=False` only for the backprop twin.
        A first layer may be given its input as a `Written`, which it builds unless it `takes_apart`."""
        built = x.dense() if isinstance(x, Written) else x
        normalised = self.input_norm(built.detach() if detach else built)
        # back to the input's dtype: under bf16 autocast the matmul is bfloat16, but a goodness near
        # theta = 2000 needs fp32 (bfloat16 resolves 2000 only to steps of 16); a no-op otherwise.
        return self.transform(normalised).to(normalised.dtype)

    def peer_loss(self, pre_activation: torch.Tensor, activity: torch.Tensor) -> torch.Tensor:
        """Surrogate whose gradient on each pre-activation is lambda * (unit mean - layer mean) / B.

        It is applied to the pre-activation, not through the ReLU, as in the MATLAB code; the
        running mean is updated here, from positive data only, and only in training mode: a loss
        computed for monitoring under `eval()` leaves the layer as it was.
        """
        with torch.no_grad():
            if self.training:
                batch_mean = activity.mean(dim=0)
                if self.mean_over_processes:  # data-parallel: every process pushes as one would on the batch
                    dist.all_reduce(batch_mean)
                    batch_mean /= dist.get_world_size()
                self.mean_activity.mul_(self.peer_decay).add_(batch_mean, alpha=1 - self.peer_decay)
            push = self.peer_lambda * (self.mean_activity - self.mean_activity.mean())
        return (pre_activation.mean(dim=0) * push).sum()


