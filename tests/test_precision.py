"""run.precision = auto: bf16 only where the device computes it natively and the run's own step is faster
in it, recorded in the run; the timing leaves the run as it would have been."""

import json
import os
import shutil

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from forward_forward import presets
from forward_forward import sweep as sweep_mod
from forward_forward.errors import FFError
from forward_forward.sweep import Sweep, run_sweep
from forward_forward.train import train
from forward_forward.training import calibrate, distributed
from forward_forward.training import device as device_mod
from tests.conftest import ctrl_c_at_step, small_config
from tests.test_distributed import _free_port


def _bf16(monkeypatch, native: bool) -> None:
    """This CPU as one with (or without) native bf16."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)


def test_auto_is_fp32_without_native_bf16_and_times_nothing(fake_mnist, tmp_path, monkeypatch):
    _bf16(monkeypatch, False)
    monkeypatch.setattr(calibrate, "step_ms", lambda *a: pytest.fail("a CPU without native bf16 timed a step"))
    summary = train(small_config(fake_mnist, run={"precision": "auto"}, optim={"epochs": 1}), tmp_path / "run", "t")
    assert summary["precision"] == "fp32" and summary["config"]["run"]["precision"] == "fp32"
    assert summary["precision_reason"] == "auto: this CPU has no AVX512-BF16 or AMX"


@pytest.mark.parametrize(("fp32_ms", "bf16_ms", "chosen"), [(10.0, 6.0, "bf16"), (6.0, 10.0, "fp32"),
                                                            (8.0, 8.0, "fp32")])
def test_auto_takes_bf16_only_where_its_step_is_faster_and_records_why(fake_mnist, tmp_path, monkeypatch, capsys,
                                                                       fp32_ms, bf16_ms, chosen):
    _bf16(monkeypatch, True)
    monkeypatch.setattr(calibrate, "step_ms", lambda *a: {"fp32": fp32_ms, "bf16": bf16_ms})
    summary = train(small_config(fake_mnist, run={"precision": "auto"}, optim={"epochs": 1}), tmp_path / "run", "t")
    assert summary["precision"] == chosen and summary["config"]["run"]["precision"] == chosen
    why = f"auto: this CPU has AVX512-BF16, and a training step of this model took {bf16_ms:.3g} ms in bf16 against"
    assert summary["precision_reason"].startswith(why)
    assert f"precision {chosen} ({why}" in capsys.readouterr().out
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["run"]["precision"] == chosen  # a resume on another machine does what this run did


def test_a_resumed_run_says_its_precision_came_from_its_start(fake_mnist, tmp_path, monkeypatch):
    """config.json holds what `auto` chose: the resumed run keeps it (a new timing might choose the other halfway
    through), times nothing, and does not call it configured."""
    _bf16(monkeypatch, True)
    monkeypatch.setattr(calibrate, "step_ms", lambda *a: {"fp32": 6.0, "bf16": 10.0})
    cfg = small_config(fake_mnist, run={"precision": "auto"}, optim={"epochs": 1, "batch_size": 10})
    with ctrl_c_at_step(5), pytest.raises(FFError, match="interrupted at epoch 1, step 5"):
        train(cfg, tmp_path / "run", "t")
    monkeypatch.setattr(calibrate, "step_ms", lambda *a: pytest.fail("a resumed run timed a step again"))
    summary = train(cfg, tmp_path / "run", "t", resume=True)  # as the API is called: the config says auto
    assert summary["precision"] == "fp32"
    assert summary["precision_reason"] == "resumed in the precision its start chose (config.json)"


def test_a_configured_precision_is_kept_and_times_nothing(monkeypatch):
    _bf16(monkeypatch, True)
    monkeypatch.setattr(calibrate, "step_ms", lambda *a: pytest.fail("a configured precision was timed"))
    for precision in ("fp32", "bf16"):
        cfg = small_config(run={"precision": precision})
        assert calibrate.choose_precision(cfg, lambda: None, None, torch.device("cpu")) == (precision, "as configured")
    assert {name: presets.preset(name).run.precision for name in presets.PRESETS} == dict.fromkeys(presets.PRESETS,
                                                                                                  "auto")


def test_timing_the_steps_leaves_the_run_as_it_would_have_been(fake_mnist, tmp_path, monkeypatch):
    """Real timed steps (bf16 emulated where the CPU lacks it): the run that timed them ends with the weights
    of the same run given the precision it chose, so neither its model nor its random stream was touched."""
    _bf16(monkeypatch, True)
    timed: list[dict] = []
    step_ms = calibrate.step_ms
    monkeypatch.setattr(calibrate, "step_ms", lambda *a: timed.append(step_ms(*a)) or timed[-1])
    fields = {"optim": {"epochs": 1}, "data": {"train_limit": 400}}
    auto = train(small_config(fake_mnist, run={"precision": "auto"}, **fields), tmp_path / "auto", "t")
    assert len(timed) == 1 and all(ms > 0 for ms in timed[0].values())
    given = train(small_config(fake_mnist, run={"precision": auto["precision"]}, **fields), tmp_path / "given", "t")
    assert given["precision_reason"] == "as configured"
    first, second = (torch.load(tmp_path / run / "model.pt") for run in ("auto", "given"))
    assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def _choose(rank: int, world: int, port: int, out: str, native_on_1: bool) -> None:
    """One process that times its steps as rank `rank` would: rank 0 finds bf16 a little faster, rank 1
    finds it much slower (or, without `native_on_1`, has no native bf16); writes what it chose."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.cpu._is_avx512_bf16_supported = lambda: rank == 0 or native_on_1
    torch.cpu._is_amx_tile_supported = lambda: False
    calibrate.step_ms = lambda *a: {"fp32": 10.0, "bf16": 9.0 if rank == 0 else 20.0}
    precision, why = calibrate.choose_precision(small_config(run={"precision": "auto"}), lambda: None, None,
                                                torch.device("cpu"), distributed.Ranks(rank, world))
    with open(f"{out}.{rank}", "w") as f:
        f.write(precision + "\n" + why)
    dist.destroy_process_group()


@pytest.mark.parametrize("native_on_1", [True, False])
def test_the_processes_of_a_parallel_run_agree_on_the_precision(tmp_path, native_on_1):
    """From the mean of their times; and where one process has no native bf16, none times (none waits)."""
    mp.start_processes(_choose, args=(2, _free_port(), str(tmp_path / "chose"), native_on_1), nprocs=2,
                       start_method="spawn")
    chosen = [(tmp_path / f"chose.{rank}").read_text().splitlines() for rank in range(2)]
    assert chosen[0][0] == chosen[1][0] == "fp32"
    if native_on_1:
        assert chosen[0] == chosen[1] and "took 14.5 ms in bf16 against 10 ms in fp32" in chosen[0][1]
    else:
        assert chosen[0][1] == "auto: a process of this run has no native bf16"
        assert chosen[1][1] == "auto: this CPU has no AVX512-BF16 or AMX"


def test_resolve_precision_is_the_hardware_alone(monkeypatch):
    _bf16(monkeypatch, False)
    assert device_mod.resolve_precision("auto", torch.device("cpu")) == ("fp32", "auto: this CPU has no AVX512-BF16 "
                                                                                  "or AMX")
    assert device_mod.resolve_precision("fp32", torch.device("cpu")) == ("fp32", "as configured")


def test_a_sweep_times_one_step_and_every_auto_run_trains_in_what_it_chose(fake_mnist, tmp_path, monkeypatch):
    """Runs timing their own steps could choose differently (side by side, or on a resume) and the grid would
    compare precisions too: the sweep times once, at a run's thread count, and keeps its choice for a resume."""
    _bf16(monkeypatch, True)
    timed: list[int] = []
    monkeypatch.setattr(calibrate, "step_ms", lambda *a: timed.append(torch.get_num_threads()) or
                        {"fp32": 10.0, "bf16": 6.0})
    overrides = {"data": {"data_dir": str(fake_mnist), "verify_checksums": False, "download": False, "val_size": 200,
                          "train_limit": 200},
                 "model": {"hidden": [32, 32]}, "optim": {"epochs": 1, "batch_size": 50},
                 "run": {"device": "cpu", "threads": 1}}
    sweep = Sweep(preset="tiny", grid={"run.precision": ["auto", "fp32"], "optim.lr": [0.01, 0.02]}, seeds=[0],
                  overrides=overrides)
    out = tmp_path / "s"
    run_sweep(sweep, out, progress=False)
    assert timed == [1]  # once, with the one thread each run has
    kept = json.loads((out / sweep_mod.PRECISION).read_text())["cpu"]
    assert kept["precision"] == "bf16" and "took 6 ms in bf16 against 10 ms in fp32" in kept["reason"]
    for run in (out / "runs").iterdir():
        summary = json.loads((run / "summary.json").read_text())
        assert summary["precision"] == ("bf16" if "precision=auto" in run.name else "fp32"), run.name
        assert summary["precision_reason"] == "as configured"

    monkeypatch.setattr(calibrate, "step_ms", lambda *a: pytest.fail("a resumed sweep timed a step again"))
    shutil.rmtree(out / "runs" / "precision=auto,lr=0.02,seed=0")  # as if it never ran
    run_sweep(sweep, out, progress=False)
    again = json.loads((out / "runs" / "precision=auto,lr=0.02,seed=0" / "summary.json").read_text())
    assert again["precision"] == "bf16"

    (out / sweep_mod.PRECISION).unlink()  # a sweep begun before the record: its started runs say what auto chose
    shutil.rmtree(out / "runs" / "precision=auto,lr=0.02,seed=0")
    run_sweep(sweep, out, progress=False)
    assert json.loads((out / sweep_mod.PRECISION).read_text())["cpu"] == {
        "precision": "bf16", "reason": "the precision its runs already started in"}
    again = json.loads((out / "runs" / "precision=auto,lr=0.02,seed=0" / "summary.json").read_text())
    assert again["precision"] == "bf16"

    (out / sweep_mod.PRECISION).write_text('{"cpu": {"precision": "fp16"}}')
    with pytest.raises(FFError, match="precision.json names no precision"):
        run_sweep(sweep, out, progress=False)
    (out / sweep_mod.PRECISION).unlink()
    config = out / "runs" / "precision=auto,lr=0.01,seed=0" / "config.json"
    config.write_text(config.read_text().replace('"precision": "bf16"', '"precision": "fp32"'))
    with pytest.raises(FFError, match="already trained in both fp32 and bf16"):
        run_sweep(sweep, out, progress=False)
