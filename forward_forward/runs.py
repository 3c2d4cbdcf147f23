"""Run directories: config.json, command.txt, metrics.jsonl, summary.json and model.pt.

Weights are a plain state dict of tensors, written through a temporary file and an atomic
rename and read back with `weights_only=True`, so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from .config import Config, as_trained, from_dict, read_json
from .errors import FFError

WEIGHTS = "model.pt"
CONFIG = "config.json"


def new_run_dir(preset: str, base: str | Path = "runs") -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(base) / f"{preset}-{stamp}"
    suffix = 1
    while path.exists():
        suffix += 1
        path = Path(base) / f"{preset}-{stamp}-{suffix}"
    return path


def write_json_atomic(path: Path, data: dict) -> None:
    write_atomic(path, lambda f: f.write(json.dumps(data, indent=2).encode() + b"\n"))


def write_atomic(path: Path, write) -> None:
    """Write through a temporary file in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a run's files are as readable as any other file
        with os.fdopen(fd, "wb") as f:
            try:
                write(f)
            except RuntimeError as e:  # torch.save's zip writer reports a full disk as a RuntimeError
                raise OSError(errno.ENOSPC, f"could not write {path.name} ({str(e).splitlines()[0][:120]})",
                              str(path)) from None
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        for stale in path.parent.glob(f".{path.name}.*"):  # temporary files an earlier kill left behind
            if stale.name != Path(tmp).name:
                stale.unlink(missing_ok=True)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


LOCK = ".lock"


@contextlib.contextmanager
def lock(run_dir: Path):
    """Hold `run_dir` for this process: an OS lock on RUN_DIR/.lock, released when the block ends or the
    process dies (a kill leaves no stale lock). A second writer gets one clear error."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "another process"
            raise FFError(f"{run_dir} is being written by {owner}: wait for it to finish, or give another "
                          "--run-dir.") from None
        f.seek(0)
        f.truncate()
        f.write(f"ff process {os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def holds_run(run_dir: Path) -> bool:
    """Whether a run was started in `run_dir` (its config is the first file a run writes)."""
    return (Path(run_dir) / CONFIG).exists()


def start(run_dir: Path, cfg: Config, preset: str, keep_command: bool = False) -> None:
    """Write a new run's first files. keep_command: a run resumed before its first checkpoint keeps the
    command that started it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / CONFIG, {"preset": preset, **cfg.to_dict()})
    if not (keep_command and (run_dir / "command.txt").exists()):
        write_atomic(run_dir / "command.txt", lambda f: f.write(_command().encode()))
    (run_dir / "metrics.jsonl").write_text("")


cli_command: list[str] | None = None  # set by the `ff` command while it runs


def _command() -> str:
    """The command that started this run; a run started from Python says so (config.json rebuilds it)."""
    if cli_command is not None:
        return shlex.join(cli_command) + "\n"
    return (f"# started from Python ({shlex.join(sys.argv) or 'interactive'}); the same config again:\n"
            "ff train --config config.json --run-dir NEW_DIR\n")


def append_jsonl(path: Path, record: dict) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def append_metrics(run_dir: Path, record: dict) -> None:
    append_jsonl(run_dir / "metrics.jsonl", record)


def truncate_metrics(run_dir: Path, before_epoch: int) -> None:
    """Drop metric lines of epoch `before_epoch` and later: a resumed run writes them again."""
    path = run_dir / "metrics.jsonl"
    kept = [json.dumps(record) for record in read_jsonl(path) if record["epoch"] < before_epoch]
    write_atomic(path, lambda f: f.write("".join(line + "\n" for line in kept).encode()))


def save_weights(run_dir: Path, state_dict: dict) -> None:
    tensors = {k: v.detach().cpu() for k, v in state_dict.items()}
    write_atomic(run_dir / WEIGHTS, lambda f: torch.save(tensors, f))


def load_trusted_format(path: Path, what: str):
    """torch.load with `weights_only=True`: tensors and plain containers only, so a file cannot run code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a foreign file's pickle protocol warning says nothing useful here
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # garbage bytes fail the unpickler in many ways (one byte b"R": IndexError)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise FFError(f"{path} is not a {what} this tool wrote ({first}); it was refused unread.") from None


def load_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    path = Path(run_dir) / WEIGHTS
    if not path.exists():
        raise FFError(f"{path} does not exist: the run did not finish, or {run_dir} is not a run directory.")
    state = load_trusted_format(path, "weights file")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FFError(f"{path} does not hold a dictionary of tensors; it was refused.")
    return state


def read_jsonl(path: Path) -> list[dict]:
    """metrics.jsonl's records; a torn last line (what a kill in mid-write leaves) is skipped."""
    try:
        lines = [line for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except FileNotFoundError:
        return []
    records = []
    for index, line in enumerate(lines):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if index == len(lines) - 1:
                break  # torn by a kill: the epoch is logged again when the run resumes
            raise FFError(f"{path} line {index + 1} is not JSON; the file was edited or damaged.") from None
        if not isinstance(record, dict) or not isinstance(record.get("epoch"), int):
            raise FFError(f"{path} line {index + 1} is not an epoch's record; the file was edited or damaged.")
        records.append(record)
    return records


def load_config(run_dir: Path) -> tuple[Config, str]:
    path = Path(run_dir) / CONFIG
    if not path.is_file():
        raise FFError(f"{run_dir} is not a run directory: it has no config.json file.")
    data = read_json(path, "run config")
    preset = data.pop("preset", "custom")
    return from_dict(as_trained(data)), str(preset)
