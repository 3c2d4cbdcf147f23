"""Forward-Forward (Hinton 2022): networks trained layer by layer, without backpropagation."""

from .config import Config
from .errors import FFError
from .models import MODELS, BackpropNetwork, FFNetwork, build_model
from .presets import PRESETS, preset
from .training import load_trained, train

__all__ = ["MODELS", "BackpropNetwork", "Config", "FFError", "FFNetwork", "PRESETS", "build_model", "load_trained",
           "preset", "train"]
__version__ = "0.1.0"
