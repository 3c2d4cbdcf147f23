"""Negatives the network writes itself (paper §3.4): the step that makes an offline "sleep" phase possible.

Every `objective.regenerate_every` steps the model continues each of the batch's real windows by
`objective.generated_length` characters, each drawn from its own predictions (objective.sample_from,
at objective.sample_temperature). Until the next rewrite, each step's negatives are windows of those
strings, picked at random, with the character the model wrote after them as the candidate.
"""

from __future__ import annotations

import torch

from .. import text
from ..config import TEXT_DATASETS, Config, ObjectiveConfig
from ..errors import FFError
from .base import Negatives


class Generated(Negatives):
    reads = ("sample_from", "sample_temperature", "generated_length", "regenerate_every")

    def __init__(self, objective: ObjectiveConfig, num_classes: int, data_shape: tuple[int, ...]) -> None:
        super().__init__(objective, num_classes, data_shape)
        self.steps = 0
        self.bank: tuple[torch.Tensor, torch.Tensor] | None = None  # (windows (N, window), next characters (N,))

    @staticmethod
    def check(cfg: Config) -> None:
        if cfg.data.dataset not in TEXT_DATASETS:
            raise FFError("objective.negatives = generated writes text with a next-character model: use "
                          "data.dataset = aesop or text.")
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
