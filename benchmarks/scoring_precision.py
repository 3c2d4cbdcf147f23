"""Scoring a trained run in fp32 and in bf16: the time of its end-of-run scoring and the errors each gives.

A run trained in bf16 is scored in bf16 where the device computes it natively (training/device.py,
scoring_autocast). This measures what that costs and saves on one run: the validation and test splits
scored by every way the model predicts, in fp32 and in bf16 alternately (--rounds times each, so a machine
whose speed drifts affects both alike; medians). The errors are the same every round. The last line
printed is one JSON object.

    python benchmarks/scoring_precision.py RUN_DIR
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from forward_forward.training.device import device_name, native_bf16
from forward_forward.training.evaluate import error_rates, load_trained, scored_ways
from forward_forward.training.host_memory import keep_freed_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir")
    p.add_argument("--rounds", type=int, default=2, help="alternations of fp32 and bf16 scoring")
    p.add_argument("--data-dir", help="dataset folder (default: the run's)")
    args = p.parse_args()

    cfg, model, data, device = load_trained(args.run_dir, data_dir=args.data_dir)
    if not native_bf16(device)[0]:
        raise SystemExit(f"{device_name(device)} does not compute bf16 natively: a run is scored in fp32 there.")
    if device.type == "cpu":
        keep_freed_memory()
    ways = scored_ways(cfg, model)
    splits = {name: split for name, split in (("val", data.val), ("test", data.test)) if len(split)}
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    errors: dict[str, dict] = {}
    for _ in range(args.rounds):
        for precision in seconds:
            tick = time.perf_counter()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
                errors[precision] = {name: error_rates(model, split, ways, cfg.run.eval_batch_size, device)
                                     for name, split in splits.items()}
            if device.type == "cuda":
                torch.cuda.synchronize()
            seconds[precision].append(time.perf_counter() - tick)
    result = {"run_dir": args.run_dir, "device": device_name(device), "ways": list(ways),
              "images": sum(len(s) for s in splits.values())}
    for precision, times in seconds.items():
        print(f"{precision}: {statistics.median(times):.2f} s (each round: "
              f"{', '.join(f'{t:.2f}' for t in times)})  errors %: "
              + "; ".join(f"{name} " + ", ".join(f"{way} {100 * e:.2f}" for way, e in errs.items())
                          for name, errs in errors[precision].items()))
        result[precision] = {"seconds": [round(t, 2) for t in times], "errors": errors[precision]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
