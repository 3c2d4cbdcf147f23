"""The greedy schedule's repeated inputs: a layer's steps on one chunk with the frozen layers below it
run once for the chunk (what `ff train` does) against running them on every step.

The article's notebook trains each layer for 1000 full-chunk steps on one draw of negatives per chunk,
so every step of layer k reads the same input from layers 0 .. k-1. The benchmark builds the preset's
training loop on its real data and times steps of each layer from its own block of the first chunk,
with the repeated input kept and without, alternately, in one process; layer 0 has nothing below it
and is the control. The last line printed is one JSON object.

    python benchmarks/greedy_repeat.py --preset article
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

import torch

from forward_forward import data as data_mod
from forward_forward import presets
from forward_forward.config import merge, parse_overrides
from forward_forward.models import build_model
from forward_forward.training.device import resolve_precision
from forward_forward.training.host_memory import keep_freed_memory
from forward_forward.training.loop import Loop


def greedy_loop(preset: str, overrides: list[str], run_dir: Path, script: str) -> Loop:
    """The training loop of a greedy preset that draws negatives once per chunk, on its real data on
    the CPU, with freed memory kept as `ff train` keeps it, before its first step."""
    keep_freed_memory()
    cfg = merge(presets.preset(preset), parse_overrides(overrides))
    if not (cfg.optim.greedy_steps and cfg.optim.greedy_negatives == "chunk"):
        raise SystemExit(f"{script} times a greedy schedule that draws negatives once per chunk "
                         "(optim.greedy_steps > 0, optim.greedy_negatives = chunk).")
    precision, _ = resolve_precision(cfg.run.precision, torch.device("cpu"))
    cfg = merge(cfg, {"run": {"precision": precision, "device": "cpu"}})
    torch.manual_seed(cfg.run.seed)
    data = data_mod.load(cfg.data)
    model = build_model(cfg, data.shape, data.num_classes)
    return Loop(cfg, model, data, torch.device("cpu"), run_dir, None)


def block(loop: Loop, steps: Iterator[int], repeat_key: Callable | None, count: int) -> float:
    """Milliseconds per step of `count` steps, with the schedule's repeat keys or (None) without."""
    loop.schedule.repeat_key = repeat_key or (lambda epoch, step: None)  # type: ignore[method-assign]
    loop.train_step(1, next(steps), None)  # untimed: with the keys, the kept input is computed here
    tick = time.perf_counter()
    for _ in range(count):
        loop.train_step(1, next(steps), None)
    return (time.perf_counter() - tick) / count * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="article")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--rounds", type=int, default=3, help="alternations of kept and recomputed blocks")
    p.add_argument("--steps", type=int, default=4, help="steps in a block")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as run_dir:
        loop = greedy_loop(args.preset, args.set, Path(run_dir), "greedy_repeat.py")
        cfg, model, precision = loop.cfg, loop.model, loop.cfg.run.precision
        repeat_key = loop.schedule.repeat_key
        layers = [name for name in model.loss_names if name.startswith("layer")]
        needed = (args.steps + 1) * (args.rounds * 2 + 1)
        if needed > cfg.optim.greedy_steps:
            raise SystemExit(f"{needed} steps of a layer are timed and its block has {cfg.optim.greedy_steps}: "
                             "lower --steps or --rounds.")
        result: dict[str, dict] = {}
        for k, name in enumerate(layers):
            steps = iter(range(k * cfg.optim.greedy_steps, (k + 1) * cfg.optim.greedy_steps))  # chunk 0's block
            times: dict[bool, list[float]] = {True: [], False: []}

            block(loop, steps, repeat_key, args.steps)  # warm-up
            for _ in range(args.rounds):
                for kept in (False, True):
                    times[kept].append(block(loop, steps, repeat_key if kept else None, args.steps))
            kept_ms, every_ms = statistics.median(times[True]), statistics.median(times[False])
            result[name] = {"kept_ms_per_step": round(kept_ms, 1), "recomputed_ms_per_step": round(every_ms, 1),
                            "speedup": round(every_ms / kept_ms, 3)}
            print(name, result[name], flush=True)
    total = sum(r["recomputed_ms_per_step"] for r in result.values()) / sum(r["kept_ms_per_step"]
                                                                             for r in result.values())
    print(json.dumps({"preset": args.preset, "precision": precision, "chunk": cfg.optim.chunk_size,
                      "layers": result,
                      "speedup_of_layer_steps": round(total, 3), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
