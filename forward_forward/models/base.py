"""What models share: parameter groups by weight cost, and loading weights saved by earlier versions."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..layers import normalize


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


def readout_features(acts: list[torch.Tensor], norm: str, eps: float) -> torch.Tensor:
    """Normalised, detached activities side by side (B, sum units): what a readout or probe reads."""
    return torch.cat([normalize(a.detach(), norm, eps) for a in acts], 1)
