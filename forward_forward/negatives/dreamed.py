"""Images the network generates itself as negative data (the paper's §8 question; the generator is
`forward_forward.generator`).

A fraction `objective.generated_mix` of each batch's negatives are samples of the model's generator;
the rest, and all of them until the generator's prior is first fitted, come from
`objective.generated_base`: hybrid images (unsupervised FF, no label in the input) or wrong labels
(random, hard). With a label in the input, the sample that replaces image i's negative is drawn from
the prior of image i's own class and carries that class: a generated "7" labelled 7 is negative data
for the class 7, so the layers learn what makes a real 7, not only which label fits.
"""

from __future__ import annotations

import torch

from ..config import Config, ObjectiveConfig, changed_fields
from ..errors import FFError
from ..generator import Generator
from .base import Negatives

BASES = ("hybrid", "random", "hard")  # strategies a mix may fall back on: one negative per image each
SAMPLING = ("sample_from", "sample_temperature", "hybrid_blur_passes")  # fields of one base or another


def _registry() -> dict:
    from . import NEGATIVES  # late: the registry imports this module

    return NEGATIVES


class GeneratedImages(Negatives):
    uses_network = makes_data = True  # as the `generated` entry that builds it says of itself
    reads = ("generated_mix", "generated_base", "prior_components", "prior_codes", "regenerate_every",
             "hybrid_blur_passes")

    def __init__(self, objective: ObjectiveConfig, num_classes: int, data_shape: tuple[int, ...]):
        super().__init__(objective, num_classes, data_shape)
        self.base = _registry()[objective.generated_base](objective, num_classes, data_shape)
        self.labelled, self.needs_probs = self.base.labelled, self.base.needs_probs

    @classmethod
    def takes_label(cls, cfg: Config) -> bool:
        return _registry()[cfg.objective.generated_base].labelled

    @staticmethod
    def check(cfg: Config) -> None:
        NEGATIVES, o = _registry(), cfg.objective
        if o.generated_base not in BASES:
            raise FFError(f"objective.generated_base must be one of {', '.join(BASES)} (the negatives that are not "
                          f"generated); got {o.generated_base!r}.")
        if not 0 <= o.generated_mix <= 1:
            raise FFError(f"objective.generated_mix is the fraction of negatives the generator makes: between 0 and "
                          f"1; got {o.generated_mix!r}.")
        layers = cfg.model.layer if isinstance(cfg.model.layer, list) else [cfg.model.layer]
        if set(layers) != {"dense"} or cfg.model.iterations:
            raise FFError("objective.negatives = generated decodes images from dense feed-forward layers: use "
                          "model.layer = dense and model.iterations = 0, or another strategy.")
        base_reads = set(NEGATIVES[o.generated_base].reads)
        ignored = changed_fields(cfg, "objective", [f for f in SAMPLING if f not in base_reads])
        if ignored:
            raise FFError(f"{', '.join(ignored)} shape(s) negatives that objective.generated_base = "
                          f"{o.generated_base} does not make: leave them at their defaults, or change the base.")
        NEGATIVES[o.generated_base].check(cfg)

    def generator_for(self, units: list[int], activation, eps: float):
        """The model's generator: decoders over layers of `units` and a prior over the top one's code."""
        o = self.objective
        return Generator(units, self.data_shape, self.num_classes if self.labelled else 1, o.prior_components,
                         o.prior_codes, o.regenerate_every, activation, eps)

    def make(self, images, labels, coding, probs=None, model=None):
        generator = getattr(model, "generator", None)
        if generator is None:
            raise FFError("generated negatives are sampled from the model's generator: pass the model to make().")
        mix = self.objective.generated_mix
        if generator.ready and mix == 1:  # every negative generated: the base strategy's would be thrown away
            return coding.write(images, labels), coding.write(generator.sample(labels).to(images.dtype), labels)
        pos, neg = self.base.make(images, labels, coding, probs, model)
        if not generator.ready or mix == 0:
            return pos, neg
        rows = (torch.rand(images.shape[0], device=images.device) < mix).nonzero().squeeze(1)
        if len(rows):
            dreamed = generator.sample(labels[rows]).to(images.dtype)
            neg = neg.clone()
            neg[rows] = coding.write(dreamed, labels[rows])
        return pos, neg
