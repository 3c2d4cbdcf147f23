"""Distributed training throughput against the number of processes, data-parallel or pipelined.

Trains one epoch of a preset with `ff train --nproc N --set run.parallel=MODE` for each N and mode
given, the machine's cores shared out between the processes (threads = cores // N), and reads each
run's time in training steps from its summary. Speed-ups are against the first row, measured in the
same invocation. Last line: one JSON object.

    python benchmarks/distributed.py [--preset quick] [--nproc 1 2] [--mode data pipeline] [--set ...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    p.add_argument("--mode", nargs="+", default=["data"], choices=["data", "pipeline"],
                   help="run.parallel of the runs with more than one process")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="section.key=value override for every run")
    args = p.parse_args()
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [(count, mode) for count in args.nproc for mode in (args.mode if count > 1 else ["data"])]
        for n, mode in runs:
            run_dir = Path(tmp) / f"nproc{n}-{mode}"
            command = [sys.executable, "-m", "forward_forward.cli", "train", "--preset", args.preset, "--epochs",
                       str(args.epochs), "--nproc", str(n), "--run-dir", str(run_dir), "--no-progress",
                       "--set", f"run.threads={max(1, cores // n)}", "--set", "run.score_ways=[\"softmax\"]",
                       "--set", f"run.parallel={mode}",
                       *[x for s in args.set for x in ("--set", s)]]
            subprocess.run(command, check=True)
            summary = json.loads((run_dir / "summary.json").read_text())
            images = summary["train_images"] * args.epochs
            rows.append({"nproc": n, "mode": mode if n > 1 else "one process", "threads_each": max(1, cores // n),
                         "step_seconds": summary["step_seconds"],
                         "images_per_s": round(images / summary["step_seconds"], 1),
                         "test_error": summary["test_error"]})
            print(f"{n} process(es) x {rows[-1]['threads_each']} thread(s), {rows[-1]['mode']}: "
                  f"{rows[-1]['images_per_s']} images/s, "
                  f"test error {100 * summary['test_error']:.2f} %", flush=True)
    base = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = round(row["images_per_s"] / base, 3)
    print(json.dumps({"preset": args.preset, "epochs": args.epochs, "cores": cores, "rows": rows}))


if __name__ == "__main__":
    main()
