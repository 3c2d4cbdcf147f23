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
from .base import ACTIVATIONS, BOUNDED, FFLayer, StraightThroughReLU
from .conv import FFConv
from .dense import FFLinear
from .local import FFLocal, local_grid
from .norms import NORMS, PER_SAMPLE, InputNorm, normalize, per_sample, reads_batch


@dataclass(frozen=True)
class LayerType:
    # (model config, layer index, input shape of one sample, shared options) -> the layer
    build: Callable[[ModelConfig, int, tuple[int, ...], dict], FFLayer]
    # (model config, layer index) -> None, or FFError naming the field
    check: Callable[[ModelConfig, int], None] = lambda model, index: None
    # the label coding "auto" gives when this is the first layer and the images leave room for label
    # pixels; without room every map layer gets channels, and a dense layer extra inputs
    auto_coding: str = "pixels"
    # whether the layer reads the map of the layer below (C, H, W); one that reads a vector flattens it,
    # so no map layer can follow it
    reads_map: bool = True


MAX_WEIGHTS = 2**29  # 2 GiB of fp32 weights in one layer: a typo, not a model; refused before allocating


def _check_size(index: int, weights: int) -> None:
    if weights > MAX_WEIGHTS:
        raise FFError(f"hidden layer {index} would hold {weights:,} weights ({4 * weights / 2**30:.0f} GiB), more "
                      f"than {MAX_WEIGHTS:,}: lower model.hidden (or the local geometry).")


def _build_dense(model: ModelConfig, index: int, in_shape: tuple[int, ...], options: dict) -> FFLayer:
    in_features = math.prod(in_shape)
    _check_size(index, in_features * model.hidden[index])
    return FFLinear(in_features, model.hidden[index], in_shape=in_shape, **options)


def _map_geometry(model: ModelConfig, index: int, in_shape: tuple[int, ...],
                  kind: str) -> tuple[tuple[int, int, int], int, int, int]:
    """The map below map layer `index` as (C, H, W), and the layer's kernel, stride and padding,
    checked against it."""
    if len(in_shape) != 3:
        raise FFError(f"hidden layer {index} is {kind} and needs a (channels, height, width) map below it, but gets "
                      f"{in_shape}: put {kind} layers before dense ones, on image data.")
    kernel, stride, padding = (per_layer(model, k)[index] for k in ("kernel", "stride", "padding"))
    if min(local_grid(in_shape[1:], kernel, stride, padding)) < 1:
        raise FFError(f"hidden layer {index}: a {kernel} x {kernel} field with padding {padding} does not fit "
                      f"its {in_shape[1]} x {in_shape[2]} input map; lower model.kernel or add padding.")
    return (in_shape[0], in_shape[1], in_shape[2]), kernel, stride, padding


def _build_local(model: ModelConfig, index: int, in_shape: tuple[int, ...], options: dict) -> FFLayer:
    shape, kernel, stride, padding = _map_geometry(model, index, in_shape, "local")
    grid = local_grid(shape[1:], kernel, stride, padding)
    _check_size(index, grid[0] * grid[1] * shape[0] * kernel * kernel * model.hidden[index])
    return FFLocal(shape, model.hidden[index], kernel, stride=stride, padding=padding, **options)


def _build_conv(model: ModelConfig, index: int, in_shape: tuple[int, ...], options: dict) -> FFLayer:
    shape, kernel, stride, padding = _map_geometry(model, index, in_shape, "conv")
    grid = local_grid(shape[1:], kernel, stride, padding)
    pool = per_layer(model, "pool")[index]
    if min(grid) < pool:
        raise FFError(f"hidden layer {index}: {pool} x {pool} pooling does not fit its {grid[0]} x {grid[1]} map; "
                      "lower model.pool for it.")
    _check_size(index, shape[0] * kernel * kernel * model.hidden[index])
    return FFConv(shape, model.hidden[index], kernel, stride=stride, padding=padding, pool=pool, **options)


def _check_geometry(model: ModelConfig, index: int, kind: str) -> None:
    for name, smallest in (("kernel", 1), ("stride", 1), ("padding", 0), ("pool", 1)):
        if per_layer(model, name)[index] < smallest:
            raise FFError(f"model.{name} must be at least {smallest} for every {kind} layer; got "
                          f"{getattr(model, name)!r} (for fully connected layers set model.layer = dense).")
    if per_layer(model, "padding")[index] > per_layer(model, "kernel")[index]:
        raise FFError(f"model.padding must be at most the kernel ({per_layer(model, 'kernel')[index]}) "
                      f"for layer {index}: wider padding only adds fields that see zeros.")


def _check_local(model: ModelConfig, index: int) -> None:
    _check_geometry(model, index, "local")
    if per_layer(model, "pool")[index] != 1:
        raise FFError(f"model.pool is for conv layers, and layer {index} is local: set its pool to 1.")


LAYERS: dict[str, LayerType] = {
    "dense": LayerType(_build_dense, reads_map=False),
    "local": LayerType(_build_local, _check_local),
    "conv": LayerType(_build_conv, lambda model, index: _check_geometry(model, index, "conv"), auto_coding="channels"),
}


def build_layers(model: ModelConfig, input_shape: tuple[int, ...], peer_lambda: float | None = None) -> list[FFLayer]:
    """The hidden layers `model` describes, each on the shape of the one below; `input_shape` is one
    sample's input (after the label coding)."""
    options = dict(activation=model.activation, norm=model.norm, norm_scope=model.norm_scope,
                   norm_eps=model.norm_eps, init=model.init,
                   peer_lambda=model.peer_lambda if peer_lambda is None else peer_lambda,
                   peer_decay=model.peer_decay)
    layers: list[FFLayer] = []
    shape = tuple(input_shape)
    for index, kind in enumerate(per_layer(model, "layer")):
        # the first layer reads the data: normalising each pixel's one to three channels on their own
        # would erase the image, so it normalises its whole input whatever model.norm_scope says
        scope = "layer" if index == 0 else model.norm_scope
        layers.append(LAYERS[kind].build(model, index, shape, {**options, "norm_scope": scope}))
        shape = layers[-1].out_shape
    if model.norm_scope == "position" and not any(len(layer.in_shape) == 3 for layer in layers[1:]):
        raise FFError("model.norm_scope = position normalises the channels at each position of a map, and no "
                      "hidden layer after the first reads one: set model.norm_scope = layer.")
    return layers


__all__ = ["ACTIVATIONS", "BOUNDED", "FFConv", "FFLayer", "FFLinear", "FFLocal", "InputNorm", "LAYERS", "LayerType",
           "NORMS", "PER_SAMPLE", "StraightThroughReLU", "build_layers", "local_grid", "normalize", "per_sample",
           "reads_batch"]
