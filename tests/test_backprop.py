"""The backprop baseline: same layers, trained end to end, and stopped cold by a black box."""

import pytest
import torch

from forward_forward.cli import main
from forward_forward.config import Config, merge
from forward_forward.errors import FFError
from forward_forward.train import build_model, train
from tests.conftest import small_config


def _model(kind: str, blackbox: str = "none"):
    stage = {"blackbox": blackbox, "blackbox_strength": 2.0} if blackbox != "none" else {}
    ff_only = {"predict_layers_from": 0, "label_coding": "pixels"} if kind == "ff" else {}
    cfg = merge(Config(), {"model": {"kind": kind, "hidden": [16, 16, 16], **stage},
                           "objective": {"predict": "softmax", **ff_only}})
    return build_model(cfg, (30,), 10)


def _grads(model) -> list[bool]:
    images, labels = torch.rand(8, 30), torch.randint(0, 10, (8,))
    losses, _ = model.losses(images, labels)
    sum(losses.values()).backward()
    return [layer.linear.weight.grad is not None and bool(layer.linear.weight.grad.abs().sum() > 0)
            for layer in model.layers]


def test_backprop_reaches_every_layer_but_not_through_a_black_box():
    assert _grads(_model("backprop")) == [True, True, True]
    # quantisation has no useful derivative: only the layer above the last stage learns
    assert _grads(_model("backprop", "quantize")) == [False, False, True]
    # FF needs no derivative across layers, so every layer still learns through the same stages
    assert _grads(_model("ff", "quantize")) == [True, True, True]


def test_backprop_has_the_same_layers_as_the_ff_network():
    ff, bp = _model("ff"), _model("backprop")
    assert [tuple(p.shape) for p in ff.layers.parameters()] == [tuple(p.shape) for p in bp.layers.parameters()]
    assert bp.readout.in_features == 16  # the output layer sits on the last hidden layer


def test_backprop_run_learns_and_evaluates_from_its_directory(fake_mnist, tmp_path, capsys):
    cfg = small_config(fake_mnist, model={"kind": "backprop"}, objective={"predict": "softmax"},
                       optim={"lr": 0.1, "epochs": 3})
    summary = train(cfg, tmp_path / "run", "test")
    assert summary["test_error"] < 0.1 and "test_error_goodness" not in summary, summary
    assert main(["eval", str(tmp_path / "run")]) == 0
    assert f"test error {100 * summary['test_error']:.2f} %" in capsys.readouterr().out
    assert main(["plot", str(tmp_path / "run")]) == 0  # its curves, weights and confusion: no goodness to draw
    assert not (tmp_path / "run" / "figures" / "goodness.png").exists()
    assert main(["eval", str(tmp_path / "run"), "--predict", "goodness"]) == 2


@pytest.mark.parametrize("overrides, message", [
    ({"objective": {"predict": "goodness"}}, "predicts by its output layer"),
    ({"optim": {"phase_steps": 10}}, "trains end to end"),
])
def test_backprop_refuses_ff_only_options(overrides, message):
    with pytest.raises(FFError, match=message):
        merge(Config(), {"model": {"kind": "backprop"}, **overrides})
