"""Negative-data strategies, registered by name (`objective.negatives`).

A strategy turns a batch of real images into positive and negative inputs for the layers. Adding
one is a new file with a `Negatives` subclass and one entry in NEGATIVES; its config checks live
on the class (`check`). Strategies that need the model (negatives it generates itself) receive it
in `make`.
"""

from __future__ import annotations

from .base import Negatives
from .generated import Generated
from .hybrid import Hybrid
from .wrong_labels import AllWrong, AnyLabel, HardWrong, RandomWrong

NEGATIVES: dict[str, type[Negatives]] = {
    "random": RandomWrong,
    "hard": HardWrong,
    "all": AllWrong,
    "any_label": AnyLabel,
    "hybrid": Hybrid,
    "generated": Generated,
}

__all__ = ["NEGATIVES", "Negatives"]
