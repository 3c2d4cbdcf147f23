"""`ff sweep`: the grid, seeds, the table, resuming, failures and the checks made before any run."""

import json

import pytest

from forward_forward.cli import main
from forward_forward.errors import FFError
from forward_forward.sweep import Sweep, check, parse_grid, run_sweep


def _sweep(fake_mnist, grid, seeds=(0, 1)) -> Sweep:
    overrides = {"data": {"data_dir": str(fake_mnist), "verify_checksums": False, "download": False, "val_size": 200},
                 "model": {"hidden": [32, 32]}, "optim": {"epochs": 1, "batch_size": 50}, "run": {"device": "cpu"}}
    return Sweep(preset="tiny", grid=grid, seeds=list(seeds), overrides=overrides)


def test_grid_values_are_parsed_as_toml():
    assert parse_grid("objective.goodness=sum_squares,mean_abs") == ("objective.goodness", ["sum_squares", "mean_abs"])
    assert parse_grid("optim.lr=0.01, 0.1") == ("optim.lr", [0.01, 0.1])
    assert parse_grid("model.hidden=[[500],[500,500]]") == ("model.hidden", [[500], [500, 500]])
    with pytest.raises(FFError, match="--grid expects"):
        parse_grid("objective.goodness")


def test_sweep_runs_every_point_and_seed_and_tabulates_mean_and_std(fake_mnist, tmp_path):
    sweep = _sweep(fake_mnist, {"objective.goodness": ["sum_squares", "mean_abs"]})
    rows = run_sweep(sweep, tmp_path / "s", progress=False)
    runs = sorted(p.name for p in (tmp_path / "s" / "runs").iterdir())
    assert runs == [f"goodness={g},seed={s}" for g in ("mean_abs", "sum_squares") for s in (0, 1)]
    for name in runs:  # each run really had its own goodness and seed
        cfg = json.loads((tmp_path / "s" / "runs" / name / "config.json").read_text())
        assert name == f"goodness={cfg['objective']['goodness']},seed={cfg['run']['seed']}"
    assert [r["runs"] for r in rows] == [2, 2]
    for row in rows:  # the row is the mean of its own two runs
        g = row["point"]["objective.goodness"]
        errors = [json.loads((tmp_path / "s" / "runs" / f"goodness={g},seed={s}" / "summary.json").read_text())
                  ["test_error"] for s in (0, 1)]
        assert row["test_error"][0] == pytest.approx(sum(errors) / 2)
    table = (tmp_path / "s" / "results.md").read_text()
    assert "| goodness | val error % | test error % | train s | runs |" in table
    assert table.count("±") >= 4 and "| sum_squares |" in table and "| mean_abs |" in table
    assert (tmp_path / "s" / "results.png").stat().st_size > 1000
    assert json.loads((tmp_path / "s" / "results.json").read_text())["rows"][0]["runs"] == 2


def test_a_sweep_without_a_grid_trains_the_preset_once_per_seed(fake_mnist, tmp_path):
    """The seeds of one config: the mean and std a results table reports, from one command."""
    rows = run_sweep(_sweep(fake_mnist, {}, seeds=(0, 1, 2)), tmp_path / "s", progress=False)
    assert sorted(p.name for p in (tmp_path / "s" / "runs").iterdir()) == ["seed=0", "seed=1", "seed=2"]
    errors = [json.loads((tmp_path / "s" / "runs" / f"seed={s}" / "summary.json").read_text())["test_error"]
              for s in (0, 1, 2)]
    assert len(rows) == 1 and rows[0]["runs"] == 3
    assert rows[0]["test_error"][0] == pytest.approx(sum(errors) / 3)
    table = (tmp_path / "s" / "results.md").read_text()
    assert table.startswith("# Preset tiny (seeds [0, 1, 2])") and "| preset | val error % |" in table
    assert "| tiny | " in table and (tmp_path / "s" / "results.png").stat().st_size > 1000


def test_a_repeated_sweep_skips_finished_runs_and_a_different_one_is_refused(fake_mnist, tmp_path):
    sweep = _sweep(fake_mnist, {"objective.goodness": ["sum_squares"]}, seeds=(0,))
    run_sweep(sweep, tmp_path / "s", progress=False)
    summary = tmp_path / "s" / "runs" / "goodness=sum_squares,seed=0" / "summary.json"
    stamp = summary.stat().st_mtime_ns
    run_sweep(sweep, tmp_path / "s", progress=False)
    assert summary.stat().st_mtime_ns == stamp
    # a run stopped before its first checkpoint holds only its config: the sweep starts it again
    for name in ("summary.json", "checkpoint.pt", "model.pt"):
        (summary.parent / name).unlink()
    run_sweep(sweep, tmp_path / "s", progress=False)
    assert summary.exists()
    other = _sweep(fake_mnist, {"objective.goodness": ["mean_abs"]}, seeds=(0,))
    with pytest.raises(FFError, match="holds a different sweep"):
        run_sweep(other, tmp_path / "s", progress=False)


def test_a_bad_grid_value_fails_before_any_run_and_a_diverging_run_is_recorded(fake_mnist, tmp_path):
    with pytest.raises(FFError, match="model.activation must be one of"):
        run_sweep(_sweep(fake_mnist, {"model.activation": ["relu", "relux"]}), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()
    rows = run_sweep(_sweep(fake_mnist, {"optim.lr": [0.01, 1e30]}, seeds=(0,)), tmp_path / "s", progress=False)
    assert rows[0]["runs"] == 1 and rows[1]["runs"] == 0 and "diverged" in rows[1]["failed"][0]
    assert "no checkpoint was written before it" in rows[1]["failed"][0]  # not "the last good one is kept"
    assert "Failed runs:" in (tmp_path / "s" / "results.md").read_text()


def test_cli_sweep_in_parallel_processes_from_a_toml_file(fake_mnist, tmp_path, capsys):
    toml = tmp_path / "sweep.toml"
    toml.write_text(f"""
[sweep]
seeds = 2
grid = {{ "model.activation" = ["relu", "gelu"] }}
[data]
data_dir = "{fake_mnist}"
verify_checksums = false
download = false
val_size = 200
[model]
hidden = [32]
[optim]
batch_size = 50
""")
    out = tmp_path / "s"
    assert main(["sweep", "--config", str(toml), "--epochs", "1", "--jobs", "2", "--out", str(out),
                 "--device", "cpu", "--no-progress", "--set", "objective.predict_layers_from=0"]) == 0
    printed = capsys.readouterr().out
    assert "| relu |" in printed and "| gelu |" in printed
    assert len(list((out / "runs").iterdir())) == 4


def test_an_error_that_is_not_the_grid_points_fault_stops_the_sweep_and_is_not_recorded(fake_mnist, tmp_path):
    sweep = _sweep(fake_mnist, {"objective.goodness": ["sum_squares"]}, seeds=(0,))
    sweep.overrides["data"]["data_dir"] = str(tmp_path / "nowhere")
    with pytest.raises(FFError, match="nowhere"):
        run_sweep(sweep, tmp_path / "s", progress=False)
    assert not list((tmp_path / "s").rglob("failed.txt"))  # fixing the data and rerunning trains it


def test_a_common_setting_applies_where_a_grid_point_reads_it_and_nowhere_is_refused(fake_mnist, tmp_path):
    sweep = _sweep(fake_mnist, {"model.peer_lambda": [0.0, 0.03]})
    sweep.overrides["model"]["peer_decay"] = 0.8  # peer normalisation's, on at one point of two
    assert check(sweep) == ["model.peer_decay"]
    off, reset = sweep.settled({"model.peer_lambda": 0.0}, 0)
    assert off.model.peer_decay == 0.9 and reset == ["model.peer_decay"]  # its run records the default it used
    on, reset = sweep.settled({"model.peer_lambda": 0.03}, 0)
    assert on.model.peer_decay == 0.8 and reset == []
    sweep.grid = {"model.peer_lambda": [0.0]}  # read by no run: a mistake, as in one run
    with pytest.raises(FFError, match="model.peer_decay is read by no run of this grid"):
        run_sweep(sweep, tmp_path / "nowhere", progress=False)
    assert not (tmp_path / "nowhere").exists()
    grid = _sweep(fake_mnist, {"model.peer_decay": [0.5, 0.8]})  # a grid field is never reset: refused
    grid.overrides["model"]["peer_lambda"] = 0.0
    with pytest.raises(FFError, match="model.peer_decay is read only with peer normalisation"):
        check(grid)


def test_duplicate_and_malformed_grids_fail_before_any_run(fake_mnist, tmp_path, capsys):
    with pytest.raises(FFError, match="name the same run: drop the duplicate"):
        run_sweep(_sweep(fake_mnist, {"optim.lr": [0.01, 1e-2]}), tmp_path / "dup", progress=False)
    for table, message in (("seeds = 1.5\ngrid = { \"optim.lr\" = [0.01] }", "seeds must be a count"),
                           ("grid = 5", "grid must be a table"),
                           ("grid = { lr = [0.01, 0.02] }", "must be section.key")):
        (tmp_path / "bad.toml").write_text(f"[sweep]\n{table}\n")
        assert main(["sweep", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


@pytest.mark.slow
def test_killing_the_sweep_parent_stops_its_workers(fake_mnist, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    args = [sys.executable, "-m", "forward_forward.cli", "sweep", "--out", str(tmp_path / "s"), "--jobs", "2",
            "--grid", "optim.lr=0.01,0.02,0.03,0.04", "--preset", "tiny", "--data-dir", str(fake_mnist),
            "--set", "data.verify_checksums=false", "--set", "data.val_size=200", "--epochs", "200", "--no-progress"]
    parent = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def children() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]) if entry.isdigit() else 0
            except OSError:
                continue
            if ppid == parent.pid:
                found.append(int(entry))
        return found

    deadline = time.time() + 60
    while not list((tmp_path / "s").glob("runs/*/checkpoint.pt")) and time.time() < deadline:
        time.sleep(0.5)  # both workers are training
    workers = children()
    assert workers, "no worker processes were found"
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.time() + 30
    while any(os.path.exists(f"/proc/{pid}") and "Z" not in open(f"/proc/{pid}/stat").read().split()[2]
              for pid in workers) and time.time() < deadline:
        time.sleep(0.5)
    alive = [pid for pid in workers if os.path.exists(f"/proc/{pid}")
             and open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"]
    assert not alive, f"workers {alive} went on after their sweep was killed"


def test_after_a_stop_no_queued_run_starts(fake_mnist, tmp_path):
    from forward_forward.sweep import STOP, _run_one

    sweep = _sweep(fake_mnist, {"optim.lr": [0.01]}, seeds=(0,))
    (tmp_path / "s" / "runs").mkdir(parents=True)
    (tmp_path / "s" / STOP).touch()  # what Ctrl-C or an error in the sweep's process writes
    run_dir = tmp_path / "s" / "runs" / "lr=0.01,seed=0"
    cfg = sweep.config({"optim.lr": 0.01}, 0)
    assert _run_one(cfg.to_dict(), run_dir, "tiny", 1) == {"stopped": True}
    assert not run_dir.exists()
    rows = run_sweep(sweep, tmp_path / "s", progress=False)  # the same command again clears it and runs
    assert rows[0]["runs"] == 1
