"""Forward+backward time of each locally connected layer of a preset against a dense layer with as many weights.

Every local layer of the preset's network (default `hinton-local`) sees a batch of inputs of its
own shape and takes the same loss as a dense FF layer whose width is chosen so that its weight
count matches. Both are timed in one process, so the ratio holds on a shared machine where
absolute times do not. Last line: one JSON object, with the worst ratio as `local_over_dense`.

    python benchmarks/local_layer.py [--preset hinton-local] [--set model.stride=1 ...] [--batch 200]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from forward_forward import presets
from forward_forward.config import merge, parse_overrides
from forward_forward.data import IMAGE_SHAPES
from forward_forward.layers import FFLinear, FFLocal, build_layers


def seconds_per_step(layer, x: torch.Tensor, repeats: int) -> float:
    """Best of `repeats` timed forward+backward passes (the best is the least disturbed by other jobs)."""
    best = float("inf")
    for i in range(repeats + 2):
        layer.zero_grad(set_to_none=True)
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        layer(x).pow(2).sum().backward()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:  # two warm-up passes
            best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="hinton-local")
    p.add_argument("--set", action="append", default=[], help="section.key=value override, e.g. model.kernel=11")
    p.add_argument("--batch", type=int, default=200, help="positive + negative images of one FF step")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cfg = merge(presets.preset(args.preset), parse_overrides(args.set))
    layers = build_layers(cfg.model, IMAGE_SHAPES[cfg.data.dataset])
    if not any(isinstance(layer, FFLocal) for layer in layers):
        raise SystemExit(f"preset {args.preset!r} has no locally connected layers: set model.layer = local.")
    rows = []
    for i, local in enumerate(layers):
        if not isinstance(local, FFLocal):
            continue
        local = local.to(args.device)
        inputs = local.in_features
        dense = FFLinear(inputs, max(1, round(local.weight.numel() / inputs))).to(args.device)
        x = torch.rand(args.batch, *local.in_shape, device=args.device)
        t_local, t_dense = seconds_per_step(local, x, args.repeats), seconds_per_step(dense, x, args.repeats)
        rows.append({"layer": i, "in_shape": list(local.in_shape), "out_shape": list(local.out_shape),
                     "kernel": local.kernel, "stride": local.stride, "padding": local.padding,
                     "local_weights": local.weight.numel(), "dense_weights": dense.weight.numel(),
                     "local_ms": round(1e3 * t_local, 2), "dense_ms": round(1e3 * t_dense, 2),
                     "local_over_dense": round(t_local / t_dense, 2)})
        r = rows[-1]
        print(f"layer {i}: {r['in_shape']} -> {r['out_shape']}, {local.kernel}x{local.kernel} fields, stride "
              f"{local.stride}: local {r['local_ms']} ms, dense with {r['dense_weights']} weights {r['dense_ms']} ms, "
              f"ratio {r['local_over_dense']}")
    result = {"preset": args.preset, "batch": args.batch, "device": args.device, "threads": torch.get_num_threads(),
              "local_over_dense": max(r["local_over_dense"] for r in rows), "layers": rows}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
