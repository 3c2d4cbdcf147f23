"""Plugins: parts registered by the user's own module, named from the CLI, in sweeps and in ff eval."""

import json
import subprocess
import sys

import pytest

from forward_forward.cli import main
from forward_forward.config import Config, merge
from forward_forward.negatives import NEGATIVES
from forward_forward.objectives import GOODNESS

PLUGIN = '''
"""A user's parts: a goodness function and a negative strategy."""
from forward_forward.negatives import NEGATIVES
from forward_forward.negatives.wrong_labels import RandomWrong
from forward_forward.objectives import GOODNESS, Goodness

GOODNESS["sum_cubes"] = Goodness(lambda y: y.pow(3).sum(dim=1), lambda units: float(units))


class Twice(RandomWrong):
    """Two random wrong labels per image."""

    per_image = 2

    def wrong(self, images, labels, probs):
        images2, wrong = super().wrong(images.repeat(2, *[1] * (images.ndim - 1)), labels.repeat(2), probs)
        order = __import__("torch").arange(2 * len(labels)).view(2, -1).T.reshape(-1)  # image-major
        return images2[order], wrong[order]


NEGATIVES["twice"] = Twice
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "my_ff_parts.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)
    yield "my_ff_parts"
    GOODNESS.pop("sum_cubes", None)
    NEGATIVES.pop("twice", None)
    sys.modules.pop("my_ff_parts", None)
    sys.path[:] = [p for p in sys.path if p != str(tmp_path)]


def test_a_plugin_part_is_named_from_the_cli_and_reloads_in_a_new_process(plugin, fake_mnist, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--preset", "tiny", "--data-dir", str(fake_mnist), "--set", "data.verify_checksums=false",
            "--set", "data.val_size=200", "--set", "model.hidden=[64, 64]", "--epochs", "2", "--no-progress",
            "--set", "objective.goodness=sum_cubes", "--set", "objective.negatives=twice",
            "--set", "objective.predict=goodness", "--run-dir", str(run)]
    assert main(args) == 2  # not registered until the plugin is named
    assert "objective.goodness must be one of" in capsys.readouterr().err
    assert main(args + ["--set", f"run.plugins=[\"{plugin}\"]"]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["run"]["plugins"] == [plugin] and saved["objective"]["goodness"] == "sum_cubes"
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["layers"]["layer0"]["g_neg"] is not None
    fresh = subprocess.run([sys.executable, "-m", "forward_forward.cli", "eval", str(run)], capture_output=True,
                           text=True, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr
    assert "test error" in fresh.stdout


def test_a_plugin_that_fails_to_import_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken_parts.py").write_text("raise RuntimeError('oops')\n")
    assert main(["train", "--set", 'run.plugins=["broken_parts"]', "--set", 'run.plugins=["nowhere_parts"]']) == 2
    assert "run.plugins: importing 'nowhere_parts' failed (ModuleNotFoundError" in capsys.readouterr().err
    assert main(["train", "--set", 'run.plugins=["broken_parts"]']) == 2
    assert "importing 'broken_parts' failed (RuntimeError: oops)" in capsys.readouterr().err
    sys.modules.pop("broken_parts", None)


def test_a_plugin_part_in_a_sweep_reaches_its_worker_processes(plugin, fake_mnist, tmp_path):
    from forward_forward.sweep import Sweep, run_sweep

    overrides = {"data": {"data_dir": str(fake_mnist), "verify_checksums": False, "download": False, "val_size": 200},
                 "model": {"hidden": [32, 32]}, "optim": {"epochs": 1, "batch_size": 50},
                 "run": {"device": "cpu", "plugins": [plugin]}}
    sweep = Sweep(preset="tiny", grid={"objective.goodness": ["sum_cubes", "sum_squares"]}, seeds=[0],
                  overrides=overrides)
    run_sweep(sweep, tmp_path / "sweep", jobs=2, progress=False)  # spawned workers import the plugin themselves
    results = json.loads((tmp_path / "sweep" / "results.json").read_text())
    assert len(results["rows"]) == 2
    assert not (tmp_path / "sweep" / "failed.txt").exists()


def test_a_plugin_model_kind_is_known_before_the_fields_it_ignores_are_reset(tmp_path, monkeypatch, capsys):
    # its ignores are read as the config is merged, so the preset's FF values go back to their defaults
    (tmp_path / "my_kinds.py").write_text("from forward_forward.models import MODELS, BackpropNetwork\n"
                                          "MODELS['my_twin'] = BackpropNetwork\n")
    monkeypatch.chdir(tmp_path)
    from forward_forward.figures import PLAIN_FIGURES, figures_of
    from forward_forward.models import MODELS

    try:
        assert main(["train", "--preset", "tiny", "--set", 'run.plugins=["my_kinds"]', "--set", "model.kind=my_twin",
                     "--set", "objective.predict=softmax", "--print-config"]) == 0
        out, err = capsys.readouterr()
        assert 'kind = "my_twin"' in out and "peer_lambda = 0.0" in out
        assert "model.peer_lambda: the tiny preset's value is not read" in err
        MODELS.pop("my_twin", None)  # as in a fresh process: the plugin not yet imported
        sys.modules.pop("my_kinds", None)
        plugged = {"run": {"plugins": ["my_kinds"]}, "model": {"kind": "my_twin"}, "objective": {"predict": "softmax"}}
        assert figures_of(plugged) == PLAIN_FIGURES  # what ff report reads off a run's config.json
        MODELS.pop("my_twin", None)
        sys.modules.pop("my_kinds", None)
        assert merge(merge(Config(), {"model": {"peer_lambda": 0.03}}), plugged).model.peer_lambda == 0
    finally:
        MODELS.pop("my_twin", None)
        sys.modules.pop("my_kinds", None)
        sys.path[:] = [p for p in sys.path if p != str(tmp_path)]
