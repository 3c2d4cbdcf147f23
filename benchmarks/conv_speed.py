"""Training-step time of a conv preset in fp32 and bf16, NCHW and channels-last, FF and its backprop twin.

Each variant takes the same training steps (forward, every loss, backward, optimiser step) on random
images of the preset's shape, in one process, so the ratios between variants hold on a shared
machine where absolute times do not. The matmul/conv FLOPs the model counts are set against an
fp32 n x n x n matmul measured in the same process. Last line: one JSON object.

    python benchmarks/conv_speed.py [--preset conv-fashion] [--batch 128] [--device cpu] [--set ...]
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from train_throughput import peak_matmul_gflops  # beside this file: python puts its folder on the path

from forward_forward import presets
from forward_forward.config import merge, parse_overrides
from forward_forward.data import IMAGE_SHAPES, NUM_CLASSES
from forward_forward.models import build_model
from forward_forward.training import resolve_device
from forward_forward.training.device import autocast, channels_last
from forward_forward.training.optim import build_optimizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def step_seconds(cfg, device: torch.device, batch: int, steps: int, last: bool) -> tuple[float, float]:
    """Median seconds of one training step, and the model's FLOPs per image."""
    shape, classes = IMAGE_SHAPES[cfg.data.dataset], NUM_CLASSES[cfg.data.dataset]
    torch.manual_seed(0)
    model = build_model(cfg, shape, classes).to(device)
    if last:
        channels_last(model)  # what run.channels_last does
    optimizer, _ = build_optimizer(cfg, model, total_steps=steps + 3)
    images = torch.rand(batch, *shape, device=device)
    labels = torch.randint(0, classes, (batch,), device=device)
    times = []
    for i in range(steps + 3):
        sync(device)
        tick = time.perf_counter()
        with autocast(cfg, device):
            losses, _ = model(images, labels)
        optimizer.zero_grad(set_to_none=True)
        sum(losses.values()).backward()
        optimizer.step()
        sync(device)
        if i >= 3:  # three warm-up steps
            times.append(time.perf_counter() - tick)
    return sorted(times)[len(times) // 2], model.matmul_flops_per_image()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="conv-fashion")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--device", default="auto")
    args = p.parse_args()

    device = resolve_device(args.device)
    base = merge(presets.preset(args.preset), parse_overrides(args.set))
    peak = peak_matmul_gflops(device)
    rows = []
    for kind in (base.model.kind, "backprop"):
        for precision in ("fp32", "bf16"):
            for last in (False, True):
                cfg = merge(base, {"model": {"kind": kind}, "run": {"precision": precision},
                                   "objective": {"predict": "softmax"} if kind == "backprop" else {}})
                seconds, flops = step_seconds(cfg, device, args.batch, args.steps, last)
                rows.append({"kind": kind, "precision": precision, "channels_last": last,
                             "ms_per_step": round(1e3 * seconds, 2), "images_per_s": round(args.batch / seconds),
                             "fraction_of_fp32_peak": round(flops * args.batch / seconds / 1e9 / peak, 3)})
                r = rows[-1]
                print(f"{kind:12s} {precision} {'channels-last' if last else 'NCHW         '} "
                      f"{r['ms_per_step']:8.2f} ms/step {r['images_per_s']:7d} images/s "
                      f"{r['fraction_of_fp32_peak']:.3f} of the fp32 matmul peak", flush=True)

    def ms(kind: str, precision: str, last: bool) -> float:
        return next(r["ms_per_step"] for r in rows
                    if (r["kind"], r["precision"], r["channels_last"]) == (kind, precision, last))

    ff = base.model.kind
    result = {"preset": args.preset, "device": str(device), "batch": args.batch, "threads": torch.get_num_threads(),
              "fp32_peak_gflops": round(peak, 1),
              "bf16_speedup_ff": round(ms(ff, "fp32", False) / ms(ff, "bf16", False), 3),
              "channels_last_speedup_ff_bf16": round(ms(ff, "bf16", False) / ms(ff, "bf16", True), 3),
              "channels_last_speedup_ff_fp32": round(ms(ff, "fp32", False) / ms(ff, "fp32", True), 3),
              "ff_over_backprop_step_bf16": round(ms(ff, "bf16", False) / ms("backprop", "bf16", False), 3),
              "rows": rows}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
