"""`ff plot`: pictures of what a trained network does, computed from its run directory.

Every figure's numbers are also written to figures.json, so they can be checked and re-plotted.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from . import labels as label_ops
from . import runs
from .config import TEXT_DATASETS, Config, as_trained, from_dict
from .errors import FFError
from .models import BackpropNetwork, FFNetwork, model_class
from .negatives import NEGATIVES

FIGURES = FFNetwork.figures  # supervised FF's: the label in its input
PLAIN_FIGURES = BackpropNetwork.figures  # curves, weights, confusion: what any network that predicts classes shows
GENERATOR_FIGURES = ("samples", "generator")  # drawn for a run with a generator of images
# a model kind's own figures are its class attribute `figures` (the recurrent net adds "iterations"; a competitive
# net draws "evidence", each class's probability per layer, for "activity"); a kind without one gets these:
UNKNOWN_KIND_FIGURES = ("curves", "confusion")


def figures_of(config: dict) -> tuple[str, ...]:
    """`figures_for` a config as a run's config.json or summary holds it (its plugins imported as it is
    built); none for one this version cannot build (a kind it does not know)."""
    try:
        cfg = from_dict(as_trained({k: v for k, v in config.items() if k != "preset"}))  # config.json names it
    except FFError:
        return ()
    return figures_for(cfg)


def figures_for(cfg: Config) -> tuple[str, ...]:
    """The figures `ff plot` draws for a run of `cfg`: its model kind's (`figures`), but the plain ones for FF
    without the label in its input, and a generator's beside them; none with fast weights (they read whole
    strings, where the figures take images one by one)."""
    if cfg.model.fast_weights:
        return ()
    kind = model_class(cfg)
    own = tuple(getattr(kind, "figures", UNKNOWN_KIND_FIGURES))
    if not kind.trains_on_negatives:
        return own
    generates = NEGATIVES[cfg.objective.negatives].makes_data and cfg.data.dataset not in TEXT_DATASETS
    supervised = NEGATIVES[cfg.objective.negatives].takes_label(cfg)  # else there is no label to score by goodness
    return (own if supervised else PLAIN_FIGURES) + (GENERATOR_FIGURES if generates else ())


def _own_figures(model) -> tuple[str, ...]:
    return tuple(getattr(type(model), "figures", UNKNOWN_KIND_FIGURES))


def plot_generator(run_dir: Path, model, out_dir: Path | None = None) -> list[Path]:
    """A generator's figures: 100 samples (a column per class when drawn by class), and its measures
    over the epochs from metrics.jsonl (goodness of real and generated images per layer; with a
    reference, the Frechet distance and the classes under half their share)."""
    from .sample_quality import draw, sample_grid

    plt = pyplot()
    out_dir = Path(out_dir or Path(run_dir) / "figures")
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    if model.generator.ready:
        with torch.random.fork_rng():
            torch.manual_seed(0)  # the same figure each time
            written.append(sample_grid(draw(model, 100), out_dir / "samples.png", f"samples of {Path(run_dir).name}"))
    else:  # a run stopped before the prior's first fit has nothing to draw from: the figure says so
        fig, ax = plt.subplots(figsize=(6, 1.2))
        ax.text(0.5, 0.5, "no samples: the run stopped before its generator was first fitted", ha="center",
                va="center")
        ax.axis("off")
        runs.write_atomic(out_dir / "samples.png", lambda f: fig.savefig(f, format="png", dpi=100))
        plt.close(fig)
        written.append(out_dir / "samples.png")
    logged = [(m["epoch"], m["generator"]) for m in read_metrics(run_dir) if m.get("generator")]
    measured = [(e, g) for e, g in logged if "frechet" in g]
    fig, axes = plt.subplots(1, 2 if measured else 1, figsize=(11 if measured else 5.5, 4), squeeze=False)
    ax = axes[0, 0]
    epochs = [e for e, _ in logged]
    for i in range(len(logged[0][1]["goodness_real"]) if logged else 0):
        line, = ax.plot(epochs, [g["goodness_real"][i] for _, g in logged], "o-", label=f"layer{i} real")
        ax.plot(epochs, [g["goodness_generated"][i] for _, g in logged], "o--", color=line.get_color(),
                label=f"layer{i} generated")
    ax.set(xlabel="epoch", ylabel="mean goodness", title="goodness of real and generated images")
    ax.legend(fontsize=7)
    if measured:
        ax = axes[0, 1]
        ax.plot([e for e, _ in measured], [g["frechet"] for _, g in measured], "o-", color="C0")
        ax.set(xlabel="epoch", ylabel="Frechet distance", title="samples under the reference classifier")
        twin = ax.twinx()
        twin.plot([e for e, _ in measured], [g["classes_under_half"] for _, g in measured], "s--", color="C3")
        twin.set_ylabel("classes under half their share", color="C3")
    path = out_dir / "generator.png"
    runs.write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return [*written, path]


def pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        raise FFError("plots need matplotlib: pip install 'forward-forward[plot]'.") from None
    return plt


def read_metrics(run_dir: Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FFError(f"{run_dir} has no metrics.jsonl: is it a run directory?")
    return runs.read_jsonl(path)


@torch.no_grad()
def analyse(model, data, predict: str, samples: int, seed: int = 0, names: tuple[str, ...] | None = None) -> dict:
    """The numbers behind the figures `names`: goodness of positive and negative validation data per layer,
    the test confusion matrix, each layer's error when it alone predicts, one image's activities (with the
    label in the input) or each class's score per layer (a competitive net's channel groups). `names`
    defaults to the model kind's own figures; for FF without the label in its input, pass `figures_of`'s."""
    names = _own_figures(model) if names is None else names
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    shown = data.val if len(data.val) else data.test  # a run trained on every image has no validation split
    images, labels = shown.images[:samples], shown.labels[:samples]
    wrong = label_ops.random_wrong(labels, model.num_classes, generator=gen)
    out: dict = {"samples": len(labels)}
    if "goodness" in names:
        out["goodness"] = _goodness_facts(model, images, labels, wrong)

    # Test set: per-label goodness of every layer in batched passes, and the configured prediction.
    by_label = bool({"layer_error", "iterations", "evidence"} & set(names))
    per_layer, predicted = [], []
    for start in range(0, len(data.test), 500):
        x = data.test.images[start : start + 500]
        if by_label:
            per_layer.append(model.label_goodness(x))  # (B, C, layers)
        predicted.append(model.predict(x, predict))
    truth = data.test.labels
    if by_label:
        goodness = torch.cat(per_layer)
        out["layer_error"] = {
            f"layer{i}": float((goodness[:, :, i].argmax(1) != truth).float().mean()) for i in range(goodness.shape[2])
        }
        out["layer_error"]["goodness (layers used to predict)"] = float(
            (goodness[:, :, model.prediction_layers].sum(2).argmax(1) != truth).float().mean()
        )
    pred = torch.cat(predicted)
    confusion = torch.zeros(model.num_classes, model.num_classes, dtype=torch.long)
    confusion.index_put_((truth, pred), torch.ones_like(truth), accumulate=True)
    out["confusion"] = confusion.tolist()
    out["predict"] = predict

    if "iterations" in names:
        by_goodness = goodness[:, :, model.prediction_layers].sum(2).argmax(1)
        out["iterations"] = iteration_facts(model, data.test.images, truth, by_goodness)
        for kind, lab in (("true", labels), ("wrong", wrong)):  # the validation samples of the histograms
            curves = model.trajectory(model.with_label(images, lab))[:, :, model.prediction_layers].sum(2)
            out["iterations"].setdefault("mean", {})[kind] = curves.mean(0).tolist()

    # One test image with its true label and a wrong one (the article's figure).
    image, label = data.test.images[:1], int(data.test.labels[0])
    if "activity" in names:
        other = (label + 3) % model.num_classes
        out["activity"] = {"label": label, "wrong_label": other}
        for kind, lab in (("with_label", label), ("with_wrong_label", other)):
            acts = model.activities(model.with_label(image, torch.tensor([lab])))
            out["activity"][kind] = [a[0].tolist() for a in acts]
    if "evidence" in names:  # the label is not in the input: every class's score from one pass
        out["evidence"] = {"prediction_layers": list(model.prediction_layers), "images": []}
        for hits in (pred == truth, pred != truth):  # the first image it gets right, the first it gets wrong
            found = hits.nonzero().flatten()
            if not len(found):
                continue
            index = int(found[0])
            out["evidence"]["images"].append({"index": index, "label": int(truth[index]), "predicted": int(pred[index]),
                                              "layers": goodness[index].exp().T.tolist()})  # (layers, C)
    return out


def _goodness_facts(model, images: torch.Tensor, labels: torch.Tensor, wrong: torch.Tensor) -> dict:
    """Each layer's goodness of the samples with their true label (positive) and a wrong one (negative),
    and its threshold; for a network without the label in its input, the score of the true class and of a
    wrong one (a competitive net's log-probability of the class from its channel group's goodness)."""
    out: dict = {}
    if hasattr(model, "with_label"):
        for kind, lab in (("pos", labels), ("neg", wrong)):
            goodness = model.layer_goodness(model.with_label(images, lab))  # (B, layers)
            for i in range(goodness.shape[1]):
                out.setdefault(f"layer{i}", {})[kind] = goodness[:, i].tolist()
    else:
        scores, rows = model.label_goodness(images), torch.arange(len(labels))  # (B, C, layers)
        for i in range(scores.shape[2]):
            out[f"layer{i}"] = {"pos": scores[rows, labels, i].tolist(), "neg": scores[rows, wrong, i].tolist()}
    for i, theta in enumerate(getattr(model, "thresholds", [])):
        out[f"layer{i}"]["threshold"] = theta
    return out


def iteration_facts(model, images: torch.Tensor, truth: torch.Tensor, predicted: torch.Tensor) -> dict:
    """The recurrent net's goodness over its iterations with every label, summed over the prediction
    layers, for the first test image it classifies right by goodness and the first it gets wrong."""
    out: dict = {"predict_iterations": list(model.predict_iterations)}
    for name, hits in (("right", predicted == truth), ("wrong", predicted != truth)):
        found = hits.nonzero().flatten()
        if not len(found):
            continue
        index = int(found[0])
        curves = model.trajectory(model.coding.every_label(images[index : index + 1]))  # (C, T + 1, layers)
        out[name] = {"index": index, "label": int(truth[index]), "predicted": int(predicted[index]),
                     "goodness": curves[:, :, model.prediction_layers].sum(2).tolist()}
    return out


def _flat(entry: dict, prefix: str = "") -> dict:
    """Nested values as columns: {"generator": {"goodness_real": [a, b]}} -> generator.goodness_real.0, .1."""
    out: dict = {}
    for key, value in entry.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flat(value, name + "."))
        elif isinstance(value, list):
            out.update(_flat({str(i): v for i, v in enumerate(value)}, name + "."))
        else:
            out[name] = value
    return out


def metrics_table(records: list[dict]) -> tuple[list[str], list[list]]:
    """metrics.jsonl as a table: one row per epoch, one column per value (`layer0.loss`, `readout.acc`, ...)."""
    rows = [{**_flat({k: v for k, v in r.items() if k != "layers"}),
             **{f"{name}.{key}": v for name, values in r.get("layers", {}).items() for key, v in values.items()}}
            for r in records]
    columns = list(dict.fromkeys(k for row in rows for k in row))
    return columns, [[row.get(c, "") for c in columns] for row in rows]


def _grid(vector: np.ndarray) -> np.ndarray:
    """Lay a vector out as a near-square image, padding the end with NaN (drawn blank)."""
    cols = math.ceil(math.sqrt(len(vector)))
    rows = math.ceil(len(vector) / cols)
    padded = np.full(rows * cols, np.nan)
    padded[: len(vector)] = vector
    return padded.reshape(rows, cols)


def plot_run(run_dir: Path, model, data, predict: str, out_dir: Path | None = None,
             samples: int = 1000, names: tuple[str, ...] | None = None) -> list[Path]:
    """Write the figures `names` (of FIGURES, "evidence" and "iterations") as PNG into `out_dir` (default
    RUN_DIR/figures); by default the model kind's own (see `analyse`)."""
    names = _own_figures(model) if names is None else names
    plt = pyplot()
    out_dir = Path(out_dir or Path(run_dir) / "figures")
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics = read_metrics(run_dir)
    facts = analyse(model, data, predict, samples, names=names)
    runs.write_json_atomic(out_dir / "figures.json", facts)
    written = []

    def save(fig, name):
        path = out_dir / f"{name}.png"
        runs.write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100, bbox_inches="tight"))
        plt.close(fig)
        written.append(path)

    if "curves" in names:
        save(curves_figure(plt, metrics, facts["predict"]), "curves")
    if "goodness" in names:
        save(goodness_figure(plt, facts["goodness"], hasattr(model, "with_label")), "goodness")
    if "activity" in names:
        save(activity_figure(plt, facts["activity"], data.test.images[0]), "activity")
    if "evidence" in names:
        save(evidence_figure(plt, facts["evidence"], data.test.images), "evidence")
    if "weights" in names:
        save(weights_figure(plt, model.layers[0], data.shape), "weights")
    if "confusion" in names:
        save(confusion_figure(plt, np.asarray(facts["confusion"]), facts["predict"]), "confusion")
    if "layer_error" in names:
        save(layer_error_figure(plt, facts["layer_error"]), "layer_error")
    if "iterations" in names:
        save(iterations_figure(plt, facts["iterations"], data.test.images), "iterations")
    return written


def curves_figure(plt, metrics: list[dict], predict: str):
    """Training loss per layer (every entry of metrics.jsonl that has one), and validation error."""
    fig, (ax_loss, ax_err) = plt.subplots(1, 2, figsize=(11, 4))
    epochs = [m["epoch"] for m in metrics]
    style = "o-" if len(metrics) < 8 else "-"  # markers, so a run of one or two epochs still shows its points
    for name, values in metrics[0]["layers"].items() if metrics else ():
        if "loss" in values:  # a backprop twin's layers log their sparsity only: its one loss is "output"
            ax_loss.plot(epochs, [m["layers"][name]["loss"] for m in metrics], style, label=name)
    ax_loss.set(xlabel="epoch", ylabel="loss", yscale="symlog", title="training loss per layer")
    ax_loss.legend()
    with_val = [m for m in metrics if "val_error" in m]
    if with_val or not metrics:
        ax_err.plot([m["epoch"] for m in with_val], [100 * m["val_error"] for m in with_val], "o-")
        during = sorted({m.get("val_predict", "") for m in with_val} - {""})  # the way each epoch was scored
        ax_err.set(xlabel="epoch", ylabel="validation error (%)",
                   title=f"validation error (by {', '.join(during) or predict})")
    else:  # trained on every image (data.val_size = 0): each loss's error at its own task on the training batches
        logged = [name for name, values in metrics[0]["layers"].items() if "acc" in values]
        for name in logged:
            ax_err.plot(epochs, [100 * (1 - m["layers"][name]["acc"]) for m in metrics], style, label=name)
        ax_err.set(xlabel="epoch", ylabel="error on the training batches (%)",
                   title="no validation images: each loss's own error" if logged else "no validation images")
        if logged:  # a layer's task: the class (competitive), or positive against negative by the threshold (FF)
            ax_err.set_yscale("symlog", linthresh=0.01)
            ax_err.legend()
    ax_err.grid(alpha=0.3)
    for ax in (ax_loss, ax_err):
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))  # epochs are whole
    return fig


def goodness_figure(plt, goodness: dict, label_in_input: bool):
    """Histograms per layer: goodness with the true label and a wrong one, and the threshold; without the label
    in the input, the score of the true class and of a wrong one."""
    names = list(goodness)
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), squeeze=False)
    sides = (("positive (true label)", "negative (wrong label)") if label_in_input else ("the true class",
                                                                                          "a wrong class"))
    for ax, name in zip(axes[0], names):
        g = goodness[name]
        bins = np.histogram_bin_edges(g["pos"] + g["neg"], bins=40)
        ax.hist(g["pos"], bins=bins, alpha=0.6, label=sides[0])
        ax.hist(g["neg"], bins=bins, alpha=0.6, label=sides[1])
        if "threshold" in g:
            ax.axvline(g["threshold"], color="k", linestyle="--", label="threshold")
        ax.set(title=name, xlabel="goodness" if label_in_input else "log-probability of the class (its channels)")
    axes[0][0].legend(fontsize=7)
    return fig


def _show_image(ax, image: torch.Tensor, title: str) -> None:
    ax.imshow(image.mean(0).numpy() if image.ndim == 3 else _grid(image.numpy()), cmap="gray")
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def activity_figure(plt, act: dict, image: torch.Tensor):
    """Hidden activity for one image with its true and a wrong label."""
    layers = len(act["with_label"])
    fig, axes = plt.subplots(2, layers + 1, figsize=(3 * (layers + 1), 6), squeeze=False)
    for row in range(2):  # the input, beside the activities it causes
        _show_image(axes[row][0], image, "test image" if row == 0 else "")
    for row, (kind, lab) in enumerate((("with_label", act["label"]), ("with_wrong_label", act["wrong_label"]))):
        for col, vector in enumerate(act[kind], start=1):
            v = np.asarray(vector)
            top = max(max(act["with_label"][col - 1]), max(act["with_wrong_label"][col - 1])) or 1.0  # per layer
            shown = axes[row][col].imshow(_grid(v), cmap="viridis", vmin=0, vmax=top)
            if row == 1:
                fig.colorbar(shown, ax=axes[:, col].tolist(), shrink=0.6, label="activity")
            axes[row][col].set_title(f"label {lab}, layer{col - 1}\ngoodness {float((v ** 2).sum()):.0f}",
                                     fontsize=8)
            axes[row][col].axis("off")
    return fig


def evidence_figure(plt, evidence: dict, images: torch.Tensor):
    """The first test image the prediction gets right and the first it gets wrong, each with every class's
    probability by every layer alone, from one pass (the label is not in the input): how the evidence for
    the true class grows, or not, with depth. The true class is green, a wrong prediction red. With
    goodness_scope = region a layer's probability is the geometric mean of its regions'."""
    shown = evidence["images"]
    layers = len(shown[0]["layers"])
    fig, axes = plt.subplots(len(shown), layers + 1, figsize=(3 * (layers + 1), 3 * len(shown)), squeeze=False,
                             layout="constrained")
    for row, case in zip(axes, shown):
        _show_image(row[0], images[case["index"]],
                    f"test image {case['index']}\nclass {case['label']}, predicted {case['predicted']}")
        for ax, (i, scores) in zip(row[1:], enumerate(case["layers"])):
            colours = ["tab:green" if c == case["label"] else "tab:red" if c == case["predicted"] else "0.6"
                       for c in range(len(scores))]
            ax.bar(range(len(scores)), scores, color=colours)
            used = "" if i in evidence["prediction_layers"] else " (not used to predict)"
            ax.set(title=f"layer{i}{used}", xlabel="class", xticks=range(len(scores)), ylim=(0, 1))
            ax.tick_params(labelsize=7)
        row[1].set_ylabel("probability of the class\n(from its channel group's goodness)", fontsize=8)
    return fig


def weights_figure(plt, layer, data_shape: tuple[int, ...]):
    """First-layer weights: as images for image data (a conv layer's filters), as a units x inputs matrix
    otherwise."""
    w = layer.dense_weight().detach().float().cpu()[:64]
    if len(data_shape) == 3:
        # a conv layer's rows are its filters over its input channels; the others' rows see the whole image
        c, h, wd = data_shape
        field = getattr(layer, "filter_shape", (c, h, wd))
        fig, axes = plt.subplots(8, 8, figsize=(8, 8))
        for ax, row in zip(axes.flat, w):
            # the image's channels; label channels or inputs follow them
            img = row[: math.prod(field)].view(field)[:c].mean(0).numpy()
            limit = float(np.percentile(np.abs(img), 99)) or 1.0  # the label pixels would swamp a max scale
            ax.imshow(img, cmap="RdBu", vmin=-limit, vmax=limit)
            ax.axis("off")
        for ax in list(axes.flat)[len(w):]:
            ax.axis("off")
        fig.suptitle("first-layer weights")
    else:
        fig, ax = plt.subplots(figsize=(8, 5))
        limit = float(np.percentile(np.abs(w.numpy()), 99)) or 1.0
        ax.imshow(w.numpy(), cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
        ax.set(xlabel="input (the label's inputs last)", ylabel="unit", title="first-layer weights")
    return fig


def confusion_figure(plt, confusion: np.ndarray, predict: str):
    """The test confusion matrix of the configured prediction, on a log scale."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    shown = ax.imshow(np.log1p(confusion), cmap="Blues")
    dark = np.log1p(confusion) > 0.6 * np.log1p(confusion).max()
    for (i, j), n in np.ndenumerate(confusion):  # white on the dark cells, so the diagonal stays readable
        ax.text(j, i, str(n), ha="center", va="center", fontsize=6, color="white" if dark[i, j] else "black")
    bar = fig.colorbar(shown, ax=ax, shrink=0.8)
    bar.set_label("images (log scale)")
    ticks = [t for t in (1, 10, 100, 1000, 10000) if t <= max(confusion.max(), 1)]
    bar.set_ticks(np.log1p(ticks), labels=[str(t) for t in ticks])
    ax.set(xlabel="predicted", ylabel="true", title=f"test confusion ({predict})",
           xticks=range(len(confusion)), yticks=range(len(confusion)))
    return fig


def layer_error_figure(plt, layer_error: dict):
    """Test error when each layer alone predicts by goodness, and when the prediction layers do together."""
    names = list(layer_error)
    fig, ax = plt.subplots(figsize=(1.4 * len(names) + 2, 3.5))
    ax.bar(range(len(names)), [100 * layer_error[n] for n in names])
    ax.set_xticks(range(len(names)), names, rotation=20, fontsize=8)
    ax.set(ylabel="test error (%)", title="prediction by goodness, one layer at a time")
    return fig


def iterations_figure(plt, facts: dict, images: torch.Tensor):
    """Goodness over the recurrent net's iterations: averaged over the samples with their true label and
    with a random wrong one; then with the true label, the strongest wrong one and the others, for a
    test image it gets right and one it gets wrong. The iterations that predict are shaded."""
    cases = [name for name in ("right", "wrong") if name in facts]
    fig, axes = plt.subplots(1, 1 + 2 * len(cases), figsize=(4 + 6.5 * len(cases), 3.6), squeeze=False,
                             gridspec_kw={"width_ratios": [3] + [1, 3] * len(cases)}, layout="constrained")
    shown = facts["predict_iterations"]
    ax = axes[0][0]
    steps = np.arange(len(facts["mean"]["true"]))
    ax.axvspan(min(shown) - 0.5, max(shown) + 0.5, color="0.92", label="iterations that predict")
    ax.plot(steps, facts["mean"]["true"], "o-", color="tab:green", label="true label")
    ax.plot(steps, facts["mean"]["wrong"], "o-", color="tab:red", label="a random wrong label")
    ax.set(xlabel="iteration (0: the bottom-up pass)", ylabel="goodness (prediction layers)", xticks=steps,
           title="mean over the samples")
    ax.legend(fontsize=7)
    for k, name in enumerate(cases):
        case = facts[name]
        ax_img, ax = axes[0][1 + 2 * k], axes[0][2 + 2 * k]
        image = images[case["index"]]
        ax_img.imshow(image.mean(0).numpy() if image.ndim == 3 else _grid(image.numpy()), cmap="gray")
        ax_img.set_title(f"test image {case['index']}\ntrue {case['label']}, predicted {case['predicted']}", fontsize=8)
        ax_img.axis("off")
        curves = np.asarray(case["goodness"])  # (labels, iterations + 1)
        steps = np.arange(curves.shape[1])
        ax.axvspan(min(shown) - 0.5, max(shown) + 0.5, color="0.92", label="iterations that predict")
        strongest = max((c for c in range(len(curves)) if c != case["label"]), key=lambda c: curves[c][shown].mean())
        for c, curve in enumerate(curves):
            if c not in (case["label"], strongest):
                ax.plot(steps, curve, color="0.7", linewidth=0.8)
        ax.plot(steps, curves[strongest], "o-", color="tab:red", label=f"wrong label {strongest} (the strongest)")
        ax.plot(steps, curves[case["label"]], "o-", color="tab:green", label=f"true label {case['label']}")
        ax.plot([], [], color="0.7", linewidth=0.8, label="other wrong labels")
        ax.set(xlabel="iteration (0: the bottom-up pass)", ylabel="goodness (prediction layers)",
               title="classified right" if name == "right" else "misclassified")
        ax.set_xticks(steps)
        ax.legend(fontsize=7)
    return fig
