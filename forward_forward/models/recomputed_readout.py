"""model.readout_recompute: the readout's logits on a neutral pass whose input is never held whole.

The readout reads the normalised activities of every prediction layer side by side, and its weight gradient
needs all of them; kept for the backward pass, they are the one part of an FF step's memory that grows with
depth (README, "Memory"). Here the forward pass adds each layer's share of the logits as the layer runs
and lets its activity go; the backward pass runs the neutral pass again, from the same random state, and
adds each layer's share of the weight gradient as the layer runs. One more forward pass of the batch buys a
step whose working memory is the same at every depth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .ff import FFNetwork


class RecomputedReadout(torch.autograd.Function):
    """(weight, bias, model, images) -> fp32 logits (B, C), as `model.readout(model.neutral_features(images))`
    gives them, with gradients for the weight and bias alone (the layers' inputs are detached as ever)."""

    @staticmethod
    def forward(ctx: Any, weight: torch.Tensor, bias: torch.Tensor, model: FFNetwork,
                images: torch.Tensor) -> torch.Tensor:
        device = images.device.type
        ctx.model, ctx.device = model, images.device
        ctx.autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.cpu_state = torch.get_rng_state()  # a random stage between layers draws the same in the backward pass
        ctx.cuda_state = torch.cuda.get_rng_state(images.device) if device == "cuda" else None
        ctx.save_for_backward(weight, images)
        logits = bias.float().expand(images.shape[0], -1).clone()

        def add(columns: slice, features: torch.Tensor) -> None:
            logits.add_(F.linear(features, weight[:, columns]).float())

        model.stream_features(images, add)
        return logits

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        weight, images = ctx.saved_tensors
        device = ctx.device
        enabled, dtype = ctx.autocast
        grad = grad.float()
        weight_grad = torch.zeros(weight.shape, dtype=torch.float32, device=device)

        def add(columns: slice, features: torch.Tensor) -> None:
            weight_grad[:, columns] += grad.t() @ features.float()

        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad(), \
                torch.autocast(device.type, dtype=dtype, enabled=enabled):
            torch.set_rng_state(ctx.cpu_state)
            if ctx.cuda_state is not None:
                torch.cuda.set_rng_state(ctx.cuda_state, device)
            ctx.model.stream_features(images, add)
        return weight_grad.to(weight.dtype), grad.sum(0).to(weight.dtype), None, None
