"""Training: the loop and its schedules, the optimiser, evaluation, metrics, devices, and `train`."""

from .device import autocast, device_name, resolve_device
from .evaluate import error_rate, error_rates, load_trained, score
from .loop import accumulate, fit
from .optim import build_optimizer
from .run import train

__all__ = ["accumulate", "autocast", "build_optimizer", "device_name", "error_rate", "error_rates", "fit",
           "load_trained", "resolve_device", "score", "train"]
