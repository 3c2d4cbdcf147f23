"""Goodness functions, losses, activations and negative strategies: each option really takes effect."""

import pytest
import torch
import torch.nn.functional as F

from forward_forward.config import Config, merge
from forward_forward.errors import FFError
from forward_forward.layers import ACTIVATIONS, normalize
from forward_forward.models import FFNetwork, build_model
from forward_forward.objectives import GOODNESS, LOSSES
from tests.conftest import small_config

Y = torch.tensor([[1.0, -2.0, 0.5, 0.0], [0.0, 3.0, -1.0, 2.0]])
EXPECTED_GOODNESS = {
    "sum_squares": Y.pow(2).sum(1),
    "mean_squares": Y.pow(2).mean(1),
    "sum_abs": Y.abs().sum(1),
    "mean_abs": Y.abs().mean(1),
    "neg_sum_squares": -Y.pow(2).sum(1),
    "neg_mean_squares": -Y.pow(2).mean(1),
    "neg_sum_abs": -Y.abs().sum(1),
    "peak": 4 * Y.pow(4).sum(1) / Y.pow(2).sum(1).pow(2),
}


def model_with(**sections) -> FFNetwork:
    return build_model(small_config(**sections), (100,), 10)


@pytest.mark.parametrize("name", sorted(GOODNESS))
def test_goodness_values_and_the_model_uses_them(name):
    assert torch.allclose(GOODNESS[name].fn(Y), EXPECTED_GOODNESS[name])
    model = model_with(objective={"goodness": name})
    assert torch.allclose(model.goodness(Y), EXPECTED_GOODNESS[name])
    assert model.thresholds[0] == GOODNESS[name].default_threshold(64)


def test_negated_goodness_wants_quiet_positives():
    model = model_with(objective={"goodness": "neg_sum_squares"})
    quiet, loud = torch.zeros(8, 64), torch.full((8, 64), 2.0)
    right, _ = model.layer_loss(0, quiet, loud)
    wrong, _ = model.layer_loss(0, loud, quiet)
    assert right < 1e-3 < wrong


def test_losses_have_their_published_forms():
    g_pos, g_neg = torch.tensor([3.0, 1.0]), torch.tensor([0.5, 2.5])
    logistic = LOSSES["logistic"].fn(g_pos, g_neg, 2.0, 1.0)
    assert torch.isclose(logistic, 0.5 * (F.softplus(-(g_pos - 2)).mean() + F.softplus(g_neg - 2).mean()))
    symba = LOSSES["symba"].fn(g_pos, g_neg, 2.0, 1.0, alpha=4.0)
    assert torch.isclose(symba, F.softplus(-4.0 * (g_pos - g_neg)).mean())
    hinge = LOSSES["hinge"].fn(g_pos, g_neg, 2.0, 0.5)
    assert torch.isclose(hinge, 0.5 * (torch.tensor([0.0, 1.5]).mean() + torch.tensor([0.0, 1.0]).mean()))
    # SymBa pairs each positive with each of its k negatives (image-major)
    paired = LOSSES["symba"].fn(torch.tensor([1.0, 5.0]), torch.tensor([0.0, 2.0, 4.0, 6.0]), 0.0, 1.0, alpha=1.0)
    assert torch.isclose(paired, F.softplus(-torch.tensor([1.0, -1.0, 1.0, -1.0])).mean())


@pytest.mark.parametrize("loss", sorted(LOSSES))
def test_the_model_uses_the_configured_loss(loss):
    options = {"alpha": 2.0} if loss == "symba" else {}
    model = model_with(objective={"loss": loss, **({"symba_alpha": 2.0} if options else {})})
    pos, neg = torch.rand(6, 64) * 2, torch.rand(6, 64)
    got, _ = model.layer_loss(0, pos, neg)
    g_pos, g_neg = model.goodness(pos), model.goodness(neg)
    assert torch.isclose(got, LOSSES[loss].fn(g_pos, g_neg, 64.0, 1.0, **options))


def test_a_loss_option_under_another_loss_is_refused_not_ignored():
    with pytest.raises(FFError, match=r"objective.symba_alpha shape\(s\) objective.loss = symba.*uses logistic"):
        merge(Config(), {"objective": {"symba_alpha": 2.0}})
    assert merge(Config(), {"objective": {"loss": "symba", "symba_alpha": 2.0}}).objective.symba_alpha == 2.0


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_is_applied(name):
    model = model_with(model={"activation": name})
    layer = model.layers[0]
    x = torch.randn(5, 100)
    z = layer.linear(normalize(x, "rms", 1e-8))
    reference = {"relu": torch.relu, "leaky_relu": F.leaky_relu, "gelu": F.gelu, "silu": F.silu,
                 "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu_st": torch.relu}[name]
    assert torch.allclose(layer(x), reference(z), atol=1e-6)


def test_straight_through_relu_passes_gradient_to_silent_units():
    z = torch.tensor([-1.0, 2.0], requires_grad=True)
    ACTIVATIONS["relu_st"]()(z).sum().backward()
    assert torch.equal(z.grad, torch.ones(2))
    z.grad = None
    ACTIVATIONS["relu"]()(z).sum().backward()
    assert torch.equal(z.grad, torch.tensor([0.0, 1.0]))


def test_all_wrong_labels_per_image():
    model = model_with(objective={"negatives": "all"})
    images, labels = torch.rand(4, 100), torch.tensor([0, 3, 9, 3])
    pos, neg = model.negatives.make(images, labels, model.coding)
    assert pos.shape == (4, 100) and neg.shape == (36, 100)
    wrong = neg[:, :10].argmax(1).view(4, 9)
    for i, label in enumerate(labels.tolist()):
        assert sorted(wrong[i].tolist()) == [k for k in range(10) if k != label]
        assert torch.equal(neg[9 * i : 9 * i + 9, 10:], images[i, 10:].expand(9, 90))
    losses, _ = model.losses(images, labels)
    assert all(torch.isfinite(v) for v in losses.values())


def test_random_and_hard_negatives_differ_in_what_they_sample():
    labels = torch.zeros(4000, dtype=torch.long)
    probs = torch.zeros(4000, 10)
    probs[:, 7] = 1.0  # the readout is sure the answer is 7
    hard = model_with(objective={"negatives": "hard"})
    random = model_with(objective={"negatives": "random"})
    _, neg_hard = hard.negatives.make(torch.rand(4000, 100), labels, hard.coding, probs)
    _, neg_random = random.negatives.make(torch.rand(4000, 100), labels, random.coding, probs)
    assert (neg_hard[:, :10].argmax(1) == 7).float().mean() > 0.99
    assert (neg_random[:, :10].argmax(1) == 7).float().mean() < 0.2


def test_jitter_shifts_each_image_by_at_most_the_limit():
    from forward_forward.augment import jitter

    images = torch.zeros(64, 1, 28, 28)
    images[:, 0, 14, 14] = 1.0  # one lit pixel in the middle
    out = jitter(images, 2, torch.Generator().manual_seed(0)).view(64, 28, 28)
    where = out.view(64, -1).argmax(1)
    dy, dx = where // 28 - 14, where % 28 - 14
    assert out.sum() == 64 and dy.abs().max() <= 2 and dx.abs().max() <= 2
    assert len(set(zip(dy.tolist(), dx.tolist()))) > 10  # each image its own shift
    assert torch.equal(jitter(images, 0), images)


def test_jitter_matches_shifting_each_image_by_hand():
    """Colour images, shifts at the border: each output is its input moved by its own draw, zeros let in."""
    import torch.nn.functional as F

    from forward_forward.augment import jitter

    images = torch.rand(16, 3, 9, 7)
    out = jitter(images, 3, torch.Generator().manual_seed(5))
    shifts = torch.randint(-3, 4, (2, 16), generator=torch.Generator().manual_seed(5))  # the same draw
    padded = F.pad(images, (3,) * 4)
    for b, (dy, dx) in enumerate(shifts.t().tolist()):
        assert torch.equal(out[b], padded[b, :, 3 - dy : 3 - dy + 9, 3 - dx : 3 - dx + 7])


def test_turn_and_zoom_turns_counter_clockwise_zooms_about_the_centre_and_keeps_the_identity():
    from forward_forward.augment import turn_and_zoom

    three, one = torch.ones(3, dtype=torch.float64), torch.ones(1, dtype=torch.float64)
    images = torch.rand(3, 2, 9, 9)
    assert torch.allclose(turn_and_zoom(images, 0 * three, three), images, atol=1e-6)
    # a quarter turn of a square image lands every pixel centre on another: exactly torch.rot90
    assert torch.allclose(turn_and_zoom(images, torch.pi / 2 * three, three), torch.rot90(images, 1, (2, 3)),
                          atol=1e-6)
    wide = torch.zeros(1, 1, 6, 8)
    wide[0, 0, 2, 5] = 1.0  # 1.5 pixels right of the centre (2.5, 3.5) and half a pixel up
    turned = turn_and_zoom(wide, torch.pi / 2 * one, one)  # a quarter turn in pixels, not in the [-1, 1] grid
    assert turned[0, 0].nonzero().tolist() == [[1, 3]] and torch.isclose(turned.sum(), torch.tensor(1.0))
    disc = (torch.arange(-10, 11)[:, None] ** 2 + torch.arange(-10, 11)[None, :] ** 2 <= 16).float()[None, None]
    area = float(turn_and_zoom(disc, 0 * one, 1.5 * one).sum())
    assert 1.5**2 * 0.9 < area / float(disc.sum()) < 1.5**2 * 1.1  # twice the area, about the same centre
    assert turn_and_zoom(disc, 0 * one, 1.5 * one)[0, 0, 10, 10] == 1.0


def test_affine_draws_each_image_its_own_turn_and_zoom_within_the_limits():
    from forward_forward.augment import affine

    bar = torch.zeros(200, 1, 21, 21)
    bar[:, 0, 10, 2:19] = 1.0  # a level bar through the centre
    out = affine(bar, 20.0, 0.25, torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.arange(21.0) - 10, torch.arange(21.0) - 10, indexing="ij")
    w = out[:, 0]
    # the bar's direction from its second moments: its angle to the level, and its length from its spread
    sxx, syy, sxy = ((w * xs**2).sum((1, 2)), (w * ys**2).sum((1, 2)), (w * xs * ys).sum((1, 2)))
    angles = torch.rad2deg(0.5 * torch.atan2(2 * sxy, sxx - syy)).abs()
    assert angles.max() < 21 and angles.min() < 3 and (angles > 10).sum() > 50  # each its own, none past 20
    spread = ((sxx + syy) / w.sum((1, 2))).sqrt() / ((xs[10] ** 2 * bar[0, 0, 10]).sum() / 17).sqrt()
    assert 0.7 < spread.min() < 0.85 and 1.15 < spread.max() < 1.3
    assert torch.equal(affine(bar, 20.0, 0.25, torch.Generator().manual_seed(0)), out)  # the generator decides


def test_sleep_phases_train_on_one_kind_of_data():
    model = model_with(model={"peer_lambda": 0.0})
    images, labels = torch.rand(8, 100), torch.randint(0, 10, (8,))
    _, both = model.losses(images, labels, "both")
    _, pos = model.losses(images, labels, "positive")
    _, neg = model.losses(images, labels, "negative")
    assert {"g_pos", "g_neg"} <= set(both["layer0"])
    assert "g_pos" in pos["layer0"] and "g_neg" not in pos["layer0"]
    assert "g_neg" in neg["layer0"] and "g_pos" not in neg["layer0"]
    from forward_forward.training.schedules import Minibatch

    order = torch.arange(700)
    sleep = Minibatch(small_config(optim={"phase_steps": 3, "batch_size": 100}), [], 700)
    assert [sleep.step(1, s, order)[2] for s in range(7)] == ["positive"] * 3 + ["negative"] * 3 + ["positive"]
    assert sleep.step(2, 0, order)[2] == "positive"  # the phase counts steps across epochs: step 7 overall
    awake = Minibatch(small_config(optim={"batch_size": 100}), [], 700)
    assert awake.step(1, 5, order)[2] == "both"


@pytest.mark.parametrize("kind, strength", [("quantize", 2), ("noise", 0.3), ("random_nonlinearity", 0.5)])
def test_black_box_changes_what_the_next_layer_sees_and_passes_no_gradient(kind, strength):
    plain = model_with()
    boxed = model_with(model={"blackbox": kind, "blackbox_strength": strength})
    boxed.load_state_dict(plain.state_dict())
    x = torch.rand(6, 100)
    first_plain, second_plain = plain.activities(x)
    first_boxed, second_boxed = boxed.activities(x)
    assert torch.equal(first_plain, first_boxed)  # the stage sits after layer 0
    assert not torch.allclose(second_plain, second_boxed)  # and layer 1 sees its output
    y = torch.rand(6, 64, requires_grad=True)
    assert not boxed.stack.stages[0](y).requires_grad  # backprop through it gets nothing
    if kind == "quantize":
        levels = boxed.stack.stages[0](y) / y.amax(1, keepdim=True) * 3
        assert torch.allclose(levels, levels.round(), atol=1e-5)


def test_training_through_a_black_box_still_learns(fake_mnist, tmp_path):
    from forward_forward.train import train

    cfg = small_config(fake_mnist, model={"blackbox": "quantize", "blackbox_strength": 2}, optim={"epochs": 3},
                       data={"jitter": 1})
    assert train(cfg, tmp_path / "run", "test")["test_error"] < 0.2


def test_a_norm_that_reads_the_batch_is_never_applied_per_sample():
    from forward_forward.layers import per_sample

    x = torch.randn(4, 6)
    assert per_sample("batchnorm") == "rms" and per_sample("layernorm") == "layernorm"
    with pytest.raises(ValueError, match="not a per-sample norm"):  # once fell through to l2 without a word
        normalize(x, "batchnorm", 1e-8)
    assert torch.allclose(normalize(x, "rms", 0.0).pow(2).mean(1), torch.ones(4))
