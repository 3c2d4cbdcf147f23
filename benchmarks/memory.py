"""Peak training memory of FF, backprop and backprop with gradient checkpointing, against depth.

FF is measured three ways: as the presets train it, with its readout's input recomputed in the backward
pass instead of held (model.readout_recompute), and without a readout. The same MLP (fixed width and
batch) at each depth takes two training steps (forward, every loss,
backward, optimiser step) as `ff train` takes them; the second is profiled. On a GPU the peak is
`torch.cuda.max_memory_allocated`. On a CPU, where the allocator keeps no statistics, it comes from
the PyTorch profiler's memory events: `export_memory_timeline` rebuilds every tensor's lifetime from
the allocations and frees it records, with a category each, and the peak of their sum is taken,
in all and without the weights, their gradients and the optimiser state (which every method holds
alike): "working memory", what training needs beyond the model (on a GPU, the gradients stay in
it). FF is measured as `ff train` runs it on one process, each layer's loss backpropagated as soon
as the layer has run. RSS would count the allocator's cached pages and the interpreter, not
tensors. A step's time is the median of three unprofiled steps, taken after the memory, with the
methods of one depth built side by side and stepped in turn, so a machine whose speed drifts slows
them alike.

Then the same three ways for a conv net (`--conv-preset`, the conv-fashion net by default: FF is the
preset's own model kind, channel-wise competitive). `--plot` draws the MLP rows against depth. Last
line: one JSON object. `--micro-batch N` adds FF and backprop with each step's batch taken N images at
a time (`optim.micro_batch`: gradient accumulation), peer normalisation off.

    python benchmarks/memory.py [--depths 2 4 8 16 32] [--width 1000] [--batch 1000] [--device cpu]
        [--conv-preset conv-fashion] [--conv-batch 128] [--micro-batch 250] [--plot docs/figures/memory.png]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import tempfile
import time
import warnings

import torch
from torch.profiler import ProfilerActivity, profile
from torch.profiler._memory_profiler import _CATEGORY_TO_INDEX, Category
from torch.utils.checkpoint import checkpoint

from forward_forward import presets
from forward_forward.config import merge
from forward_forward.data import IMAGE_SHAPES, NUM_CLASSES
from forward_forward.models import build_model
from forward_forward.stack import LayerStack
from forward_forward.training.loop import accumulate
from forward_forward.training.optim import build_optimizer

# the columns of export_memory_timeline that hold the model's state: its index of each category, plus one
# (column 0 is unused). torch keeps the index private; the timeline's format is documented by its code.
MODEL_STATE = {_CATEGORY_TO_INDEX[c] + 1 for c in (Category.PARAMETER, Category.GRADIENT, Category.OPTIMIZER_STATE)}


def checkpointed(stack: LayerStack) -> None:
    """Backprop with gradient checkpointing: each layer's activations are recomputed in the backward
    pass instead of kept (torch.utils.checkpoint), so only the layer boundaries stay."""
    plain = stack._layer

    def layer(i, x, detach, recall=None):
        y = checkpoint(plain, i, x, detach, recall, use_reentrant=False)[1]
        return y, y  # the pre-activation is not kept beside the activity: only the boundary stays

    stack._layer = layer  # type: ignore[method-assign]


def timed(run, device: torch.device) -> float:
    tick = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - tick


def step(model, optimizer, images, labels, cfg) -> None:
    """A training step as `training.loop.Loop.train_step` takes it: gradients freed (set to None), the
    forward pass (where an FF network backpropagates each layer's loss as soon as it has it), the
    backward pass of what is left, for each micro-batch with optim.micro_batch; the optimiser's step."""
    optimizer.zero_grad(set_to_none=True)
    accumulate(model, images, labels, cfg, images.device)
    optimizer.step()


TIMED_ROUNDS = 3  # a step's time is the median of these; each round steps every method of a depth once


def peak_bytes(model, optimizer, images, labels, cfg, device) -> tuple[int, int]:
    """(peak of all tensors, peak without the model's state) of one training step."""
    step(model, optimizer, images, labels, cfg)  # the optimiser's state exists from here on
    if device.type == "cuda":  # working: above the weights and optimiser state, gradients included
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step(model, optimizer, images, labels, cfg)
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
        return peak, peak - base
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step(model, optimizer, images, labels, cfg)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # deprecated for CUDA snapshots; the CPU has no other
        path = os.path.join(tmp, "timeline.json")
        prof.export_memory_timeline(path, device="cpu")
        with open(path) as f:
            _, sizes = json.load(f)
    # sizes[t][k]: bytes in column k at time t of every tensor alive then, those made before the step included
    total = max(sum(row) for row in sizes)
    working = max(sum(v for k, v in enumerate(row) if k not in MODEL_STATE) for row in sizes)
    return total, working


def setup(cfg, method: str, batch: int, device: torch.device) -> tuple:
    """A model of `cfg` as `method` trains it, its optimiser, and random images of the data's shape."""
    torch.manual_seed(0)
    shape = IMAGE_SHAPES[cfg.data.dataset]
    model = build_model(cfg, shape, NUM_CLASSES[cfg.data.dataset]).to(device)
    if method == "backprop+checkpointing":
        checkpointed(model.stack)
    if method.startswith("ff"):
        model.release_graphs = True  # as the loop sets it for a model it does not wrap in DDP
    optimizer, _ = build_optimizer(cfg, model, total_steps=10)
    images = torch.rand(batch, *shape, device=device)
    labels = torch.randint(0, NUM_CLASSES[cfg.data.dataset], (batch,), device=device)
    return model, optimizer, images, labels, cfg


def measure(cfgs: dict, batch: int, device: torch.device) -> list[dict]:
    """A row for each method (name -> its config): its memory from one model alone in the process, then
    the time of a step, the methods' steps taken in turn (TIMED_ROUNDS rounds), so a machine whose speed
    drifts slows all of them alike."""
    rows = []
    for method, cfg in cfgs.items():
        total, working = peak_bytes(*setup(cfg, method, batch, device), device)
        rows.append({"method": method, "peak_mib": round(total / 2**20, 1), "working_mib": round(working / 2**20, 1)})
    built = {method: setup(cfg, method, batch, device) for method, cfg in cfgs.items()}
    for parts in built.values():
        step(*parts)  # the first step makes the optimiser's state
    seconds: dict[str, list[float]] = {method: [] for method in built}
    for _ in range(TIMED_ROUNDS):
        for method, parts in built.items():
            seconds[method].append(timed(functools.partial(step, *parts), device))
    for row in rows:
        row["step_s"] = round(statistics.median(seconds[row["method"]]), 4)
    return rows


def show(name: str, row: dict) -> None:
    print(f"{name:14s} {row['method']:24s} peak {row['peak_mib']:8.1f} MiB, working {row['working_mib']:7.1f} MiB, "
          f"step {1e3 * row['step_s']:7.1f} ms", flush=True)


def plot(rows: list[dict], path: str) -> None:
    """Working memory and step time against depth, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_mem, ax_time) = plt.subplots(1, 2, figsize=(10, 4.6))
    # markers and dashes of their own, so methods whose lines coincide (FF without a readout and FF with it
    # recomputed) both show
    for n, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        mine = [r for r in rows if r["method"] == method]
        depths = [r["depth"] for r in mine]
        style = {"marker": "osv^Dpx"[n % 7], "linestyle": ("-", "--", ":")[n % 3], "label": method}
        ax_mem.plot(depths, [r["working_mib"] for r in mine], **style)
        ax_time.plot(depths, [1e3 * r["step_s"] for r in mine], **style)
    for ax, what in ((ax_mem, "working memory of a step (MiB)"), (ax_time, "time of a step (ms)")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["depth"] for r in rows}), [str(d) for d in sorted({r["depth"] for r in rows})])
        ax.set_yscale("log")
        ax.set_xlabel("hidden layers")
        ax.set_ylabel(what)
        ax.grid(True, which="both", alpha=0.3)
    fig.legend(*ax_mem.get_legend_handles_labels(), loc="lower center", ncol=3, frameon=False)
    fig.suptitle("One training step of the same MLP at each depth")
    fig.tight_layout(rect=(0, 0.12, 1, 1))  # room for the legend below the panels
    fig.savefig(path, dpi=120)
    print(f"wrote {path}", flush=True)


MLP_METHODS = ("ff", "ff, readout recomputed", "ff, no readout", "backprop", "backprop+checkpointing")
MICRO_METHODS = ("ff, micro-batches", "backprop, micro-batches")  # with --micro-batch
CONV_METHODS = ("ff", "backprop", "backprop+checkpointing")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[2, 4, 8, 16, 32])
    p.add_argument("--width", type=int, default=1000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--conv-preset", default="conv-fashion", help="the conv net measured after the MLPs ('' for none)")
    p.add_argument("--conv-batch", type=int, default=128)
    p.add_argument("--plot", default="", help="write the MLP rows' memory and time against depth to this image")
    p.add_argument("--micro-batch", type=int, default=0,
                   help="also FF and backprop with the batch in micro-batches of this many images (accumulation)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    device = torch.device(args.device)
    rows = []
    methods = MLP_METHODS + (MICRO_METHODS if args.micro_batch else ())
    for depth in args.depths:
        cfgs = {}
        for method in methods:
            # the quick preset's recipe (random negatives: no readout pass needed for them), fp32
            ff = method.startswith("ff")
            overrides = {"model": {"hidden": [args.width] * depth, "kind": "ff" if ff else "backprop",
                                   "readout": method != "ff, no readout",
                                   "readout_recompute": method == "ff, readout recomputed"},
                         "objective": {"negatives": "random", "predict": "softmax" if method != "ff, no readout"
                                       else "goodness"},
                         "optim": {"batch_size": args.batch}, "run": {"precision": "fp32"}}
            if method in MICRO_METHODS:  # peer normalisation reads the whole batch: off (it holds one vector)
                overrides["optim"]["micro_batch"] = args.micro_batch
                overrides["model"]["peer_lambda"] = 0.0
            cfgs[method] = merge(presets.preset("quick"), overrides)
        for row in measure(cfgs, args.batch, device):
            rows.append({"depth": depth, **row})
            show(f"depth {depth}", rows[-1])
    conv_rows = []
    if args.conv_preset:
        cfgs = {}
        for method in CONV_METHODS:
            # the preset's net as it trains (FF: its own model kind), and its twin, fp32
            overrides = {"optim": {"batch_size": args.conv_batch}, "run": {"precision": "fp32"}}
            if not method.startswith("ff"):
                overrides.update({"model": {"kind": "backprop"}, "objective": {"predict": "softmax"}})
            cfgs[method] = merge(presets.preset(args.conv_preset), overrides)
        for row in measure(cfgs, args.conv_batch, device):
            conv_rows.append(row)
            show(args.conv_preset, row)

    def working(of: list[dict], method: str, depth: int | None = None) -> float:
        return next(r["working_mib"] for r in of if r["method"] == method and r.get("depth") == depth)

    deepest, shallowest = max(args.depths), min(args.depths)
    result = {"device": str(device), "width": args.width, "batch": args.batch, "rows": rows,
              "ff_working_growth": round(working(rows, "ff", deepest) / working(rows, "ff", shallowest), 3),
              "ff_no_readout_working_growth": round(working(rows, "ff, no readout", deepest)
                                                    / working(rows, "ff, no readout", shallowest), 3),
              "ff_recomputed_working_growth": round(working(rows, "ff, readout recomputed", deepest)
                                                    / working(rows, "ff, readout recomputed", shallowest), 3),
              "ff_recomputed_over_backprop_working_at_deepest":
                  round(working(rows, "ff, readout recomputed", deepest) / working(rows, "backprop", deepest), 3),
              "ff_recomputed_over_checkpointing_working_at_deepest":
                  round(working(rows, "ff, readout recomputed", deepest)
                        / working(rows, "backprop+checkpointing", deepest), 3),
              "ff_over_backprop_working_at_deepest":
                  round(working(rows, "ff", deepest) / working(rows, "backprop", deepest), 3),
              "ff_over_checkpointing_working_at_deepest":
                  round(working(rows, "ff", deepest) / working(rows, "backprop+checkpointing", deepest), 3)}
    if args.micro_batch:
        result.update({"micro_batch": args.micro_batch,
                       "ff_over_backprop_working_at_deepest_in_micro_batches":
                           round(working(rows, "ff, micro-batches", deepest)
                                 / working(rows, "backprop, micro-batches", deepest), 3)})
    if conv_rows:
        result.update({"conv_preset": args.conv_preset, "conv_batch": args.conv_batch, "conv_rows": conv_rows,
                       "conv_ff_over_backprop_working": round(working(conv_rows, "ff") / working(conv_rows, "backprop"),
                                                              3),
                       "conv_ff_over_checkpointing_working":
                           round(working(conv_rows, "ff") / working(conv_rows, "backprop+checkpointing"), 3)})
    if args.plot:  # after the numbers: a bad path loses no measurement
        plot(rows, args.plot)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
