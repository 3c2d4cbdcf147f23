"""`ff probe`: a linear softmax classifier trained on a finished network's frozen features.

It measures what the layers learned, apart from the readout trained alongside them: the features
are the normalised activities of the chosen hidden layers for the plain image (no label for an
unsupervised or backprop network, the neutral label for a supervised FF one: `model.unlabelled`),
computed once.
The probe is chosen on nothing but its own training loss; validation and test are only scored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from .config import PROBE_BATCH_SIZE, PROBE_EPOCHS, PROBE_LR
from .data import Split
from .errors import FFError
from .training.evaluate import scoring

if TYPE_CHECKING:
    from .models import Network


@torch.no_grad()
def features(model: Network, images: torch.Tensor, layers: list[int], batch_size: int = 1000) -> torch.Tensor:
    """(N, ...) images -> (N, sum of the chosen layers' units): normalised activities, side by side."""
    with scoring(model):
        out = [model.features(images[start : start + batch_size], layers)
               for start in range(0, images.shape[0], batch_size)]
    return torch.cat(out)


def fit_probe(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int, *, epochs: int = PROBE_EPOCHS,
              lr: float = PROBE_LR, weight_decay: float = 0.0, batch_size: int = PROBE_BATCH_SIZE, seed: int = 0,
              progress: bool = False) -> nn.Linear:
    """A linear softmax layer fitted by Adam on fixed features."""
    gen = torch.Generator().manual_seed(seed)
    probe = nn.Linear(train_x.shape[1], num_classes).to(train_x.device)
    nn.init.zeros_(probe.weight)
    nn.init.zeros_(probe.bias)
    opt = torch.optim.Adam(probe.parameters(), lr=lr, weight_decay=weight_decay)
    for _ in tqdm(range(epochs), desc="probe", disable=None if progress else True, leave=False):
        order = torch.randperm(train_x.shape[0], generator=gen).to(train_x.device)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            loss = F.cross_entropy(probe(train_x[idx]), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return probe


@torch.no_grad()
def error(probe: nn.Linear, x: torch.Tensor, y: torch.Tensor) -> float:
    return (probe(x).argmax(1) != y).float().mean().item() if len(y) else float("nan")


def run_probe(model: Network, train: Split, val: Split, test: Split, num_classes: int, layers: list[int] | None,
              device: torch.device, progress: bool = False, holdout: int = 0, **fit) -> dict:
    """Features of the chosen layers (default: those the network's own readout uses), a probe, its errors.

    holdout > 0: choosing the probe's settings. It is fitted on the training images but the last
    `holdout`, which are its validation, and the test set is not scored (a run trained on all its
    images has no validation of its own; an unsupervised network never saw these images' labels)."""
    count = len(model.layers)
    if layers is None:
        layers = model.prediction_layers
    if not layers or any(not 0 <= i < count for i in layers):
        raise FFError(f"--layers must name hidden layers between 0 and {count - 1}; got {layers}.")
    if holdout:
        if not 0 < holdout < len(train):
            raise FFError(f"--holdout must leave training images to fit on: between 1 and {len(train) - 1}; "
                          f"got {holdout}.")
        cut = len(train) - holdout
        val = Split(train.images[cut:], train.labels[cut:])
        train = Split(train.images[:cut], train.labels[:cut])
        test = Split(test.images[:0], test.labels[:0])  # not scored while settings are chosen
    feats = {name: features(model, split.images.to(device), layers) for name, split in
             (("train", train), ("val", val), ("test", test)) if len(split)}  # data.val_size = 0: no val
    probe = fit_probe(feats["train"], train.labels.to(device), num_classes, progress=progress, **fit)
    return {
        "layers": layers,
        "train_error": error(probe, feats["train"], train.labels.to(device)),
        "val_error": error(probe, feats["val"], val.labels.to(device)) if len(val) else None,
        "test_error": error(probe, feats["test"], test.labels.to(device)) if len(test) else None,
        "holdout": holdout,
        **fit,
    }
