"""Readers, checksums and the clear errors for missing, truncated or corrupt files."""

import gzip
import io
import pickle
import tarfile

import numpy as np
import pytest

from forward_forward import data
from forward_forward.config import DataConfig
from forward_forward.errors import FFError
from tests.conftest import write_idx


def test_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    assert np.array_equal(data.read_idx(tmp_path / "a.gz"), array)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "truncated"),
        (b"\x00\x00\x08\x03\x00\x00\x00\x02", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05abc", "truncated"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x02abc", "after"),
        (b"\x12\x34\x08\x01\x00\x00\x00\x01a", "not an IDX"),
        (b"\x00\x00\x0d\x01\x00\x00\x00\x01aaaa", "not an IDX"),
        (b"\x00\x00\x08\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", "claims"),
    ],
)
def test_bad_idx_content_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(content)
    with pytest.raises(FFError, match=message):
        data.read_idx(path)


def test_not_gzip_and_cut_gzip_are_clear_errors(tmp_path):
    (tmp_path / "plain.gz").write_bytes(b"this is not gzip at all")
    with pytest.raises(FFError, match="gzip"):
        data.read_idx(tmp_path / "plain.gz")
    write_idx(tmp_path / "full.gz", np.zeros((50, 28, 28), np.uint8))
    blob = (tmp_path / "full.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(FFError, match="gzip|truncated"):
        data.read_idx(tmp_path / "cut.gz")


def test_missing_files_name_the_files_and_the_folder(tmp_path):
    cfg = DataConfig(data_dir=str(tmp_path), download=False)
    with pytest.raises(FFError) as e:
        data.load(cfg)
    assert "train-images-idx3-ubyte.gz" in str(e.value) and str(tmp_path / "mnist") in str(e.value)
    assert "FF_DATA_DIR" in str(e.value)


def test_failed_download_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MIRRORS", {"mnist": ["http://127.0.0.1:9/"]})
    with pytest.raises(FFError, match="download failed"):
        data.load(DataConfig(data_dir=str(tmp_path)))
    assert not any((tmp_path / "mnist").glob("*")), "a failed download must leave no partial file"


def test_checksum_mismatch_is_a_clear_error(fake_mnist):
    with pytest.raises(FFError, match="corrupt.*MD5"):
        data.load(DataConfig(data_dir=str(fake_mnist), download=False))


def test_load_splits_validation_from_the_end_of_training(fake_mnist):
    cfg = DataConfig(data_dir=str(fake_mnist), download=False, verify_checksums=False, val_size=200)
    d = data.load(cfg)
    raw = data.read_idx(fake_mnist / "mnist" / "train-labels-idx1-ubyte.gz")
    assert (len(d.train), len(d.val), len(d.test)) == (1000, 200, 300)
    assert np.array_equal(d.val.labels.numpy(), raw[-200:])
    assert d.train.images.shape == (1000, 1, 28, 28) and d.shape == (1, 28, 28) and d.num_classes == 10
    assert 0 <= d.train.images.min() and d.train.images.max() <= 1
    limited = data.load(DataConfig(**{**cfg.__dict__, "train_limit": 300}))
    assert len(limited.train) == 300


def test_env_var_and_explicit_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("FF_DATA_DIR", str(tmp_path))
    assert data.data_root(DataConfig()) == tmp_path
    assert data.data_root(DataConfig(data_dir=str(tmp_path / "x"))) == tmp_path / "x"


def _cifar_batch(n=5) -> bytes:
    rng = np.random.default_rng(0)
    batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
    return pickle.dumps(batch)


def test_cifar_batch_reader(tmp_path):
    (tmp_path / "b").write_bytes(_cifar_batch())
    images, labels = data.read_cifar_batch(tmp_path / "b")
    assert images.shape == (5, 3, 32, 32) and list(labels) == [0, 1, 2, 3, 4]


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar_reader_refuses_a_pickle_that_runs_code(tmp_path, capsys):
    (tmp_path / "evil").write_bytes(pickle.dumps({b"data": _Evil()}))
    with pytest.raises(FFError, match="not a CIFAR-10 python batch"):
        data.read_cifar_batch(tmp_path / "evil")
    assert "pwned" not in capsys.readouterr().out
    (tmp_path / "junk").write_bytes(b"\x80\x04junk")
    with pytest.raises(FFError):
        data.read_cifar_batch(tmp_path / "junk")
    (tmp_path / "labels").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 12]}))
    with pytest.raises(FFError, match="labels"):
        data.read_cifar_batch(tmp_path / "labels")


def test_safe_extract_refuses_paths_outside_the_target(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(FFError, match="unpacked safely"):
        data.safe_extract(archive, target)
    assert not (tmp_path / "escaped.txt").exists()


def _cifar_archive(folder, per_batch: int) -> None:
    """The CIFAR-10 python archive as it is distributed, with `per_batch` images in each batch file."""
    with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name in data.CIFAR_FILES:
            blob = _cifar_batch(per_batch)
            info = tarfile.TarInfo(f"{data.CIFAR_FOLDER}/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))


def test_cifar_loads_from_an_archive(tmp_path):
    _cifar_archive(tmp_path, 4)
    d = data.load(DataConfig(dataset="cifar10", data_dir=str(tmp_path), verify_checksums=False, val_size=4))
    assert d.shape == (3, 32, 32) and len(d.train) == 16 and len(d.val) == 4 and len(d.test) == 4
    assert d.train.images.shape[1:] == (3, 32, 32)


def test_the_conv_cifar10_preset_trains_on_files_in_the_original_format(tmp_path):
    """The preset as it is (crops padded by 4, flips, competitive conv layers) on a tiny archive in
    the CIFAR-10 distribution format: one short epoch, then a score by every way."""
    from forward_forward import presets
    from forward_forward.config import merge
    from forward_forward.training import train

    _cifar_archive(tmp_path, 10)
    cfg = merge(presets.preset("conv-cifar10"), {
        "data": {"data_dir": str(tmp_path), "verify_checksums": False, "download": False, "val_size": 10},
        "model": {"hidden": [10, 10, 10, 10]}, "optim": {"epochs": 1, "batch_size": 20},
        "run": {"progress": False, "device": "cpu", "precision": "fp32"}})
    assert (cfg.data.jitter, cfg.data.flip) == (4, True)
    summary = train(cfg, tmp_path / "run", "conv-cifar10")
    assert summary["train_images"] == 40 and set(summary["ways"]) == {"softmax", "goodness", "combined"}


def test_a_dataset_registered_by_name_is_a_choice_and_is_what_load_reads(monkeypatch):
    from forward_forward.config import Config, merge

    rng = np.random.default_rng(0)
    arrays = (rng.random((60, 5)), rng.integers(0, 3, 60), rng.random((20, 5)), rng.integers(0, 3, 20))
    monkeypatch.setitem(data.DATASETS, "mine", lambda cfg: data.from_arrays(*arrays, val_size=cfg.val_size))
    with pytest.raises(FFError, match="data.dataset must be one of"):
        merge(Config(), {"data": {"dataset": "yours"}})
    cfg = merge(Config(), {"data": {"dataset": "mine", "val_size": 10}})
    loaded = data.load(cfg.data)
    assert (len(loaded.train), len(loaded.val), len(loaded.test), loaded.shape, loaded.num_classes) == (50, 10, 20,
                                                                                                         (5,), 3)
