"""Where the time of a CPU training step goes: its matmuls, the rest, and the page faults of a process
that hands freed memory back to the kernel.

For one preset's training step (a synthetic batch through the model's own step, as `ff train` runs it):
- the step with freed host memory kept (what `ff train` does) and the step with glibc's allocator left
  as it is, each in a fresh process, alternately, --rounds times each, so a machine whose speed drifts
  affects both alike; each reports its median time per step and its page faults per step;
- a matmul-only skeleton of the same step: the same products with the same shapes (the neutral pass,
  the positive and negative pass, the weight gradients, the readout) and nothing between them, which
  is the ceiling of this step at this batch size;
- with --profile N, a torch.profiler record of N more steps: the operator calls a step and each
  operator's share of the time (the matmuls' together, and the five largest of the rest).
Rates are against the best 4096^3 matmul in the run's precision, measured in the same process. Dense
(MLP) presets only. The last line printed is one JSON object.

    python benchmarks/step_overhead.py --preset quick
    python benchmarks/step_overhead.py --preset hinton-mnist --set run.precision=fp32
    python benchmarks/step_overhead.py --preset quick --set run.precision=fp32 --profile 20
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from compile_step import step_images, training_step  # beside this file: python puts its folder on the path
from train_throughput import peak_matmul_gflops

from forward_forward import presets
from forward_forward.config import merge, parse_overrides
from forward_forward.data import IMAGE_SHAPES, NUM_CLASSES
from forward_forward.layers import FFLinear
from forward_forward.models import build_model
from forward_forward.training.device import resolve_precision
from forward_forward.training.host_memory import keep_freed_memory


def setup(args):
    cfg = merge(presets.preset(args.preset), parse_overrides(args.set))
    precision, _ = resolve_precision(cfg.run.precision, torch.device("cpu"))
    cfg = merge(cfg, {"run": {"precision": precision, "device": "cpu"}})
    torch.manual_seed(0)
    shape, classes = IMAGE_SHAPES[cfg.data.dataset], NUM_CLASSES[cfg.data.dataset]
    model = build_model(cfg, shape, classes)
    return cfg, model, shape, classes


def worker(args) -> None:
    """One process: time the model's step; prints {ms, faults} per step."""
    if args.worker == "keep":
        keep_freed_memory()
    cfg, model, shape, classes = setup(args)
    step = training_step(cfg, model, shape, classes, torch.device("cpu"))

    for _ in range(5):
        step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = []
    for _ in range(4):
        tick = time.perf_counter()
        for _ in range(args.steps):
            step()
        blocks.append((time.perf_counter() - tick) / args.steps * 1000)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / (4 * args.steps)
    print(json.dumps({"ms": statistics.median(blocks), "faults": faults}))


def skeleton_ms(cfg, model, dtype: torch.dtype, repeats: int = 30) -> float:
    """Time of the step's matmuls alone, with the step's shapes, in `dtype`."""
    layers = list(model.stack.layers)
    if not all(isinstance(layer, FFLinear) for layer in layers):
        raise SystemExit("step_overhead.py times dense (MLP) presets only.")
    batch = step_images(cfg)
    rows = batch * (1 + model.negatives.per_image)
    weights = [layer.linear.weight.detach().to(dtype) for layer in layers]
    biases = [layer.linear.bias.detach().to(dtype) for layer in layers]
    neutral = model.readout is not None and model.negatives.labelled  # the readout's own pass
    readout = model.readout.weight.detach().to(dtype) if model.readout is not None else None
    x_neutral = torch.randn(batch, weights[0].shape[1], dtype=dtype)
    x_train = torch.randn(rows, weights[0].shape[1], dtype=dtype)
    unsupervised = torch.randn(batch, readout.shape[1], dtype=dtype) if readout is not None else None

    def step() -> None:
        if neutral:
            h, kept = x_neutral, []
            for w, b in zip(weights, biases):
                h = torch.addmm(b, h, w.t())
                kept.append(h)
            features = torch.cat(kept[model.predict_from :], dim=1)
            logits = features @ readout.t()
            logits.t() @ features  # the readout's weight gradient
        h = x_train
        for w, b in zip(weights, biases):
            out = torch.addmm(b, h, w.t())
            out.t() @ h  # the layer's weight gradient
            h = out
        if unsupervised is not None and not neutral:  # unsupervised: the readout reads the positives' pass
            (unsupervised @ readout.t()).t() @ unsupervised

    for _ in range(5):
        step()
    times = []
    for _ in range(3):
        tick = time.perf_counter()
        for _ in range(repeats // 3):
            step()
        times.append((time.perf_counter() - tick) / (repeats // 3) * 1000)
    return min(times)


MATMULS = ("aten::addmm", "aten::mm")


def profile_step(step, steps: int) -> dict:
    """Operator calls a step and each operator's share of the self time over `steps` profiled steps."""
    from torch.profiler import ProfilerActivity, profile

    for _ in range(5):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    share = {e.key: e.self_cpu_time_total / total for e in ops}
    rest = sorted((k for k in share if k not in MATMULS), key=share.get, reverse=True)
    return {"op_calls_per_step": round(sum(e.count for e in ops) / steps),
            "matmul_share": round(sum(share.get(k, 0.0) for k in MATMULS), 3),
            "largest_other_shares": {k: round(share[k], 3) for k in rest[:5]}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--rounds", type=int, default=3, help="fresh processes of each kind, alternately")
    p.add_argument("--steps", type=int, default=8, help="steps in each of a process's 4 timed blocks")
    p.add_argument("--profile", type=int, default=0, metavar="N", help="also profile N steps (torch.profiler)")
    p.add_argument("--worker", choices=("keep", "default"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        return worker(args)

    cfg, model, _, _ = setup(args)
    dtype = torch.bfloat16 if cfg.run.precision == "bf16" else torch.float32
    base = [sys.executable, __file__, "--preset", args.preset, "--steps", str(args.steps)]
    base += [item for override in args.set for item in ("--set", override)]
    runs: dict[str, list[dict]] = {"keep": [], "default": []}
    for _ in range(args.rounds):
        for kind in ("default", "keep"):
            out = subprocess.run(base + ["--worker", kind], capture_output=True, text=True, check=True)
            runs[kind].append(json.loads(out.stdout.strip().splitlines()[-1]))
    keep_freed_memory()
    peak = peak_matmul_gflops(torch.device("cpu"), dtype)
    skeleton = skeleton_ms(cfg, model, dtype)
    peak = max(peak, peak_matmul_gflops(torch.device("cpu"), dtype))
    flops = model.matmul_flops_per_image() * step_images(cfg)
    kept = statistics.median(r["ms"] for r in runs["keep"])
    profiled = {}
    if args.profile:
        step = training_step(cfg, model, IMAGE_SHAPES[cfg.data.dataset], NUM_CLASSES[cfg.data.dataset],
                             torch.device("cpu"))
        profiled = {"profile": profile_step(step, args.profile)}
    print(json.dumps({
        "preset": args.preset,
        "precision": cfg.run.precision,
        "batch_size": step_images(cfg),
        "default_ms_per_step": [round(r["ms"], 2) for r in runs["default"]],
        "kept_ms_per_step": [round(r["ms"], 2) for r in runs["keep"]],
        "default_faults_per_step": round(statistics.median(r["faults"] for r in runs["default"])),
        "kept_faults_per_step": round(statistics.median(r["faults"] for r in runs["keep"])),
        "skeleton_ms_per_step": round(skeleton, 2),
        "peak_gflops": round(peak, 1),
        "step_peak_fraction": round(flops / (kept / 1000) / 1e9 / peak, 3),
        "skeleton_peak_fraction": round(flops / (skeleton / 1000) / 1e9 / peak, 3),
        **profiled,
    }))


if __name__ == "__main__":
    main()
