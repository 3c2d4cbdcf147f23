"""Real faults end in one `ff: error:` line and lose nothing: a full disk, two writers, bad paths,
unreadable run files, absurd sizes, damaged checkpoints."""

import json
import os
import shutil
import subprocess

import pytest
import torch

from forward_forward import checkpoint, runs
from forward_forward.cli import main
from forward_forward.training import train
from tests.conftest import small_config


def ff_args(fake_mnist, run_dir, *extra):
    return ["train", "--preset", "tiny", "--data-dir", str(fake_mnist), "--set", "data.verify_checksums=false",
            "--set", "data.val_size=200", "--set", "model.hidden=[64, 64]", "--no-progress", "--run-dir",
            str(run_dir), *extra]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("ff: error: ") and "Traceback" not in err and err.count("\n") == 1, err
    return err


@pytest.fixture
def small_disk(tmp_path):
    """A 700 KB tmpfs: room for the first checkpoint of a 64 x 64 net, not for the second beside it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.decode().strip() or 'not root'})")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_real_full_disk_is_one_line_and_keeps_the_last_checkpoint(fake_mnist, small_disk, capsys):
    run = small_disk / "run"
    assert main(ff_args(fake_mnist, run, "--epochs", "3")) == 2
    assert "disk is full" in one_line_error(capsys)
    state = checkpoint.load(run)  # the checkpoint of epoch 1 is whole
    assert state is not None and state["epoch"] == 2
    assert not [p for p in run.iterdir() if p.name.startswith(".checkpoint.pt.")]  # no temporary file left


def test_a_full_disk_in_torch_save_is_one_line(fake_mnist, tmp_path, monkeypatch, capsys):
    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4416 vs 4310")

    monkeypatch.setattr(torch, "save", full)
    assert main(ff_args(fake_mnist, tmp_path / "run", "--epochs", "1")) == 2
    assert "disk is full" in one_line_error(capsys)


def test_a_second_writer_is_refused_while_the_first_holds_the_run(fake_mnist, tmp_path, capsys):
    run = tmp_path / "run"
    with runs.lock(run):
        assert main(ff_args(fake_mnist, run, "--epochs", "1")) == 2
        assert f"is being written by ff process {os.getpid()}" in one_line_error(capsys)
    assert main(ff_args(fake_mnist, run, "--epochs", "1")) == 0  # released: the run goes ahead


def test_bad_paths_are_one_line(fake_mnist, tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        (["train", "--config", str(tmp_path)], "Is a directory"),
        (ff_args(fake_mnist, a_file / "run", "--epochs", "1"), "a file stands where a folder is expected"),
        (["eval", str(a_file)], "is not a run directory"),
        (["plot", str(tmp_path / "nowhere")], "is not a run directory"),
        (["train", "--data-dir", str(a_file), "--set", "data.download=false"], "missing"),
    ]
    for args, message in cases:
        assert main(args) == 2, args
        assert message in one_line_error(capsys), args


def test_unreadable_run_files_are_one_line_and_a_torn_metrics_line_is_skipped(fake_mnist, tmp_path, capsys):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 2}), run, "test")
    good = (run / "config.json").read_bytes()
    for content, message in ((b"\xff\xfe not utf-8", "UnicodeDecodeError"), (b"[1, 2]", "holds a list"),
                             (b"{nope", "JSONDecodeError")):
        (run / "config.json").write_bytes(content)
        assert main(["eval", str(run)]) == 2
        assert message in one_line_error(capsys)
    (run / "config.json").write_bytes(good)
    (run / "summary.json").write_text("[]")
    assert main(["report", str(run)]) == 2
    assert "holds a list" in one_line_error(capsys)
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"epoch": 3, "secon')  # what a kill in mid-write leaves
    assert [r["epoch"] for r in runs.read_jsonl(run / "metrics.jsonl")] == [1, 2]


@pytest.mark.parametrize("setting, message", [
    ("run.seed=99999999999999999999", "run.seed must be below 2\\*\\*63"),
    ("run.threads=1000000000000", "run.threads must be at most 4096"),
    ("data.jitter=5000", "data.jitter must be at most 256"),
    ("data.rotate=270", "data.rotate must be in \\[0, 180\\] degrees"),
    ("data.scale=1", "data.scale must be in \\[0, 1\\)"),
    ("objective.hybrid_blur_passes=100000000", "at most 1000"),
    ("model.norm_eps=inf", "model.norm_eps must be a finite number"),
    ("run.device='meta'", "not one this tool trains on"),
])
def test_absurd_values_are_refused_before_any_work(fake_mnist, tmp_path, capsys, setting, message):
    assert main(ff_args(fake_mnist, tmp_path / "run", "--set", setting)) == 2
    assert pytest.importorskip("re").search(message, one_line_error(capsys))
    assert not (tmp_path / "run").exists()


def test_huge_layers_are_refused_before_they_are_allocated(fake_mnist, tmp_path, capsys):
    for extra, message in ((["--set", "model.hidden=[100000, 100000]"], "would hold 10,000,000,000 weights"),
                           (["--set", "model.layer=local", "--set", "model.kernel=3",
                             "--set", "model.padding=1000"], "padding must be at most the kernel")):
        assert main(ff_args(fake_mnist, tmp_path / "run", *extra)) == 2
        assert message in one_line_error(capsys)


@pytest.mark.parametrize("damage, message", [
    (lambda s: s.pop("optimizer"), "'optimizer' is missing or of the wrong type"),
    (lambda s: s.update(epoch="2"), "'epoch' is missing or of the wrong type"),
    (lambda s: s.update(generator=torch.zeros(3, dtype=torch.uint8)), "random state is damaged"),
    (lambda s: s.update(step=-4), "impossible position"),
])
def test_a_damaged_checkpoint_is_refused_on_resume(fake_mnist, tmp_path, capsys, damage, message):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    damage(state)
    torch.save(state, run / "checkpoint.pt")
    assert main(["train", "--resume", str(run), "--epochs", "2"]) == 2
    assert message in one_line_error(capsys)


def test_probe_arguments_and_stale_temporary_files(fake_mnist, tmp_path, capsys):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test")
    for args in (["--weight-decay", "-1"], ["--weight-decay", "nan"], ["--lr", "inf"]):
        assert main(["probe", str(run), *args]) == 2
        one_line_error(capsys)
    stale = run / ".summary.json.abc123"  # what a kill during a write leaves
    stale.write_text("partial")
    runs.write_json_atomic(run / "summary.json", {"ok": True})
    assert not stale.exists() and json.loads((run / "summary.json").read_text()) == {"ok": True}
    shutil.rmtree(run)


def test_importing_the_cli_does_not_load_torch_and_ctrl_c_while_it_loads_is_caught(monkeypatch, capsys):
    import sys

    found = subprocess.run([sys.executable, "-c", "import sys, forward_forward.cli; print('torch' in sys.modules)"],
                           capture_output=True, text=True)
    assert found.stdout.strip() == "False", found.stderr
    import forward_forward.cli as cli

    def interrupted(command):
        raise KeyboardInterrupt  # what Ctrl-C during `import torch` raises

    monkeypatch.setattr(cli, "_set_command", interrupted)
    assert main(["eval", "somewhere"]) == 130
    assert capsys.readouterr().err == "ff: interrupted\n"


def test_more_bad_paths_and_a_weights_file_of_nan(fake_mnist, tmp_path, capsys):
    run = tmp_path / "run"
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test")
    weights = torch.load(run / "model.pt", weights_only=True)
    torch.save({k: torch.full_like(v, float("nan")) if v.is_floating_point() else v for k, v in weights.items()},
               run / "model.pt")
    assert main(["eval", str(run)]) == 2
    assert "hold NaN or infinite values" in one_line_error(capsys)
    (tmp_path / "a_file").write_text("x")
    assert main(["report", str(run), "--out", str(tmp_path / "a_file" / "r.html")]) == 2
    one_line_error(capsys)
    broken = tmp_path / "broken-data"
    shutil.copytree(fake_mnist, broken)
    (broken / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    (broken / "mnist" / "t10k-labels-idx1-ubyte.gz").mkdir()  # a folder where a .gz should be
    assert main(ff_args(broken, tmp_path / "run2", "--epochs", "1")) == 2
    one_line_error(capsys)
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "config.json").mkdir()  # a folder where config.json should be
    assert main(["eval", str(bare)]) == 2
    assert "is not a run directory" in one_line_error(capsys)


def test_tiny_images_empty_sets_and_a_resume_before_the_first_checkpoint(fake_mnist, tmp_path, monkeypatch):
    import numpy as np

    from forward_forward.data import from_arrays
    from forward_forward.errors import FFError
    from forward_forward.models import build_model

    tiny = from_arrays(np.ones((4, 3, 3), np.float32), [0, 1, 2, 3], np.ones((2, 3, 3), np.float32), [0, 1],
                       num_classes=10)
    with pytest.raises(FFError, match="has no room; use channels"):  # 9 pixels cannot hold 10 labels
        build_model(small_config(), tiny.shape, tiny.num_classes)
    with pytest.raises(FFError, match="with N > 0"):
        from_arrays(np.ones((4, 3)), [0, 1, 0, 1], np.ones((0, 3)), [])
    run = tmp_path / "run"
    runs.start(run, small_config(fake_mnist), "test")
    (run / "command.txt").write_text("ff train --the-first-command\n")  # killed before its first checkpoint
    train(small_config(fake_mnist, optim={"epochs": 1}), run, "test", resume=True)
    assert (run / "command.txt").read_text() == "ff train --the-first-command\n"


def test_a_read_only_folder_a_cifar_archive_without_batches_and_a_too_long_run_name(fake_mnist, tmp_path,
                                                                                     monkeypatch, capsys):
    import errno
    import tarfile
    from pathlib import Path

    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):
        if "locked" in str(self):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)  # as root, a real read-only folder would not stop us
    assert main(ff_args(fake_mnist, tmp_path / "locked" / "run", "--epochs", "1")) == 2
    assert "check the permissions" in one_line_error(capsys)
    monkeypatch.undo()
    cifar = tmp_path / "cifar"
    cifar.mkdir()
    with tarfile.open(cifar / "cifar-10-python.tar.gz", "w:gz"):
        pass  # an archive without its batches
    assert main(["train", "--data-dir", str(cifar), "--set", "data.dataset=cifar10", "--run-dir",
                 str(tmp_path / "c")]) == 2
    one_line_error(capsys)
    long_value = "x" * 250
    assert main(["sweep", "--out", str(tmp_path / "s"), "--grid", f"data.data_dir={long_value},{long_value}y"]) == 2
    assert "makes a run folder name of" in one_line_error(capsys)
