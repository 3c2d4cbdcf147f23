"""Hostile input: random bytes, truncations, absurd headers and random configs end in FFError or success."""

import gzip
import pickle
import struct

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from forward_forward import data
from forward_forward.config import Config, merge, parse_override
from forward_forward.errors import FFError

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _idx(dims, body: bytes, magic=(0, 8)) -> bytes:
    return struct.pack(">HBB", magic[0], magic[1], len(dims)) + struct.pack(f">{len(dims)}I", *dims) + body


@FUZZ
@given(raw=st.binary(max_size=300), compress=st.booleans())
def test_idx_reader_on_random_bytes(tmp_path, raw, compress):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(raw) if compress else raw)
    try:
        array = data.read_idx(path)
    except FFError:
        return
    assert array.dtype == np.uint8


@FUZZ
@given(
    dims=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4),
    body=st.binary(max_size=200),
    magic=st.tuples(st.integers(0, 65535), st.integers(0, 255)),
    cut=st.integers(0, 400),
)
@example(dims=[0, 3_036_988_439, 3_037_012_561], body=b"", magic=(0, 8), cut=0)  # zero size, sides past numpy's
def test_idx_reader_on_structured_garbage(tmp_path, dims, body, magic, cut):
    path = tmp_path / "f.gz"
    blob = _idx(dims, body, magic)
    path.write_bytes(gzip.compress(blob[: cut or None]))
    try:
        array = data.read_idx(path)
    except FFError:
        return
    assert array.shape == tuple(dims) and array.size == len(body)  # only an exact, honest file succeeds


@FUZZ
@given(payload=st.one_of(
    st.binary(max_size=300),
    st.builds(lambda d: pickle.dumps(d), st.dictionaries(st.binary(max_size=8), st.one_of(
        st.integers(), st.binary(max_size=20), st.lists(st.integers(-5, 20), max_size=10)), max_size=4)),
    st.builds(lambda n, labels: pickle.dumps({b"data": np.zeros((n, 3072), np.uint8), b"labels": labels}),
              st.integers(0, 4), st.lists(st.integers(-3, 12), max_size=5)),
))
def test_cifar_reader_on_hostile_pickles(tmp_path, payload):
    path = tmp_path / "batch"
    path.write_bytes(payload)
    try:
        images, labels = data.read_cifar_batch(path)
    except FFError:
        return
    assert images.shape[1:] == (3, 32, 32) and len(labels) == len(images)


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**12), 10**12), st.floats(allow_nan=True), st.text(max_size=12),
    st.lists(st.one_of(st.integers(-5, 5000), st.text(max_size=3)), max_size=5),
)
_keys = st.one_of(st.sampled_from(["hidden", "lr", "epochs", "dataset", "goodness", "batch_size", "momentum",
                                   "threshold", "predict_layers_from", "val_size", "device"]), st.text(max_size=10))


@FUZZ
@given(overrides=st.dictionaries(
    st.one_of(st.sampled_from(["data", "model", "objective", "optim", "run"]), st.text(max_size=8)),
    st.one_of(st.dictionaries(_keys, _values, max_size=4), _values), max_size=3))
def test_config_merge_on_random_overrides(overrides):
    try:
        cfg = merge(Config(), overrides)
    except FFError:
        return
    assert isinstance(cfg, Config)


@FUZZ
@given(text=st.text(max_size=40))
def test_parse_override_on_random_text(text):
    try:
        parse_override(text)
    except FFError:
        pass
