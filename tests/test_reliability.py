"""Runs that survive: resume after SIGKILL, atomic checkpoints, divergence, Ctrl-C, a full disk."""

import errno
import json
import random
import signal
import subprocess
import sys
import time

import pytest
import torch

from forward_forward import checkpoint, runs
from forward_forward.errors import FFError
from forward_forward.train import train
from tests.conftest import ctrl_c_at_step, small_config

TRAIN_ARGS = [
    "--set", "data.verify_checksums=false", "--set", "data.download=false", "--set", "data.val_size=200",
    "--set", "model.hidden=[64, 64]", "--set", "objective.predict_layers_from=0", "--set", "optim.epochs=4",
    "--set", "optim.batch_size=20", "--set", "run.deterministic=true", "--set", "run.device=cpu",
    "--set", "run.threads=1", "--no-progress",
]


def ff(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "forward_forward.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def final_weights(run_dir):
    return torch.load(run_dir / "model.pt", weights_only=True)


def test_sigkill_at_random_points_then_resume_gives_the_uninterrupted_weights(fake_mnist, tmp_path):
    reference = tmp_path / "reference"
    proc = ff("train", "--preset", "tiny", "--data-dir", str(fake_mnist), "--run-dir", str(reference), *TRAIN_ARGS)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    duration = json.loads((reference / "summary.json").read_text())["train_seconds"]

    run = tmp_path / "killed"
    rng = random.Random(0)
    proc = ff("train", "--preset", "tiny", "--data-dir", str(fake_mnist), "--run-dir", str(run), *TRAIN_ARGS)
    kills = 0
    while kills < 4:
        time.sleep(rng.uniform(0.5, 1.5 + duration / 2))  # import and data loading take a second or two
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        if (run / "config.json").exists():
            proc = ff("train", "--resume", str(run), "--no-progress")
        else:  # killed before the run directory existed: start it again
            proc = ff("train", "--preset", "tiny", "--data-dir", str(fake_mnist), "--run-dir", str(run), *TRAIN_ARGS)
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert kills >= 2, "the run finished before it could be killed twice; the test proves nothing"
    got, want = final_weights(run), final_weights(reference)
    assert set(got) == set(want)
    for name in want:
        assert torch.equal(got[name], want[name]), name
    epochs = [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert epochs == [1, 2, 3, 4]


def test_ctrl_c_saves_a_checkpoint_mid_epoch_and_resume_matches(fake_mnist, tmp_path):
    cfg = small_config(fake_mnist, optim={"epochs": 2, "batch_size": 10}, run={"deterministic": True})
    reference = train(cfg, tmp_path / "reference", "test")

    run = tmp_path / "interrupted"
    with ctrl_c_at_step(37), pytest.raises(FFError, match="interrupted at epoch 1, step 37"):
        train(cfg, run, "test")  # in the middle of epoch 1
    state = checkpoint.load(run)
    assert (state["epoch"], state["step"]) == (1, 37)
    summary = train(cfg, run, "test", resume=True)
    assert summary["test_error"] == reference["test_error"]
    for name, tensor in final_weights(tmp_path / "reference").items():
        assert torch.equal(final_weights(run)[name], tensor), name


def test_the_meter_traces_a_divergence_across_steps_of_different_losses_and_keeps_nothing_new_per_step():
    """Steps may name different losses (a greedy schedule trains one at a time); the meter finds the
    first non-finite one. Its sums are added to in place: a small tensor kept from every step would
    fragment the heap of a CPU run with large steps."""
    from forward_forward.training.metrics import Meter

    meter = Meter(first_step=10)
    sums = None
    for step in range(200):
        value = torch.tensor(float("nan") if step == 151 else 0.5)
        losses = {"layer0": value, "layer1": value} if step % 2 else {"readout": value}
        meter.add(losses, {name: {"acc": torch.tensor(1.0), "g": 2.0} for name in losses})
        if step == 1:
            sums = {key: id(total) for key, total in meter.sums.items() if isinstance(total, torch.Tensor)}
    assert len(sums) == 6 and {key: id(meter.sums[key]) for key in sums} == sums  # the same tensors, in place
    assert meter.means()["readout"]["acc"] == 1.0 and meter.means()["layer0"]["g"] == 2.0
    with pytest.raises(FFError, match=r"loss of layer0 became nan at epoch 4, step 162"):
        meter.check_finite(4)


def test_divergence_names_layer_and_step_and_keeps_the_last_good_checkpoint(fake_mnist, tmp_path):
    cfg = small_config(fake_mnist, optim={"epochs": 3})
    run = tmp_path / "run"
    original = torch.optim.SGD.step
    calls = {"n": 0}

    def poison_in_epoch_2(self, *args, **kwargs):
        calls["n"] += 1
        result = original(self, *args, **kwargs)
        if calls["n"] == 20 + 5:  # 20 steps per epoch: the 5th step of epoch 2
            with torch.no_grad():
                self.param_groups[0]["params"][1].fill_(float("nan"))  # the second layer's weights
        return result

    torch.optim.SGD.step = poison_in_epoch_2
    try:
        with pytest.raises(FFError, match=r"loss of layer1 became nan at epoch 2, step 6"):
            train(cfg, run, "test")
    finally:
        torch.optim.SGD.step = original
    state = checkpoint.load(run)
    assert (state["epoch"], state["step"]) == (2, 0)
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_a_full_disk_leaves_the_previous_checkpoint_intact(fake_mnist, tmp_path, monkeypatch):
    cfg = small_config(fake_mnist, optim={"epochs": 2})
    run = tmp_path / "run"
    original = runs.write_atomic
    writes = {"n": 0}

    def full_disk_on_second_checkpoint(path, write):
        if path.name == checkpoint.CHECKPOINT:
            writes["n"] += 1
            if writes["n"] == 2:
                def partial(f):
                    f.write(b"half a checkpoint")
                    raise OSError(errno.ENOSPC, "No space left on device")
                return original(path, partial)
        return original(path, write)

    monkeypatch.setattr(runs, "write_atomic", full_disk_on_second_checkpoint)
    with pytest.raises(FFError, match="disk is full.*previous checkpoint is intact"):
        train(cfg, run, "test")
    state = checkpoint.load(run)
    assert (state["epoch"], state["step"]) == (2, 0)
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == [runs.LOCK]  # no temporary file left


def test_a_tampered_checkpoint_is_refused(fake_mnist, tmp_path):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test")
    (run / checkpoint.CHECKPOINT).write_bytes(b"\x80\x04garbage")
    with pytest.raises(FFError, match="refused"):
        train(small_config(fake_mnist, optim={"epochs": 1}), run, "test", resume=True)


def test_training_into_a_finished_run_is_refused_and_keeps_it(fake_mnist, tmp_path):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test")
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(FFError, match=r"already holds a run.*ff train --resume"):
        train(small_config(fake_mnist, optim={"epochs": 2}), run, "test")
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
