"""Writing labels into images and drawing wrong labels for negative data (paper §3.3)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def overlay(images: torch.Tensor, labels: torch.Tensor, num_classes: int, value: str = "one") -> torch.Tensor:
    """(B, D) images -> copies whose first `num_classes` pixels hold the one-hot label.

    value "one" writes 1.0 (MATLAB code); "max" writes each image's maximum (the article's notebook).
    """
    out = images.clone()
    hot = F.one_hot(labels, num_classes).to(images.dtype)
    if value == "max":
        hot = hot * images.amax(dim=1, keepdim=True)
    out[:, :num_classes] = hot
    return out


def neutral(images: torch.Tensor, num_classes: int, value: float = 0.1) -> torch.Tensor:
    """(B, D) images with every label pixel set to `value`: the input that names no class."""
    out = images.clone()
    out[:, :num_classes] = value
    return out


def every_label(images: torch.Tensor, num_classes: int, value: str = "one") -> torch.Tensor:
    """(B, D) -> (B*C, D): each image once with each label, image-major (rows b*C .. b*C+C-1)."""
    batch = images.shape[0]
    repeated = images.repeat_interleave(num_classes, dim=0)
    labels = torch.arange(num_classes, device=images.device).repeat(batch)
    return overlay(repeated, labels, num_classes, value)


def random_wrong(labels: torch.Tensor, num_classes: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A label drawn uniformly from the C-1 wrong classes: true + U{1..C-1} mod C is never the true one."""
    offset = torch.randint(1, num_classes, labels.shape, device=labels.device, generator=generator)
    return (labels + offset) % num_classes


def all_wrong(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B,) -> (B*(C-1),): every wrong label of each image, image-major."""
    offsets = torch.arange(1, num_classes, device=labels.device)
    return ((labels[:, None] + offsets) % num_classes).reshape(-1)


def hard_wrong(
    labels: torch.Tensor, probs: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A wrong label sampled in proportion to the model's belief in it (MATLAB recipe).

    probs: (B, C) class probabilities; the true class is masked out, and a tiny floor keeps a
    row valid when the model puts all its mass on the true class. NaN (a diverged model) counts
    as 1, so sampling goes on and the divergence guard can report where it started.
    """
    weights = probs.detach().float().nan_to_num(1.0, 1.0, 0.0).clamp_min(1e-12)
    weights = weights.scatter(1, labels[:, None], 0.0)
    return torch.multinomial(weights, 1, generator=generator).squeeze(1)
