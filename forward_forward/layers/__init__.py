"""Forward-Forward layer types, registered by name (`model.layer`).

A layer type is one entry of LAYERS: how to build hidden layer i on the shape below it, and the
config checks that belong to it. `build_layers` is the one place a layer type is looked up.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..config import ModelConfig, per_layer
from ..errors import FFError
from .base import ACTIVATIONS, FFLayer, StraightThroughReLU, normalize
from .dense import FFLinear
from .local import FFLocal, local_grid


@dataclass(frozen=True)
class LayerType:
    # (model config, layer index, input shape of one sample, shared options) -> the layer
    build: Callable[[ModelConfig, int, tuple[int, ...], dict], FFLayer]
    # (model config, layer index) -> None, or FFError naming the field
    check: Callable[[ModelConfig, int], None] = lambda model, index: None


MAX_WEIGHTS = 2**29  # 2 GiB of fp32 weights in one layer: a typo, not a model; refused before allocating


def _check_size(index: int, weights: int) -> None:
    if weights > MAX_WEIGHTS:
        raise FFError(f"hidden layer {index} would hold {weights:,} weights ({4 * weights / 2**30:.0f} GiB), more "
                      f"than {MAX_WEIGHTS:,}: lower model.hidden (or the local geometry).")


def _build_dense(model: ModelConfig, index: int, in_shape: tuple[int, ...], options: dict) -> FFLayer:
    in_features = math.prod(in_shape)
    _check_size(index, in_features * model.hidden[index])
    return FFLinear(in_features, model.hidden[index], **options)


def _build_local(model: ModelConfig, index: int, in_shape: tuple[int, ...], options: dict) -> FFLayer:
    if len(in_shape) != 3:
        raise FFError(f"hidden layer {index} is local and needs a (channels, height, width) map below it, but gets "
                      f"{in_shape}: put local layers before dense ones, on image data.")
    kernel, stride, padding = (per_layer(model, f"local_{k}")[index] for k in ("kernel", "stride", "padding"))
    if min(local_grid(in_shape[1:], kernel, stride, padding)) < 1:
        raise FFError(f"hidden layer {index}: a {kernel} x {kernel} field with padding {padding} does not fit "
                      f"its {in_shape[1]} x {in_shape[2]} input map; lower model.local_kernel or add padding.")
    grid = local_grid(in_shape[1:], kernel, stride, padding)
    _check_size(index, grid[0] * grid[1] * in_shape[0] * kernel * kernel * model.hidden[index])
    return FFLocal(in_shape, model.hidden[index], kernel, stride=stride, padding=padding, **options)


def _check_local(model: ModelConfig, index: int) -> None:
    for name, smallest in (("local_kernel", 1), ("local_stride", 1), ("local_padding", 0)):
        if per_layer(model, name)[index] < smallest:
            raise FFError(f"model.{name} must be at least {smallest} for every local layer; got "
                          f"{getattr(model, name)!r} (for fully connected layers set model.layer = dense).")
    if per_layer(model, "local_padding")[index] > per_layer(model, "local_kernel")[index]:
        raise FFError(f"model.local_padding must be at most the kernel ({per_layer(model, 'local_kernel')[index]}) "
                      f"for layer {index}: wider padding only adds fields that see zeros.")


LAYERS: dict[str, LayerType] = {
    "dense": LayerType(_build_dense),
    "local": LayerType(_build_local, _check_local),
}


def build_layers(model: ModelConfig, input_shape: tuple[int, ...], peer_lambda: float | None = None) -> list[FFLayer]:
    """The hidden layers `model` describes, each on the shape of the one below; `input_shape` is one
    sample's input (after the label coding)."""
    options = dict(activation=model.activation, norm=model.norm, norm_eps=model.norm_eps, init=model.init,
                   peer_lambda=model.peer_lambda if peer_lambda is None else peer_lambda,
                   peer_decay=model.peer_decay)
    layers: list[FFLayer] = []
    shape = tuple(input_shape)
    for index, kind in enumerate(per_layer(model, "layer")):
        layers.append(LAYERS[kind].build(model, index, shape, options))
        shape = layers[-1].out_shape
    return layers


__all__ = ["ACTIVATIONS", "FFLayer", "FFLinear", "FFLocal", "LAYERS", "LayerType", "StraightThroughReLU",
           "build_layers", "local_grid", "normalize"]
