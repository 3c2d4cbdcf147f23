"""Unsupervised FF: hybrid negatives, a network that never sees a label, and the linear probe."""

import json

import pytest
import torch

from forward_forward.cli import main
from forward_forward.config import Config, merge
from forward_forward.errors import FFError
from forward_forward.negatives.hybrid import blur_masks, hybrid_images, partners
from forward_forward.probe import error, fit_probe
from forward_forward.train import build_model, train
from tests.conftest import small_config


def _neighbour_agreement(masks: torch.Tensor) -> float:
    return (masks[:, :, 1:] == masks[:, :, :-1]).float().mean().item()


def test_masks_are_binary_balanced_and_spatially_coherent():
    masks = blur_masks(200, 28, 28, passes=6, generator=torch.Generator().manual_seed(0))
    assert masks.shape == (200, 28, 28) and set(masks.unique().tolist()) <= {0.0, 1.0}
    assert 0.4 < masks.mean().item() < 0.6
    raw = blur_masks(200, 28, 28, passes=0, generator=torch.Generator().manual_seed(0))
    assert _neighbour_agreement(raw) == pytest.approx(0.5, abs=0.02)  # no blur: independent bits
    assert _neighbour_agreement(masks) > 0.85  # large regions, as in the paper's figure
    more = blur_masks(200, 28, 28, passes=12, generator=torch.Generator().manual_seed(0))
    assert _neighbour_agreement(more) > _neighbour_agreement(masks)


def test_hybrids_mix_two_different_images_pixel_by_pixel():
    assert (partners(16) != torch.arange(16)).all()
    images = torch.arange(16.0).view(16, 1).expand(16, 784)  # image i is all i: a pixel's value names its source
    hybrids = hybrid_images(images, (1, 28, 28), passes=6)
    for i, row in enumerate(hybrids):
        sources = set(row.unique().tolist())
        assert len(sources) == 2 and i in sources, sources  # itself and exactly one other image
        assert 0.05 < (row == i).float().mean() < 0.95  # so it differs from both


def test_probe_learns_a_linearly_separable_problem():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 20, generator=gen)
    y = (x[:, 3] - x[:, 7] > 0).long()
    probe = fit_probe(x[:500], y[:500], 2, epochs=30, lr=0.01)
    assert error(probe, x[500:], y[500:]) < 0.05


def test_layers_never_see_the_label():
    cfg = merge(Config(), {"model": {"hidden": [32, 32]}, "objective": {"negatives": "hybrid"}})
    model = build_model(cfg, (1, 8, 8), 10)
    torch.nn.init.normal_(model.readout.weight)
    images, zeros, labels = torch.rand(20, 1, 8, 8), torch.zeros(20, dtype=torch.long), torch.randint(0, 10, (20,))
    torch.manual_seed(1)
    a, _ = model.losses(images, zeros)
    torch.manual_seed(1)
    b, _ = model.losses(images, labels)
    assert all(torch.equal(a[k], b[k]) for k in ("layer0", "layer1"))
    assert not torch.equal(a["readout"], b["readout"])


def test_unsupervised_run_and_probe_on_it_and_on_a_supervised_run(fake_mnist, tmp_path, capsys):
    cfg = small_config(fake_mnist, objective={"negatives": "hybrid", "predict": "softmax"}, optim={"epochs": 2})
    summary = train(cfg, tmp_path / "unsup", "test")
    assert summary["test_error"] < 0.2 and "test_error_goodness" not in summary, summary
    assert main(["probe", str(tmp_path / "unsup"), "--layers", "0,1", "--no-progress"]) == 0
    probe = json.loads((tmp_path / "unsup" / "probe.json").read_text())
    assert probe["layers"] == [0, 1] and probe["test_error"] < 0.2, probe
    assert "linear probe on layers [0, 1]" in capsys.readouterr().out
    train(small_config(fake_mnist, optim={"epochs": 1}), tmp_path / "sup", "test")
    assert main(["probe", str(tmp_path / "sup"), "--no-progress", "--epochs", "3"]) == 0
    assert main(["probe", str(tmp_path / "sup"), "--layers", "5"]) == 2


def test_probe_on_a_run_trained_on_every_image(fake_mnist, tmp_path, capsys):
    cfg = small_config(fake_mnist, data={"val_size": 0}, objective={"negatives": "hybrid", "predict": "softmax"},
                       optim={"epochs": 1})
    train(cfg, tmp_path / "run", "test")
    assert main(["probe", str(tmp_path / "run"), "--no-progress", "--epochs", "3"]) == 0
    assert "no validation" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "probe.json").read_text())["val_error"] is None
    # choosing the probe's settings: validated on the last training images, the test set left alone
    assert main(["probe", str(tmp_path / "run"), "--no-progress", "--epochs", "3", "--holdout", "200"]) == 0
    assert "test not scored" in capsys.readouterr().out
    assert main(["probe", str(tmp_path / "run"), "--no-progress", "--epochs", "3", "--holdout", "200",
                 "--lr", "0.01"]) == 0
    tried = [json.loads(line) for line in (tmp_path / "run" / "probe-holdout.jsonl").read_text().splitlines()]
    assert [t["lr"] for t in tried] == [1e-4, 0.01]  # every setting tried is kept
    assert all(t["test_error"] is None and t["val_error"] is not None and t["holdout"] == 200 for t in tried)
    assert json.loads((tmp_path / "run" / "probe.json").read_text())["holdout"] == 0  # the final probe is kept
    assert main(["probe", str(tmp_path / "run"), "--holdout", "1000000"]) == 2
    assert "--holdout must leave training images" in capsys.readouterr().err


def test_hybrid_negatives_need_the_readout():
    with pytest.raises(FFError, match="learns without labels"):
        merge(Config(), {"objective": {"negatives": "hybrid", "predict": "goodness"}})
