"""A greedy preset's full-chunk steps taken whole against the same steps split into micro-batches
(`optim.micro_batch`): the same update, with a micro-batch's activities in memory at a time.

The article's notebook trains each layer on a whole 20,000-image chunk per step: 40,000 rows of
positives and negatives, whose activities are blocks of 40-125 MB. glibc maps every block over 32 MiB
afresh and returns it when freed, so each step faults those pages in again. Micro-batches of 4096
images keep every block under that size, in the heap `ff train` keeps. The benchmark builds the
preset's training loop on its real data and times steps of each layer from its block of the first
chunk, whole and split, alternately, in one process, with the page faults of each. With
`--memory-steps N` it then runs N more split steps of the last layer through the training meter and
records the resident memory every 50 and after the last (Linux): it should stay flat. The last line
printed is one JSON object.

    python benchmarks/micro_batch.py --preset article --micro-batch 4096 [--memory-steps 400]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Iterator

import torch
from greedy_repeat import greedy_loop  # beside this file: python puts its folder on the path

from forward_forward.config import merge
from forward_forward.training.loop import Loop
from forward_forward.training.metrics import Meter


def block(loop: Loop, steps: Iterator[int], count: int) -> tuple[float, float]:
    """Milliseconds and page faults per step of `count` steps under the loop's config."""
    loop.train_step(1, next(steps), None)  # untimed: the layers below compute the kept input here
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    tick = time.perf_counter()
    for _ in range(count):
        loop.train_step(1, next(steps), None)
    seconds = time.perf_counter() - tick
    return seconds / count * 1000, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / count


def memory_over_steps(loop: Loop, steps: Iterator[int], count: int) -> list[int]:
    """Resident memory (MiB) every 50 of `count` steps, each step's statistics handed to a meter as
    `ff train` hands them: what the heap holds once the loop has run a while."""
    meter, resident = Meter(), []
    for done in range(count + 1):
        if done % 50 == 0 or done == count:  # and once after the last step
            resident.append(int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2**20)
            print(f"{done} steps: {resident[-1]} MiB resident", flush=True)
        if done < count:
            meter.add(*loop.train_step(1, next(steps), None))
    return resident


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="article")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--micro-batch", type=int, default=4096, help="images per micro-batch of the split steps")
    p.add_argument("--rounds", type=int, default=3, help="alternations of whole and split blocks")
    p.add_argument("--steps", type=int, default=4, help="steps in a block")
    p.add_argument("--memory-steps", type=int, default=0,
                   help="then this many split steps of the last layer through the training meter, with the "
                        "process's resident memory every 50")
    args = p.parse_args()
    if args.micro_batch < 1:
        raise SystemExit("--micro-batch must be at least 1: the split steps are compared with whole ones.")

    with tempfile.TemporaryDirectory() as run_dir:
        loop = greedy_loop(args.preset, args.set + [f"optim.micro_batch={args.micro_batch}"], Path(run_dir),
                           "micro_batch.py")
        split = loop.cfg
        configs = {"whole": merge(split, {"optim": {"micro_batch": 0}}), "split": split}
        layers = [name for name in loop.model.loss_names if name.startswith("layer")]
        needed = (args.steps + 1) * (args.rounds * 2 + 1)
        if needed + args.memory_steps > split.optim.greedy_steps:
            raise SystemExit(f"{needed + args.memory_steps} steps of a layer are run and its block has "
                             f"{split.optim.greedy_steps}: lower --steps, --rounds or --memory-steps.")
        result: dict[str, dict] = {}
        for k, name in enumerate(layers):
            steps = iter(range(k * split.optim.greedy_steps, (k + 1) * split.optim.greedy_steps))  # chunk 0's
            times: dict[str, list[float]] = {"whole": [], "split": []}
            faults: dict[str, list[float]] = {"whole": [], "split": []}
            block(loop, steps, args.steps)  # warm-up
            for _ in range(args.rounds):
                for way, cfg in configs.items():
                    loop.cfg = cfg  # the loop reads optim.micro_batch on every step
                    ms, per_step = block(loop, steps, args.steps)
                    times[way].append(ms)
                    faults[way].append(per_step)
            whole_ms, split_ms = statistics.median(times["whole"]), statistics.median(times["split"])
            result[name] = {"whole_ms_per_step": round(whole_ms, 1), "split_ms_per_step": round(split_ms, 1),
                            "speedup": round(whole_ms / split_ms, 3),
                            "whole_faults_per_step": round(statistics.median(faults["whole"])),
                            "split_faults_per_step": round(statistics.median(faults["split"]))}
            print(name, result[name], flush=True)
        loop.cfg = split
        resident = memory_over_steps(loop, steps, args.memory_steps) if args.memory_steps else []
    total = sum(r["whole_ms_per_step"] for r in result.values()) / sum(r["split_ms_per_step"]
                                                                       for r in result.values())
    print(json.dumps({"preset": args.preset, "precision": split.run.precision, "chunk": split.optim.chunk_size,
                      "micro_batch": args.micro_batch, "layers": result,
                      "speedup_of_layer_steps": round(total, 3), "resident_mib_every_50_steps": resident,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
