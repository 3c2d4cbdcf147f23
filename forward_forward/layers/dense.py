"""The fully connected FF layer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..coding import Written
from .base import FFLayer


class FFLinear(FFLayer):
    """A fully connected FF layer."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "relu", norm: str = "rms",
                 norm_eps: float = 1e-8, init: str = "hinton", peer_lambda: float = 0.0, peer_decay: float = 0.9,
                 norm_scope: str = "layer", in_shape: tuple[int, ...] | None = None):
        """in_shape: the shape of the input below when it is a map (for per-position normalisation)."""
        super().__init__(in_shape or (in_features,), (out_features,), activation=activation, norm=norm,
                         norm_eps=norm_eps, peer_lambda=peer_lambda, peer_decay=peer_decay, norm_scope=norm_scope)
        self.linear = nn.Linear(in_features, out_features)
        if init == "hinton":
            nn.init.normal_(self.linear.weight, std=1.0 / math.sqrt(in_features))
            nn.init.zeros_(self.linear.bias)

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor:
        return self.linear.bias

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)

    @property
    def takes_apart(self) -> bool:
        return self.input_norm.scales_rows

    def pre_activation(self, x: torch.Tensor | Written, detach: bool = True) -> torch.Tensor:
        """As FFLayer's; on a `Written` input, each image is multiplied once and each row adds its label's
        columns: W (image + label) s + b, with the norm's factor s from the row's sum of squares. An
        image with every label costs one image's product, not ten."""
        if not (isinstance(x, Written) and self.takes_apart):
            return super().pre_activation(x, detach)
        images, weight = x.image_part().detach().contiguous(), self.linear.weight  # contiguous: a faster matmul
        squares = images.float().pow(2).sum(1).index_select(0, x.source) + x.values.float().pow(2).sum(1)
        # index_select, not [source]: its backward is an index_add, much faster than indexing's index_put
        product = F.linear(images, weight[:, x.coding.image_columns]).index_select(0, x.source)
        rows = product.float() + F.linear(x.values, weight[:, x.coding.label_columns]).float()
        return torch.addcmul(self.linear.bias.float(), rows, self.input_norm.row_scale(squares)[:, None]
                             ).to(images.dtype)

    @property
    def macs(self) -> int:
        return self.linear.weight.numel()

    @torch.no_grad()
    def dense_weight(self) -> torch.Tensor:
        return self.linear.weight.detach()
