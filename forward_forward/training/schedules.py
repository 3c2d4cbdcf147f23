"""Training schedules: which images and which named losses each step of an epoch uses.

A schedule never runs the model itself. Every step goes through the model's one forward path
with the losses it names active, so what a model honours (black boxes, peer normalisation, the
readout, hard negatives, jitter) it honours under every schedule.
"""

from __future__ import annotations

import math
from typing import Hashable, cast

import torch

from ..config import Config
from ..errors import FFError


class Minibatch:
    """Every loss on every minibatch (paper §3.3); with optim.phase_steps = K, K steps on positive
    data alone alternate with K on negative data alone (§3.5); with optim.negatives_until = N, every
    step after the first N trains on positive data alone (sleep deprivation)."""

    def __init__(self, cfg: Config, loss_names: list[str], train_size: int):
        self.batch_size, self.phase_steps = cfg.optim.batch_size, cfg.optim.phase_steps
        self.negatives_until = cfg.optim.negatives_until
        self.train_size = train_size
        # fast weights read whole strings in order: the order shuffles strings, not windows
        self.group = cfg.data.string_length - cfg.data.window if cfg.model.fast_weights else 1
        self.steps_per_epoch = train_size // self.batch_size
        if self.steps_per_epoch == 0:
            raise FFError(f"optim.batch_size = {self.batch_size} is larger than the {train_size} training images.")

    def order(self, generator: torch.Generator) -> torch.Tensor | None:
        if self.group == 1:
            return torch.randperm(self.train_size, generator=generator)
        groups = torch.randperm(self.train_size // self.group, generator=generator)
        return (groups[:, None] * self.group + torch.arange(self.group)).reshape(-1)

    def seed(self, epoch: int, step: int) -> int | None:
        """A seed for this step's random draws, or None: they continue the run's own streams."""
        return None

    def repeat_key(self, epoch: int, step: int) -> Hashable | None:
        """Steps with the same key feed their trained layer the same input; None: no step repeats one."""
        return None

    def step(self, epoch: int, step: int, order: torch.Tensor | None):
        """-> (indices or slice of the training images, the active losses (None: all), the phase)."""
        index = cast(torch.Tensor, order)[step * self.batch_size : (step + 1) * self.batch_size]  # order() gave it
        global_step = (epoch - 1) * self.steps_per_epoch + step
        phase = "both"
        if self.phase_steps:
            phase = "positive" if (global_step // self.phase_steps) % 2 == 0 else "negative"
        elif self.negatives_until and global_step >= self.negatives_until:  # sleep deprivation
            phase = "positive"
        return index, None, phase


class Greedy:
    """The article's schedule: per chunk of images, in order, each loss in turn (layer0, layer1, ...,
    readout) takes optim.greedy_steps full-chunk steps. Negatives, jitter and noise are drawn afresh
    on every step, or with optim.greedy_negatives = chunk once per chunk (the article's notebook)."""

    def __init__(self, cfg: Config, loss_names: list[str], train_size: int):
        self.names, self.chunk, self.steps = list(loss_names), cfg.optim.chunk_size, cfg.optim.greedy_steps
        self.train_size, self.per_chunk, self.run_seed = train_size, cfg.optim.greedy_negatives == "chunk", cfg.run.seed
        self.steps_per_epoch = math.ceil(train_size / self.chunk) * len(self.names) * self.steps

    def order(self, generator: torch.Generator) -> torch.Tensor | None:
        return None  # chunks are taken in order

    def step(self, epoch: int, step: int, order: torch.Tensor | None):
        per_chunk = len(self.names) * self.steps
        start = (step // per_chunk) * self.chunk
        name = self.names[(step % per_chunk) // self.steps]
        return slice(start, min(start + self.chunk, self.train_size)), frozenset({name}), "both"

    def repeat_key(self, epoch: int, step: int) -> Hashable | None:
        """With negatives drawn once per chunk, every step of one loss on one chunk sees the same images,
        negatives and draws, and the layers below the trained one do not change: one key per such block."""
        return (epoch, step // self.steps) if self.per_chunk else None

    def seed(self, epoch: int, step: int) -> int | None:
        if not self.per_chunk:
            return None
        chunk = step // (len(self.names) * self.steps)
        return ((self.run_seed * 1_000_003 + epoch) * 1_000_003 + chunk) % 2**62


def schedule_for(cfg: Config, loss_names: list[str], train_size: int) -> Minibatch | Greedy:
    """The one place a schedule is chosen."""
    return (Greedy if cfg.optim.greedy_steps else Minibatch)(cfg, loss_names, train_size)
