"""How good a generator's samples are, judged by a reference classifier trained on real data (any
finished run that predicts by softmax; the backprop twin on real MNIST is the intended one).

- mode coverage: the class histogram of the samples under the reference, its total-variation distance
  from uniform (0: every class equally often; 0.9: one class only) and the number of classes drawn
  less than half as often as their share (dropped modes);
- the reference's mean confidence (its top class probability): recognisable samples score high;
- the Fréchet distance between Gaussians fitted to the reference's last hidden layer on the samples and
  on real images (the FID's formula on the reference's own features, not Inception's).
The same functions measure the backprop GAN of `benchmarks/gan.py`, so the two are compared alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import runs
from .errors import FFError

SAMPLES = 10_000  # samples a measure draws
GOODNESS_SAMPLES = 1000  # real and generated images whose goodness is compared after each epoch


def load_reference(run_dir: str | Path, device: torch.device, judged=None):
    """The reference classifier of a finished run, in eval mode, on `device`; checked against the model
    whose samples it will judge (`judged`: same sample shape and classes), if given."""
    from .training.evaluate import load_trained  # late: training imports the loop, which imports this

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FFError(f"the reference {run_dir} is not a run directory (no config.json): train one first, e.g. "
                      "`ff train --preset quick --set model.kind=backprop --set objective.predict=softmax`.")
    _, model, _, _ = load_trained(run_dir, device=str(device))
    if "softmax" not in model.ways:
        raise FFError(f"the reference {run_dir} has no softmax to judge samples by: use a run with a readout, such "
                      "as a backprop twin.")
    if judged is not None and (tuple(model.data_shape), model.num_classes) != (tuple(judged.data_shape),
                                                                             judged.num_classes):
        raise FFError(f"the reference {run_dir} classifies samples of shape {tuple(model.data_shape)} into "
                      f"{model.num_classes} classes, and the generator makes {tuple(judged.data_shape)} in "
                      f"{judged.num_classes}: use a reference trained on the same data.")
    return model.eval()


@torch.no_grad()
def judge(reference, images: torch.Tensor, batch_size: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, ...) images -> the reference's class probabilities (N, C) and last hidden layer's features."""
    probs, feats = [], []
    last = [len(reference.layers) - 1]
    device = next(reference.parameters()).device  # images may come from the CPU-side dataset
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device)
        probs.append(reference.class_log_probs(x, ("softmax",))["softmax"].exp().float())
        feats.append(reference.features(x, last).float())
    return torch.cat(probs), torch.cat(feats)


def coverage(probs: torch.Tensor) -> dict:
    """Class histogram of the reference's decisions, its distance from uniform, dropped classes, confidence."""
    classes = probs.shape[1]
    share = torch.bincount(probs.argmax(1), minlength=classes).double() / len(probs)
    return {"class_share": [round(float(s), 4) for s in share],
            "tv_from_uniform": float(0.5 * (share - 1 / classes).abs().sum()),
            "classes_under_half": int((share < 0.5 / classes).sum()),
            "confidence": float(probs.max(1).values.mean())}


def frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to two sets of features (N, F):
    |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the trace of the root taken from the
    eigenvalues of S_a^(1/2) S_b S_a^(1/2), which is symmetric (float64 throughout)."""
    a, b = a.double(), b.double()
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = torch.cov(a.T).reshape(a.shape[1], -1), torch.cov(b.T).reshape(b.shape[1], -1)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp_min(0).sqrt().sum()
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def measure(reference, samples: torch.Tensor, real: torch.Tensor | None) -> dict:
    """Every measure of `samples` under the reference; the Fréchet distance only when `real` images are given."""
    probs, feats = judge(reference, samples)
    out = coverage(probs)
    if real is not None and len(real):
        out["frechet"] = frechet(feats, judge(reference, real)[1])
    return out


def draw(model, count: int) -> torch.Tensor:
    """`count` samples of a model's generator, an equal share of every class when it samples by class."""
    generator = getattr(model, "generator", None)
    if generator is None:
        raise FFError("this network has no generator: train one with objective.negatives = generated on images.")
    if not generator.ready:
        raise FFError("this network's generator has not fitted its prior yet (it fits after "
                      "objective.regenerate_every steps): train it longer.")
    device = next(generator.parameters()).device
    labels = torch.arange(count, device=device) % model.num_classes
    return generator.sample(labels)


@torch.no_grad()
def epoch_report(model, reference, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """What the loop logs of a generator after each epoch: each layer's mean goodness on real images
    (with their labels) and on generated ones (with the labels they were drawn for), what sleep
    deprivation moves; with a reference (the loop passes it at validation's epochs), the measures
    against these real images."""
    if not model.generator.ready:
        return {}
    count = min(GOODNESS_SAMPLES, len(images))
    drawn = torch.arange(count, device=images.device) % model.num_classes
    dreamed = model.generator.sample(drawn).to(images.dtype)
    report = {"goodness_real": model.layer_goodness(model.with_label(images[:count], labels[:count])).mean(0).tolist(),
              "goodness_generated": model.layer_goodness(model.with_label(dreamed, drawn)).mean(0).tolist()}
    if reference is not None:
        report.update(measure(reference, draw(model, SAMPLES).to(images.dtype), images))
    return report


def sample_grid(images: torch.Tensor, path: Path, title: str, columns: int = 10) -> Path:
    """A PNG of the first rows x `columns` images (one channel shown in grey, three in colour)."""
    from .figures import pyplot

    plt = pyplot()
    shown = images[: (len(images) // columns) * columns].float().clamp(0, 1).cpu().numpy()
    rows = len(shown) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(columns, rows + 0.4), squeeze=False)
    for ax, image in zip(axes.flat, shown):
        ax.imshow(np.moveaxis(image, 0, -1) if image.shape[0] == 3 else image[0], cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle(title)
    runs.write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=50, bbox_inches="tight"))
    plt.close(fig)
    return path


def run_measures(model, reference, test: torch.Tensor, out_dir: Path, title: str,
                 sampler: Callable[[int], torch.Tensor] | None = None) -> dict:
    """The measures on SAMPLES samples against the test images, the first 100 (a column per class when
    sampled by class) in out_dir/measured_samples.png, and the measures in out_dir/samples.json."""
    samples = (sampler or (lambda n: draw(model, n)))(SAMPLES)
    result = measure(reference, samples.to(test.dtype), test)
    out_dir.mkdir(parents=True, exist_ok=True)
    sample_grid(samples[:100], out_dir / "measured_samples.png", title)
    runs.write_json_atomic(out_dir / "samples.json", result)
    return result
