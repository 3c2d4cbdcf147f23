"""Black-box stages between layers: a forward computation that is unknown or non-differentiable.

The paper (§8, "mortal computation") asks whether FF can learn through hardware whose exact
forward computation is unknown. FF never needs a derivative across a layer, so a stage between
two layers may be anything; backpropagation would need its derivative and gets none (the stage's
output is computed without a graph). A stage is one entry of BLACKBOXES (`model.blackbox`).
"""

from __future__ import annotations

import torch
from torch import nn

from .errors import FFError


class Stage(nn.Module):
    """One stage applied to a layer's activity (B, units) before the next layer sees it."""

    def __init__(self, units: int, strength: float, seed: int = 0):
        super().__init__()
        self.strength = strength

    @staticmethod
    def check(strength: float) -> None:
        """Raise FFError if `model.blackbox_strength` makes no sense for this stage."""

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y


class Quantize(Stage):
    """To 2**strength levels over [0, the row's max]: low-precision hardware."""

    @staticmethod
    def check(strength: float) -> None:
        if not 1 <= strength <= 16:
            raise FFError("model.blackbox_strength is the number of bits for quantize: give 1 to 16.")

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        levels = 2 ** int(self.strength) - 1
        top = y.amax(dim=1, keepdim=True).clamp_min(1e-12)
        return torch.round(y / top * levels) / levels * top


class Noise(Stage):
    """Additive Gaussian noise, std = strength x the row's RMS, like analog hardware."""

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        rms = y.pow(2).mean(dim=1, keepdim=True).sqrt()
        return y + self.strength * rms * torch.randn_like(y)


class RandomNonlinearity(Stage):
    """A fixed random per-unit wiggle y + strength * sin(f y + phi), f and phi drawn once from the seed."""

    frequency: torch.Tensor  # registered buffers
    phase: torch.Tensor

    def __init__(self, units: int, strength: float, seed: int = 0):
        super().__init__(units, strength, seed)
        gen = torch.Generator().manual_seed(seed)
        # drawn from the seed, so they are rebuilt rather than saved: not part of the state_dict
        self.register_buffer("frequency", torch.rand(units, generator=gen) * 4 + 1, persistent=False)
        self.register_buffer("phase", torch.rand(units, generator=gen) * 6.2832, persistent=False)

    @torch.no_grad()
    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y + self.strength * torch.sin(self.frequency * y + self.phase)


BLACKBOXES: dict[str, type[Stage]] = {
    "none": Stage,
    "quantize": Quantize,
    "noise": Noise,
    "random_nonlinearity": RandomNonlinearity,
}
