"""Forward-Forward (Hinton 2022): networks trained layer by layer, without backpropagation."""

from .backprop import BackpropClassifier
from .config import Config
from .errors import FFError
from .model import FFClassifier
from .presets import PRESETS, preset

__all__ = ["BackpropClassifier", "Config", "FFClassifier", "FFError", "PRESETS", "preset"]
__version__ = "0.1.0"
