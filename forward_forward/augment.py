"""Data augmentation on the device, for whole batches at once.

`batch` applies what the data config asks for, in one order: turn and zoom, shift, mirror.
`IMAGE_ONLY` names each augmentation's field and what it does, for the error on data that is not images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .config import DataConfig

# data.<field>: what it does to an image, for the error when the data has no images
IMAGE_ONLY = {"rotate": "turns images", "scale": "zooms images", "jitter": "shifts images", "flip": "mirrors images"}


def batch(images: torch.Tensor, data: DataConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) training images augmented as `data` says, each image by its own draws."""
    if data.rotate or data.scale:
        images = affine(images, data.rotate, data.scale, generator)
    if data.jitter:
        images = jitter(images, data.jitter, generator)
    if data.flip:
        images = flip(images, generator)
    return images


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


def affine(images: torch.Tensor, max_degrees: float, max_zoom: float,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """Turn every image by its own random angle in [-max_degrees, max_degrees] and zoom it by its own
    factor in [1 - max_zoom, 1 + max_zoom] about its centre: the small distortions of a written digit
    that shifts alone do not cover. images: (B, C, H, W)."""
    draws = torch.rand(2, images.shape[0], generator=generator, dtype=torch.float64) * 2 - 1
    return turn_and_zoom(images, draws[0] * math.radians(max_degrees), 1 + draws[1] * max_zoom)


def turn_and_zoom(images: torch.Tensor, angles: torch.Tensor, zooms: torch.Tensor) -> torch.Tensor:
    """Each image (B, C, H, W) turned by its angle (radians, counter-clockwise as displayed) and zoomed by its
    factor about its centre, sampled bilinearly, zeros outside."""
    _, _, h, w = images.shape
    # the grid gives each output pixel the place it reads in the input (the inverse map), in coordinates
    # that run from -1 to 1 across each side: a turn in pixels is scaled by the sides' ratio there
    cos, sin = angles.cos() / zooms, angles.sin() / zooms
    zero = torch.zeros_like(cos)
    theta = torch.stack([torch.stack([cos, -sin * h / w, zero], 1),
                         torch.stack([sin * w / h, cos, zero], 1)], 1)  # (B, 2, 3)
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
