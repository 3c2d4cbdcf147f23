"""Data augmentation on the device, for whole batches at once."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def jitter(images: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift every image by its own random (dy, dx) in [-max_shift, max_shift], filling with zeros.

    images: (B, C, H, W). The paper's jittered MNIST uses shifts of up to 2 pixels (§3.4).
    """
    batch, c, h, w = images.shape
    s = max_shift
    shifts = torch.randint(-s, s + 1, (2, batch), generator=generator).to(images.device)
    padded = F.pad(images, (s,) * 4).flatten(2)  # (B, C, (H + 2s) * (W + 2s))
    # each output pixel's place in its padded image, flat: one gather for the whole batch
    rows = torch.arange(h, device=images.device)[None, :, None] + (s - shifts[0])[:, None, None]  # (B, H, 1)
    cols = torch.arange(w, device=images.device)[None, None, :] + (s - shifts[1])[:, None, None]  # (B, 1, W)
    index = (rows * (w + 2 * s) + cols).flatten(1)[:, None, :].expand(batch, c, h * w)
    return padded.gather(2, index).view(batch, c, h, w)


def flip(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Mirror a random half of the images left to right (each image by its own coin). images: (B, C, H, W)."""
    mirrored = torch.rand(images.shape[0], generator=generator).to(images.device) < 0.5
    return torch.where(mirrored[:, None, None, None], images.flip(-1), images)
