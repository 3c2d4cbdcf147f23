"""Prediction throughput of a preset's network: images a second by each way (the readout's one pass,
goodness's pass per label, both), as a fraction of the fp32 and bf16 matmul peaks measured in the same
process; and prediction by goodness with the labels kept apart from their images against every row
built in full.

Where the label has inputs of its own (pixels or extra) and the first layer is dense with rms or l2
norm, that layer multiplies an image once for all ten labels and adds each label's weight columns
(`coding.Written`); built in full, each of the ten rows is multiplied again. The FLOPs counted are
those done (`prediction_flops_per_image`); the built rows' rate counts their own. Speed does not depend
on the weights, so the network is untrained. The versions alternate in rounds, so a machine whose
speed drifts affects all alike; medians. The last line printed is one JSON object.

    python benchmarks/predict_throughput.py --preset quick
    python benchmarks/predict_throughput.py --preset hinton-mnist --set run.precision=fp32
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from compile_step import preset_model, sync  # beside this file: python puts its folder on the path
from train_throughput import peak_matmul_gflops

from forward_forward.config import merge
from forward_forward.data import IMAGE_SHAPES
from forward_forward.errors import FFError
from forward_forward.training.device import autocast, device_name


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="quick")
    p.add_argument("--set", action="append", default=[], help="section.key=value override")
    p.add_argument("--rounds", type=int, default=12, help="alternations of the versions")
    p.add_argument("--images", type=int, default=1000, help="images predicted in a round")
    args = p.parse_args()

    cfg, device, model = preset_model(args.preset, args.set)
    precision = cfg.run.precision
    model.eval()
    if not hasattr(model, "label_goodness") or not model.negatives.labelled:
        raise FFError(f"the {args.preset} preset's network does not predict by label goodness; "
                      "choose a supervised FF preset.")
    images = torch.rand(args.images, *IMAGE_SHAPES[cfg.data.dataset], device=device)
    apart = model.labels_apart  # what the preset does
    ways = [way for way in ("softmax", "goodness", "combined") if way in model.ways]
    versions = [(way, apart) for way in ways] + ([("goodness", False)] if apart else [])

    def predict(way: str, keep_apart: bool) -> None:
        model.labels_apart = keep_apart
        with torch.no_grad(), autocast(cfg, device):
            model.predictions(images, (way,))

    dtypes = {torch.float32, torch.bfloat16 if precision == "bf16" else torch.float32}
    peaks = {d: peak_matmul_gflops(device, d) for d in dtypes}
    times: dict[tuple[str, bool], list[float]] = {v: [] for v in versions}
    for version in versions:  # warm-up
        predict(*version)
    for _ in range(args.rounds):
        for version in versions:
            sync(device)
            tick = time.perf_counter()
            predict(*version)
            sync(device)
            times[version].append(time.perf_counter() - tick)
    peaks = {d: max(peaks[d], peak_matmul_gflops(device, d)) for d in dtypes}

    result: dict = {"preset": args.preset, "device": device_name(device), "precision": precision,
                    "images": args.images, "labels_apart": apart,
                    "fp32_peak_gflops": round(peaks[torch.float32], 1)}
    if precision == "bf16":
        result["bf16_peak_gflops"] = round(peaks[torch.bfloat16], 1)
    for (way, keep_apart), seconds in times.items():
        model.labels_apart = keep_apart
        median = statistics.median(seconds)
        gflops = model.prediction_flops_per_image(way) * args.images / median / 1e9
        name = way if keep_apart == apart else f"{way}_built"
        result[name] = {"images_per_s": round(args.images / median, 1), "gflops": round(gflops, 1),
                        "fp32_peak_fraction": round(gflops / peaks[torch.float32], 3)}
        if precision == "bf16":
            result[name]["bf16_peak_fraction"] = round(gflops / peaks[torch.bfloat16], 3)
    if apart:
        result["goodness_apart_speedup"] = round(statistics.median(times[("goodness", False)])
                                                 / statistics.median(times[("goodness", True)]), 3)
        # how far the two ways' scores are apart, and each from fp32 built rows, relative to the largest score
        scores = {}
        for name, keep_apart, precision_cfg in (("apart", True, cfg), ("built", False, cfg),
                                                ("fp32", False, merge(cfg, {"run": {"precision": "fp32"}}))):
            model.labels_apart = keep_apart
            with torch.no_grad(), autocast(precision_cfg, device):
                scores[name] = model.label_goodness(images[:200]).float()
        scale = scores["fp32"].abs().max()
        result["goodness_difference"] = {
            "apart_vs_built": float((scores["apart"] - scores["built"]).abs().max() / scale),
            "apart_vs_fp32": float((scores["apart"] - scores["fp32"]).abs().max() / scale),
            "built_vs_fp32": float((scores["built"] - scores["fp32"]).abs().max() / scale),
        }
    result["torch"] = torch.__version__
    print(json.dumps(result))


if __name__ == "__main__":
    main()
