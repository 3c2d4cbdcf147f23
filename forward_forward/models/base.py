"""What models share: parameter groups by weight cost, and loading weights saved by earlier versions."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..errors import FFError
from ..layers import normalize


def check_batch(images: torch.Tensor, data_shape: tuple[int, ...], like: torch.Tensor) -> None:
    """A clear error for a batch this network cannot take: wrong type, shape, dtype or device."""
    if not isinstance(images, torch.Tensor):
        raise FFError(f"images must be a torch.Tensor, got {type(images).__name__}.")
    if tuple(images.shape[1:]) != tuple(data_shape):
        raise FFError(f"images of shape {tuple(images.shape)} do not fit this network, which takes (B, "
                      f"{', '.join(map(str, data_shape))}); reshape them (data.from_arrays gives the right shape).")
    if not images.is_floating_point():
        raise FFError(f"images must be floating point in [0, 1], got {images.dtype}: divide uint8 images by 255.")
    if images.dtype != like.dtype or images.device != like.device:
        raise FFError(f"images are {images.dtype} on {images.device} and the network is {like.dtype} on "
                      f"{like.device}: move one to the other (images.to(...) or model.to(...)).")


def decay_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float) -> list[dict]:
    """Two optimiser groups at one learning rate: weights with `weight_decay`, biases without.

    Every parameter lands in one of them, so a new parameter of a layer is trained by default.
    """
    weights, biases = [], []
    for name, param in named:
        (biases if name.rsplit(".", 1)[-1] == "bias" else weights).append(param)
    return [{"params": weights, "lr": lr, "weight_decay": weight_decay},
            {"params": biases, "lr": lr, "weight_decay": 0.0}]


def accept_legacy_keys(module: nn.Module) -> None:
    """Load weight files written before the layers moved into `stack` (keys `layers.N...`)."""

    def hook(state_dict: dict, prefix: str, *args) -> None:
        for key in [k for k in state_dict if k.startswith(prefix + "layers.")]:
            state_dict[prefix + "stack." + key[len(prefix):]] = state_dict.pop(key)

    module._register_load_state_dict_pre_hook(hook)


def sparsity(acts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Of a batch of activities (B, units): Hoyer sparsity per sample, averaged ((sqrt(n) - L1/L2) /
    (sqrt(n) - 1): 0 when every unit is equally active, 1 when one unit is), and the fraction of
    dead units, silent for every sample of the batch."""
    n = acts.shape[1]
    ratio = acts.abs().sum(1) / acts.norm(dim=1).clamp_min(1e-12)
    hoyer = ((n**0.5 - ratio) / max(n**0.5 - 1, 1e-12)).mean() if n > 1 else acts.new_zeros(())
    return {"hoyer": hoyer, "dead": (acts <= 0).all(0).float().mean()}


def readout_features(acts: list[torch.Tensor], norm: str, eps: float) -> torch.Tensor:
    """Normalised, detached activities side by side (B, sum units): what a readout or probe reads."""
    return torch.cat([normalize(a.detach(), norm, eps) for a in acts], 1)
