"""Which device a run uses, its name for the summary, and the precision of its matmuls."""

from __future__ import annotations

import platform

import torch
from torch import nn

from ..config import Config
from ..errors import FFError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FFError(f"run.device {name!r} is not a device name; use auto, cpu, cuda or cuda:N.") from None
    if device.type not in ("cpu", "cuda"):
        raise FFError(f"run.device {name!r} is not one this tool trains on; use auto, cpu, cuda or cuda:N.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FFError(f"run.device is {name!r} but no CUDA device is available; use cpu or auto.")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes bfloat16 matmuls in hardware, and what says so. Detected, not guessed:
    a CPU without AVX512-BF16 or AMX emulates bf16 and runs 3-4x slower than fp32."""
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return major >= 8, f"CUDA compute capability {major}.{minor}{'' if major >= 8 else ' (bf16 needs 8.0)'}"
    if device.type == "cpu":
        tests = (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
        found = [name for name, test in tests if getattr(torch.cpu, test, lambda: False)()]
        return bool(found), f"this CPU has {' and '.join(found)}" if found else "this CPU has no AVX512-BF16 or AMX"
    return False, f"no bf16 detection for {device.type}"


def resolve_precision(precision: str, device: torch.device) -> tuple[str, str]:
    """run.precision made concrete: auto is bf16 where the device computes it natively, else fp32."""
    if precision != "auto":
        return precision, "as configured"
    native, why = native_bf16(device)
    return ("bf16" if native else "fp32"), f"auto: {why}"


def channels_last(model: nn.Module) -> None:
    """run.channels_last: every conv layer's weights in channels-last memory order; each conv layer then
    reorders its input to match (FFConv.transform)."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            module.weight.data = module.weight.data.contiguous(memory_format=torch.channels_last)


def autocast(cfg: Config, device: torch.device):
    """bfloat16 matmuls for `run.precision = bf16` (about 1.8x faster on a CPU with AVX512-BF16); the
    layers cast their output back to fp32, so goodness, losses and the optimiser's weights stay fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.run.precision == "bf16")


def scoring_autocast(cfg: Config, device: torch.device):
    """Prediction in the precision the run trained in: bf16 matmuls for a run trained in bf16, where this
    device computes them natively (scoring `quick` then takes half the time, and its errors moved by at most
    two images in 10,000: benchmarks/scoring_precision.py); fp32 elsewhere, so a bf16 run scored on a CPU
    without native bf16 is not emulated."""
    enabled = cfg.run.precision == "bf16" and native_bf16(device)[0]
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)
