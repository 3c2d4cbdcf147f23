"""Negatives the network makes itself: the step that makes an offline "sleep" phase possible.

On images (data of shape (C, H, W)) they are samples of the model's generator (negatives/dreamed.py).
On text (paper §3.4) every `objective.regenerate_every` steps the model continues each of the batch's
real windows by `objective.generated_length` characters, each drawn from its own predictions (objective.sample_from,
at objective.sample_temperature). Until the next rewrite, each step's negatives are windows of those
strings, picked at random, with the character the model wrote after them as the candidate.
"""

from __future__ import annotations

import torch

from .. import text
from ..config import TEXT_DATASETS, Config, ObjectiveConfig, changed_fields
from ..errors import FFError
from .base import Negatives
from .dreamed import GeneratedImages

TEXT_ONLY = ("generated_length",)


class Generated(Negatives):
    uses_network = True
    makes_data = True
    reads = tuple(dict.fromkeys(("sample_from", "sample_temperature", *TEXT_ONLY, "regenerate_every",
                                 *GeneratedImages.reads)))

    def __new__(cls, objective: ObjectiveConfig | None = None, num_classes: int | None = None,
                data_shape: tuple[int, ...] | None = None):
        if objective is not None and num_classes is not None and data_shape is not None and len(data_shape) == 3:
            return GeneratedImages(objective, num_classes, data_shape)  # images: the generator's samples
        return super().__new__(cls)  # text; without arguments, as copy and pickle make one

    @classmethod
    def takes_label(cls, cfg: Config) -> bool:
        return cfg.data.dataset in TEXT_DATASETS or GeneratedImages.takes_label(cfg)

    def __init__(self, objective: ObjectiveConfig, num_classes: int, data_shape: tuple[int, ...]) -> None:
        super().__init__(objective, num_classes, data_shape)
        self.steps = 0
        self.bank: tuple[torch.Tensor, torch.Tensor] | None = None  # (windows (N, window), next characters (N,))

    @staticmethod
    def check(cfg: Config) -> None:
        if cfg.optim.micro_batch:
            raise FFError("objective.negatives = generated counts its steps and refits its generator once per pass, "
                          "not once per micro-batch: set optim.micro_batch = 0.")
        if cfg.data.dataset not in TEXT_DATASETS:
            changed = changed_fields(cfg, "objective", TEXT_ONLY)
            if changed:
                raise FFError(f"{', '.join(changed)} shape(s) generated text, and data.dataset = {cfg.data.dataset}: "
                              "leave it at its default.")
            GeneratedImages.check(cfg)
            return
        changed = changed_fields(cfg, "objective", [f for f in GeneratedImages.reads if f != "regenerate_every"])
        if changed:
            raise FFError(f"{', '.join(changed)} shape(s) the generator of images, and this run writes text: leave "
                          "them at their defaults.")
        if cfg.objective.sample_from == "softmax" and not cfg.model.readout:
            raise FFError("objective.negatives = generated samples from the softmax readout: set model.readout = "
                          "true, or sample from goodness (objective.sample_from = goodness).")

    def rewrite(self, images: torch.Tensor, model) -> None:
        """New strings from the batch's real windows, written by `model` as it is now."""
        from .. import sequence  # late: sequence scores models, which import this package

        window = self.data_shape[0] // len(text.ALPHABET)
        prompts = images.view(images.shape[0], window, len(text.ALPHABET)).argmax(dim=2)
        with torch.no_grad():
            strings = sequence.write(model, prompts, self.objective.generated_length, self.objective.sample_from,
                                     self.objective.sample_temperature)
        self.bank = text.windows(strings[:, 1:], window)  # windows that hold at least one written character

    def make(self, images, labels, coding, probs=None, model=None):
        if model is None:
            raise FFError("generated negatives are written by the model: pass it to make().")
        if self.bank is None or self.steps % self.objective.regenerate_every == 0:
            self.rewrite(images, model)
        self.steps += 1
        assert self.bank is not None
        contexts, written = self.bank
        pick = torch.randint(len(written), (images.shape[0],), device=written.device)
        negatives = text.one_hot(contexts[pick]).to(images.dtype)
        return coding.write(images, labels), coding.write(negatives, written[pick])
