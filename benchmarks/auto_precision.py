"""What run.precision = auto chooses for each preset on this device, and the step times it chose from.

`ff train` makes the same choice before its first step (training/calibrate.py): fp32 where the device has
no native bf16; where it has, a fresh copy of the preset's model takes a few steps in each precision on
the first batch, alternately, and bf16 is kept only if its median step was faster. This runs that choice
alone for each preset given, each in a process of its own (loading its data, building its model), with
the seconds it took. The last line printed is one JSON object.

    python benchmarks/auto_precision.py quick hinton-mnist conv-mnist
    python benchmarks/auto_precision.py --device cuda conv-fashion
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch

from forward_forward import presets
from forward_forward.config import merge, parse_overrides
from forward_forward.data import load
from forward_forward.models import build_model
from forward_forward.training import resolve_device
from forward_forward.training.calibrate import choose_precision
from forward_forward.training.device import device_name
from forward_forward.training.host_memory import keep_freed_memory
from forward_forward.training.run import fit_to_data


def choose(name: str, device: torch.device, overrides: list[str]) -> dict:
    """The choice for one preset, as `ff train` makes it, with the seconds it took."""
    cfg = merge(presets.preset(name), {"run": {"precision": "auto", "device": str(device)}})
    cfg = merge(cfg, parse_overrides(overrides))
    data = load(cfg.data)
    cfg = fit_to_data(cfg, data)
    tick = time.perf_counter()
    precision, why = choose_precision(cfg, lambda: build_model(cfg, data.shape, data.num_classes).to(device),
                                      data.train, device)
    return {"precision": precision, "reason": why, "seconds": round(time.perf_counter() - tick, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("presets", nargs="+")
    p.add_argument("--device", default="auto")
    p.add_argument("--set", action="append", default=[], help="section.key=value override, for every preset")
    args = p.parse_args()

    device = resolve_device(args.device)
    result: dict = {"device": device_name(device), "presets": {}}
    for name in args.presets:
        if len(args.presets) == 1:
            if device.type == "cpu":
                keep_freed_memory()  # as ff train does: its steps are timed with the heap it trains with
            chosen = choose(name, device, args.set)
        else:  # each preset in a process of its own, as each run of ff train is: nothing left by the last
            command = [sys.executable, __file__, name, "--device", args.device]
            command += [arg for value in args.set for arg in ("--set", value)]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            chosen = json.loads(out.strip().splitlines()[-1])["presets"][name]
        print(f"{name}: {chosen['precision']} ({chosen['reason']}); {chosen['seconds']} s", flush=True)
        result["presets"][name] = chosen
    print(json.dumps(result))


if __name__ == "__main__":
    main()
