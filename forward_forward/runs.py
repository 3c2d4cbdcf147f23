"""Run directories: config.json, command.txt, metrics.jsonl, summary.json and model.pt.

Weights are a plain state dict of tensors, written through a temporary file and an atomic
rename and read back with `weights_only=True`, so a file from elsewhere cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import shlex
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from .config import Config, from_dict
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
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def holds_run(run_dir: Path) -> bool:
    """Whether a run was started in `run_dir` (its config is the first file a run writes)."""
    return (Path(run_dir) / CONFIG).exists()


def start(run_dir: Path, cfg: Config, preset: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / CONFIG, {"preset": preset, **cfg.to_dict()})
    (run_dir / "command.txt").write_text(_command())
    (run_dir / "metrics.jsonl").write_text("")


cli_command: list[str] | None = None  # set by the `ff` command while it runs


def _command() -> str:
    """The command that started this run; a run started from Python says so (config.json rebuilds it)."""
    if cli_command is not None:
        return shlex.join(cli_command) + "\n"
    return (f"# started from Python ({shlex.join(sys.argv) or 'interactive'}); the same config again:\n"
            "ff train --config config.json --run-dir NEW_DIR\n")


def append_metrics(run_dir: Path, record: dict) -> None:
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")


def truncate_metrics(run_dir: Path, before_epoch: int) -> None:
    """Drop metric lines of epoch `before_epoch` and later: a resumed run writes them again."""
    path = run_dir / "metrics.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [line for line in lines if line.strip() and json.loads(line)["epoch"] < before_epoch]
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
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as e:
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


def load_config(run_dir: Path) -> tuple[Config, str]:
    path = Path(run_dir) / CONFIG
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FFError(f"{run_dir} is not a run directory: it has no config.json.") from None
    except json.JSONDecodeError as e:
        raise FFError(f"{path} is not valid JSON ({e}).") from None
    preset = data.pop("preset", "custom")
    return from_dict(data), preset
