"""The baseline for FF as a generative model: a small GAN of the same size, trained by backprop on the
same images for the same budget, measured by the same code as the FF generator (sample_quality).

The generator mirrors the FF generator's decoders: from a 100-dimensional Gaussian code, layers as
wide as the FF net's hidden layers from the top down, then the pixels. The discriminator is the FF
net's stack of dense layers with one logit on top. The recipe is the common one for MLP GANs on
MNIST: LeakyReLU 0.2 in both nets, dropout 0.3 in the discriminator, pixels scaled to [-1, 1] with
a tanh output, one-sided label smoothing (real = 0.9), the non-saturating generator loss, Adam (lr
2e-4, betas 0.5, 0.999); the preset's images, batch size and epochs. Without the dropout, the
smoothing and the tanh it collapsed to one blob within 10 epochs (the discriminator's loss near 0).
Writes measured_samples.png and samples.json into --out. Last line: one JSON object.

    python benchmarks/gan.py --preset ff-gen-mnist --reference RUN_DIR [--epochs N] [--out DIR] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from forward_forward import data as data_mod
from forward_forward import presets, sample_quality
from forward_forward.config import merge, parse_overrides

LATENT = 100


def mlp(sizes: list[int], dropout: float, last: nn.Module) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers += [nn.LeakyReLU(0.2)] + ([nn.Dropout(dropout)] if dropout else [])
    return nn.Sequential(*layers, last)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ff-gen-mnist")
    parser.add_argument("--set", action="append", default=[], help="section.key=value, as ff train takes it")
    parser.add_argument("--reference", type=Path, required=True, help="a trained classifier's run directory")
    parser.add_argument("--epochs", type=int, help="default: the preset's")
    parser.add_argument("--out", type=Path, default=Path("gan"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    cfg = merge(presets.preset(args.preset), parse_overrides(args.set))
    epochs = args.epochs or cfg.optim.epochs
    torch.manual_seed(args.seed)
    data = data_mod.load(cfg.data)
    train = data.train.images.flatten(1) * 2 - 1  # [-1, 1], the tanh's range
    pixels, widths = train.shape[1], cfg.model.hidden
    net_g = mlp([LATENT, *reversed(widths), pixels], 0.0, nn.Tanh())
    net_d = mlp([pixels, *widths, 1], 0.3, nn.Identity())
    opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    batch = cfg.optim.batch_size
    real_target, ones, zeros = torch.full((batch, 1), 0.9), torch.ones(batch, 1), torch.zeros(batch, 1)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(train))
        for step in tqdm(range(len(train) // batch), desc=f"epoch {epoch}/{epochs}", leave=False):
            real = train[order[step * batch : (step + 1) * batch]]
            fake = net_g(torch.randn(batch, LATENT))
            loss_d = (F.binary_cross_entropy_with_logits(net_d(real), real_target)
                      + F.binary_cross_entropy_with_logits(net_d(fake.detach()), zeros))
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            loss_g = F.binary_cross_entropy_with_logits(net_d(fake), ones)  # non-saturating
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
        tqdm.write(f"epoch {epoch}: D loss {loss_d.item():.3f}, G loss {loss_g.item():.3f}")
    seconds = time.perf_counter() - started
    reference = sample_quality.load_reference(args.reference, torch.device("cpu"))
    shape = data.train.images.shape[1:]
    net_g.eval()

    @torch.no_grad()
    def sampler(count: int) -> torch.Tensor:
        return ((net_g(torch.randn(count, LATENT)) + 1) / 2).view(count, *shape)

    result = sample_quality.run_measures(None, reference, data.test.images, args.out,
                                         f"backprop GAN, {epochs} epochs", sampler)
    params = sum(p.numel() for p in [*net_g.parameters(), *net_d.parameters()])
    result.update({"preset": args.preset, "epochs": epochs, "train_seconds": round(seconds, 1), "parameters": params,
                   "seed": args.seed, "images": len(train), "batch_size": batch})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
