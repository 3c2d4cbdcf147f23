"""What a next-character model does with text: write it, and be scored on held-out strings.

Every model kind predicts a window's next character as it predicts an image's class, by one of its
ways (`class_log_probs`), so writing and scoring work for FF, its backprop twin and any plugin kind.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from . import text
from .errors import FFError

if TYPE_CHECKING:
    from .models import Network

# the temperature that makes a way's probabilities best on validation is found on this grid
TEMPERATURES = torch.logspace(-2, 2, 41).tolist()


def next_log_probs(model: Network, contexts: torch.Tensor, how: str) -> torch.Tensor:
    """(B, window) codes -> (B, 30) log-probabilities of the next character by way `how`."""
    like = next(model.parameters())
    return model.class_log_probs(text.one_hot(contexts).to(like.device, like.dtype), (how,))[how]


def writes(model: Network) -> bool:
    """Whether the model can write text: a fast-weight model reads whole strings of fixed length, and
    writing one a character at a time would rerun the string at every step; it is scored teacher-forced."""
    return getattr(model, "fast", None) is None


@torch.no_grad()
def write(model: Network, prompts: torch.Tensor, length: int, how: str, temperature: float = 1.0,
          generator: torch.Generator | None = None) -> torch.Tensor:
    """(S, >= window) prompt codes -> (S, prompt + length) codes: each next character drawn from the
    model's probabilities by way `how` raised to 1 / temperature; temperature 0 takes the likeliest."""
    window = model.data_shape[0] // len(text.ALPHABET)
    if prompts.shape[1] < window:
        raise ValueError(f"a prompt needs at least {window} characters")
    if not writes(model):
        raise FFError("this model has fast weights, which read whole strings: it predicts teacher-forced only, and "
                      "does not write text (train it with model.fast_weights = false to generate).")
    out = prompts
    for _ in range(length):
        logp = next_log_probs(model, out[:, -window:], how)
        if temperature == 0:
            nxt = logp.argmax(dim=1)
        else:
            probs = (logp / temperature).softmax(dim=1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(1)
        out = torch.cat([out, nxt.to(out.device)[:, None]], dim=1)
    return out


def bits(logp: torch.Tensor, targets: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean bits per character of `targets` under log-probabilities `logp` sharpened or flattened by temperature."""
    logp = (logp / temperature).log_softmax(dim=1)
    return float(-logp.gather(1, targets[:, None]).mean() / math.log(2))


def best_temperature(logp: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature on TEMPERATURES with the fewest bits per character for these (validation) targets."""
    return min(TEMPERATURES, key=lambda t: bits(logp, targets, t))


@torch.no_grad()
def held_out_log_probs(model: Network, strings: torch.Tensor, ways: tuple[str, ...],
                       batch_size: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Teacher-forced: every window of `strings` after the given first characters -> ({way: (N, 30)
    log-probabilities}, (N,) the real next characters)."""
    window = model.data_shape[0] // len(text.ALPHABET)
    contexts, targets = text.windows(strings, window)
    out: dict[str, list[torch.Tensor]] = {how: [] for how in ways}
    like = next(model.parameters())
    for start in range(0, len(targets), batch_size):
        x = text.one_hot(contexts[start : start + batch_size]).to(like.device, like.dtype)
        for how, logp in model.class_log_probs(x, ways).items():
            out[how].append(logp.float().cpu())
    return {how: torch.cat(parts) for how, parts in out.items()}, targets


def free_running_accuracy(model: Network, strings: torch.Tensor, how: str) -> float:
    """The fraction of characters a model writing on its own (likeliest character each step) gets right,
    from each string's first `window` real characters to its end."""
    window = model.data_shape[0] // len(text.ALPHABET)
    written = write(model, strings[:, :window].to(next(model.parameters()).device), strings.shape[1] - window, how, 0)
    return float((written[:, window:].cpu() == strings[:, window:]).float().mean())


def scores(model: Network, strings: torch.Tensor, ways: tuple[str, ...], batch_size: int,
           temperatures: dict[str, float] | None = None, free_running: bool = True) -> dict:
    """Per-character accuracy (`acc_<way>`), bits per character (`bpc_<way>`, at `temperatures[way]`, or
    at the best temperature for these strings when none is given: then they must be validation strings,
    and `temperature_<way>` reports it) and, with `free_running`, the free-running accuracy (`free_acc_<way>`)."""
    logps, targets = held_out_log_probs(model, strings, ways, batch_size)
    out: dict[str, float] = {}
    for how, logp in logps.items():
        t = temperatures[how] if temperatures else best_temperature(logp, targets)
        out[f"acc_{how}"] = float((logp.argmax(dim=1) == targets).float().mean())
        out[f"bpc_{how}"], out[f"temperature_{how}"] = bits(logp, targets, t), t
        if free_running:
            out[f"free_acc_{how}"] = free_running_accuracy(model, strings, how)
    return out
