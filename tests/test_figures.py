"""`ff plot` and `ff report`: the files exist, decode, and their numbers match the run."""

import json
import re
import shutil
import subprocess

import pytest

from forward_forward.cli import main
from forward_forward.figures import FIGURES, GENERATOR_FIGURES, PLAIN_FIGURES, figures_of
from forward_forward.train import train
from tests.conftest import small_config

mpimg = pytest.importorskip("matplotlib.image")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from tests.conftest import write_fake_mnist

    root = tmp_path_factory.mktemp("plots")
    data_dir = write_fake_mnist(root / "data")
    out = []
    for name, epochs in (("a", 2), ("b", 3)):
        train(small_config(data_dir, optim={"epochs": epochs}), root / name, "test")
        out.append(root / name)
    return out


def test_plot_writes_every_figure_and_its_numbers(two_runs):
    run = two_runs[0]
    assert main(["plot", str(run), "--samples", "150"]) == 0
    for name in FIGURES:
        image = mpimg.imread(run / "figures" / f"{name}.png")
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100, name
        assert image.std() > 0.01, f"{name} is blank"
    facts = json.loads((run / "figures" / "figures.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert facts["samples"] == 150
    for layer in ("layer0", "layer1"):
        assert len(facts["goodness"][layer]["pos"]) == 150 == len(facts["goodness"][layer]["neg"])
        assert facts["goodness"][layer]["threshold"] == 64.0  # sum of squares over 64 units
    confusion = facts["confusion"]
    assert sum(map(sum, confusion)) == 300  # every test image once
    wrong = 1 - sum(confusion[i][i] for i in range(10)) / 300
    assert abs(wrong - summary["test_error"]) < 1e-9
    assert len(facts["activity"]["with_label"]) == 2 and len(facts["activity"]["with_label"][0]) == 64


COMPETITIVE_FIGURES = ("curves", "goodness", "evidence", "weights", "confusion", "layer_error")


@pytest.mark.parametrize("config, names", [
    ({"model": {"kind": "ff"}}, FIGURES),  # random wrong labels, the default: the label in the input
    ({"model": {"kind": "ff"}, "objective": {"negatives": "hybrid"}}, PLAIN_FIGURES),  # no label to draw
    ({"model": {"kind": "ff", "iterations": 8}}, (*FIGURES, "iterations")),
    ({"model": {"kind": "competitive"}}, COMPETITIVE_FIGURES),  # each class's channels, no label in the input
    ({"model": {"kind": "backprop"}}, PLAIN_FIGURES),
    ({"model": {"kind": "backprop", "iterations": 8}}, PLAIN_FIGURES),
    ({"objective": {"negatives": "generated"}}, (*PLAIN_FIGURES, *GENERATOR_FIGURES)),  # unsupervised
    ({"objective": {"negatives": "generated", "generated_base": "random"}}, (*FIGURES, *GENERATOR_FIGURES)),
    ({"model": {"kind": "a kind this version does not know"}}, ()),
    ({"model": {"kind": "a kind of its own"}}, ("curves", "confusion")),  # one that lists no figures
    ({"model": {"fast_weights": True}, "data": {"dataset": "aesop", "window": 10, "string_length": 36}}, ()),
])
def test_each_kind_of_run_has_its_figures(config, names, monkeypatch):
    from forward_forward.models import MODELS
    from forward_forward.models.base import LayerLosses

    monkeypatch.setitem(MODELS, "a kind of its own", type("Own", (LayerLosses,), {
        "check": staticmethod(lambda cfg: None), "label_in_input": staticmethod(lambda cfg: False)}))
    assert figures_of({**config, "preset": "a run's config.json names it"}) == names


def test_plot_and_report_draw_a_competitive_conv_net_and_a_backprop_twin(fake_mnist, tmp_path):
    from forward_forward.config import merge, merge_where_read
    from forward_forward.training import load_trained
    from tests.test_conv import competitive_config

    competitive = merge(competitive_config(optim={"epochs": 2}, model={"readout": True}),
                        {"data": {"data_dir": str(fake_mnist), "train_limit": 300}})
    twin, _ = merge_where_read(competitive, {"model": {"kind": "backprop"}, "objective": {"predict": "softmax"}},
                               keep={"model.kind", "objective.predict"})  # as --set makes it
    for name, cfg, names in (("cw", competitive, COMPETITIVE_FIGURES), ("bp", twin, PLAIN_FIGURES)):
        summary = train(cfg, tmp_path / name, "test")
        assert main(["plot", str(tmp_path / name), "--samples", "60"]) == 0
        assert sorted(p.stem for p in (tmp_path / name / "figures").glob("*.png")) == sorted(names)
        for figure in names:
            assert mpimg.imread(tmp_path / name / "figures" / f"{figure}.png").std() > 0.01, f"{name}: {figure} blank"
        facts = json.loads((tmp_path / name / "figures" / "figures.json").read_text())
        confusion = facts["confusion"]
        assert 1 - sum(confusion[i][i] for i in range(10)) / sum(map(sum, confusion)) == pytest.approx(
            summary["test_error"])
    facts = json.loads((tmp_path / "cw" / "figures" / "figures.json").read_text())
    right, wrong = facts["evidence"]["images"]  # the first test image it gets right, the first it gets wrong
    cfg, model, data, _ = load_trained(tmp_path / "cw", device="cpu")
    hits = (model.predict(data.test.images, cfg.objective.predict) == data.test.labels).tolist()
    assert (right["index"], wrong["index"]) == (hits.index(True), hits.index(False))
    assert right["label"] == right["predicted"] and wrong["label"] != wrong["predicted"]
    assert [len(scores) for scores in right["layers"]] == [10, 10]  # every class, by each layer
    assert len(facts["goodness"]["layer1"]["pos"]) == 60 and "threshold" not in facts["goodness"]["layer1"]
    assert set(facts["layer_error"]) == {"layer0", "layer1", "goodness (layers used to predict)"}
    assert main(["report", str(tmp_path / "cw"), str(tmp_path / "bp"), "--out", str(tmp_path / "r.html")]) == 0
    page = (tmp_path / "r.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(COMPETITIVE_FIGURES) + len(PLAIN_FIGURES) + 1


def test_report_embeds_everything_and_compares_runs(two_runs, tmp_path):
    for run in two_runs:
        main(["plot", str(run), "--samples", "100"])
    out = tmp_path / "report.html"
    assert main(["report", *map(str, two_runs), "--out", str(out)]) == 0
    page = out.read_text()
    images = re.findall(r'src="data:image/png;base64,', page)
    assert len(images) == 2 * len(FIGURES) + 1  # every figure of both runs, plus the comparison
    assert "<h2>Comparison</h2>" in page and "src=\"http" not in page  # self-contained
    for run in two_runs:
        assert f"<td>{run.name}</td>" in page


def test_report_shows_a_run_it_cannot_plot_by_its_summary(fake_mnist, tmp_path, capsys):
    data = tmp_path / "copy"
    shutil.copytree(fake_mnist, data)
    train(small_config(data, optim={"epochs": 1}), tmp_path / "run", "test")
    shutil.rmtree(data)  # its images are gone: no figures, but the page is still written
    assert main(["report", str(tmp_path / "run"), "--out", str(tmp_path / "page.html")]) == 0
    assert "its figures cannot be drawn" in capsys.readouterr().err
    page = (tmp_path / "page.html").read_text()
    assert "<h2>run</h2>" in page and "<img" not in page


def test_write_report_without_figures_says_what_to_run(tmp_path, two_runs):
    from forward_forward.errors import FFError
    from forward_forward.report import write_report

    bare = tmp_path / "bare"
    shutil.copytree(two_runs[1], bare, ignore=shutil.ignore_patterns("figures"))
    with pytest.raises(FFError, match="run `ff plot"):  # the library call; `ff report` plots it first
        write_report([bare], tmp_path / "page.html")
    assert not (tmp_path / "page.html").exists()


@pytest.mark.skipif(not shutil.which("chromium"), reason="Chromium is not installed")
def test_report_renders_in_headless_chromium(two_runs, tmp_path):
    main(["plot", str(two_runs[0]), "--samples", "100"])
    out = tmp_path / "page.html"
    main(["report", str(two_runs[0]), "--out", str(out)])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run(["chromium", *flags, "--dump-dom", out.as_uri()], capture_output=True, text=True,
                         timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<img") == len(FIGURES)
    shot = tmp_path / "shot.png"
    subprocess.run(["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,2000", out.as_uri()],
                   capture_output=True, timeout=120)
    assert mpimg.imread(shot).std() > 0.01


def test_tensorboard_logs_scalars_and_histograms(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    from tests.conftest import write_fake_mnist

    cfg = small_config(write_fake_mnist(tmp_path / "data"), optim={"epochs": 2}, log={"tensorboard": True})
    train(cfg, tmp_path / "run", "test")
    events = event_accumulator.EventAccumulator(str(tmp_path / "run" / "tensorboard"))
    events.Reload()
    tags = events.Tags()
    assert {"val_error", "layer0/loss", "layer1/g_pos", "readout/acc"} <= set(tags["scalars"])
    assert [e.step for e in events.Scalars("val_error")] == [1, 2]
    assert {"layer0/weight", "layer1/bias"} <= set(tags["histograms"])


def test_report_plots_what_is_missing_and_shows_what_differs(fake_mnist, tmp_path):
    for name, lr in (("a", 0.01), ("b", 0.02)):
        train(small_config(fake_mnist, optim={"epochs": 1, "lr": lr}), tmp_path / name, "test")
    out = tmp_path / "both.html"
    assert main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]) == 0
    page = out.read_text()
    assert (tmp_path / "a" / "figures" / "curves.png").exists()
    assert "config fields that differ" in page and "optim.lr" in page and "model.hidden" not in page


def test_metrics_print_as_a_table_and_write_as_csv(two_runs, tmp_path, capsys):
    import csv

    assert main(["metrics", str(two_runs[0])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["epoch", "seconds", "lr", "val_error"] and "layer0.hoyer" in lines[0]
    assert main(["metrics", str(two_runs[0]), "--csv", str(tmp_path / "m.csv")]) == 0
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    records = [json.loads(line) for line in (two_runs[0] / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == len(records) and float(rows[-1]["layer1.loss"]) == records[-1]["layers"]["layer1"]["loss"]
