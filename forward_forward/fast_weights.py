"""Fast weights (Ba, Hinton, Mnih, Leibo & Ionescu, "Using fast weights to attend to the recent past",
NeurIPS 2016) for next-character FF: each hidden layer gets a decaying outer-product memory of its own
recent activity, so it can use context older than its window.

At position t of a string, layer i's fast weight matrix is

    A(t) = rate * sum over earlier positions s < t of  decay ** (t - 1 - s) * m(s) m(s)^T

where m(s) is the layer's activity at s (before its own fast-weight term, scaled to unit length) on
the reference input: the real next character at s for a labelled pass (the past is known), the
input itself for a label-free one. The layer's pre-activation z becomes z + A(t) f(z), f its activation: one step
of the paper's inner loop. A(t) is never formed: A(t) h = sum_s weight(t, s) (m(s) . h) m(s), a
causal attention over the string with decaying weights, computed for every position at once.

A batch therefore holds whole strings in order (`positions` windows each); a pass holds `copies` of
that batch one after another (positives then negatives; or every candidate character, label-major).
The memory is a constant to the loss: no derivative reaches an earlier position.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F

from .config import ModelConfig
from .errors import FFError
from .text import ALPHABET


class FastWeights:
    def __init__(self, positions: int, decay: float, rate: float):
        self.positions, self.decay, self.rate = positions, decay, rate
        self._weights: dict[tuple, torch.Tensor] = {}

    def check_rows(self, rows: int, what: str = "a batch") -> int:
        """The number of strings in `rows` windows; refused unless they are whole strings."""
        if rows % self.positions:
            raise FFError(f"fast weights read whole strings of {self.positions} windows in order, and {what} holds "
                          f"{rows}: make optim.batch_size and run.eval_batch_size multiples of {self.positions}.")
        return rows // self.positions

    def weights(self, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(P, P) weight of memory position s for query position t: rate * decay^(t-1-s) for s < t, else 0."""
        key = (device, dtype, self.positions, self.decay, self.rate)
        if key not in self._weights:
            t = torch.arange(self.positions, device=device)
            gap = (t[:, None] - 1 - t[None, :]).to(torch.float32)
            w = torch.where(gap >= 0, self.rate * self.decay ** gap.clamp_min(0), torch.zeros_like(gap))
            self._weights[key] = w.to(dtype)
        return self._weights[key]

    def recall(self, z: torch.Tensor, y: torch.Tensor, copies: int, reference: torch.Tensor | None) -> torch.Tensor:
        """(copies * S * P, units) pre-activations and their activities -> the pre-activations plus the
        fast-weight term. reference: (S * P,) which copy each window's memory is read from (None: copy 0)."""
        units = z.shape[1]
        strings = self.check_rows(z.shape[0] // copies)
        h = y.reshape(copies, strings, self.positions, units)
        with torch.no_grad():
            if reference is None:
                memory = h[0]
            else:
                rows = torch.arange(strings * self.positions, device=z.device)
                memory = h.reshape(copies, -1, units)[reference, rows].view(strings, self.positions, units)
            memory = F.normalize(memory.float(), dim=2).to(z.dtype)
        scores = torch.einsum("csqu,spu->csqp", h, memory) * self.weights(z.device, z.dtype)
        return z + torch.einsum("csqp,spu->csqu", scores, memory).reshape(z.shape)


Recall = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def build(model: ModelConfig) -> FastWeights | None:
    """The fast weights model.fast_weights asks for, over strings of model.fast_positions windows."""
    if not model.fast_weights:
        return None
    assert model.fast_positions > 0, "fast_positions is set from the data (training.run.fit_to_data)"
    return FastWeights(model.fast_positions, model.fast_decay, model.fast_rate)


def recall_for(fast: FastWeights | None, copies: int = 1, reference: torch.Tensor | None = None) -> Recall | None:
    """What a pass of `copies` copies of a batch hands the layer stack: None without fast weights."""
    return None if fast is None else partial(fast.recall, copies=copies, reference=reference)


def next_characters(images: torch.Tensor, positions: int) -> torch.Tensor:
    """(S * P, window * 30) one-hot windows of whole strings -> (S * P,) the character after each window:
    the last one of the window after it (0 for a string's last window, whose memory no window reads)."""
    last = images.view(images.shape[0], -1, len(ALPHABET))[:, -1].argmax(dim=1).view(-1, positions)
    return torch.cat([last[:, 1:], torch.zeros_like(last[:, :1])], dim=1).reshape(-1)
