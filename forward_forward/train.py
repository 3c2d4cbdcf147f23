"""The training entry points under their first import path (`from forward_forward.train import train`)."""

from .models import build_model
from .training import error_rate, error_rates, load_trained, resolve_device, score, train

__all__ = ["build_model", "error_rate", "error_rates", "load_trained", "resolve_device", "score", "train"]
