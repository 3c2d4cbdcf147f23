"""Training statistics: the per-epoch meter over a model's named losses, and TensorBoard."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import torch

from ..errors import Diverged, FFError


class Meter:
    """Sums detached statistics on the device; one synchronisation per epoch, not per step.

    It also keeps every step's losses, so a divergence can be traced to its layer and step. No tensor
    is kept from a step: the sums grow in place and the losses go into one buffer that doubles when
    full, since small tensors kept each step would split the holes a CPU step's large blocks leave.
    """

    def __init__(self, first_step: int = 0):
        self.sums: dict[tuple[str, str], torch.Tensor | float] = {}
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.first_step = first_step
        self._step_names: list[list[str]] = []  # each step's loss names, in the order of its values below
        self._losses: torch.Tensor | None = None  # every step's losses, one after another
        self._filled = 0

    def add(self, losses: dict, stats: dict) -> None:
        self._step_names.append(list(losses))
        self._keep_losses(torch.stack([v.detach().float() for v in losses.values()]))
        values = {(name, "loss"): loss.detach() for name, loss in losses.items()}
        values.update({(name, key): v for name, group in stats.items() for key, v in group.items()})
        for key, value in values.items():
            total = self.sums.get(key)
            if isinstance(total, torch.Tensor):
                total.add_(value)
            elif isinstance(value, torch.Tensor):
                self.sums[key] = value.detach().float() + (total or 0.0)  # the one tensor this key keeps
            else:
                self.sums[key] = (total or 0.0) + value
            self.counts[key] += 1

    def _keep_losses(self, row: torch.Tensor) -> None:
        if self._losses is None or self._filled + len(row) > len(self._losses):
            grown = torch.empty(max(64, 2 * (self._filled + len(row))), device=row.device)
            if self._losses is not None:
                grown[: self._filled] = self._losses[: self._filled]
            self._losses = grown
        self._losses[self._filled : self._filled + len(row)] = row
        self._filled += len(row)

    def check_finite(self, epoch: int, checkpointed: bool = True) -> None:
        """Raise an FFError naming the first layer and step whose loss was NaN or infinite."""
        if self._losses is None:
            return
        losses = self._losses[: self._filled]
        if bool(torch.isfinite(losses).all()):
            return  # the common case: one check, one synchronisation
        values, start = losses.tolist(), 0
        for index, names in enumerate(self._step_names):
            row, start = values[start : start + len(names)], start + len(names)
            bad = [n for n, v in zip(names, row) if not math.isfinite(v)]
            if bad:
                kept = "the last good checkpoint is kept" if checkpointed else "no checkpoint was written before it"
                raise Diverged(
                    f"training diverged: the loss of {bad[0]} became {row[names.index(bad[0])]} at epoch "
                    f"{epoch}, step {self.first_step + index + 1}; {kept}. Lower "
                    "optim.lr (or raise the threshold) and train again."
                )

    def flush(self) -> None:
        """Wait for queued device work, so step timings are honest on asynchronous devices."""
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def means(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (name, key), total in self.sums.items():
            out[name][key] = float(total) / self.counts[name, key]
        return dict(out)


def tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise FFError("log.tensorboard needs tensorboard: pip install 'forward-forward[tensorboard]'.") from None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def log_tensorboard(writer, model, entry: dict) -> None:
    """The epoch's metrics as scalars (layer/key), and every parameter as a histogram."""
    epoch = entry["epoch"]
    for name, values in entry["layers"].items():
        for key, value in values.items():
            writer.add_scalar(f"{name}/{key}", value, epoch)
    if "val_error" in entry:
        writer.add_scalar("val_error", entry["val_error"], epoch)
    writer.add_scalar("lr", entry["lr"], epoch)
    for name, param in model.named_parameters():  # every parameter: stack.layers.0.linear.weight -> layer0/weight
        parts = name.split(".")
        tag = f"layer{parts[2]}/{parts[-1]}" if parts[:2] == ["stack", "layers"] else name.replace(".", "/")
        writer.add_histogram(tag, param.detach().cpu(), epoch)
    writer.flush()
