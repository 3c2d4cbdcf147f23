"""Data augmentation on the device, for whole batches at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def jitter(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image by its own random (dy, dx) in [-max_shift, max_shift], filling with zeros.

    images: (B, C, H, W). The paper's jittered MNIST uses shifts of up to 2 pixels (§3.4).
    """
    batch, c, h, w = images.shape
    shifts = torch.randint(-max_shift, max_shift + 1, (2, batch), generator=generator).to(images.device)
    padded = F.pad(images, (max_shift,) * 4)  # (B, C, H + 2s, W + 2s)
    rows = torch.arange(h, device=images.device)[None, :] + max_shift - shifts[0][:, None]  # (B, H)
    cols = torch.arange(w, device=images.device)[None, :] + max_shift - shifts[1][:, None]  # (B, W)
    b = torch.arange(batch, device=images.device)[:, None, None, None]
    ch = torch.arange(c, device=images.device)[None, :, None, None]
    out = padded[b, ch, rows[:, None, :, None], cols[:, None, None, :]]  # (B, C, H, W)
    return out


def flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of the images left to right (each image by its own coin). images: (B, C, H, W)."""
    mirrored = torch.rand(images.shape[0], generator=generator).to(images.device) < 0.5
    return torch.where(mirrored[:, None, None, None], images.flip(-1), images)
