"""run.precision = auto made concrete: bf16 where the device computes it natively and this run's own
training step is faster in it, fp32 elsewhere.

Native bf16 is not always the faster: the conv presets' small net on an H100 is launch-bound, and there
autocast's casts cost more than bf16 saves (README, "Convolutional FF"). So where bf16 is native, a few
steps of a fresh copy of the run's model, on the run's first batch, are timed in each precision,
alternately, in a random stream of their own: the run then starts exactly as it would have without them.
"""

from __future__ import annotations

import statistics
import time
from typing import TYPE_CHECKING, Callable

import torch
import torch.distributed as dist

from ..config import Config, merge
from ..data import Split
from . import distributed
from .device import native_bf16
from .loop import accumulate, hint, own_random_stream
from .optim import build_optimizer
from .schedules import schedule_for

if TYPE_CHECKING:
    from ..models import Network

WARMUP = 2  # steps in each precision before timing: the first ones allocate and fill autocast's caches
# alternations of one timed step in each precision, whose medians are compared: at least MIN_ROUNDS, and
# more while a precision has had under BUDGET_S of them, so a fast step is timed often enough that one
# step slowed by the machine does not decide (a CPU's steps of a few ms vary by tens of percent)
MIN_ROUNDS, MAX_ROUNDS, BUDGET_S = 3, 40, 0.5


def choose_precision(cfg: Config, build: Callable[[], "Network"], train: Split, device: torch.device,
                     ranks: distributed.Ranks = distributed.ALONE) -> tuple[str, str]:
    """run.precision made concrete, and why. `build` makes a fresh model like the run's (it is timed in
    place of the run's own, whose weights and statistics stay untouched). Every process of a parallel run
    times its own steps, and all choose from the mean of their times, so they agree."""
    if cfg.run.precision != "auto":
        return cfg.run.precision, "as configured"
    native, why = native_bf16(device)
    if ranks.parallel:  # every process times, or none does: one that returned early would leave the others waiting
        everywhere = torch.tensor([float(native)], device=device)
        dist.all_reduce(everywhere, op=dist.ReduceOp.MIN)
        if native and not everywhere.item():
            native, why = False, "a process of this run has no native bf16"
    if not native:
        return "fp32", f"auto: {why}"
    ms = step_ms(cfg, build, train, device)
    if ranks.parallel:
        total = torch.tensor([ms["fp32"], ms["bf16"]], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        ms = {"fp32": float(total[0]) / ranks.world, "bf16": float(total[1]) / ranks.world}
    # a tie goes to fp32: the same speed with fewer rounding errors
    precision = "bf16" if ms["bf16"] < ms["fp32"] else "fp32"
    return precision, (f"auto: {why}, and a training step of this model took {ms['bf16']:.3g} ms in bf16 "
                       f"against {ms['fp32']:.3g} ms in fp32")


def step_ms(cfg: Config, build: Callable[[], "Network"], train: Split, device: torch.device) -> dict[str, float]:
    """Median milliseconds of one training step in fp32 and in bf16: the schedule's first step (its
    images, losses and phase) on a model from `build`, with the run's optimiser."""
    with own_random_stream(device):
        model = build()
        model.train()
        hint(model, release_graphs=True)  # as the loop runs a model it does not wrap
        schedule = schedule_for(cfg, list(model.loss_names), len(train))
        index, active, phase = schedule.step(1, 0, schedule.order(torch.Generator().manual_seed(cfg.run.seed)))
        images, labels = train.images[index].to(device), train.labels[index].to(device)
        optimizer, _ = build_optimizer(cfg, model, schedule.steps_per_epoch * cfg.optim.epochs)
        configs = {p: merge(cfg, {"run": {"precision": p}}) for p in ("fp32", "bf16")}

        def step(precision: str) -> float:
            _sync(device)
            tick = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            accumulate(model, images, labels, configs[precision], device, active=active, phase=phase)
            optimizer.step()
            _sync(device)
            return (time.perf_counter() - tick) * 1000

        for precision in configs:
            for _ in range(WARMUP):
                step(precision)
        times: dict[str, list[float]] = {p: [] for p in configs}
        while len(times["fp32"]) < MIN_ROUNDS or (len(times["fp32"]) < MAX_ROUNDS
                                                  and min(sum(t) for t in times.values()) < BUDGET_S * 1000):
            for precision in configs:
                times[precision].append(step(precision))
    return {p: statistics.median(t) for p, t in times.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
