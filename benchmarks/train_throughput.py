"""Training throughput and matmul efficiency of a preset, plus its errors.

Trains the preset, counts the matmul FLOPs its training steps do, and compares the achieved rate
with the peak of a large matmul in the run's precision (fp32, or bf16 where the run chose it)
measured in the same process (the machine may be shared, so only the ratio is comparable across
runs). A bf16 run also reports its rate against the fp32 peak. The last line printed is one JSON
object.

    python benchmarks/train_throughput.py --preset quick
    python benchmarks/train_throughput.py --preset hinton-mnist --epochs 2
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from forward_forward import presets
from forward_forward.config import merge, parse_overrides
from forward_forward.data import IMAGE_SHAPES, NUM_CLASSES
from forward_forward.models import build_model
from forward_forward.training import resolve_device, train
from forward_forward.training.device import resolve_precision


def peak_matmul_gflops(device: torch.device, dtype: torch.dtype = torch.float32, n: int = 4096,
                       repeats: int = 5) -> float:
    """Best rate of an n x n x n matmul in `dtype`: the ceiling the training steps are compared with."""
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeats + 2):
        if device.type == "cuda":
            torch.cuda.synchronize()
        tick = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - tick)
    return 2 * n**3 / best / 1e9


def flops_per_image(cfg, data_shape: tuple[int, ...], num_classes: int) -> float:
    """Matmul FLOPs of one training image, as the model counts them (`matmul_flops_per_image`); the
    greedy schedule gives every image `greedy_steps` steps of each loss alone."""
    model = build_model(cfg, data_shape, num_classes)
    if not cfg.optim.greedy_steps:
        return model.matmul_flops_per_image()
    return cfg.optim.greedy_steps * sum(model.matmul_flops_per_image(frozenset({name})) for name in model.loss_names)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--epochs", type=int, help="train fewer epochs than the preset (throughput only)")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--run-dir", help="keep the run here (default: a temporary folder)")
    args = p.parse_args()

    cfg = merge(presets.preset(args.preset), {"run": {"progress": False}})
    if args.epochs:
        cfg = merge(cfg, {"optim": {"epochs": args.epochs}})
    cfg = merge(cfg, parse_overrides(args.set))
    device = resolve_device(cfg.run.device)
    # the peaks of the arithmetic the run may use: bf16 matmuls under run.precision = bf16 (or auto, where
    # native: the run then times a step in each and keeps the faster), and fp32, so a bf16 run can be set
    # against the same ceiling as an fp32 one; each peak is the best of one measurement before training
    # and one after
    hardware, _ = resolve_precision(cfg.run.precision, device)
    dtypes = {torch.bfloat16 if hardware == "bf16" else torch.float32, torch.float32}
    peaks = {d: peak_matmul_gflops(device, d) for d in dtypes}
    run_dir = Path(args.run_dir) if args.run_dir else Path(tempfile.mkdtemp(prefix="ff-bench-"))
    summary = train(cfg, run_dir, args.preset)
    peaks = {d: max(peaks[d], peak_matmul_gflops(device, d)) for d in dtypes}
    precision = summary["precision"]
    peak, fp32_peak = peaks[torch.bfloat16 if precision == "bf16" else torch.float32], peaks[torch.float32]

    images = summary["train_images"] * summary["epochs"]
    flops = flops_per_image(cfg, IMAGE_SHAPES[cfg.data.dataset], NUM_CLASSES[cfg.data.dataset])
    achieved = flops * images / summary["step_seconds"] / 1e9
    result = {
        "preset": args.preset,
        "epochs": summary["epochs"],
        "device": summary["device"],
        "samples_per_s": round(images / summary["step_seconds"], 1),
        "achieved_gflops": round(achieved, 1),
        "peak_gflops": round(peak, 1),
        "peak_fraction": round(achieved / peak, 3),
        "precision": precision,
        "fp32_peak_gflops": round(fp32_peak, 1),
        "fp32_peak_fraction": round(achieved / fp32_peak, 3),
        "step_seconds": summary["step_seconds"],
        "train_seconds": summary["train_seconds"],
        "val_error": summary["val_error"],
        "test_error": summary["test_error"],
        "test_error_softmax": summary.get("test_error_softmax"),
        "test_error_goodness": summary.get("test_error_goodness"),
        "run_dir": str(run_dir),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
