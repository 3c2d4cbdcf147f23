"""The layer stack: hidden layers and the black-box stages between them.

It is the one forward path of every model: activities for prediction and probes, per-layer
pre-activations and activities for the FF losses, and, with the detach between layers switched
off, the backprop twin. A schedule that trains some layers and not others (greedy, sleep phases)
runs the same path and asks for fewer losses; it never runs the layers its own way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Iterator, NamedTuple, Sequence, cast, overload

import torch
from torch import nn

from .blackbox import BLACKBOXES
from .coding import Written
from .config import ModelConfig
from .errors import FFError
from .layers import FFLayer, build_layers


def decay_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float, weight_decay: float) -> list[dict]:
    """Two optimiser groups at one learning rate: weights with `weight_decay`, biases without.

    Every parameter lands in one of them, so a new parameter of a layer is trained by default.
    """
    weights: list[nn.Parameter]
    biases: list[nn.Parameter]
    weights, biases = [], []
    for name, param in named:
        (biases if name.rsplit(".", 1)[-1] == "bias" else weights).append(param)
    return [{"params": weights, "lr": lr, "weight_decay": weight_decay},
            {"params": biases, "lr": lr, "weight_decay": 0.0}]


class Pass(NamedTuple):
    pre: list[torch.Tensor]  # each run layer's pre-activation (B, units)
    act: list[torch.Tensor]  # each run layer's activity (B, units)


if TYPE_CHECKING:

    class LayerList(nn.ModuleList):
        """What mypy sees of `LayerStack.layers`: the nn.ModuleList it is, holding FFLayers."""

        @overload
        def __getitem__(self, idx: slice) -> nn.ModuleList: ...
        @overload
        def __getitem__(self, idx: int) -> FFLayer: ...
        def __getitem__(self, idx: int | slice) -> FFLayer | nn.ModuleList: ...
        def __iter__(self) -> Iterator[FFLayer]: ...


class LayerStack(nn.Module):
    layers: LayerList
    stages: nn.ModuleList

    def __init__(self, layers: list[FFLayer], stages: Sequence[nn.Module], residual: bool = False,
                 overlap: bool = False):
        super().__init__()
        assert len(stages) == len(layers) - 1, "one stage between each pair of layers"
        self.layers = cast("LayerList", nn.ModuleList(layers))
        self.stages = nn.ModuleList(stages)  # stage i sits between hidden layer i and layer i + 1
        # parameter-free residuals (DeeperForward, Sun et al., ICLR 2025): a layer whose output has its
        # input's shape adds that input to its activity, so a deep stack can pass features up unchanged
        self.residual = [residual and layer.in_shape == layer.out_shape for layer in layers]
        if residual and not any(self.residual):
            raise FFError("model.residual adds a layer's input to its output, and no hidden layer here has an output "
                          f"of its input's shape ({[layer.out_shape for layer in layers]}): give two neighbouring "
                          "layers the same shape, or set model.residual = false.")
        # overlapping local updates (Trifecta, Dooms et al. 2023): each layer's loss also trains the
        # layer below it, and no further down
        self.overlap = overlap

    @classmethod
    def build(cls, model: ModelConfig, input_shape: tuple[int, ...], peer_lambda: float | None = None) -> LayerStack:
        """The layers `model` describes on inputs of `input_shape`, with its black-box stage between each pair."""
        layers = build_layers(model, input_shape, peer_lambda)
        stages = [BLACKBOXES[model.blackbox](layer.out_features, model.blackbox_strength, seed=i)
                  for i, layer in enumerate(layers[:-1])]
        return cls(layers, stages, model.residual, model.overlap)

    def __len__(self) -> int:
        return len(self.layers)

    @property
    def units(self) -> list[int]:
        return [layer.out_features for layer in self.layers]

    def forward(self, x: torch.Tensor | Written, *, detach: bool = True, upto: int | None = None,
                frozen: frozenset[int] = frozenset(), start: int = 0,
                each: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None, keep: bool = True,
                recall: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> Pass:
        """Run (B, *input_shape) inputs (or a `coding.Written`, which the first layer reads) through the
        first `upto` layers (default all); from layer `start` on, x being what that layer reads (a pipeline
        stage's layers), with Pass lists indexed from `start`.

        detach: each layer's input is detached, so no derivative crosses a layer (FF); False keeps
        the graph across layers (backprop). Layers in `frozen` run without a graph: their losses are
        not wanted on this step. `each(i, z, y)` is called as soon as layer i has run (its loss can be
        computed and backpropagated then, freeing its graph); with `keep` False the Pass holds nothing, so
        no layer's tensors outlive the next one. `recall(z, y)`, given, turns each layer's pre-activation
        into the one its activity is taken from (fast weights add their memory's term).
        """
        pre, act = [], []
        count = len(self.layers) if upto is None else upto
        overlap = detach and self.overlap
        for i in range(start, count):
            with torch.set_grad_enabled(torch.is_grad_enabled() and i not in frozen):
                # with overlap, x carries a graph into the layer below (and no further): this layer's
                # loss trains both
                z, y = self._layer(i, x, detach=detach and not overlap, recall=recall)
                up = self._layer(i, x, detach=True, recall=recall)[1] if overlap and i + 1 < count else y
            if each is not None:
                each(i, z, y)
            if keep:
                pre.append(z)
                act.append(y)
            if i + 1 < count:  # the stage feeds the next layer; after the last one run, nothing needs it
                x = self.stages[i](up)
        return Pass(pre, act)

    @torch.no_grad()
    def input_of(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """What hidden layer `layer` reads when the stack reads x: x through the layers and stages below
        it, without a graph (what `forward(x, start=layer)` then takes)."""
        for i in range(layer):
            x = self.stages[i](self._layer(i, x, detach=True)[1])
        return x

    def _layer(self, i: int, x: torch.Tensor | Written, detach: bool,
               recall: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer i's pre-activation and activity on x (plus x itself for a residual layer)."""
        layer = self.layers[i]
        z = layer.pre_activation(x, detach=detach)
        y = layer.activation(z)
        if recall is not None:
            z = recall(z, y)
            y = layer.activation(z)
        if self.residual[i]:  # under FF the input carries no derivative into this layer's loss
            x = x.dense() if isinstance(x, Written) else x
            y = y + (x.detach() if detach else x).reshape(y.shape)
        return z, y

    def param_groups(self, lr: float, weight_decay: float, layer_lr: list[float]) -> list[dict]:
        """Weights (decayed) and biases (not) at `lr`; with `layer_lr`, two groups per layer at
        lr times its factor (a layer's own learning rate, where a model wants one)."""
        if not layer_lr:
            return decay_groups(self.named_parameters(), lr, weight_decay)
        assert len(layer_lr) == len(self.layers), "one learning-rate factor per layer"
        return [group for layer, factor in zip(self.layers, layer_lr)
                for group in decay_groups(layer.named_parameters(), lr * factor, weight_decay)]

    def activities(self, x: torch.Tensor | Written,
                   recall: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> list[torch.Tensor]:
        """(B, *input_shape) -> each hidden layer's activity (B, units); inputs detached per layer."""
        return self.forward(x, recall=recall).act
