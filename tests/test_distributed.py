"""Data-parallel training on torch.distributed (gloo on loopback, 2 processes on CPU)."""

import json
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from forward_forward import runs
from forward_forward.config import from_dict, merge
from forward_forward.errors import FFError
from forward_forward.train import train
from tests.conftest import small_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, cfg: dict, run_dir: str, die_at: tuple[int, int] | None,
          resume: bool) -> None:
    """One process of a run, as torchrun would start it; an FFError's message goes to error<rank>.txt."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank), FF_DIST_TIMEOUT="60")
    torch.set_num_threads(1)
    if die_at is not None and rank == 1:
        from forward_forward.training.loop import Loop

        step = Loop.train_step

        def dies(self, epoch, s, order):
            if (epoch, s) == die_at:
                os._exit(3)  # killed: no message, no clean-up
            return step(self, epoch, s, order)

        Loop.train_step = dies
    try:
        train(from_dict(cfg), run_dir, resume=resume)
    except FFError as e:
        with open(f"{run_dir}.error{rank}.txt", "w") as f:
            f.write(str(e))


def _run(world: int, cfg, run_dir, die_at: tuple[int, int] | None = None, timeout: float = 120,
         resume: bool = False) -> list[int]:
    ctx = mp.get_context("spawn")
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, world, port, cfg.to_dict(), str(run_dir), die_at, resume))
             for r in range(world)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(0.0, deadline - time.monotonic()))
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert None not in codes, f"a rank hung past {timeout} s"
    return codes


def config(fake_mnist):
    # every wrong label of every image: negatives that do not depend on the random stream, so 2 shards
    # of 25 and one batch of 50 take the same steps; peer normalisation moves a buffer on every step
    return small_config(fake_mnist, objective={"negatives": "all"}, optim={"epochs": 2, "batch_size": 50},
                        data={"train_limit": 600}, run={"threads": 1})


@pytest.mark.slow
@pytest.mark.parametrize(("micro_batch", "recompute"), [(0, False), (10, False), (0, True)])
def test_two_processes_on_half_batches_give_the_weights_of_one_on_whole_batches(micro_batch, recompute, fake_mnist,
                                                                                tmp_path):
    """With micro-batches too (shards of 25 in parts of 10, 10 and 5): each rank accumulates its own and
    the ranks average once a step. With model.readout_recompute, DDP averages the gradient that the
    readout's recomputing backward pass gives."""
    cfg = merge(config(fake_mnist), {"model": {"readout_recompute": recompute}})
    if micro_batch:  # peer normalisation reads the whole batch: refused with micro-batches
        cfg = merge(cfg, {"model": {"peer_lambda": 0.0}})
    one = train(cfg, tmp_path / "one")
    if micro_batch:
        cfg = merge(cfg, {"optim": {"micro_batch": micro_batch}})
    assert _run(2, cfg, tmp_path / "two") == [0, 0]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["test_error"] == one["test_error"]
    a, b = runs.load_weights(tmp_path / "one"), runs.load_weights(tmp_path / "two")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    assert "stack.layers.0.mean_activity" in a  # the peer-normalisation means agree too


@pytest.mark.slow
@pytest.mark.parametrize("parallel", ["data", "pipeline"])
def test_a_rank_that_dies_ends_the_run_with_a_clear_error_and_the_run_resumes(parallel, fake_mnist, tmp_path):
    cfg = config(fake_mnist) if parallel == "data" else pipeline_config(fake_mnist)
    started = time.monotonic()
    codes = _run(2, cfg, tmp_path / "run", die_at=(2, 3), timeout=90)  # in epoch 2, after epoch 1's checkpoint
    assert codes[1] == 3 and time.monotonic() - started < 90
    message = (tmp_path / "run.error0.txt").read_text()
    assert "process 0 of 2 lost contact with the others" in message and "--resume" in message
    # the checkpoint of epoch 1 is whole: resumed on 2 processes, the run ends as one never killed would
    assert _run(2, cfg, tmp_path / "run", resume=True) == [0, 0]
    one = train(cfg, tmp_path / "one")
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test_error"] == one["test_error"]
    a, b = runs.load_weights(tmp_path / "one"), runs.load_weights(tmp_path / "run")
    assert all(torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4) for key in a)


def test_a_rank_that_finished_waits_for_the_others_before_leaving(monkeypatch):
    from forward_forward.training import distributed

    calls: list[str] = []
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "barrier", lambda: calls.append("barrier"))
    monkeypatch.setattr(distributed.dist, "destroy_process_group", lambda: calls.append("destroy"))
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "gloo")
    two = distributed.Ranks(rank=1, world=2)
    distributed.leave(two, finished=True)
    assert calls == ["barrier", "destroy"]
    calls.clear()
    distributed.leave(two, finished=False)  # a peer may be dead: waiting for it would hang
    assert calls == ["destroy"]
    calls.clear()
    monkeypatch.setattr(distributed.dist, "get_backend", lambda: "nccl")
    distributed.leave(two, finished=True)  # NCCL's watchdog would kill a rank that waits out rank 0's scoring
    assert calls == ["destroy"]
    calls.clear()
    distributed.leave(distributed.Ranks(), finished=True)  # one process has no group to leave
    assert calls == []


def test_a_batch_that_does_not_split_evenly_is_refused():
    from forward_forward.training.distributed import Ranks

    with pytest.raises(FFError, match="does not split into 3 equal shards"):
        Ranks(rank=0, world=3).shard(torch.arange(50))
    assert Ranks(rank=1, world=2).shard(torch.arange(6)).tolist() == [3, 4, 5]
    batch = torch.arange(5)
    assert Ranks().shard(batch) is batch  # one process: the whole batch, not a copy


@pytest.mark.slow
def test_ff_train_nproc_launches_torchrun_and_writes_one_run(fake_mnist, tmp_path):
    import subprocess
    import sys

    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "forward_forward.cli", "train", "--preset", "tiny", "--nproc", "2",
                           "--data-dir", str(fake_mnist), "--set", "data.verify_checksums=false", "--set",
                           "data.download=false", "--set", "data.val_size=200", "--epochs", "1", "--no-progress",
                           "--run-dir", str(run)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("test error") == 1  # process 0 reports; the other stays quiet
    assert json.loads((run / "summary.json").read_text())["processes"] == 2


def test_nproc_errors_are_one_sentence(monkeypatch, tmp_path, capsys):
    from forward_forward.cli import main
    from forward_forward.presets import DEFAULT_PRESET

    assert main(["train", "--nproc", "0"]) == 2
    assert "--nproc must be at least 1" in capsys.readouterr().err
    launched = []
    monkeypatch.setattr("subprocess.call", lambda command, env: launched.append(command) or 0)
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--nproc", "2", "--set", "optim.lr=-1"]) == 2  # refused before any process starts
    assert "optim.lr" in capsys.readouterr().err and not launched
    assert main(["train", "--nproc", "2"]) == 0  # the folder is named after the preset it will train
    folder = launched[0][launched[0].index("--run-dir") + 1]
    assert Path(folder).name.startswith(f"{DEFAULT_PRESET}-")
    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it
    assert main(["train", "--preset", "tiny"]) == 2
    assert "give --run-dir" in capsys.readouterr().err


def pipeline_config(fake_mnist):
    # random wrong labels from rank 0's stream (the one a single process has), a readout the last stage
    # trains on features gathered along the way, peer normalisation: what a stage must carry
    return small_config(fake_mnist, model={"hidden": [32, 24, 16]},
                        objective={"negatives": "random", "predict_layers_from": 0},
                        optim={"epochs": 2, "batch_size": 50}, data={"train_limit": 600},
                        run={"threads": 1, "parallel": "pipeline"})


@pytest.mark.slow
def test_a_two_stage_pipeline_takes_the_steps_of_one_process(fake_mnist, tmp_path):
    cfg = pipeline_config(fake_mnist)
    with pytest.warns(UserWarning, match="this run is one process and trains alone"):
        one = train(cfg, tmp_path / "one")  # run.parallel is read only by a distributed run, which says so
    assert _run(2, cfg, tmp_path / "two") == [0, 0]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert (summary["processes"], summary["parallel"]) == (2, "pipeline")
    assert summary["test_error"] == one["test_error"]
    a, b = runs.load_weights(tmp_path / "one"), runs.load_weights(tmp_path / "two")
    for key in a:  # layer 0 on rank 0, layers 1-2 and the readout on rank 1: all sent back whole
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    assert (tmp_path / "two" / "stage1" / "checkpoint.pt").exists()


def test_the_pipeline_refuses_what_it_cannot_carry():
    from forward_forward.training import pipeline
    from forward_forward.training.distributed import Ranks

    cfg = small_config(objective={"negatives": "hard"}, run={"parallel": "pipeline"})
    with pytest.raises(FFError, match="objective.negatives = hard .* use random or all"):
        pipeline.check(cfg, 2, Ranks(0, 2))
    generated = small_config(objective={"negatives": "generated", "predict": "softmax"}, run={"parallel": "pipeline"})
    with pytest.raises(FFError, match="objective.negatives = generated"):  # text it writes needs every layer
        pipeline.check(generated, 2, Ranks(0, 2))
    with pytest.raises(FFError, match="2 hidden layers for 3 processes"):
        pipeline.check(small_config(objective={"negatives": "random"}), 2, Ranks(0, 3))
    with pytest.raises(FFError, match="negatives_until"):  # sleep deprivation needs the minibatch schedule's phases
        pipeline.check(small_config(objective={"negatives": "random"}, optim={"negatives_until": 5}), 2, Ranks(0, 2))
    with pytest.raises(FFError, match="model.readout_recompute"):  # its features arrive from the stages below
        pipeline.check(small_config(objective={"negatives": "random"}, model={"readout_recompute": True}), 2,
                       Ranks(0, 2))
    for kind in ("competitive", "backprop"):  # a stage is the pieces of an FFNetwork's step
        with pytest.raises(FFError, match=f"model.kind = {kind} \\(the pipeline trains ff networks"):
            pipeline.check(small_config(model={"kind": kind}, objective={"predict": "softmax"}), 2, Ranks(0, 2))


def test_generated_negatives_are_refused_under_several_processes(fake_mnist, tmp_path):
    cfg = small_config(fake_mnist, objective={"negatives": "generated", "predict": "softmax", "label_coding": "auto"})
    _run(2, cfg, tmp_path / "run", timeout=60)
    assert "run it without --nproc" in (tmp_path / "run.error0.txt").read_text()
