"""Small real runs: the loop, the run directory, `ff eval`, the greedy schedule, and CLI errors."""

import json
import pickle
import subprocess
import sys
import tomllib

import pytest

from forward_forward import presets
from forward_forward.cli import main
from forward_forward.config import Config, ObjectiveConfig, OptimConfig, merge
from forward_forward.errors import FFError
from forward_forward.models import FFNetwork
from forward_forward.train import train
from tests.conftest import small_config


def test_minibatch_run_learns_and_writes_its_run_directory(fake_mnist, tmp_path, capsys):
    cfg = small_config(fake_mnist, optim={"epochs": 3})
    summary = train(cfg, tmp_path / "run", "test")
    run = tmp_path / "run"
    for name in ("config.json", "command.txt", "metrics.jsonl", "summary.json", "model.pt"):
        assert (run / name).exists(), name
    assert summary["test_error"] < 0.1, summary
    assert {"val_error", "test_error", "epochs", "train_seconds", "device", "config"} <= set(summary)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert {"loss", "g_pos", "g_neg", "acc"} <= set(records[-1]["layers"]["layer1"])
    assert records[-1]["layers"]["layer0"]["g_pos"] > records[-1]["layers"]["layer0"]["g_neg"]
    assert main(["eval", str(run)]) == 0
    assert f"test error {100 * summary['test_error']:.2f} %" in capsys.readouterr().out


def test_bf16_precision_trains_as_well(fake_mnist, tmp_path):
    summary = train(small_config(fake_mnist, run={"precision": "bf16"}, optim={"epochs": 3}), tmp_path / "run", "t")
    assert summary["test_error"] < 0.1, summary
    assert summary["config"]["run"]["precision"] == "bf16"


def test_greedy_schedule_trains_one_layer_at_a_time(fake_mnist, tmp_path, monkeypatch):
    active, forward = [], FFNetwork.forward
    monkeypatch.setattr(FFNetwork, "forward",
                        lambda self, *a, **k: active.append(k.get("active")) or forward(self, *a, **k))
    cfg = small_config(
        fake_mnist,
        model={"readout": False, "norm": "l2", "init": "torch", "peer_lambda": 0.0},  # the article: no peer loss
        objective={"goodness": "mean_squares", "threshold": 3.0, "negatives": "random", "predict": "goodness",
                   "label_value": "max"},
        optim={"name": "adam", "lr": 0.03, "greedy_steps": 100, "chunk_size": 500, "epochs": 1, "weight_decay": 0.0,
               "schedule": "constant"},
    )
    summary = train(cfg, tmp_path / "run", "test")
    assert active[:200] == [{"layer0"}] * 100 + [{"layer1"}] * 100  # the first chunk: 100 steps a layer
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert set(records[0]["layers"]) == {"layer0", "layer1"}
    assert summary["test_error"] < 0.8, summary  # chance is 0.9; the article needs 1000 steps for its 4.7 %
    layer0 = records[0]["layers"]["layer0"]  # averaged over every step of the epoch, from the first on
    assert layer0["acc"] > 0.5 and layer0["g_pos"] > layer0["g_neg"], records


def test_cli_errors_are_one_line_without_traceback(fake_mnist, tmp_path):
    cases = [
        ["train", "--set", "optim.lrr=1"],
        ["train", "--preset", "nope"],
        ["train", "--data-dir", str(tmp_path / "empty"), "--set", "data.download=false"],
        ["eval", str(tmp_path)],
    ]
    for args in cases:
        proc = subprocess.run([sys.executable, "-m", "forward_forward.cli", *args], capture_output=True, text=True)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("ff: error: ")
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_eval_refuses_a_weights_file_that_is_not_tensors(fake_mnist, tmp_path):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test")

    (run / "model.pt").write_bytes(pickle.dumps({"x": _Evil()}))
    cli = [sys.executable, "-m", "forward_forward.cli"]
    proc = subprocess.run([*cli, "eval", str(run)], capture_output=True, text=True)
    assert proc.returncode == 2 and "refused" in proc.stderr and "pwned" not in proc.stdout


@pytest.mark.slow
def test_tiny_preset_on_real_mnist(real_data_dir, tmp_path):
    cfg = merge(presets.preset("tiny"), {"data": {"data_dir": str(real_data_dir)}, "run": {"progress": False}})
    summary = train(cfg, tmp_path / "run", "tiny")
    assert summary["test_error"] < 0.08, summary


def test_predict_best_reports_the_way_with_the_lower_validation_error(fake_mnist, tmp_path, capsys):
    summary = train(small_config(fake_mnist, objective={"predict": "best"}), tmp_path / "run", "test")
    chosen = min(("softmax", "goodness", "combined"), key=lambda how: summary[f"val_error_{how}"])
    assert summary["predict"] == chosen
    assert summary["test_error"] == summary[f"test_error_{chosen}"]
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert f"test error {100 * summary['test_error']:.2f} % (predict by {chosen}" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run"), "--split", "val", "--predict", "combined"]) == 0
    assert f"val error {100 * summary['val_error_combined']:.2f} % (predict by combined, goodness weight 3)" in (
        capsys.readouterr().out
    )
    assert main(["eval", str(tmp_path / "run"), "--split", "train", "--predict", "softmax"]) == 0
    assert "train error " in capsys.readouterr().out  # the training images: how well the net fits them
    # weight 0 leaves the readout alone
    assert main(["eval", str(tmp_path / "run"), "--predict", "combined", "--goodness-weight", "0"]) == 0
    assert f"test error {100 * summary['test_error_softmax']:.2f} %" in capsys.readouterr().out
    assert main(["eval", str(tmp_path / "run"), "--predict", "combined", "--goodness-weight", "-1"]) == 2
    assert "objective.goodness_weight" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "run"), "--predict", "goodness", "--goodness-weight", "2"]) == 2


def test_val_size_zero_trains_on_every_image_and_reports_no_validation(fake_mnist, tmp_path, capsys):
    cfg = small_config(fake_mnist, data={"val_size": 0}, objective={"predict": "goodness"}, optim={"epochs": 1})
    summary = train(cfg, tmp_path / "run", "test")
    assert summary["train_images"] == 1200 and summary["val_error"] is None
    assert summary["test_error"] < 0.5, summary
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "val_error" not in records[0]
    with pytest.raises(FFError, match="val_size = 0"):
        small_config(fake_mnist, data={"val_size": 0}, objective={"predict": "best"})
    assert main(["eval", str(tmp_path / "run"), "--split", "val"]) == 2
    assert "no validation images" in capsys.readouterr().err


def test_a_failed_start_leaves_nothing_and_the_corrected_command_runs(fake_mnist, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["train", "--preset", "tiny", "--data-dir", str(fake_mnist), "--set", "data.verify_checksums=false",
            "--set", "data.val_size=200", "--set", "model.hidden=[32]", "--epochs", "1", "--no-progress"]
    for bad, message in ((["--set", "optim.batch_size=100000"], "larger than the 1000 training images"),
                         (["--set", "model.layer=local", "--set", "model.kernel=40"], "does not fit")):
        assert main(base + bad + ["--run-dir", "x"]) == 2
        assert message in capsys.readouterr().err
        assert main(base + bad) == 2
        assert not (tmp_path / "x").exists() and not (tmp_path / "runs").exists()
    assert main(base + ["--run-dir", "x"]) == 0


@pytest.mark.parametrize("native", [True, False])
def test_a_bf16_run_is_scored_in_bf16_where_native_by_training_eval_and_plot(fake_mnist, tmp_path, monkeypatch,
                                                                             capsys, native):
    import torch

    from forward_forward.models import FFNetwork

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    seen: list[bool] = []  # whether bf16 autocast was on at each prediction
    original = FFNetwork.predictions
    monkeypatch.setattr(FFNetwork, "predictions",
                        lambda self, *a, **k: seen.append(torch.is_autocast_enabled("cpu")) or original(self, *a, **k))
    summary = train(small_config(fake_mnist, run={"precision": "bf16"}, optim={"epochs": 1}), tmp_path / "run", "t")
    assert seen and set(seen) == {native}  # validation and the final scoring; emulated bf16 is not used to score
    seen.clear()
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--predict", summary["predict"]]) == 0
    assert set(seen) == {native}
    assert f"test error {100 * summary['test_error']:.2f} %" in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    seen.clear()
    assert main(["plot", str(tmp_path / "run"), "--samples", "50"]) == 0  # its confusion matrix, as scored
    assert set(seen) == {native}


def test_rerunning_a_run_from_its_config_and_extending_it(fake_mnist, tmp_path, capsys):
    first = tmp_path / "first"
    summary = train(small_config(fake_mnist, optim={"epochs": 2}), first, "test")  # a run made from Python
    assert (first / "command.txt").read_text().startswith("# started from Python")
    again = tmp_path / "again"
    assert main(["train", "--config", str(first / "config.json"), "--run-dir", str(again)]) == 0
    assert json.loads((again / "summary.json").read_text())["test_error"] == summary["test_error"]
    assert (again / "command.txt").read_text().startswith("ff train --config")
    capsys.readouterr()
    # the run's config.json is a base, as a preset is: its twin is one --set away, its FF-only values reset
    assert main(["train", "--config", str(first / "config.json"), "--set", "model.kind=backprop",
                 "--set", "objective.predict=softmax", "--print-config"]) == 0
    out, err = capsys.readouterr()
    twin = merge(Config(), tomllib.loads(out))
    assert twin.model.kind == "backprop" and twin.model.peer_lambda == 0
    assert twin.objective == ObjectiveConfig(predict="softmax")
    assert "model.peer_lambda: " in err and "config.json's value is not read" in err
    # a config.json of an earlier version holding a value it never read (SGD's momentum under Adam) is accepted,
    # that value back at its default with a notice
    saved = json.loads((first / "config.json").read_text())
    saved["optim"].update(name="adam", momentum=0.5)
    (tmp_path / "old.json").write_text(json.dumps(saved))
    assert main(["train", "--config", str(tmp_path / "old.json"), "--print-config"]) == 0
    out, err = capsys.readouterr()
    assert merge(Config(), tomllib.loads(out)).optim.momentum == OptimConfig().momentum
    assert "optim.momentum: " in err and "old.json's value is not read" in err
    # a JSON file of your own (no run's "preset" entry) is read as a TOML file is: its unread values are refused
    (tmp_path / "mine.json").write_text(json.dumps({"optim": {"name": "adam", "momentum": 0.5}}))
    assert main(["train", "--config", str(tmp_path / "mine.json"), "--print-config"]) == 2
    assert "optim.momentum" in capsys.readouterr().err
    (tmp_path / "mine.toml").write_text('preset = "tiny"\n[optim]\nname = "adam"\n')  # a TOML file names none
    assert main(["train", "--config", str(tmp_path / "mine.toml"), "--print-config"]) == 2
    assert "unknown config section 'preset'" in capsys.readouterr().err
    for flags, words in ((["--print-config"], "this run's is"), (["--preset", "tiny"], "drop --preset")):
        assert main(["train", "--resume", str(first), *flags]) == 2
        assert words in capsys.readouterr().err
    assert main(["train", "--resume", str(first), "--epochs", "1"]) == 2
    assert "never shortened" in capsys.readouterr().err
    assert main(["train", "--resume", str(first), "--epochs", "4", "--no-progress"]) == 0
    assert "extending" in capsys.readouterr().out
    epochs = [json.loads(line)["epoch"] for line in (first / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]
    assert json.loads((first / "config.json").read_text())["optim"]["epochs"] == 4
    assert json.loads((first / "summary.json").read_text())["epochs"] == 4


def test_your_own_loop_from_the_readme_matches_ff_train_exactly(fake_mnist, tmp_path):
    import torch

    from forward_forward import build_model
    from forward_forward.data import load
    from forward_forward.training import build_optimizer, error_rate

    cfg = small_config(fake_mnist, optim={"epochs": 2}, run={"deterministic": True})
    reference = train(cfg, tmp_path / "run", "test")

    # the README's loop, line for line
    torch.manual_seed(cfg.run.seed)
    data = load(cfg.data)
    model = build_model(cfg, data.shape, data.num_classes)
    steps = len(data.train) // cfg.optim.batch_size
    optimizer, schedule = build_optimizer(cfg, model, total_steps=cfg.optim.epochs * steps)
    order_rng = torch.Generator().manual_seed(cfg.run.seed)
    for _epoch in range(cfg.optim.epochs):
        order = torch.randperm(len(data.train), generator=order_rng)
        for step in range(steps):
            batch = order[step * cfg.optim.batch_size : (step + 1) * cfg.optim.batch_size]
            losses, stats = model(data.train.images[batch], data.train.labels[batch])
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            schedule.step()
    error = error_rate(model, data.test, reference["predict"], 1000, torch.device("cpu"))
    assert error == reference["test_error"]
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_score_ways_limits_the_end_of_run_scoring(fake_mnist, tmp_path, capsys):
    summary = train(small_config(fake_mnist, optim={"epochs": 1}, objective={"predict": "softmax"},
                                 run={"score_ways": ["softmax"]}), tmp_path / "one", "t")
    assert "test_error_softmax" in summary and "test_error_goodness" not in summary
    with pytest.raises(FFError, match="must be among run.score_ways"):
        small_config(objective={"predict": "goodness"}, run={"score_ways": ["softmax"]})
    unsup = small_config(fake_mnist, objective={"negatives": "hybrid", "predict": "best"},
                         run={"score_ways": ["goodness"]})
    with pytest.raises(FFError, match="does not predict by"):
        train(unsup, tmp_path / "two", "t")
    assert not (tmp_path / "two").exists()


def test_eval_per_layer_scores_each_layer_by_its_goodness(fake_mnist, tmp_path, capsys):
    train(small_config(fake_mnist, optim={"epochs": 1}), tmp_path / "run", "test")
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run"), "--per-layer"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("  layer0 alone, by goodness: test error") and lines[2].startswith("  layer1 alone")
    figures = pytest.importorskip("forward_forward.figures")
    from forward_forward.training import load_trained

    cfg, model, data, _ = load_trained(tmp_path / "run")
    expected = figures.analyse(model, data, "softmax", 50)["layer_error"]["layer1"]
    assert f"{100 * expected:.2f} %" in lines[2]


def test_a_start_that_fails_after_its_files_were_written_leaves_nothing(fake_mnist, tmp_path, monkeypatch):
    from forward_forward.models import FFNetwork

    def broken(self, *args, **kwargs):
        raise FFError("a part of this network failed on its first step")

    monkeypatch.setattr(FFNetwork, "forward", broken)
    with pytest.raises(FFError, match="failed on its first step"):
        train(small_config(fake_mnist, optim={"epochs": 1}), tmp_path / "run", "test")
    assert not (tmp_path / "run").exists()


def test_extending_with_a_damaged_checkpoint_leaves_the_config_as_it_was(fake_mnist, tmp_path, capsys):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test")
    before = (run / "config.json").read_text()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert main(["train", "--resume", str(run), "--epochs", "3", "--device", "cpu"]) == 2
    assert (run / "config.json").read_text() == before
