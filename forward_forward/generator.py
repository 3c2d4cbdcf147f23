"""FF as a generative model: a generator that reuses the FF layers' representations, trained without
backpropagation through them.

The FF layers are the discriminator; each judges plausibility on its own. The generator adds what a
generative model needs on top of them (Hinton 2022 §8; Ororbia & Mali, Predictive Forward-Forward,
arXiv:2301.01452):
- a top-down decoder per layer: it predicts the layer below's normalised activity (for the first layer,
  the image) from the normalised activity of the layer above. Each is trained by the delta rule on
  detached activities: its input and its target are constants, so its gradient is
  (prediction - target) x input, local to it, and nothing reaches the FF layers or another decoder;
- a prior over the top layer's normalised activity: a Gaussian mixture with diagonal covariances fitted
  by EM to the codes of recent real images, one mixture per class when the label is in the input
  (class-conditional samples).
Sampling draws a top-level code from the prior and decodes it down to the pixels.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import normalize

EM_ITERATIONS = 10  # per refit, warm-started from the last fit
MIN_VARIANCE = 1e-4  # a component's variance floor: a unit silent in every code would collapse it
EPS = 1e-8


class GaussianMixture(nn.Module):
    """`groups` independent mixtures (one per class, or one) of `components` diagonal Gaussians over
    `dim`-dimensional codes. Its parameters are buffers: saved and resumed with the model, never trained
    by an optimiser, only refitted by EM."""

    means: torch.Tensor
    variances: torch.Tensor
    log_weights: torch.Tensor
    fitted: torch.Tensor

    def __init__(self, groups: int, components: int, dim: int):
        super().__init__()
        self.register_buffer("means", torch.zeros(groups, components, dim))
        self.register_buffer("variances", torch.ones(groups, components, dim))
        self.register_buffer("log_weights", torch.full((groups, components), -math.log(components)))
        self.register_buffer("fitted", torch.zeros(groups, dtype=torch.bool))

    def _log_joint(self, x: torch.Tensor, group: int, x2: torch.Tensor | None = None) -> torch.Tensor:
        """(N, dim) codes (and their squares, if at hand) -> (N, components) log p(x, component) under
        `group`'s mixture."""
        mu, var = self.means[group], self.variances[group]
        # sum over dims of log N(x; mu, var), expanded so no (N, K, dim) tensor is formed
        inv = 1.0 / var
        quad = (x * x if x2 is None else x2) @ inv.T - 2 * x @ (mu * inv).T + (mu * mu * inv).sum(1)
        return self.log_weights[group] - 0.5 * (quad + var.log().sum(1) + x.shape[1] * math.log(2 * math.pi))

    @torch.no_grad()
    def fit(self, x: torch.Tensor, group: int = 0, iterations: int = EM_ITERATIONS) -> torch.Tensor:
        """EM on (N, dim) codes for `group`'s mixture; a first fit starts from `components` random codes.
        Returns the mean log-likelihood per code after the last E-step."""
        x = x.float()
        k = self.means.shape[1]
        if not bool(self.fitted[group]):
            pick = torch.randperm(x.shape[0])[:k].to(x.device)
            self.means[group] = x[pick] if len(pick) == k else x[pick].repeat(k // len(pick) + 1, 1)[:k]
            self.variances[group] = x.var(0, unbiased=False).clamp_min(MIN_VARIANCE).expand(k, -1)
            self.log_weights[group] = -math.log(k)
        x2 = x * x  # once, not per iteration: the fit's largest elementwise cost
        for _ in range(iterations):
            log_joint = self._log_joint(x, group, x2)
            resp = (log_joint - log_joint.logsumexp(1, keepdim=True)).exp()  # (N, K)
            counts = resp.sum(0) + EPS
            mu = (resp.T @ x) / counts[:, None]
            var = (resp.T @ x2) / counts[:, None] - mu * mu
            self.means[group], self.variances[group] = mu, var.clamp_min(MIN_VARIANCE)
            self.log_weights[group] = (counts / counts.sum()).log()
        self.fitted[group] = True
        return self._log_joint(x, group, x2).logsumexp(1).mean()

    @torch.no_grad()
    def sample(self, groups: torch.Tensor) -> torch.Tensor:
        """(N,) group indices -> (N, dim) codes, each from its group's mixture."""
        comp = torch.multinomial(self.log_weights[groups].exp(), 1).squeeze(1)
        mu, var = self.means[groups, comp], self.variances[groups, comp]
        return mu + var.sqrt() * torch.randn_like(mu)


class Generator(nn.Module):
    """Top-down decoders over an FF stack of vector layers and a prior over its top layer's code.

    units: the hidden layers' widths, bottom first; data_shape: one sample's shape (what the first
    decoder makes); classes: mixtures in the prior (the number of classes, or 1 when the input holds no
    label); components: Gaussians per mixture; bank: how many recent top-level codes the prior is fitted
    to; refit_every: steps between fits.
    """

    codes: torch.Tensor
    code_labels: torch.Tensor
    steps: torch.Tensor

    def __init__(self, units: list[int], data_shape: tuple[int, ...], classes: int, components: int,
                 bank: int, refit_every: int, activation: nn.Module | None = None, eps: float = 1e-8):
        super().__init__()
        # codes are activities scaled to unit RMS whatever the layers' own input norm: the generator's
        # codes never enter a layer, only its images do
        self.data_shape, self.norm, self.eps = tuple(data_shape), "rms", eps
        # a hidden decoder's units are the layers' own (ReLU by default); a code of units that are never
        # negative is drawn never negative
        self.activation = activation or nn.ReLU()
        self.nonnegative = bool((self.activation(torch.linspace(-3, 3, 7)) >= 0).all())
        sizes = [math.prod(data_shape), *units]
        # decoders[i] predicts layer i's input from layer i's normalised activity: decoders[0] the image
        decoders = [nn.Linear(sizes[i + 1], sizes[i]) for i in range(len(units))]
        # small weights: the delta rule starts from near-zero predictions instead of undoing large random
        # ones (zero would leave the ReLU decoders without a slope)
        for decoder in decoders:
            nn.init.normal_(decoder.weight, std=0.01 * decoder.in_features ** -0.5)
            nn.init.zeros_(decoder.bias)
        self.decoders = nn.ModuleList(decoders)
        self.prior = GaussianMixture(classes, components, units[-1])
        self.refit_every, self.filled, self.next = refit_every, 0, 0  # codes held; where the next goes
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # steps remembered: the refits' cadence
        # recent top-level codes, not saved: a resumed run refills them before its next fit
        self.register_buffer("codes", torch.zeros(bank, units[-1]), persistent=False)
        self.register_buffer("code_labels", torch.zeros(bank, dtype=torch.long), persistent=False)

    @property
    def ready(self) -> bool:
        """Whether every mixture of the prior has been fitted: the generator can sample."""
        return bool(self.prior.fitted.all())

    def code(self, activity: torch.Tensor) -> torch.Tensor:
        """A layer's activity (B, units) -> what the decoder above and below it read: normalised, fp32."""
        return normalize(activity.detach().float(), self.norm, self.eps)

    def loss(self, images: torch.Tensor, acts: list[torch.Tensor]) -> tuple[torch.Tensor, dict]:
        """Delta-rule loss of every decoder on real images and their (detached) activities: each decoder's
        mean squared error at predicting the layer below from the layer above, summed over decoders. Inputs
        and targets are constants, so each decoder's gradient is its own delta rule and nothing else."""
        below = [images.detach().float().flatten(1)] + [self.code(a) for a in acts[:-1]]
        above = [self.code(a) for a in acts]
        stats, total = {}, images.new_zeros((), dtype=torch.float32)
        for i in range(len(self.decoders)):
            # the mean over units: each weight row's step then scales with its input's mean square (1), not
            # with the width of the layer below
            error = F.mse_loss(self.decode_one(i, above[i], sampling=False), below[i])
            stats[f"recon{i}"] = error.detach()
            total = total + error
        return total, stats

    def decode_one(self, index: int, code: torch.Tensor, sampling: bool = True) -> torch.Tensor:
        """Decoder `index` on a normalised code: the image (linear units, clipped to [0, 1] when
        sampling), or a hidden layer's activity (the layers' activation; normalised when sampling, as the
        layer below's decoder reads it).
        Linear pixels keep the delta rule's step the same size for every decoder: a sigmoid's slope
        would shrink the pixels' by up to 16 times."""
        out = self.decoders[index](code)
        if index == 0:
            return out.clamp(0, 1) if sampling else out
        out = self.activation(out)  # the delta rule compares the units' own output with the target
        return normalize(out, self.norm, self.eps) if sampling else out

    def decode(self, top: torch.Tensor) -> torch.Tensor:
        """(N, top units) codes -> (N, *data_shape) images, decoded one layer at a time."""
        x = top
        for i in reversed(range(len(self.decoders))):
            x = self.decode_one(i, x)
        return x.view(-1, *self.data_shape)

    @torch.no_grad()
    def remember(self, top: torch.Tensor, labels: torch.Tensor) -> None:
        """Keep a batch's top-level codes (with their classes) and refit the prior every refit_every steps."""
        at, size = self.next, self.codes.shape[0]
        take = min(top.shape[0], size - at)  # a ring: the oldest codes are overwritten first
        self.codes[at : at + take] = self.code(top[:take])
        self.code_labels[at : at + take] = labels[:take]
        self.next, self.filled = (at + take) % size, min(size, self.filled + take)
        self.steps += 1
        if int(self.steps) % self.refit_every == 0:
            self.refit()

    @torch.no_grad()
    def refit(self) -> None:
        """Fit the prior to the remembered codes: each class's mixture to its own codes. In fp32 whatever
        the run's precision: EM's sums of squares lose most of their digits in bf16."""
        codes, labels = self.codes[: self.filled], self.code_labels[: self.filled]
        with torch.autocast(codes.device.type, enabled=False):
            for group in range(self.prior.means.shape[0]):
                mine = codes if self.prior.means.shape[0] == 1 else codes[labels == group]
                if len(mine) >= 2:
                    self.prior.fit(mine, group)

    @torch.no_grad()
    def sample(self, labels: torch.Tensor) -> torch.Tensor:
        """(N,) classes -> (N, *data_shape) samples; with one mixture the classes are ignored."""
        groups = labels if self.prior.means.shape[0] > 1 else torch.zeros_like(labels)
        top = self.prior.sample(groups)
        top = top.clamp_min(0) if self.nonnegative else top
        return self.decode(normalize(top, self.norm, self.eps))
