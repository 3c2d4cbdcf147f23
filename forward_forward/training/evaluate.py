"""Scoring a model on a split, the end-of-run summary of errors, and rebuilding a finished run."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, cast

import torch

from .. import data as data_mod
from .. import runs, sequence
from ..config import WAYS, Config, merge, read_json
from ..data import Datasets, Split
from ..errors import FFError
from ..models import build_model
from ..text import Corpus
from .device import resolve_device, scoring_autocast

if TYPE_CHECKING:
    from ..models import FFNetwork, Network


@contextlib.contextmanager
def scoring(model: Network) -> Iterator[None]:
    """The model in eval mode inside, and back in the mode it had afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def batches(split: Split, batch_size: int, device: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images, labels) of `split` on `device`, `batch_size` at a time, in order."""
    if not len(split):
        raise FFError("cannot score an empty split.")
    for start in range(0, len(split), batch_size):
        yield (split.images[start : start + batch_size].to(device, non_blocking=True),
               split.labels[start : start + batch_size].to(device, non_blocking=True))


@torch.no_grad()
def error_rates(model: Network, split: Split, ways: tuple[str, ...], batch_size: int, device: torch.device,
                goodness_weight: float | None = None) -> dict[str, float]:
    """Fraction of `split` misclassified by each of `ways` ("softmax", "goodness", "combined"), from
    one pass over the split."""
    wrong: dict[str, int | float] = dict.fromkeys(ways, 0)
    with scoring(model):
        for x, y in batches(split, batch_size, device):
            for how, predicted in model.predictions(x, ways, goodness_weight=goodness_weight).items():
                wrong[how] += (predicted != y).sum().item()
    return {how: n / len(split) for how, n in wrong.items()}


@torch.no_grad()
def layer_error_rates(model: Network, split: Split, batch_size: int, device: torch.device) -> list[float]:
    """Fraction of `split` misclassified by each hidden layer's goodness alone (one batched pass per batch)."""
    wrong = torch.zeros(len(model.layers), dtype=torch.long, device=device)
    with scoring(model):
        for x, y in batches(split, batch_size, device):
            goodness = cast("FFNetwork", model).label_goodness(x)  # (B, C, layers): only FF networks have it
            wrong += (goodness.argmax(1) != y[:, None]).sum(0)
    return (wrong.float() / len(split)).tolist()


def error_rate(model: Network, split: Split, how: str, batch_size: int, device: torch.device,
               goodness_weight: float | None = None) -> float:
    """Fraction of `split` misclassified, predicting by `how`."""
    return error_rates(model, split, (how,), batch_size, device, goodness_weight)[how]


def scored_ways(cfg: Config, model: Network) -> tuple[str, ...]:
    """The ways the end of a run scores: run.score_ways, or every way the model has."""
    asked = cfg.run.score_ways or model.ways
    ways = tuple(w for w in model.ways if w in asked)
    if set(asked) - set(model.ways) or not ways:
        raise FFError(f"run.score_ways {list(asked)} asks for ways this network does not predict by; it predicts by "
                      f"{', '.join(model.ways)}.")
    return ways


def text_scores(model: Network, corpus: Corpus, ways: tuple[str, ...], batch_size: int,
                out: dict) -> tuple[dict[str, float], dict[str, float]]:
    """A next-character model's validation and test errors by each way; into `out`, bits per character
    (test: at the temperature that was best on validation)."""
    with scoring(model):
        val = sequence.scores(model, corpus.val, ways, batch_size, free_running=False) if len(corpus.val) else {}
        best = {how: val[f"temperature_{how}"] if val else 1.0 for how in ways}
        test = sequence.scores(model, corpus.test, ways, batch_size, temperatures=best, free_running=False)
    for how in ways:
        for split, got in (("val", val), ("test", test)):
            if got:
                out[f"{split}_bpc_{how}"] = got[f"bpc_{how}"]
        out[f"temperature_{how}"] = best[how]
    return ({how: 1 - val[f"acc_{how}"] for how in ways} if val else {},
            {how: 1 - test[f"acc_{how}"] for how in ways})


def free_running_errors(model: Network, corpus: Corpus, how: str) -> dict[str, float]:
    """Errors of the model writing on its own by `how` after each held-out string's first characters
    (one pass per character written, so only for the way the run predicts by)."""
    with scoring(model):
        out = {"test_free_error": 1 - sequence.free_running_accuracy(model, corpus.test, how)}
        if len(corpus.val):
            out["val_free_error"] = 1 - sequence.free_running_accuracy(model, corpus.val, how)
    return out


def score(cfg: Config, model: Network, data: Datasets, device: torch.device) -> dict:
    """Validation and test error by every prediction the model supports; `test_error` is the configured
    one, or with "best" the one with the lower validation error.

    The test set is only scored here, once training is over; nothing is selected on it.
    """
    ways = scored_ways(cfg, model)
    out: dict[str, Any] = {}
    if data.corpus is not None:
        val, test = text_scores(model, data.corpus, ways, cfg.run.eval_batch_size, out)
    else:
        # with data.val_size = 0 there is nothing to validate on: val_error_* are None
        with scoring_autocast(cfg, device):
            val = error_rates(model, data.val, ways, cfg.run.eval_batch_size, device) if len(data.val) else {}
            test = error_rates(model, data.test, ways, cfg.run.eval_batch_size, device)
    for how in ways:
        out[f"val_error_{how}"], out[f"test_error_{how}"] = val.get(how), test[how]
    chosen = cfg.objective.predict
    if chosen == "best":  # chosen on validation alone; ties go to the cheaper one-pass readout
        chosen = min(ways, key=lambda how: out[f"val_error_{how}"])
    out["val_error"] = out[f"val_error_{chosen}"]
    out["test_error"] = out[f"test_error_{chosen}"]
    out["predict"] = chosen
    if data.corpus is not None and sequence.writes(model):
        out.update(free_running_errors(model, data.corpus, chosen))
    return out


def load_trained(run_dir: str | Path, data_dir: str | None = None, device: str | None = None,
                 data: Datasets | None = None):
    """Rebuild a finished run: (config, model with its weights, datasets, device). `data`: the
    `Datasets` of a run trained on arrays given in Python."""
    run_dir = Path(run_dir)
    cfg, _ = runs.load_config(run_dir)
    if data_dir:
        cfg = merge(cfg, {"data": {"data_dir": data_dir}})
    if cfg.objective.predict == "best":  # the way chosen on validation when the run ended
        summary = Path(run_dir) / "summary.json"
        chosen = read_json(summary, "run summary").get("predict", "softmax") if summary.exists() else "softmax"
        if chosen not in WAYS:
            raise FFError(f"{summary} names no way to predict by (predict = {chosen!r}); it was edited or damaged.")
        cfg = merge(cfg, {"objective": {"predict": chosen}})
    torch_device = resolve_device(device or cfg.run.device)
    data = data_mod.load(cfg.data) if data is None else data
    model = build_model(cfg, data.shape, data.num_classes)
    weights = runs.load_weights(run_dir)
    broken = [k for k, v in weights.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise FFError(f"the weights in {run_dir} hold NaN or infinite values ({broken[0]}): the run diverged or the "
                      "file was damaged; train it again.")
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise FFError(f"the weights in {run_dir} do not fit its config.json ({str(e).splitlines()[0]}).") from None
    return cfg, model.to(torch_device).eval(), data, torch_device
