"""Forward-Forward (Hinton 2022): networks trained layer by layer, without backpropagation."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import Config
from .errors import FFError
from .presets import PRESETS, preset

if TYPE_CHECKING:
    from .models import MODELS, BackpropNetwork, FFNetwork, build_model

# The models import torch, which takes seconds: they load on first use, so `ff` answers --help at once and
# a Ctrl-C during that import is caught by the CLI like any other.
_LAZY = {"MODELS": "models", "BackpropNetwork": "models", "FFNetwork": "models", "build_model": "models"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# `train` and `load_trained` live in forward_forward.training: a package attribute named `train` would be
# replaced by the submodule forward_forward.train (the entry points' first import path) once it is imported

__all__ = ["MODELS", "BackpropNetwork", "Config", "FFError", "FFNetwork", "PRESETS", "build_model", "preset"]
__version__ = "0.1.0"
