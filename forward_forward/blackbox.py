"""Black-box stages between layers: a forward computation that is unknown or non-differentiable.

The paper (§8, "mortal computation") asks whether FF can learn through hardware whose exact
forward computation is unknown. FF never needs a derivative across a layer, so a stage between
two layers may be anything; backpropagation would need its derivative and gets none (the stage's
output is detached).
"""

from __future__ import annotations

import torch
from torch import nn


class BlackBox(nn.Module):
    """One stage applied to a layer's activity before the next layer sees it.

    kind: "none" | "quantize" (to 2**strength levels over [0, max]) | "noise" (additive Gaussian,
    std = strength x the row's RMS, like analog hardware) | "random_nonlinearity" (a fixed random
    per-unit wiggle y + strength * sin(f y + phi), f and phi drawn once and saved as buffers).
    """

    KINDS = ("none", "quantize", "noise", "random_nonlinearity")

    def __init__(self, kind: str, units: int, strength: float, seed: int = 0):
        super().__init__()
        assert kind in self.KINDS, f"unknown black box {kind!r}"
        self.kind, self.strength = kind, strength
        gen = torch.Generator().manual_seed(seed)
        # drawn from the seed, so they are rebuilt rather than saved: not part of the state_dict
        self.register_buffer("frequency", torch.rand(units, generator=gen) * 4 + 1, persistent=False)
        self.register_buffer("phase", torch.rand(units, generator=gen) * 6.2832, persistent=False)

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "quantize":
            levels = 2 ** int(self.strength) - 1
            top = y.amax(dim=1, keepdim=True).clamp_min(1e-12)
            return torch.round(y / top * levels) / levels * top
        if self.kind == "noise":
            rms = y.pow(2).mean(dim=1, keepdim=True).sqrt()
            return y + self.strength * rms * torch.randn_like(y)
        if self.kind == "random_nonlinearity":
            return y + self.strength * torch.sin(self.frequency * y + self.phase)
        return y
