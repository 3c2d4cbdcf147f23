"""Peak training memory of FF, backprop and backprop with gradient checkpointing, against depth.

The same MLP (fixed width and batch) at each depth takes two training steps (forward, every loss,
backward, optimiser step) as `ff train` takes them; the second is profiled. On a GPU the peak is
`torch.cuda.max_memory_allocated`. On a CPU, where the allocator keeps no statistics, it comes from
the PyTorch profiler's memory events: `export_memory_timeline` rebuilds every tensor's lifetime from
the allocations and frees it records, with a category each, and the peak of their sum is taken,
in all and without the weights, their gradients and the optimiser state (which every method holds
alike): "working memory", what training needs beyond the model (on a GPU, the gradients stay in
it). FF is measured as `ff train` runs it on one process, each layer's loss backpropagated as soon
as the layer has run. RSS would count the allocator's cached pages and the interpreter, not
tensors. Last line: one JSON object.

    python benchmarks/memory.py [--depths 2 4 8 16 32] [--width 1000] [--batch 1000] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings

import torch
from torch.profiler import ProfilerActivity, profile
from torch.profiler._memory_profiler import _CATEGORY_TO_INDEX, Category
from torch.utils.checkpoint import checkpoint

from forward_forward import presets
from forward_forward.config import merge
from forward_forward.models import build_model
from forward_forward.stack import LayerStack
from forward_forward.training.optim import build_optimizer

# the columns of export_memory_timeline that hold the model's state: its index of each category, plus one
# (column 0 is unused). torch keeps the index private; the timeline's format is documented by its code.
MODEL_STATE = {_CATEGORY_TO_INDEX[c] + 1 for c in (Category.PARAMETER, Category.GRADIENT, Category.OPTIMIZER_STATE)}


def checkpointed(stack: LayerStack) -> None:
    """Backprop with gradient checkpointing: each layer's activations are recomputed in the backward
    pass instead of kept (torch.utils.checkpoint), so only the layer boundaries stay."""
    plain = stack._layer

    def layer(i, x, detach):
        y = checkpoint(plain, i, x, detach, use_reentrant=False)[1]
        return y, y  # the pre-activation is not kept beside the activity: only the boundary stays

    stack._layer = layer  # type: ignore[method-assign]


def step(model, optimizer, images, labels) -> None:
    """A training step as `training.loop.Loop.train_step` takes it: gradients freed (set to None), the
    forward pass (where an FF network backpropagates each layer's loss as soon as it has it), the
    backward pass of what is left, the optimiser's step."""
    optimizer.zero_grad(set_to_none=True)
    losses, _ = model(images, labels)
    total = sum(losses.values())
    if total.requires_grad:
        total.backward()
    optimizer.step()


def peak_bytes(model, optimizer, images, labels, device) -> tuple[int, int, float]:
    """(peak of all tensors, peak without the model's state, seconds) of one training step."""
    step(model, optimizer, images, labels)  # the optimiser's state exists from here on
    if device.type == "cuda":  # working: above the weights and optimiser state, gradients included
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        tick = time.perf_counter()
        step(model, optimizer, images, labels)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - tick
        peak = torch.cuda.max_memory_allocated()
        return peak, peak - base, seconds
    tick = time.perf_counter()
    step(model, optimizer, images, labels)
    seconds = time.perf_counter() - tick
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step(model, optimizer, images, labels)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated for CUDA snapshots; the CPU has no other
        path = os.path.join(tmp, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path) as f:
            _, sizes = json.load(f)
    # sizes[t][k]: bytes in column k at time t of every tensor alive then, those made before the step included
    total = max(sum(row) for row in sizes)
    working = max(sum(v for k, v in enumerate(row) if k not in MODEL_STATE) for row in sizes)
    return total, working, seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    p.add_argument("--width", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    for depth in args.depths:
        for method in ("ff", "ff, no readout", "backprop", "backprop+checkpointing"):
            # the quick preset's recipe (random negatives: no readout pass needed for them), fp32
            ff = method.startswith("ff")
            overrides = {"model": {"hidden": [args.width] * depth, "kind": "ff" if ff else "backprop",
                                   "readout": method != "ff, no readout"},
                         "objective": {"negatives": "random", "predict": "softmax" if method != "ff, no readout"
                                       else "goodness"},
                         "optim": {"batch_size": args.batch}, "run": {"precision": "fp32"}}
            cfg = merge(presets.preset("quick"), overrides)
            torch.manual_seed(0)
            model = build_model(cfg, (1, 28, 28), 10).to(device)
            if method == "backprop+checkpointing":
                checkpointed(model.stack)
            if ff:
                model.release_graphs = True  # as the loop sets it for a model it does not wrap in DDP
            optimizer, _ = build_optimizer(cfg, model, total_steps=10)
            images = torch.rand(args.batch, 1, 28, 28, device=device)
            labels = torch.randint(0, 10, (args.batch,), device=device)
            total, working, seconds = peak_bytes(model, optimizer, images, labels, device)
            rows.append({"depth": depth, "method": method, "peak_mib": round(total / 2**20, 1),
                         "working_mib": round(working / 2**20, 1), "step_s": round(seconds, 4)})
            r = rows[-1]
            print(f"depth {depth:2d} {method:24s} peak {r['peak_mib']:8.1f} MiB, working {r['working_mib']:7.1f} MiB, "
                  f"step {1e3 * r['step_s']:7.1f} ms", flush=True)

    def working(depth: int, method: str) -> float:
        return next(r["working_mib"] for r in rows if (r["depth"], r["method"]) == (depth, method))

    deepest, shallowest = max(args.depths), min(args.depths)
    result = {"device": str(device), "width": args.width, "batch": args.batch, "rows": rows,
              "ff_working_growth": round(working(deepest, "ff") / working(shallowest, "ff"), 3),
              "ff_no_readout_working_growth":
                  round(working(deepest, "ff, no readout") / working(shallowest, "ff, no readout"), 3),
              "ff_over_backprop_working_at_deepest": round(working(deepest, "ff") / working(deepest, "backprop"), 3),
              "ff_over_checkpointing_working_at_deepest":
                  round(working(deepest, "ff") / working(deepest, "backprop+checkpointing"), 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
