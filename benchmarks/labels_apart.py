"""Prediction by goodness with the labels kept apart from their images, on and off: the time to score
every label of every image, with the first layer multiplying each image once (`coding.Written`)
against the coded inputs built in full, one row per image and label.

A dense first layer on an input with the label at inputs of its own (pixels or extra) multiplies an
image once for all ten labels and adds each label's weight columns; built in full, each of the ten rows
is multiplied again. Both versions score the same images with the same model, alternately, so a
machine whose speed drifts affects both alike. The last line printed is one JSON object.

    python benchmarks/labels_apart.py --preset quick
    python benchmarks/labels_apart.py --preset hinton-mnist --set run.precision=fp32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from compile_step import sync  # beside this file: python puts its folder on the path

from forward_forward import presets
from forward_forward.config import merge, parse_overrides
from forward_forward.data import IMAGE_SHAPES, NUM_CLASSES
from forward_forward.errors import FFError
from forward_forward.models import build_model
from forward_forward.training import resolve_device
from forward_forward.training.device import autocast, device_name, resolve_precision
from forward_forward.training.host_memory import keep_freed_memory


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--rounds", type=int, default=12, help="alternations of the two versions")
    p.add_argument("--images", type=int, default=1000, help="images scored in a round")
    args = p.parse_args()

    cfg = merge(presets.preset(args.preset), parse_overrides(args.set))
    device = resolve_device(cfg.run.device)
    if device.type == "cpu":
        keep_freed_memory()
    precision, _ = resolve_precision(cfg.run.precision, device)
    cfg = merge(cfg, {"run": {"precision": precision}})
    torch.manual_seed(cfg.run.seed)
    shape, classes = IMAGE_SHAPES[cfg.data.dataset], NUM_CLASSES[cfg.data.dataset]
    model = build_model(cfg, shape, classes).to(device).eval()
    if not getattr(model, "labels_apart", False):
        raise FFError(f"the {args.preset} preset's first layer does not read labels apart: that needs a dense "
                      "first layer with rms or l2 norm, the label at pixels or extra inputs and no fast weights.")
    images = torch.rand(args.images, *shape, device=device)

    def score() -> torch.Tensor:
        with torch.no_grad(), autocast(cfg, device):
            return model.label_goodness(images)

    times: dict[bool, list[float]] = {True: [], False: []}
    goodness = {}
    for apart in (True, False):  # warm-up, and the two versions' goodness for the JSON line
        model.labels_apart = apart
        goodness[apart] = score().float()
    for _ in range(args.rounds):
        for apart in (True, False):
            model.labels_apart = apart
            sync(device)
            tick = time.perf_counter()
            score()
            sync(device)
            times[apart].append((time.perf_counter() - tick) * 1000)
    apart_ms, built_ms = statistics.median(times[True]), statistics.median(times[False])
    print(json.dumps({
        "preset": args.preset,
        "device": device_name(device),
        "precision": precision,
        "images": args.images,
        "ms_apart": round(apart_ms, 1),
        "ms_built": round(built_ms, 1),
        "speedup": round(built_ms / apart_ms, 3),
        "max_relative_goodness_difference": float((goodness[True] - goodness[False]).abs().max()
                                                  / goodness[False].abs().max().clamp_min(1e-12)),
        "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
