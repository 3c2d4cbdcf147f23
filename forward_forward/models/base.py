"""What models share: parameter groups by weight cost, and loading weights saved by earlier versions."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, Self

import torch
from torch import nn

from ..config import Config, ModelConfig, ObjectiveConfig, OptimConfig
from ..errors import FFError
from ..layers import normalize


class Network(Protocol):
    """What the training loop and the tools use of a model kind (an `nn.Module`; see `models`)."""

    num_classes: int
    data_shape: tuple[int, ...]
    training: bool

    @property
    def loss_names(self) -> list[str]: ...
    @property
    def ways(self) -> tuple[str, ...]: ...
    @property
    def validation_method(self) -> str: ...
    @property
    def layers(self) -> nn.ModuleList: ...
    @property
    def prediction_layers(self) -> list[int]: ...

    def __call__(self, images: torch.Tensor, labels: torch.Tensor, active: frozenset[str] | None = None,
                 phase: str = "both") -> tuple[dict[str, torch.Tensor], dict]: ...
    def forward(self, images: torch.Tensor, labels: torch.Tensor, active: frozenset[str] | None = None,
                phase: str = "both") -> tuple[dict[str, torch.Tensor], dict]: ...
    def param_groups(self, optim: OptimConfig) -> list[dict]: ...
    def features(self, images: torch.Tensor, layers: list[int]) -> torch.Tensor: ...
    def predictions(self, images: torch.Tensor, ways: tuple[str, ...],
                    goodness_weight: float | None = None) -> dict[str, torch.Tensor]: ...
    def predict(self, images: torch.Tensor, how: str = "softmax") -> torch.Tensor: ...
    def matmul_flops_per_image(self) -> float: ...
    def layer_sparsity(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, dict[str, float]]: ...

    # what nn.Module gives every model
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...
    def named_parameters(self, prefix: str = "", recurse: bool = True,
                         remove_duplicate: bool = True) -> Iterator[tuple[str, nn.Parameter]]: ...
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...
    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any: ...
    def train(self, mode: bool = True) -> Self: ...
    def eval(self) -> Self: ...
    def to(self, *args: Any, **kwargs: Any) -> Self: ...


class ModelKind(Protocol):
    """A model class, as `MODELS` holds it: built from the config, with its own config checks."""

    def __call__(self, *, data_shape: tuple[int, ...], num_classes: int, model: ModelConfig,
                 objective: ObjectiveConfig) -> Network: ...
    def check(self, cfg: Config) -> None: ...
    def label_in_input(self, cfg: Config) -> bool: ...


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


def readout_features(acts: list[torch.Tensor], norm: str, eps: float, detach: bool = True) -> torch.Tensor:
    """Normalised activities side by side (B, sum units), detached unless `detach` is False (the backprop
    twin's output layer): what a readout or probe reads.
    Under batchnorm each sample is scaled to unit RMS: a prediction must not depend on its batch."""
    norm = "rms" if norm == "batchnorm" else norm
    return torch.cat([normalize(a.detach() if detach else a, norm, eps) for a in acts], 1)
