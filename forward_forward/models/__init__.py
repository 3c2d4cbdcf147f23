"""Model kinds, registered by name (`model.kind`).

A model kind is an `nn.Module` class with the interface the loop and the tools use:
`forward(images, labels, active=None, phase="both") -> (losses, stats)`, `loss_names`,
`param_groups(optim)`, `predictions(images, ways)`, `predict`, `ways`, `validation_method`,
`features(images, layers)`, `prediction_layers`, `layers`, `matmul_flops_per_image`, and a static
`check(cfg)` with its own config checks. `model_class` is the one place a kind is looked up: with
`model.iterations > 0` the kind trains the recurrent top-down net (`RECURRENT`).
"""

from __future__ import annotations

from ..config import Config
from ..errors import FFError
from .backprop import BackpropNetwork
from .base import ModelKind, Network
from .competitive import CompetitiveNetwork
from .ff import FFNetwork
from .recurrent import RecurrentBackpropNetwork, RecurrentFFNetwork

MODELS: dict[str, ModelKind] = {
    "ff": FFNetwork,
    "competitive": CompetitiveNetwork,
    "backprop": BackpropNetwork,
}

# the recurrent top-down net (model.iterations > 0) as each kind that can train it
RECURRENT: dict[str, ModelKind] = {
    "ff": RecurrentFFNetwork,
    "backprop": RecurrentBackpropNetwork,
}


def model_class(cfg: Config) -> ModelKind:
    """The class that builds `cfg`'s network: its kind's, or for model.iterations > 0 its recurrent one."""
    found = (RECURRENT if cfg.model.iterations else MODELS).get(cfg.model.kind)
    if found is None and not cfg.model.iterations:
        raise FFError(f"model.kind must be one of {', '.join(MODELS)}; got {cfg.model.kind!r}.")
    if found is None:
        raise FFError(f"model.iterations = {cfg.model.iterations} makes the recurrent top-down net, which "
                      f"model.kind = {' or '.join(RECURRENT)} trains, not {cfg.model.kind}: set model.iterations = 0.")
    return found


def build_model(cfg: Config, data_shape: tuple[int, ...], num_classes: int) -> Network:
    """The network `cfg` describes, for samples of `data_shape` in `num_classes` classes."""
    return model_class(cfg)(data_shape=tuple(data_shape), num_classes=num_classes, model=cfg.model,
                            objective=cfg.objective)


__all__ = ["MODELS", "RECURRENT", "BackpropNetwork", "CompetitiveNetwork", "FFNetwork", "ModelKind", "Network",
           "RecurrentBackpropNetwork", "RecurrentFFNetwork", "build_model", "model_class"]
