"""What models share: parameter groups by weight cost, and loading weights saved by earlier versions."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Protocol, Self

import torch
from torch import nn

from ..config import Config, ModelConfig, ObjectiveConfig, OptimConfig
from ..errors import FFError
from ..fast_weights import FastWeights, recall_for
from ..generator import Generator
from ..layers import normalize, per_sample
from ..stack import LayerStack, decay_groups


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
    def class_log_probs(self, images: torch.Tensor, ways: tuple[str, ...]) -> dict[str, torch.Tensor]: ...
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
    # whether it builds model.peer_lambda's peer loss, which reads the batch's mean activity
    has_peer_loss: bool
    # whether it trains on objective.negatives' negative data, so the objective's negative fields matter
    trains_on_negatives: bool
    # whether it builds model.fast_weights' memory of a string's earlier windows
    has_fast_weights: bool
    # read where set: `figures`, those `ff plot` draws of its runs (figures.py); `recomputes_readout`, `pipelines`
    # config fields ("section.field") it never reads: refused when set, reset where a preset set them
    @property
    def ignores(self) -> tuple[str, ...]: ...

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
    norm = per_sample(norm)
    return torch.cat([normalize(a.detach() if detach else a, norm, eps) for a in acts], 1)


class LayerLosses(nn.Module):
    """What the FF model kinds share: a `LayerStack` trained by one named loss per layer, and an
    optional linear readout on the normalised activities of the prediction layers
    (objective.predict_layers_from on), trained alongside by its own loss "readout"."""

    stack: LayerStack
    readout: nn.Linear | None
    fast: FastWeights | None = None  # model.fast_weights: each layer's memory of a string's earlier windows
    # generated negatives on images: decoders and a prior, trained alongside (no class default: nn.Module
    # finds a registered submodule only when ordinary lookup fails)
    generator: Generator | None
    # set by the training loop where nothing wraps the model (DDP needs one backward per step): each
    # layer's loss is then backpropagated as soon as it is computed, which frees that layer's graph and
    # tensors before the next layer runs, so a step's memory does not grow with depth
    release_graphs = False
    has_peer_loss = True  # each layer's peer normalisation term, under model.peer_lambda
    trains_on_negatives = False  # a kind that draws objective.negatives says so (ff)
    has_fast_weights = False  # a kind that builds them says so (ff)
    ignores = ()  # config fields it never reads (see ModelKind)
    # set by the loop with optim.micro_batch: this micro-batch's share of the step's images, which weights
    # the gradients released here as the loop weights the ones it backpropagates
    loss_scale = 1.0

    def release(self, loss: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """`loss` backpropagated now (weighted by `loss_scale`) and returned detached, unweighted, under
        release_graphs; else as it is."""
        if not (self.release_graphs and loss.requires_grad):
            return loss
        with torch.autocast(like.device.type, enabled=False):  # the backward the loop would run, outside autocast
            (loss if self.loss_scale == 1 else loss * self.loss_scale).backward()
        return loss.detach()

    def _add_readout(self, model: ModelConfig, objective: ObjectiveConfig, num_classes: int) -> None:
        """The readout, zero-initialised (the MATLAB code's), after the stack."""
        self.predict_from = objective.predict_layers_from
        inputs = sum(self.stack.units[self.predict_from :])
        self.readout = nn.Linear(inputs, num_classes) if model.readout else None
        if self.readout is not None:
            nn.init.zeros_(self.readout.weight)
            nn.init.zeros_(self.readout.bias)

    @staticmethod
    def check_readout(cfg: Config) -> None:
        if cfg.objective.predict in ("softmax", "combined") and not cfg.model.readout:
            raise FFError(f"objective.predict = {cfg.objective.predict} needs model.readout = true.")

    @property
    def layers(self) -> nn.ModuleList:
        return self.stack.layers

    @property
    def loss_names(self) -> list[str]:
        """Every loss `forward` can return, in order; a schedule activates some of them per step."""
        return ([f"layer{i}" for i in range(len(self.stack))] + (["readout"] if self.readout is not None else [])
                + (["generator"] if getattr(self, "generator", None) is not None else []))

    @property
    def prediction_layers(self) -> list[int]:
        """The hidden layers whose goodness and activities predict (objective.predict_layers_from on)."""
        return list(range(self.predict_from, len(self.stack)))

    def param_groups(self, optim: OptimConfig) -> list[dict]:
        """The layers at optim.lr (times optim.layer_lr's factors), the readout at optim.readout_lr and a
        generator's decoders at optim.generator_lr (not decayed); weights decayed, biases not."""
        groups = self.stack.param_groups(optim.lr, optim.weight_decay, optim.layer_lr)
        if self.readout is not None:
            groups += decay_groups(self.readout.named_parameters(), optim.readout_lr, optim.readout_weight_decay)
        generator = getattr(self, "generator", None)
        if generator is not None:
            groups += decay_groups(generator.named_parameters(), optim.generator_lr, 0.0)
        return groups

    def activities(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, *input_shape) inputs -> each hidden layer's activity (B, units), inputs detached per layer
        (with fast weights, each window's memory is read from the rows of its own string)."""
        return self.stack.activities(x, recall=recall_for(self.fast))
