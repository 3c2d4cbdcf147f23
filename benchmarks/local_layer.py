"""Forward+backward time of a locally connected FF layer against a dense one with as many weights.

Both layers see the same batch of normalised inputs and take the same loss; the dense layer's width
is chosen so its weight count matches the local layer's. The ratio is measured in one process, so
it holds on a shared machine where absolute times do not. Last line: one JSON object.

    python benchmarks/local_layer.py [--channels 3] [--kernel 11] [--batch 200] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from forward_forward.layers import FFLinear, FFLocal


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
    p.add_argument("--shape", default="1,28,28", help="input map C,H,W")
    p.add_argument("--channels", type=int, default=3, help="local layer: channels per location")
    p.add_argument("--kernel", type=int, default=11)
    p.add_argument("--batch", type=int, default=200, help="positive + negative images of one FF step")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()

    shape = tuple(int(v) for v in args.shape.split(","))
    local = FFLocal(shape, args.channels, args.kernel).to(args.device)
    inputs = shape[0] * shape[1] * shape[2]
    weights = local.weight.numel()
    dense = FFLinear(inputs, max(1, round(weights / inputs))).to(args.device)
    x = torch.rand(args.batch, inputs, device=args.device)
    t_local, t_dense = seconds_per_step(local, x, args.repeats), seconds_per_step(dense, x, args.repeats)
    result = {
        "shape": list(shape), "channels": args.channels, "kernel": args.kernel, "batch": args.batch,
        "device": args.device, "threads": torch.get_num_threads(), "local_weights": weights,
        "dense_weights": dense.weight.numel(), "local_ms": round(1e3 * t_local, 2), "dense_ms": round(1e3 * t_dense, 2),
        "local_over_dense": round(t_local / t_dense, 2),
    }
    print(f"local {args.channels} x {shape[1]} x {shape[2]} units, {args.kernel}x{args.kernel} fields: "
          f"{result['local_ms']} ms per step; dense with {result['dense_weights']} weights: {result['dense_ms']} ms")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
