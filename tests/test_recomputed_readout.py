"""model.readout_recompute: the same step as the readout that keeps its input, with that input never held whole."""

import weakref

import pytest
import torch

from forward_forward.config import merge
from forward_forward.errors import FFError
from forward_forward.layers import normalize
from forward_forward.models import build_model
from forward_forward.train import train
from tests.conftest import small_config

SHAPE = (1, 8, 8)


def _step(fields: dict, recompute: bool, release: bool) -> tuple[dict, dict, dict]:
    """Losses, gradients and buffers after one step of a fresh seed-0 model on fixed images."""
    cfg = small_config(**fields)
    cfg = merge(cfg, {"model": {"readout_recompute": recompute}})
    torch.manual_seed(0)
    model = build_model(cfg, SHAPE, 10)
    model.release_graphs = release
    images, labels = torch.rand(12, *SHAPE, generator=torch.Generator().manual_seed(1)), torch.arange(12) % 10
    torch.manual_seed(2)  # negatives and noise: the same draws both times
    losses, _ = model(images, labels)
    rest = [loss for loss in losses.values() if loss.requires_grad]
    if rest:
        sum(rest).backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return ({k: v.detach() for k, v in losses.items()}, grads, {k: b.clone() for k, b in model.named_buffers()})


@pytest.mark.parametrize("fields", [
    {"model": {"hidden": [32, 24, 16]}},  # hard negatives drawn from the readout's logits
    {"model": {"hidden": [32, 24, 16]}, "objective": {"negatives": "random", "predict_layers_from": 1}},
    {"model": {"hidden": [32, 24, 16], "blackbox": "noise", "blackbox_strength": 0.5}},  # random stages
    {"model": {"hidden": [32, 24], "norm": "layernorm"}, "objective": {"label_coding": "extra"}},
])
@pytest.mark.parametrize("release", [True, False])  # each loss backpropagated as it comes, or at the end (DDP)
def test_a_recomputed_readout_takes_the_step_of_one_that_keeps_its_input(fields, release):
    kept_losses, kept_grads, kept_buffers = _step(fields, recompute=False, release=release)
    losses, grads, buffers = _step(fields, recompute=True, release=release)
    assert losses.keys() == kept_losses.keys() and grads.keys() == kept_grads.keys() and "readout.weight" in grads
    for name in losses:
        torch.testing.assert_close(losses[name], kept_losses[name], rtol=1e-5, atol=1e-6)
    for name in grads:
        torch.testing.assert_close(grads[name], kept_grads[name], rtol=1e-4, atol=1e-6)
    assert grads["readout.weight"].abs().sum() > 0
    for name in buffers:
        torch.testing.assert_close(buffers[name], kept_buffers[name])


@pytest.mark.parametrize(("recompute", "most_alive"), [(True, 1), (False, 4)])
def test_a_recomputed_readout_never_holds_its_whole_input(monkeypatch, recompute, most_alive):
    """The most prediction-layer features alive at once in a step: one with the recomputed readout, every
    layer's (four) with the readout that keeps its input."""
    from forward_forward.models import base, ff

    cfg = merge(small_config(), {"model": {"hidden": [32, 32, 32, 32], "readout_recompute": recompute},
                                 "objective": {"negatives": "random"}})
    model = build_model(cfg, SHAPE, 10)
    model.release_graphs = True
    held: list[weakref.ref] = []
    alive: list[int] = []

    def counted(x, *args):
        out = normalize(x, *args)
        held.append(weakref.ref(out))
        alive.append(sum(ref() is not None for ref in held))
        return out

    for module in (ff, base):  # the streamed features, and the features kept side by side
        monkeypatch.setattr(module, "normalize", counted)
    model(torch.rand(6, *SHAPE), torch.arange(6))
    assert len(held) == (8 if recompute else 4)  # with recompute, the layers run again in the backward pass
    assert max(alive) == most_alive


@pytest.mark.parametrize(("fields", "message"), [
    ({"model": {"readout": False, "readout_recompute": True},
      "objective": {"predict": "goodness", "negatives": "random"}},
     "read only with the readout"),
    ({"model": {"readout_recompute": True, "norm": "batchnorm"}}, "running statistics would move twice"),
    ({"model": {"readout_recompute": True}, "objective": {"negatives": "hybrid", "label_coding": "auto",
                                                          "predict": "softmax"}}, "reads the training pass"),
    ({"model": {"readout_recompute": True, "kind": "backprop"}, "objective": {"predict": "softmax"}},
     "model.kind = backprop"),
    ({"model": {"readout_recompute": True, "iterations": 2, "predict_iterations": [1, 2]},
      "objective": {"label_coding": "auto"}}, "model.iterations > 0"),
])
def test_a_readout_recompute_that_cannot_run_is_refused(fields, message):
    with pytest.raises(FFError, match=message):
        small_config(**fields)


def test_a_run_with_a_recomputed_readout_learns(fake_mnist, tmp_path):
    cfg = small_config(fake_mnist, model={"readout_recompute": True}, optim={"epochs": 2})
    summary = train(cfg, tmp_path / "run", "t")
    assert summary["config"]["model"]["readout_recompute"] is True
    assert summary["val_error_softmax"] < 0.2, summary
