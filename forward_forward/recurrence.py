"""The recurrent top-down net (paper §4): a static image treated as a video.

The hidden layers of a `LayerStack` are first set by one bottom-up pass. Then, for a number of
synchronous iterations, every hidden layer computes its new activity from the normalised activity
of the layer below (through the layer's own weights, as in the feed-forward net) and of the layer
above (through its top-down weights), both as they were at the previous iteration; the "layer"
above the top hidden layer is the label vector. The new activity is damped:
`new = damping * old + (1 - damping) * computed`. When the top-down input agrees with the bottom-up
input the two add up and the layer's goodness is high; when they disagree it is lower.

`TopDown` holds the top-down weights and runs the iterations; the model kinds that use it decide
what is trained on each iteration's activities (FF: each layer's goodness; backprop: the output).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import nn

from .config import ModelConfig
from .layers import normalize, per_sample
from .stack import LayerStack, decay_groups


class Iteration(NamedTuple):
    pre: list[torch.Tensor]  # each hidden layer's pre-activation at this iteration (B, units)
    act: list[torch.Tensor]  # each hidden layer's damped activity at this iteration (B, units)


class TopDown(nn.Module):
    """The top-down weights of a stack and the synchronous iterations that use them.

    down[i] maps the normalised activity of hidden layer i + 1 (for the top layer: the label vector,
    `top_units` long) to a term added to hidden layer i's pre-activation. Initialised as the bottom-up
    weights are, N(0, 1/fan_in): at the start the two directions weigh about the same.
    """

    def __init__(self, stack: LayerStack, top_units: int, *, iterations: int, damping: float,
                 norm: str, norm_eps: float):
        super().__init__()
        above = stack.units[1:] + [top_units]
        maps = [nn.Linear(n_above, n, bias=False) for n, n_above in zip(stack.units, above)]
        for linear in maps:
            nn.init.normal_(linear.weight, std=1.0 / math.sqrt(linear.in_features))
        self.down = nn.ModuleList(maps)
        self.iterations, self.damping = iterations, damping
        # batchnorm's running statistics belong to the bottom-up input; the top-down one is scaled per sample
        self.norm, self.norm_eps = per_sample(norm), norm_eps

    @classmethod
    def build(cls, stack: LayerStack, top_units: int, model: ModelConfig) -> TopDown:
        """The top-down weights and iterations `model` describes, over `stack`, under a top of `top_units`."""
        return cls(stack, top_units, iterations=model.iterations, damping=model.damping, norm=model.norm,
                   norm_eps=model.norm_eps)

    @property
    def macs(self) -> list[int]:
        """Multiply-accumulates of each layer's top-down map for one sample."""
        return [p.numel() for p in self.down.parameters()]

    def param_groups(self, lr: float, weight_decay: float, layer_lr: list[float]) -> list[dict]:
        """The top-down weights at `lr` (times layer i's factor of `layer_lr` for down[i]: a layer's
        incoming weights share its learning rate), decayed as the bottom-up weights are."""
        factors = layer_lr or [1.0] * len(self.down)
        return [group for linear, factor in zip(self.down, factors)
                for group in decay_groups(linear.named_parameters(), lr * factor, weight_decay)]

    def step(self, stack: LayerStack, x: torch.Tensor, states: list[torch.Tensor], top: torch.Tensor,
             detach: bool = True, trained: frozenset[int] | None = None) -> Iteration:
        """One synchronous iteration: every hidden layer from the previous `states` of the layers
        around it (x below the first, `top` above the last).

        detach: the previous states carry no derivative into this iteration (FF: a layer's loss at
        an iteration trains only that layer's weights, through that iteration). Layers outside
        `trained` (default all) run without a graph.
        """
        pre, act = [], []
        for i, layer in enumerate(stack.layers):
            below = x if i == 0 else stack.stages[i - 1](states[i - 1])
            above = states[i + 1] if i + 1 < len(states) else top
            old = states[i]
            if detach:
                above, old = above.detach(), old.detach()
            with torch.set_grad_enabled(torch.is_grad_enabled() and (trained is None or i in trained)):
                z = layer.pre_activation(below, detach=detach)
                z = z + self.down[i](normalize(above, self.norm, self.norm_eps)).to(z.dtype)
                y = self.damping * old + (1 - self.damping) * layer.activation(z)
            pre.append(z)
            act.append(y)
        return Iteration(pre, act)

    def run(self, stack: LayerStack, x: torch.Tensor, top: torch.Tensor,
            each: Callable[[int, Iteration], None] | None = None) -> list[torch.Tensor]:
        """The bottom-up pass, then `iterations` synchronous iterations with the label vector `top`
        (B, top_units) above the top layer; returns the last states. `each(t, iteration)` is called
        after iteration t = 0 (the bottom-up pass) .. iterations."""
        first = stack(x)
        states = first.act
        if each is not None:
            each(0, Iteration(first.pre, first.act))
        for t in range(1, self.iterations + 1):
            step = self.step(stack, x, states, top)
            if each is not None:
                each(t, step)
            states = step.act
        return states
