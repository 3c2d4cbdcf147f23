"""Your own data: arrays from Python, .npz/.pt files from the CLI, and the label never written over data."""

import json

import numpy as np
import pytest
import torch

from forward_forward import preset
from forward_forward.cli import main
from forward_forward.config import merge
from forward_forward.data import from_arrays, from_dataset
from forward_forward.errors import FFError
from forward_forward.models import build_model
from forward_forward.training import load_trained, train
from tests.conftest import small_config


def table(n: int, features: int = 40, seed: int = 0):
    """A tabular problem: the class is which of 4 feature groups has the largest sum; every feature matters."""
    rng = np.random.default_rng(seed)
    x = rng.random((n, features)).astype(np.float32)
    y = x.reshape(n, 4, -1).sum(2).argmax(1)
    return x, y


def small(**sections):
    cfg = small_config(**sections)
    return merge(cfg, {"objective": {"label_coding": "auto"}, "optim": {"epochs": 6}})


def test_arrays_become_shaped_splits_with_their_classes():
    x, y = table(300)
    data = from_arrays(x[:250], y[:250], x[250:], y[250:], val_size=50)
    assert (data.kind, data.shape, data.num_classes) == ("features", (40,), 4)
    assert (len(data.train), len(data.val), len(data.test)) == (200, 50, 50)
    images = from_arrays(np.zeros((5, 6, 6), np.uint8) + 255, np.arange(5), np.zeros((2, 6, 6), np.uint8), [0, 1])
    assert images.kind == "image" and images.train.images.shape == (5, 1, 6, 6) and images.train.images.max() == 1.0
    assert images.num_classes == 5 and not images.label_room  # the first pixels are lit
    blank = from_arrays(np.pad(np.ones((4, 1, 6, 6)), ((0, 0), (0, 0), (2, 0), (0, 0))), [0, 1, 2, 1],
                        np.ones((2, 1, 8, 6)), [0, 1])
    assert blank.label_room  # two blank rows of 6 hold the 3 labels


@pytest.mark.parametrize("bad, message", [
    (dict(train_y=[0, 1, 2]), "y_train must be one label per sample"),
    (dict(train_y=[0.5] * 4), "whole class numbers"),
    (dict(train_y=[-1, 0, 1, 0]), "class numbers 0, 1"),
    (dict(train_x=np.zeros((4, 2, 2, 2, 2))), "must be \\(N, features\\)"),
    (dict(train_x=np.full((4, 3), np.nan)), "NaN"),
    (dict(test_x=np.zeros((2, 5))), "must match"),
    (dict(num_classes=2), "num_classes must be at least 3"),
])
def test_bad_arrays_get_one_clear_error(bad, message):
    args = dict(train_x=np.zeros((4, 3)), train_y=[0, 1, 2, 0], test_x=np.zeros((2, 3)), test_y=[0, 1])
    args.update(bad)
    with pytest.raises(FFError, match=message):
        from_arrays(args.pop("train_x"), args.pop("train_y"), args.pop("test_x"), args.pop("test_y"), **args)


def test_auto_gives_the_label_channels_when_a_local_layer_reads_images_without_room(tmp_path):
    from forward_forward.training.run import fit_to_data

    lit = np.ones((6, 1, 8, 8), np.float32)
    data = from_arrays(lit, [0, 1, 2, 0, 1, 2], lit[:2], [0, 1])
    local = merge(small(), {"model": {"layer": "local", "hidden": [3], "kernel": 3}})
    assert fit_to_data(local, data).objective.label_coding == "channels"
    assert fit_to_data(small(), data).objective.label_coding == "extra"
    blank = from_arrays(np.pad(lit, ((0, 0), (0, 0), (1, 0), (0, 0)))[:, :, :8], [0, 1, 2, 0, 1, 2], lit[:2], [0, 1])
    assert fit_to_data(local, blank).objective.label_coding == "pixels"


def test_sparsity_has_its_known_values():
    from forward_forward.models.base import sparsity

    rows = torch.tensor([[0.0, 0.0, 0.0, 5.0], [1.0, 1.0, 1.0, 1.0]])
    assert torch.allclose(sparsity(rows[:1])["hoyer"], torch.tensor(1.0))
    assert torch.allclose(sparsity(rows[1:])["hoyer"], torch.tensor(0.0), atol=1e-6)
    assert sparsity(rows)["dead"] == 0.0 and sparsity(rows[:1])["dead"] == 0.75


def test_the_label_is_never_written_over_features():
    x, y = table(20)
    data = from_arrays(x[:10], y[:10], x[10:], y[10:])
    model = build_model(small(), data.shape, data.num_classes)
    coded = model.with_label(data.train.images, data.train.labels)
    assert coded.shape == (10, 44) and torch.equal(coded[:, :40], data.train.images)
    with pytest.raises(FFError, match="data.jitter shifts images"):
        train(small(data={"jitter": 1}), "unused", data=data)
    with pytest.raises(FFError, match="data.rotate turns images, .* set it to 0"):
        train(small(data={"rotate": 5.0}), "unused", data=data)


def test_a_run_on_arrays_learns_records_its_choices_and_reloads(tmp_path, capsys):
    x, y = table(2400)
    data = from_arrays(x[:2000], y[:2000], x[2000:], y[2000:], val_size=400)
    summary = train(small(), str(tmp_path / "run"), data=data)  # a str path works as well as a Path
    assert summary["test_error"] < 0.35, summary  # chance is 0.75
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["data"]["dataset"] == "arrays" and saved["objective"]["label_coding"] == "extra"
    cfg, model, again, _ = load_trained(tmp_path / "run", data=data)
    from forward_forward.training import error_rate

    assert error_rate(model, again.test, summary["predict"], 1000, torch.device("cpu")) == summary["test_error"]
    assert saved["data"]["val_size"] == 400  # the config records the split it was given
    unsplit = from_arrays(x[:2000], y[:2000], x[2000:], y[2000:])
    with pytest.raises(FFError, match="objective.predict = best chooses on validation images"):
        train(merge(small(), {"objective": {"predict": "best"}}), tmp_path / "no-val", data=unsplit)
    assert not (tmp_path / "no-val").exists()
    assert main(["eval", str(tmp_path / "run")]) == 2
    assert "stands for arrays given in Python" in capsys.readouterr().err


def test_a_file_of_arrays_trains_from_the_cli_and_evaluates(tmp_path, capsys):
    x, y = table(1200)
    np.savez(tmp_path / "table.npz", x_train=x[:1000], y_train=y[:1000], x_test=x[1000:], y_test=y[1000:])
    args = ["train", "--preset", "tiny", "--set", "data.dataset=file", "--set", f"data.path={tmp_path / 'table.npz'}",
            "--set", "data.val_size=200", "--set", "model.hidden=[64, 64]", "--epochs", "3", "--no-progress",
            "--run-dir", str(tmp_path / "run")]
    assert main(args) == 0
    trained = capsys.readouterr().out.splitlines()[-1]
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert trained.split("(")[0].split("test error ")[1] in capsys.readouterr().out
    pytest.importorskip("matplotlib")
    assert main(["plot", str(tmp_path / "run"), "--samples", "50"]) == 0  # the label follows the features
    torch.save({"x_train": torch.tensor(x[:10])}, tmp_path / "partial.pt")
    for path, message in ((tmp_path / "partial.pt", "lacks y_train, x_test, y_test"),
                          (tmp_path / "table.csv", "is not a file"), (tmp_path, "is not a file")):
        bad = [a if not a.startswith("data.path=") else f"data.path={path}" for a in args]
        assert main(bad[:-1] + [str(tmp_path / f"bad-{path.name}")]) == 2
        assert message in capsys.readouterr().err


def test_readme_example_on_scikit_learn_digits(tmp_path):
    datasets = pytest.importorskip("sklearn.datasets")
    x, y = datasets.load_digits(return_X_y=True)  # 1,797 images of 8 x 8 pixels, values 0-16
    x = (x / 16).reshape(-1, 8, 8)
    data = from_arrays(x[:1497], y[:1497], x[1497:], y[1497:], val_size=297)
    cfg = merge(preset("tiny"), {"data": {"train_limit": 0}, "optim": {"epochs": 60, "lr": 0.03},
                                 "run": {"progress": False}})
    summary = train(cfg, tmp_path / "digits", data=data)
    assert summary["config"]["objective"]["label_coding"] == "extra"  # digits have no blank corner
    assert summary["test_error"] < 0.2, summary


def test_a_torch_dataset_works_like_its_arrays():
    x, y = table(60)
    pairs = torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y))
    data = from_dataset(torch.utils.data.Subset(pairs, range(50)), torch.utils.data.Subset(pairs, range(50, 60)))
    same = from_arrays(x[:50], y[:50], x[50:], y[50:])
    assert torch.equal(data.train.images, same.train.images) and torch.equal(data.test.labels, same.test.labels)


def test_a_batch_the_network_cannot_take_gets_one_clear_error():
    model = build_model(small(), (1, 28, 28), 10)
    good = torch.rand(4, 1, 28, 28)
    for images, message in ((good.view(4, 784), "do not fit this network, which takes \\(B, 1, 28, 28\\)"),
                            ((good * 255).to(torch.uint8), "must be floating point"),
                            (good.double(), "images are torch.float64 on cpu and the network is torch.float32"),
                            (good.numpy(), "must be a torch.Tensor")):
        with pytest.raises(FFError, match=message):
            model.predict(images, "goodness")
        with pytest.raises(FFError, match=message):
            model(images, torch.zeros(4, dtype=torch.long))
    model.double()
    assert model.predict(good.double(), "goodness").shape == (4,)


def test_sparsity_is_logged_per_layer_and_run_files_are_readable(fake_mnist, tmp_path):
    import os
    import stat

    train(small_config(fake_mnist, optim={"epochs": 1}), tmp_path / "run", "t")
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    assert {"hoyer", "dead"} <= set(record["layers"]["layer0"])
    assert 0 <= record["layers"]["layer0"]["hoyer"] <= 1 and 0 <= record["layers"]["layer0"]["dead"] <= 1
    umask = os.umask(0)
    os.umask(umask)
    for name in ("config.json", "model.pt", "summary.json", "checkpoint.pt"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o666 & ~umask, name


def test_a_bounded_activation_with_an_unreachable_threshold_is_warned_about():
    with pytest.warns(UserWarning, match="never reaches its default threshold"):
        small_config(model={"activation": "sigmoid"})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small_config(model={"activation": "sigmoid"}, objective={"loss": "symba"})
        small_config(model={"activation": "sigmoid"}, objective={"threshold": 16.0})
        small_config(model={"activation": "tanh"}, objective={"goodness": "neg_sum_squares"})
