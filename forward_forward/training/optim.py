"""The optimiser over a model's own parameter groups, and the learning-rate schedule."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Callable

import torch

from ..config import Config

if TYPE_CHECKING:
    from ..models import Network


def build_optimizer(cfg: Config, model: Network, total_steps: int):
    """SGD or Adam over `model.param_groups(cfg.optim)`, and a LambdaLR of `optim.schedule`.

    Every parameter of the model must be in exactly one group: one left out would silently never train.
    """
    o = cfg.optim
    groups = model.param_groups(o)
    grouped = [id(p) for group in groups for p in group["params"]]
    missing = [name for name, p in model.named_parameters() if id(p) not in grouped]
    assert not missing and len(grouped) == len(set(grouped)), (
        f"{type(model).__name__}.param_groups leaves out {missing} or lists a parameter twice"
    )
    make: Callable[..., torch.optim.Optimizer]
    if o.name == "sgd":
        make = functools.partial(torch.optim.SGD, groups, lr=o.lr, momentum=o.momentum, dampening=o.dampening)
    else:
        make = functools.partial(torch.optim.Adam, groups, lr=o.lr)
    try:
        # One fused kernel instead of several passes over every weight; for SGD the result is
        # bit-identical. On a 2-core CPU it saves 0-15 % of a 4 x 2000 training step.
        optimizer = make(fused=True)
    except (RuntimeError, TypeError):  # a torch or device without fused kernels
        optimizer = make()

    def factor(step: int) -> float:
        if o.schedule == "constant":
            return 1.0
        return min(1.0, 2.0 * (1.0 - step / max(total_steps, 1)))  # Hinton: flat, then linear to 0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
