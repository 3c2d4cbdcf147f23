"""Model kinds, registered by name (`model.kind`).

A model kind is an `nn.Module` class with the interface the loop and the tools use:
`forward(images, labels, active=None, phase="both") -> (losses, stats)`, `loss_names`,
`param_groups(optim)`, `predictions(images, ways)`, `predict`, `ways`, `validation_method`,
`features(images, layers)`, `prediction_layers`, `layers`, `matmul_flops_per_image`, and a static
`check(cfg)` with its own config checks. `build_model` is the one place a kind is looked up.
"""

from __future__ import annotations

from ..config import Config
from .backprop import BackpropNetwork
from .base import ModelKind, Network
from .competitive import CompetitiveNetwork
from .ff import FFNetwork

MODELS: dict[str, ModelKind] = {
    "ff": FFNetwork,
    "competitive": CompetitiveNetwork,
    "backprop": BackpropNetwork,
}


def build_model(cfg: Config, data_shape: tuple[int, ...], num_classes: int) -> Network:
    """The network `cfg` describes, for samples of `data_shape` in `num_classes` classes."""
    return MODELS[cfg.model.kind](data_shape=tuple(data_shape), num_classes=num_classes, model=cfg.model,
                                  objective=cfg.objective)


__all__ = ["MODELS", "BackpropNetwork", "CompetitiveNetwork", "FFNetwork", "ModelKind", "Network", "build_model"]
