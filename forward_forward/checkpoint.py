"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model, optimiser and schedule states, the RNG states (data order and
negative sampling) and the position in the run. It is written through a temporary file and an
atomic rename, so a kill at any moment leaves the previous checkpoint whole, and it is read with
`weights_only=True`, so a checkpoint cannot run code.
"""

from __future__ import annotations

import errno
import signal
from dataclasses import dataclass
from pathlib import Path

import torch

from . import runs
from .errors import FFError

CHECKPOINT = "checkpoint.pt"


@dataclass
class Position:
    """Where a run stands: `step` steps of epoch `epoch` (1-based) are done, in data order `order`."""

    epoch: int = 1
    step: int = 0
    order: torch.Tensor | None = None
    elapsed: float = 0.0  # seconds of training before this point, for train_seconds across resumes
    step_seconds: float = 0.0


def save(run_dir: Path, *, model, optimizer, scheduler, generator: torch.Generator, position: Position) -> None:
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "epoch": position.epoch,
        "step": position.step,
        "order": position.order.cpu() if position.order is not None else None,
        "elapsed": position.elapsed,
        "step_seconds": position.step_seconds,
    }
    try:
        runs.write_atomic(Path(run_dir) / CHECKPOINT, lambda f: torch.save(state, f))
    except OSError as e:
        why = "the disk is full" if e.errno == errno.ENOSPC else str(e)
        raise FFError(
            f"could not write a checkpoint in {run_dir} ({why}); the previous checkpoint is intact: "
            f"free space and resume with `ff train --resume {run_dir}`."
        ) from None


EXPECTED: dict[str, type | tuple[type, ...]] = {
    "model": dict, "optimizer": dict, "scheduler": dict, "generator": torch.Tensor, "torch_rng": torch.Tensor,
    "cuda_rng": list, "epoch": int, "step": int, "order": (torch.Tensor, type(None)), "elapsed": (int, float),
    "step_seconds": (int, float),
}


def load(run_dir: Path) -> dict | None:
    """The run's checkpoint, or None when it has none yet (killed before its first checkpoint)."""
    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    state = runs.load_trusted_format(path, "checkpoint")
    if not isinstance(state, dict):
        raise FFError(f"{path} is not a checkpoint (no table inside); it was refused.")
    for key, kinds in EXPECTED.items():  # every field, of its type, before anything is restored
        if key not in state or not isinstance(state[key], kinds) or isinstance(state[key], bool):
            raise FFError(f"{path} is not a complete checkpoint ({key!r} is missing or of the wrong type); it was "
                          "refused. Train the run again, or resume from a copy of an intact checkpoint.")
    if state["epoch"] < 1 or state["step"] < 0:
        raise FFError(f"{path} holds an impossible position (epoch {state['epoch']}, step {state['step']}); refused.")
    return state


def restore(state: dict, *, model, optimizer, scheduler, generator: torch.Generator) -> Position:
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise FFError(f"the checkpoint does not fit this run's config.json ({str(e).splitlines()[0]}).") from None
    try:
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
    except (RuntimeError, ValueError, KeyError, TypeError) as e:
        raise FFError(f"the checkpoint's schedule or random state is damaged ({str(e).splitlines()[0][:120]}); "
                      "it was refused.") from None
    return Position(state["epoch"], state["step"], state["order"], state["elapsed"], state["step_seconds"])


class StopRequest:
    """Turns the first Ctrl-C into a request that the loop honours between steps, so a checkpoint
    is never taken in the middle of an optimiser step; a second Ctrl-C stops at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def __enter__(self) -> "StopRequest":
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C alone
            self._previous = None
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
