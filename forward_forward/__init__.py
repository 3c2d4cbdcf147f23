"""Forward-Forward (Hinton 2022): networks trained layer by layer, without backpropagation."""

from .config import Config
from .errors import FFError
from .models import MODELS, BackpropNetwork, FFNetwork, build_model
from .presets import PRESETS, preset

# `train` and `load_trained` live in forward_forward.training: a package attribute named `train` would be
# replaced by the submodule forward_forward.train (the entry points' first import path) once it is imported

__all__ = ["MODELS", "BackpropNetwork", "Config", "FFError", "FFNetwork", "PRESETS", "build_model", "preset"]
__version__ = "0.1.0"
