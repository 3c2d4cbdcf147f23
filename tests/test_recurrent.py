"""The recurrent top-down net (paper §4): its dynamics against a plain reference, the locality of its
FF losses, batched prediction, its backprop twin, its config errors and a short real run."""

import json

import pytest
import torch
import torch.nn.functional as F

from forward_forward import config as config_mod
from forward_forward.cli import main
from forward_forward.errors import FFError
from forward_forward.layers import normalize
from forward_forward.models import RecurrentBackpropNetwork, RecurrentFFNetwork, build_model
from forward_forward.train import train
from tests.conftest import small_config

SHAPE = (1, 6, 6)


def recurrent(kind: str = "ff", **model) -> RecurrentFFNetwork | RecurrentBackpropNetwork:
    fields = {"kind": kind, "hidden": [20, 16], "iterations": 3, "predict_iterations": [2, 3], "peer_lambda": 0.0,
              **model}
    objective = {"predict": "softmax"} if kind == "backprop" else {"negatives": "random"}
    net = build_model(small_config(model=fields, objective=objective), SHAPE, 10)
    assert isinstance(net, (RecurrentFFNetwork, RecurrentBackpropNetwork))
    return net


def reference_states(net, images: torch.Tensor, top: torch.Tensor, iterations: int, damping: float):
    """The paper's dynamics written out with the weights alone: every state from iteration 0 (bottom-up) on."""
    ups = [(layer.linear.weight, layer.linear.bias) for layer in net.layers]
    downs = [linear.weight for linear in net.topdown.down]
    x = images.flatten(1)
    states = []
    for w, b in ups:  # the bottom-up pass
        x = torch.relu(normalize(x, "rms", 1e-8) @ w.T + b)
        states.append(x)
    history = [states]
    for _ in range(iterations):
        below = [images.flatten(1)] + states[:-1]
        above = states[1:] + [top]
        states = [damping * old + (1 - damping) * torch.relu(normalize(lo, "rms", 1e-8) @ w.T + b
                                                             + normalize(hi, "rms", 1e-8) @ v.T)
                  for old, lo, hi, (w, b), v in zip(states, below, above, ups, downs)]
        history.append(states)
    return history


def test_with_top_down_weights_zeroed_it_is_the_feed_forward_net():
    images, labels = torch.rand(5, *SHAPE), torch.randint(0, 10, (5,))
    for iterations in (1, 4):
        net = recurrent(iterations=iterations, predict_iterations=[1])
        with torch.no_grad():
            for linear in net.topdown.down:
                linear.weight.zero_()
            settled = net.activities(net.with_label(images, labels))
        feed_forward = reference_states(net, images, torch.zeros(5, 10), iterations=0, damping=0.3)[0]
        for a, b in zip(settled, feed_forward):
            torch.testing.assert_close(a, b)
        twin = recurrent("backprop", iterations=iterations, predict_iterations=[1])
        with torch.no_grad():
            for linear in twin.topdown.down:
                linear.weight.zero_()
            out = twin.readout(normalize(twin.stack.activities(images)[-1], "rms", 1e-8))
            torch.testing.assert_close(twin.logits(images), out)  # the feed-forward twin's output


@pytest.mark.parametrize("iterations, damping", [(1, 0.0), (3, 0.3), (5, 0.9)])
def test_damping_and_iterations_are_as_configured(iterations, damping):
    net = recurrent(iterations=iterations, damping=damping, predict_iterations=[1])
    images, labels = torch.rand(4, *SHAPE), torch.tensor([0, 3, 5, 9])
    top = normalize(F.one_hot(labels, 10).float(), "rms", 1e-8)
    history = reference_states(net, images, top, iterations, damping)
    with torch.no_grad():
        x = net.with_label(images, labels)
        settled = net.activities(x)
        trajectory = net.trajectory(x)
    assert trajectory.shape == (4, iterations + 1, 2)
    for a, b in zip(settled, history[-1]):
        torch.testing.assert_close(a, b)
    expected = torch.stack([torch.stack([s.pow(2).sum(1) for s in states], 1) for states in history], 1)
    torch.testing.assert_close(trajectory, expected)


def test_prediction_averages_the_chosen_iterations():
    net = recurrent(iterations=4, predict_iterations=[2, 4])
    x = net.with_label(torch.rand(3, *SHAPE), torch.tensor([1, 2, 3]))
    with torch.no_grad():
        torch.testing.assert_close(net.layer_goodness(x), net.trajectory(x)[:, [2, 4]].mean(1))


def test_no_gradient_crosses_a_layer_or_an_iteration():
    """Each layer's loss is the mean over iterations of its loss on that iteration's activities, with every
    earlier state a constant: its gradient is the reference's, and reaches no other layer's weights."""
    net = recurrent(iterations=3)
    images, labels = torch.rand(6, *SHAPE), torch.randint(0, 10, (6,))
    losses, _ = net(images, labels, phase="positive")  # positives only: the same inputs as the reference
    top = normalize(F.one_hot(labels, 10).float(), "rms", 1e-8)
    history = reference_states(net, images, top, 3, 0.3)
    params = dict(net.named_parameters())
    for i in range(2):
        grads = torch.autograd.grad(losses[f"layer{i}"], list(params.values()), retain_graph=True, allow_unused=True)
        reached = {name for name, g in zip(params, grads) if g is not None and g.abs().sum() > 0}
        assert reached == {f"stack.layers.{i}.linear.weight", f"stack.layers.{i}.linear.bias",
                           f"topdown.down.{i}.weight"}
        w, b, v = net.layers[i].linear.weight, net.layers[i].linear.bias, net.topdown.down[i].weight
        terms = []
        for t in range(1, 4):
            before = [s.detach() for s in history[t - 1]]
            below = images.flatten(1) if i == 0 else before[i - 1]
            above = before[i + 1] if i == 0 else top
            y = 0.3 * before[i] + 0.7 * torch.relu(normalize(below, "rms", 1e-8) @ w.T + b
                                                   + normalize(above, "rms", 1e-8) @ v.T)
            terms.append(net.layer_loss(i, y, y[:0])[0])
        expected = torch.autograd.grad(torch.stack(terms).mean(), [w, b, v])
        for got, want in zip(torch.autograd.grad(losses[f"layer{i}"], [w, b, v], retain_graph=True), expected):
            torch.testing.assert_close(got, want)


def test_batched_prediction_equals_a_loop_over_labels():
    net = recurrent()
    images = torch.rand(7, *SHAPE)
    with torch.no_grad():
        batched = net.label_goodness(images)  # (B, C, layers): every label in one pass per iteration
        looped = torch.stack([net.layer_goodness(net.with_label(images, torch.full((7,), c))) for c in range(10)], 1)
    torch.testing.assert_close(batched, looped)
    assert net.predict(images, "goodness").tolist() == batched.sum(2).argmax(1).tolist()


def test_top_down_weights_are_saved_trained_and_change_what_the_net_does():
    net = recurrent()
    assert {"topdown.down.0.weight", "topdown.down.1.weight"} <= set(net.state_dict())
    images, labels = torch.rand(8, *SHAPE), torch.randint(0, 10, (8,))
    losses, _ = net(images, labels)
    sum(losses.values()).backward()
    assert all(linear.weight.grad.abs().sum() > 0 for linear in net.topdown.down)
    with torch.no_grad():
        before = net.label_goodness(images)
        net.topdown.down[1].weight.mul_(2)
        assert not torch.allclose(before, net.label_goodness(images))


def test_the_twin_is_trained_end_to_end_through_every_iteration():
    twin = recurrent("backprop")
    images, labels = torch.rand(8, *SHAPE), torch.randint(0, 10, (8,))
    losses, _ = twin(images, labels)
    losses["output"].backward()
    # down[0] feeds layer 0, which reaches the output only an iteration later: its gradient crossed one
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in twin.parameters())
    assert twin.matmul_flops_per_image() > build_model(small_config(model={"kind": "backprop", "hidden": [20, 16]},
                                                                    objective={"predict": "softmax"}),
                                                       SHAPE, 10).matmul_flops_per_image()


@pytest.mark.parametrize("fields, message", [
    ({"model": {"iterations": 2}}, r"model.predict_iterations must list distinct iterations between 1 and "
                                   r"model.iterations = 2; got \[3, 4, 5\]"),
    ({"model": {"damping": 0.5}}, "model.damping shape the recurrent net, and model.iterations = 0"),
    ({"model": {"iterations": 8, "damping": 1.0}}, r"model.damping must be in \[0, 1\)"),
    ({"model": {"iterations": 8, "kind": "competitive"}}, "which model.kind = ff or backprop trains, not competitive"),
    ({"model": {"iterations": 8}, "objective": {"label_coding": "pixels"}}, "leave objective.label_coding = auto"),
    ({"model": {"iterations": 8}, "objective": {"negatives": "hybrid"}}, "use random, hard or all"),
    ({"model": {"iterations": 8}, "objective": {"label_value": "max"}}, "leave objective.label_value at its"),
    ({"model": {"iterations": 8}, "objective": {"neutral_value": 0.5}}, "leave objective.neutral_value at its"),
    ({"model": {"iterations": 8}, "run": {"parallel": "pipeline"}}, "cannot take run.parallel = pipeline"),
    ({"model": {"iterations": 8, "overlap": True}}, "cannot take model.overlap"),
])
def test_what_the_recurrent_net_cannot_take_is_refused_with_the_field(fields, message):
    base = config_mod.Config()
    with pytest.raises(FFError, match=message):
        config_mod.merge(base, fields)


def test_a_short_real_run_learns_draws_its_iterations_and_has_a_twin(fake_mnist, tmp_path):
    cfg = small_config(fake_mnist, model={"iterations": 3, "predict_iterations": [2, 3], "hidden": [48, 48]},
                       objective={"predict": "best"}, optim={"epochs": 2, "lr": 0.02})
    summary = train(cfg, tmp_path / "run", "test")
    assert summary["test_error_goodness"] < 0.5 and summary["test_error_softmax"] < 0.5, summary
    assert main(["plot", str(tmp_path / "run"), "--samples", "60"]) == 0
    facts = json.loads((tmp_path / "run" / "figures" / "figures.json").read_text())
    right = facts["iterations"]["right"]
    assert right["label"] == right["predicted"] and len(right["goodness"]) == 10 and len(right["goodness"][0]) == 4
    mean = facts["iterations"]["mean"]
    assert mean["true"][0] == pytest.approx(mean["wrong"][0])  # the bottom-up pass sees no label
    assert sum(mean["true"][2:]) > sum(mean["wrong"][2:])  # a trained net: the true label gets more goodness
    assert (tmp_path / "run" / "figures" / "iterations.png").stat().st_size > 10_000
    twin = train(config_mod.merge(cfg, {"model": {"kind": "backprop"}, "objective": {"predict": "softmax"}}),
                 tmp_path / "twin", "test")
    assert twin["test_error"] < 0.5, twin
