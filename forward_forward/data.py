"""Datasets as whole tensors: MNIST and Fashion-MNIST (IDX gz files) and CIFAR-10 (python batches).

Files are checked against their published MD5 sums, fetched from the official mirrors when
missing, and parsed defensively: a missing, truncated or corrupt file is one clear FFError.
Batches are made by indexing the tensors, so no per-sample Python code runs while training.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
import pickle
import shutil
import struct
import tarfile
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import text as text_mod
from .config import DataConfig
from .errors import FFError

MAX_BYTES = 1 << 31  # refuse headers that claim more than 2 GiB: no dataset here is that large

IDX_FILES = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
MIRRORS = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_ARCHIVE = ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a")
CIFAR_FILES = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}


@dataclass
class Split:
    images: torch.Tensor  # (N, *shape) float32 in [0, 1]: (N, C, H, W) for images
    labels: torch.Tensor  # (N,) int64 in [0, num_classes)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


@dataclass
class Datasets:
    """The splits of one dataset and what it is: the shape of one sample, its classes, its kind."""

    train: Split
    val: Split
    test: Split
    shape: tuple[int, ...]  # one sample: (channels, height, width) for images, (features,) for tables
    num_classes: int
    kind: str = "image"  # image | features | text
    label_room: bool = True  # the first num_classes values of every training image are blank: room for the label
    corpus: text_mod.Corpus | None = None  # text: the strings the windows come from


# ---- readers ------------------------------------------------------------------------------
def _read_exact(stream, n: int, path: Path, what: str) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise FFError(f"{path} is truncated ({what}); delete it and fetch it again.")
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """Parse one gzip-compressed IDX file of unsigned bytes into an array of the shape its header gives."""
    path = Path(path)
    try:
        with gzip.open(path, "rb") as f:
            magic = _read_exact(f, 4, path, "no header")
            zero, dtype, ndim = struct.unpack(">HBB", magic)
            if zero != 0 or dtype != 0x08 or not 1 <= ndim <= 4:
                raise FFError(f"{path} is not an IDX file of unsigned bytes (magic {magic.hex()}); check the file.")
            dims = struct.unpack(f">{ndim}I", _read_exact(f, 4 * ndim, path, "short header"))
            size = int(np.prod(dims, dtype=np.int64))
            # a zero dimension makes the size 0, yet numpy refuses a shape whose other sides overflow it
            if size > MAX_BYTES or math.prod(max(d, 1) for d in dims) > MAX_BYTES:
                raise FFError(f"{path} claims an array of shape {dims}, larger than any dataset here; check the file.")
            body = _read_exact(f, size, path, f"header promises {size} bytes")
            if f.read(1):
                raise FFError(f"{path} has data after the {size} bytes its header promises; check the file.")
    except FileNotFoundError:
        raise FFError(f"{path} does not exist.") from None
    except (OSError, EOFError, zlib.error) as e:  # gzip.BadGzipFile is an OSError
        raise FFError(f"{path} is not a readable gzip file ({e}); delete it and fetch it again.") from None
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that builds only plain containers and numpy arrays: a CIFAR batch cannot run code."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 python batch -> images (N, 3, 32, 32) uint8 and labels (N,) uint8."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise FFError(f"{path} does not exist.") from None
    except Exception as e:  # a hostile pickle can raise nearly anything; all of it means "bad file"
        raise FFError(f"{path} is not a CIFAR-10 python batch ({type(e).__name__}: {e}); fetch it again.") from None
    if not isinstance(batch, dict):
        raise FFError(f"{path} is not a CIFAR-10 python batch (no dictionary inside); fetch it again.")
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise FFError(f"{path} has no (N, 3072) uint8 'data' array; fetch it again.")
    if not isinstance(labels, list) or len(labels) != data.shape[0] or not all(
        isinstance(v, int) and 0 <= v < 10 for v in labels
    ):
        raise FFError(f"{path} has no list of labels 0-9, one per image; fetch it again.")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.uint8)


# ---- files on disk ------------------------------------------------------------------------
def data_root(cfg: DataConfig) -> Path:
    if cfg.data_dir:
        return Path(cfg.data_dir).expanduser()
    if os.environ.get("FF_DATA_DIR"):
        return Path(os.environ["FF_DATA_DIR"]).expanduser()
    return Path.home() / ".cache" / "forward-forward"


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, checksum: str | None) -> None:
    """Fetch `url` into `target` through a temporary file, so a broken transfer leaves nothing behind."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=30) as response:
            shutil.copyfileobj(response, out)
        if checksum and md5(Path(tmp)) != checksum:
            raise OSError(f"checksum mismatch for {url}")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _check(path: Path, checksum: str, verify: bool) -> None:
    if verify and md5(path) != checksum:
        raise FFError(
            f"{path} is corrupt: its MD5 is not the published {checksum}; delete it and run again to "
            "fetch a fresh copy (or set data.verify_checksums=false for a file you made yourself)."
        )


def _missing_error(folder: Path, names: list[str], why: str) -> FFError:
    return FFError(
        f"missing {', '.join(names)} in {folder} ({why}); put the original files there, or point "
        "--data-dir / FF_DATA_DIR at the folder that holds them."
    )


def ensure_idx_files(dataset: str, root: Path, download: bool, verify: bool) -> Path:
    folder = root / dataset
    missing = [name for name in IDX_FILES[dataset] if not (folder / name).exists()]
    if missing and not download:
        raise _missing_error(folder, missing, "download is off")
    for name in missing:
        errors = []
        for mirror in MIRRORS[dataset]:
            try:
                _download(mirror + name, folder / name, IDX_FILES[dataset][name])
                break
            except OSError as e:
                errors.append(f"{mirror}: {e}")
        else:
            raise _missing_error(folder, missing, "download failed: " + "; ".join(errors))
    for name, checksum in IDX_FILES[dataset].items():
        _check(folder / name, checksum, verify)
    return folder


def safe_extract(archive: Path, target: Path) -> None:
    """Unpack a tar archive, refusing members that would land outside `target` or are links/devices."""
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")  # the "data" filter rejects absolute paths, '..', links out
    except (tarfile.TarError, OSError) as e:
        raise FFError(f"{archive} could not be unpacked safely ({e}); delete it and fetch it again.") from None


def ensure_cifar_files(root: Path, download: bool, verify: bool) -> Path:
    folder = root / CIFAR_FOLDER
    missing = [name for name in CIFAR_FILES if not (folder / name).exists()]
    if missing:
        archive = root / "cifar-10-python.tar.gz"  # the original archive beside the folder is unpacked
        if not archive.exists():
            if not download:
                raise _missing_error(folder, missing, "download is off")
            try:
                _download(CIFAR_ARCHIVE[0], archive, CIFAR_ARCHIVE[1])
            except OSError as e:
                raise _missing_error(folder, missing, f"download failed: {e}") from None
        safe_extract(archive, root)
    for name, checksum in CIFAR_FILES.items():
        _check(folder / name, checksum, verify)
    return folder


# ---- whole datasets -----------------------------------------------------------------------
def _to_split(images: np.ndarray, labels: np.ndarray, shape: tuple[int, ...]) -> Split:
    x = torch.from_numpy(images.reshape(images.shape[0], *shape).astype(np.float32) / 255.0)
    return Split(x, torch.from_numpy(labels.astype(np.int64)))


IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}  # (C, H, W)
NUM_CLASSES = {"mnist": 10, "fashion-mnist": 10, "cifar10": 10}


def _cifar_arrays(cfg: DataConfig) -> tuple[np.ndarray, ...]:
    folder = ensure_cifar_files(data_root(cfg), cfg.download, cfg.verify_checksums)
    parts = [read_cifar_batch(folder / f"data_batch_{i}") for i in range(1, 6)]
    test_x, test_y = read_cifar_batch(folder / "test_batch")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), test_x, test_y


def _idx_arrays(cfg: DataConfig) -> tuple[np.ndarray, ...]:
    folder = ensure_idx_files(cfg.dataset, data_root(cfg), cfg.download, cfg.verify_checksums)
    train_x = read_idx(folder / "train-images-idx3-ubyte.gz")
    train_y = read_idx(folder / "train-labels-idx1-ubyte.gz")
    test_x = read_idx(folder / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(folder / "t10k-labels-idx1-ubyte.gz")
    for x, y, name in ((train_x, train_y, "train"), (test_x, test_y, "t10k")):
        if (x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]
                or y.size and y.max() >= NUM_CLASSES[cfg.dataset] or x.shape[1:] != IMAGE_SHAPES[cfg.dataset][1:]):
            raise FFError(f"the {name} files in {folder} do not match: images {x.shape}, labels {y.shape}.")
    return train_x, train_y, test_x, test_y


def _built_in(read: Callable[[DataConfig], tuple[np.ndarray, ...]]) -> Callable[[DataConfig], Datasets]:
    """A built-in image dataset's splits from `read`'s (train images, train labels, test images, test labels)."""

    def load_built_in(cfg: DataConfig) -> Datasets:
        train_x, train_y, test_x, test_y = read(cfg)
        shape = IMAGE_SHAPES[cfg.dataset]
        train, test = _to_split(train_x, train_y, shape), _to_split(test_x, test_y, shape)
        # the paper writes the label over MNIST's first pixels; the built-in datasets keep that default
        return _split(train, test, shape, NUM_CLASSES[cfg.dataset], cfg.val_size, cfg.train_limit, "image", True)

    return load_built_in


def _split(train: Split, test: Split, shape: tuple[int, ...], num_classes: int, val_size: int,
           train_limit: int, kind: str, label_room: bool) -> Datasets:
    """Validation is the last `val_size` training samples; `train_limit` keeps the first N of the rest."""
    n = len(train)
    if val_size >= n:
        raise FFError(f"data.val_size = {val_size} leaves no training samples out of {n}; lower it.")
    val = Split(train.images[n - val_size :], train.labels[n - val_size :])
    keep = n - val_size
    if train_limit:
        keep = min(keep, train_limit)
    train = Split(train.images[:keep], train.labels[:keep])
    return Datasets(train, val, test, tuple(shape), num_classes, kind, label_room)


def _given_text(cfg: DataConfig) -> Path:
    if not cfg.path:
        raise FFError("data.dataset = text reads data.path: set it to a plain-text file.")
    return Path(cfg.path).expanduser()


def _aesop_text(cfg: DataConfig) -> Path:
    path = data_root(cfg) / "aesop" / "aesop.txt"
    if not path.exists():  # no mirror serves this posting any more: Gutenberg revised #21 in place
        raise _missing_error(path.parent, ["aesop.txt"], "Project Gutenberg eBook #21, the posting of 2008 with MD5 "
                             f"{text_mod.AESOP_MD5}; any other text works as data.dataset = text")
    _check(path, text_mod.AESOP_MD5, cfg.verify_checksums)
    return path


def _text_reader(find: Callable[[DataConfig], Path],
                 documents: Callable[[str], list[str]]) -> Callable[[DataConfig], Datasets]:
    """A text dataset: the file `find` finds, cut into `documents`, as next-character data (one-hot
    windows of data.window characters, labelled by the next one)."""

    def load_text(cfg: DataConfig) -> Datasets:
        path = find(cfg)
        corpus = text_mod.build_corpus(documents(text_mod.read_text(path)), window=cfg.window,
                                       length=cfg.string_length, strings=cfg.strings, val_strings=cfg.val_size,
                                       source=str(path))

        def split(strings: torch.Tensor) -> Split:
            contexts, targets = text_mod.windows(strings, cfg.window)
            return Split(text_mod.one_hot(contexts), targets)

        train = split(corpus.train)
        if cfg.train_limit:
            train = Split(train.images[: cfg.train_limit], train.labels[: cfg.train_limit])
        return Datasets(train, split(corpus.val), split(corpus.test), (cfg.window * len(text_mod.ALPHABET),),
                        len(text_mod.ALPHABET), "text", False, corpus)

    return load_text


def _load_file(cfg: DataConfig) -> Datasets:
    if not cfg.path:
        raise FFError("data.dataset = file reads data.path: set it to a .npz or .pt file.")
    return from_arrays(*read_array_file(cfg.path), val_size=cfg.val_size, train_limit=cfg.train_limit)


def _refuse_arrays(cfg: DataConfig) -> Datasets:
    raise FFError("data.dataset = arrays stands for arrays given in Python, which this command cannot read: "
                  "pass them, `train(cfg, run_dir, data=from_arrays(...))` or "
                  "`load_trained(run_dir, data=from_arrays(...))`.")


# data.dataset: name -> the reader of its train/validation/test splits (texts are config.TEXT_DATASETS)
DATASETS: dict[str, Callable[[DataConfig], Datasets]] = {
    "mnist": _built_in(_idx_arrays),
    "fashion-mnist": _built_in(_idx_arrays),
    "cifar10": _built_in(_cifar_arrays),
    "file": _load_file,  # your own arrays in a .npz or .pt file at data.path
    "arrays": _refuse_arrays,  # arrays given in Python: train(..., data=from_arrays(...))
    "aesop": _text_reader(_aesop_text, text_mod.aesop_documents),  # Aesop's fables, checked by MD5
    "text": _text_reader(_given_text, text_mod.text_documents),  # any plain-text file at data.path
}


def load(cfg: DataConfig) -> Datasets:
    """The train/validation/test splits of `data.dataset` (a built-in dataset, a text, or `file` at `data.path`)."""
    return DATASETS[cfg.dataset](cfg)


# ---- your own data ------------------------------------------------------------------------
ARRAY_KEYS = ("x_train", "y_train", "x_test", "y_test")


def read_array_file(path: str | Path) -> tuple:
    """(x_train, y_train, x_test, y_test) from a .npz (numpy.savez) or .pt (torch.save of a dict) file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FFError(f"data.path {path} is not a file; give a .npz or .pt file with {', '.join(ARRAY_KEYS)}.")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:  # no pickles: a data file cannot run code
                arrays = {k: f[k] for k in f.files}
        except (OSError, ValueError, zlib.error, EOFError) as e:
            raise FFError(f"{path} is not a readable .npz file ({e}).") from None
    elif path.suffix == ".pt":
        from .runs import load_trusted_format

        arrays = load_trusted_format(path, "dictionary of tensors")
        if not isinstance(arrays, dict):
            raise FFError(f"{path} does not hold a dictionary of tensors.")
    else:
        raise FFError(f"data.path {path} must end in .npz or .pt.")
    missing = [k for k in ARRAY_KEYS if k not in arrays]
    if missing:
        raise FFError(f"{path} lacks {', '.join(missing)}; it needs {', '.join(ARRAY_KEYS)}.")
    return tuple(arrays[k] for k in ARRAY_KEYS)


def _tensor(values) -> torch.Tensor:
    """A NumPy array, a list or a tensor -> a CPU tensor of the same values."""
    return values.detach().cpu() if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))


def _as_samples(x, what: str) -> torch.Tensor:
    """Any array -> float32 tensor (N, C, H, W) for images ((N, H, W) gains a channel) or (N, D) for features.

    uint8 is read as 0..255 and scaled to [0, 1]; floats are kept as they are.
    """
    t = _tensor(x)
    if t.dtype == torch.bool or t.is_complex() or not (t.is_floating_point() or t.dtype == torch.uint8
                                                       or t.dtype in (torch.int16, torch.int32, torch.int64)):
        raise FFError(f"{what} must hold real numbers; got {t.dtype}.")
    if t.ndim not in (2, 3, 4) or t.shape[0] == 0:
        raise FFError(f"{what} must be (N, features), (N, H, W) or (N, C, H, W) with N > 0; "
                      f"got shape {tuple(t.shape)}.")
    t = t.float() / 255.0 if t.dtype == torch.uint8 else t.float()
    if not torch.isfinite(t).all():
        raise FFError(f"{what} holds NaN or infinite values; clean them first.")
    return t.unsqueeze(1) if t.ndim == 3 else t.contiguous()


def _as_labels(y, count: int, what: str) -> torch.Tensor:
    t = _tensor(y)
    if t.is_floating_point() and bool((t != t.round()).any()):
        raise FFError(f"{what} must be whole class numbers 0, 1, ...; got fractions.")
    if t.ndim != 1 or t.shape[0] != count:
        raise FFError(f"{what} must be one label per sample: shape ({count},), got {tuple(t.shape)}.")
    if count and int(t.min()) < 0:
        raise FFError(f"{what} must be class numbers 0, 1, ...; got {int(t.min())}.")
    return t.long()


def from_dataset(train, test, *, val_size: int = 0, train_limit: int = 0, num_classes: int | None = None) -> Datasets:
    """Datasets from two `torch.utils.data.Dataset`s of (sample, label) pairs, read once into memory."""
    def stack(dataset, what: str):
        pairs = [dataset[i] for i in range(len(dataset))]
        if not pairs or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in pairs):
            raise FFError(f"the {what} dataset must yield (sample, label) pairs, and at least one.")
        return torch.stack([torch.as_tensor(x) for x, _ in pairs]), torch.as_tensor([int(y) for _, y in pairs])

    return from_arrays(*stack(train, "training"), *stack(test, "test"), val_size=val_size, train_limit=train_limit,
                       num_classes=num_classes)


def from_arrays(train_x, train_y, test_x, test_y, *, val_size: int = 0, train_limit: int = 0,
                num_classes: int | None = None) -> Datasets:
    """Datasets from your own arrays (NumPy or torch): images (N, H, W) or (N, C, H, W), or features (N, D).

    The number of classes is the largest label + 1 unless given; validation is the last `val_size`
    training samples. The label is written over the first pixels only where every training image
    is blank there (MNIST's corner); otherwise `objective.label_coding = auto` gives it inputs of
    its own.
    """
    train_images, test_images = _as_samples(train_x, "x_train"), _as_samples(test_x, "x_test")
    if train_images.shape[1:] != test_images.shape[1:]:
        raise FFError(f"x_train samples have shape {tuple(train_images.shape[1:])} and x_test samples "
                      f"{tuple(test_images.shape[1:])}; they must match.")
    train_labels = _as_labels(train_y, train_images.shape[0], "y_train")
    test_labels = _as_labels(test_y, test_images.shape[0], "y_test")
    largest = int(max(train_labels.max(), test_labels.max() if len(test_labels) else 0))
    classes = largest + 1 if num_classes is None else num_classes
    if classes < 2 or largest >= classes:
        raise FFError(f"labels run up to {largest}, so num_classes must be at least {max(largest + 1, 2)}; "
                      f"got {classes}.")
    shape = tuple(train_images.shape[1:])
    kind = "image" if len(shape) == 3 else "features"
    flat = train_images.flatten(1)
    label_room = kind == "image" and flat.shape[1] > classes and not bool(flat[:, :classes].any())
    return _split(Split(train_images, train_labels), Split(test_images, test_labels), shape, classes,
                  val_size, train_limit, kind, label_room)
