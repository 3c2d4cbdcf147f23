"""Count-based next-character baselines on the same strings the networks see: unigram frequencies,
and an interpolated n-gram model with absolute discounting over every context length up to the window.

    p(c | h) = max(n(h c) - d, 0) / n(h) + d * types(h) / n(h) * p(c | h minus its oldest character)

down to the unigram, which is smoothed towards uniform the same way (Ney, Essen & Kneser, 1994).
The discount d is chosen on the validation strings; the test strings are scored once with it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict

import torch

from . import text

DISCOUNTS = (0.3, 0.5, 0.7, 0.8, 0.9, 0.95)


class NGram:
    """Character n-gram counts of every order 0..`order` from training strings."""

    def __init__(self, strings: torch.Tensor, order: int):
        self.order = order
        self.counts: list[dict[tuple, Counter]] = [defaultdict(Counter) for _ in range(order + 1)]
        for row in strings.tolist():
            for t in range(len(row)):
                for k in range(min(order, t) + 1):  # context of k characters before position t
                    self.counts[k][tuple(row[t - k : t])][row[t]] += 1

    def probs(self, context: tuple, discount: float) -> torch.Tensor:
        """(30,) next-character probabilities after `context` (its last `order` characters are used)."""
        size = len(text.ALPHABET)
        p = torch.full((size,), 1.0 / size, dtype=torch.float64)
        context = context[len(context) - self.order :] if self.order else ()
        for k in range(0, len(context) + 1):  # from the empty context up to the longest
            seen = self.counts[k].get(context[len(context) - k :] if k else ())
            if not seen:
                break  # a longer context holding this one was never seen either
            total = sum(seen.values())
            own = torch.zeros(size, dtype=torch.float64)
            for c, n in seen.items():
                own[c] = max(n - discount, 0.0)
            p = own / total + discount * len(seen) / total * p
        return p

    def log_probs(self, strings: torch.Tensor, window: int, discount: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Each window of `strings` past the first `window` characters -> ((N, 30) log-probabilities, (N,) targets)."""
        contexts, targets = text.windows(strings, window)
        rows = [self.probs(tuple(c), discount) for c in contexts.tolist()]
        return torch.stack(rows).log(), targets


def unigram(train: torch.Tensor, strings: torch.Tensor, window: int) -> dict:
    """Accuracy and bits per character of the training strings' character frequencies (add-one smoothed)."""
    counts = torch.bincount(train.flatten(), minlength=len(text.ALPHABET)).double() + 1
    logp = (counts / counts.sum()).log()
    _, targets = text.windows(strings, window)
    return {"acc": float((targets == logp.argmax()).double().mean()),
            "bpc": float(-logp[targets].mean() / math.log(2))}


def baselines(corpus: text.Corpus) -> dict:
    """Unigram and n-gram (context = the window) test accuracy and bits per character, the n-gram's
    discount chosen on validation; the same numbers on validation beside them."""
    window = corpus.window
    model = NGram(corpus.train, window)
    out: dict[str, dict] = {"unigram": {"test": unigram(corpus.train, corpus.test, window),
                                        "val": unigram(corpus.train, corpus.val, window)}}

    def measured(strings: torch.Tensor, d: float) -> dict:
        logp, targets = model.log_probs(strings, window, d)
        return {"acc": float((logp.argmax(1) == targets).double().mean()),
                "bpc": float(-logp.gather(1, targets[:, None]).mean() / math.log(2))}

    val = {d: measured(corpus.val, d) for d in DISCOUNTS}
    best = min(DISCOUNTS, key=lambda d: val[d]["bpc"])
    out[f"{window + 1}-gram"] = {"test": measured(corpus.test, best), "val": val[best], "discount": best}
    return out
