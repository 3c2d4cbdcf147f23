"""Time to accuracy: wall time until a preset's test error reaches a target, the length of the run fixed
in advance on validation.

Two runs, one after the other in this process:
1. the validation run: the preset as it is, validated after every epoch on the held-out images; its test
   split is replaced by the validation split, so the test images are not read. The run's length is the
   first epoch whose validation error is at or below --val-target (default --target); if none is, the
   preset's own length.
2. the timed run: the preset again, trained for exactly that many epochs (its learning-rate schedule fitted
   to them), then scored on the test set once. Its wall time counts everything from loading the data to the
   end of the scoring, which is what a user waits for.

    python benchmarks/time_to_accuracy.py --preset quick --target 0.015
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from forward_forward import data as data_mod
from forward_forward import presets, runs
from forward_forward.config import merge, parse_overrides
from forward_forward.training import train


def validation_curve(run_dir: Path) -> list[tuple[int, float, float]]:
    """(epoch, validation error, seconds since the start) of every validated epoch of a run."""
    return [(e["epoch"], e["val_error"], e["seconds"]) for e in runs.read_jsonl(run_dir / "metrics.jsonl")
            if "val_error" in e]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--target", type=float, default=0.015, help="test error to reach (a fraction)")
    p.add_argument("--val-target", type=float, help="validation error that fixes the run's length (default --target)")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--out", help="keep both runs under this folder (default: a temporary one)")
    args = p.parse_args()
    val_target = args.target if args.val_target is None else args.val_target

    cfg = merge(presets.preset(args.preset), {"run": {"progress": False, "eval_every": 1}})
    cfg = merge(cfg, parse_overrides(args.set))
    if cfg.data.val_size == 0:
        cfg = merge(cfg, {"data": {"val_size": 10000}})  # the length is chosen on held-out training images
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ff-tta-"))

    data = data_mod.load(cfg.data)
    blind = dataclasses.replace(data, test=data.val)  # the validation run never reads the test images
    train(cfg, out / "validation", args.preset, data=blind)
    curve = validation_curve(out / "validation")
    reached = [epoch for epoch, error, _ in curve if error <= val_target]
    epochs = reached[0] if reached else cfg.optim.epochs

    tick = time.perf_counter()
    summary = train(merge(cfg, {"optim": {"epochs": epochs}}), out / "timed", args.preset)
    wall = time.perf_counter() - tick
    result = {
        "preset": args.preset,
        "target": args.target,
        "val_target": val_target,
        "val_curve": [round(error, 4) for _, error, _ in curve],
        "epochs": epochs,
        "reached_on_validation": bool(reached),
        "test_error": summary["test_error"],
        "reached": summary["test_error"] <= args.target,
        "wall_seconds": round(wall, 1),
        "train_seconds": summary["train_seconds"],
        "precision": summary["precision"],
        "device": summary["device"],
        "run_dir": str(out / "timed"),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
