"""torch.compile on and off: the time of one FF training step of a preset, eager against compiled.

What is compiled is the work between the matmuls, where fusion can help: every layer's input
normalisation (model.norm) and the layer objective (goodness, loss, the peer-normalisation term and the
statistics). The matmuls are library calls either way. Both versions train the same model from the same
state, alternately, in blocks of steps, so a machine whose speed drifts affects both alike; the
compilation time is reported apart. The last line printed is one JSON object.

    python benchmarks/compile_step.py --preset quick
    python benchmarks/compile_step.py --preset hinton-mnist --set run.precision=fp32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from forward_forward import presets
from forward_forward.config import Config, merge, parse_overrides
from forward_forward.data import IMAGE_SHAPES, NUM_CLASSES
from forward_forward.layers import norms
from forward_forward.models import build_model
from forward_forward.training import resolve_device
from forward_forward.training.device import autocast, device_name, resolve_precision
from forward_forward.training.host_memory import keep_freed_memory
from forward_forward.training.optim import build_optimizer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def preset_model(preset: str, overrides: list[str]) -> tuple[Config, torch.device, nn.Module]:
    """A preset's config with `overrides` and run.precision made concrete (auto as bf16 where the device
    computes it natively: the step benchmarks time a precision, where `ff train` would also time its step in
    both and keep the faster, benchmarks/auto_precision.py), its device (freed host memory kept on a CPU, as
    `ff train` does) and its untrained model there, seeded by run.seed."""
    cfg = merge(presets.preset(preset), parse_overrides(overrides))
    device = resolve_device(cfg.run.device)
    if device.type == "cpu":
        keep_freed_memory()
    precision, _ = resolve_precision(cfg.run.precision, device)
    cfg = merge(cfg, {"run": {"precision": precision}})
    torch.manual_seed(cfg.run.seed)
    model = build_model(cfg, IMAGE_SHAPES[cfg.data.dataset], NUM_CLASSES[cfg.data.dataset]).to(device)
    return cfg, device, model


def step_images(cfg) -> int:
    """Images in one training step: a minibatch, or under the greedy schedule a chunk."""
    return cfg.optim.chunk_size if cfg.optim.greedy_steps else cfg.optim.batch_size


def training_step(cfg, model, shape: tuple[int, ...], classes: int, device: torch.device):
    """One training step of `model` on a fixed random batch, as `ff train` runs it (each layer's loss
    backpropagated at once, autocast as the config says, the optimiser and its schedule)."""
    model.release_graphs = True
    optimizer, scheduler = build_optimizer(cfg, model, 10**6)
    rows = step_images(cfg)
    images = torch.rand(rows, *shape, device=device)
    labels = torch.randint(0, classes, (rows,), device=device)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(cfg, device):
            losses, _ = model(images, labels)
        total = sum(losses.values())
        if isinstance(total, torch.Tensor) and total.requires_grad:
            total.backward()
        optimizer.step()
        scheduler.step()

    return step


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--rounds", type=int, default=8, help="alternations of eager and compiled blocks")
    p.add_argument("--steps", type=int, default=20, help="steps in a block")
    args = p.parse_args()

    cfg, device, model = preset_model(args.preset, args.set)
    precision = cfg.run.precision
    step = training_step(cfg, model, IMAGE_SHAPES[cfg.data.dataset], NUM_CLASSES[cfg.data.dataset], device)

    eager_objective, eager_normalize = model.layer_objective, norms.normalize
    compiled_objective = torch.compile(eager_objective, dynamic=False)
    compiled_normalize = torch.compile(eager_normalize, dynamic=False)

    def use(compiled: bool) -> None:
        model.layer_objective = compiled_objective if compiled else eager_objective
        norms.normalize = compiled_normalize if compiled else eager_normalize

    for compiled in (False, True):  # warm-up; the compiled one compiles here
        use(compiled)
        tick = time.perf_counter()
        for _ in range(3):
            step()
        sync(device)
        if compiled:
            compile_seconds = time.perf_counter() - tick
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.rounds):
        for compiled in (False, True):
            use(compiled)
            step()
            sync(device)
            tick = time.perf_counter()
            for _ in range(args.steps):
                step()
            sync(device)
            times[compiled].append((time.perf_counter() - tick) / args.steps * 1000)
    use(False)
    eager, compiled_ms = statistics.median(times[False]), statistics.median(times[True])
    print(json.dumps({
        "preset": args.preset,
        "device": device_name(device),
        "precision": precision,
        "batch_size": step_images(cfg),
        "eager_ms_per_step": round(eager, 2),
        "compiled_ms_per_step": round(compiled_ms, 2),
        "speedup": round(eager / compiled_ms, 3),
        "compile_seconds": round(compile_seconds, 1),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
