import contextlib
import gzip
import os
import signal
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from forward_forward.config import Config, merge_where_read
from forward_forward.models import MODELS, RECURRENT


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write `array` (uint8) as a gzip-compressed IDX file, the MNIST distribution format."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture
def fake_mnist(tmp_path) -> Path:
    return write_fake_mnist(tmp_path / "data")


def write_fake_mnist(root: Path) -> Path:
    """A small MNIST-format dataset whose classes are easy: class k lights up a block at row 2k."""
    rng = np.random.default_rng(0)

    def make(n):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = (rng.random((n, 28, 28)) * 60).astype(np.uint8)
        for i, k in enumerate(labels):
            images[i, 2 * k + 4 : 2 * k + 7, 6:22] = 255
        return images, labels

    folder = root / "mnist"
    train_x, train_y = make(1200)
    test_x, test_y = make(300)
    write_idx(folder / "train-images-idx3-ubyte.gz", train_x)
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_y)
    return root


def small_config(data_dir: Path | None = None, **sections) -> Config:
    """A config small enough for a test: a fake dataset, two tiny layers, no progress bar."""
    base = {
        "data": {"data_dir": str(data_dir) if data_dir else None, "verify_checksums": False,
                 "download": False, "val_size": 200},
        "model": {"hidden": [64, 64], "peer_lambda": 0.03},
        # pixels: the label in the first values even of the flat (100,) inputs that model tests build
        "objective": {"negatives": "hard", "predict_layers_from": 0, "label_coding": "pixels"},
        "optim": {"lr": 0.01, "epochs": 2, "batch_size": 50},
        "run": {"progress": False, "device": "cpu", "eval_batch_size": 128},
    }
    if sections.get("model", {}).get("kind") == "competitive":  # no negatives, no label input, channels in tens
        base["objective"] = {"predict_layers_from": 0}
        base["model"]["hidden"] = [60, 60]
    if sections.get("model", {}).get("iterations"):  # the recurrent net's label is its top layer
        base["objective"]["label_coding"] = "auto"
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    # the base values are a preset's: where the test's own settings do not read one, it is left at its
    # default (as `ff train --preset` does), while a value the test sets itself is refused as ever
    yours = {f"{section}.{key}" for section, values in sections.items() if isinstance(values, dict) for key in values}
    return merge_where_read(Config(), base, keep=yours)[0]


# every architecture as (model.kind, further model fields): each kind feed-forward, and the recurrent net
# (two iterations) under each kind that trains it
RECURRENT_FIELDS = {"iterations": 2, "predict_iterations": [1, 2]}
ARCHITECTURES = [(kind, {}) for kind in sorted(MODELS)] + [(kind, RECURRENT_FIELDS) for kind in sorted(RECURRENT)]


def shared_data(file: str) -> Path:
    """FF_DATA_DIR when it holds `file`; the test is skipped without it, except under CI where it must exist."""
    root = os.environ.get("FF_DATA_DIR")
    if not root or not (Path(root) / file).exists():
        if os.environ.get("CI"):
            pytest.fail(f"FF_DATA_DIR must point at a folder with {file} in CI")
        pytest.skip(f"FF_DATA_DIR with {file} is not set")
    return Path(root)


@pytest.fixture
def real_data_dir() -> Path:
    """FF_DATA_DIR with the real MNIST files."""
    return shared_data("mnist/train-images-idx3-ubyte.gz")


@pytest.fixture
def aesop_dir() -> Path:
    """FF_DATA_DIR with Aesop's fables."""
    return shared_data("aesop/aesop.txt")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@contextlib.contextmanager
def ctrl_c_at_step(n: int):
    """A Ctrl-C (SIGINT) raised inside the n-th SGD step, as a user would press it mid-epoch."""
    calls, original = {"n": 0}, torch.optim.SGD.step

    def step_then_interrupt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args, **kwargs)

    torch.optim.SGD.step = step_then_interrupt
    try:
        yield
    finally:
        torch.optim.SGD.step = original
