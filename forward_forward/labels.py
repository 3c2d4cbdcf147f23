"""Drawing wrong labels for negative data (paper §3.3); coding.py writes labels into inputs."""

from __future__ import annotations

import torch


def one_hot(indices: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(...,) class indices -> (..., C) one-hot rows. A scatter, not F.one_hot, which reads the indices'
    range back to the host (a wait for the device inside a GPU step)."""
    hot = torch.zeros(*indices.shape, num_classes, dtype=dtype, device=indices.device)
    return hot.scatter_(-1, indices.unsqueeze(-1), 1.0)


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
