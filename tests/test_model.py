"""The classic FF bugs: gradients crossing layers, negatives with the true label, empty state_dict."""

import torch
import torch.nn.functional as F

from forward_forward import labels as label_ops
from forward_forward.models import FFNetwork, build_model
from tests.conftest import small_config


def make_model(**sections) -> FFNetwork:
    return build_model(small_config(**sections), (100,), 10)


def batch(n=16):
    return torch.rand(n, 100), torch.randint(0, 10, (n,))


def owned_params(model, name):
    if name == "readout":
        return set(model.readout.parameters())
    return set(model.layers[int(name.removeprefix("layer"))].parameters())


def test_each_loss_trains_only_its_own_layer():
    model = make_model()
    images, labels = batch()
    losses, _ = model.losses(images, labels)
    assert set(losses) == {"readout", "layer0", "layer1"}
    for name, loss in losses.items():
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        for param in model.parameters():
            reached = param.grad is not None and param.grad.abs().sum() > 0
            assert reached == (param in owned_params(model, name)), f"{name} leaks a gradient"


def test_no_gradient_reaches_the_input_of_a_layer():
    model = make_model()
    x = torch.rand(8, 100, requires_grad=True)
    acts = model.activities(x)
    acts[-1].pow(2).sum().backward()
    assert x.grad is None
    assert model.layers[0].linear.weight.grad is None


def test_random_wrong_label_is_never_true_and_covers_all_wrong_classes():
    labels = torch.randint(0, 10, (20000,))
    wrong = label_ops.random_wrong(labels, 10)
    assert not (wrong == labels).any()
    for k in range(10):  # uniform over the 9 wrong classes
        counts = torch.bincount(wrong[labels == k], minlength=10).float()
        assert counts[k] == 0 and (counts.sum() - counts[k]) > 0
        share = counts[torch.arange(10) != k] / counts.sum()
        assert (share - 1 / 9).abs().max() < 0.05


def test_hard_wrong_label_is_never_true_even_when_the_model_is_certain():
    labels = torch.randint(0, 10, (5000,))
    certain = F.one_hot(labels, 10).float()  # all mass on the true class
    assert not (label_ops.hard_wrong(labels, certain) == labels).any()
    probs = torch.softmax(torch.randn(5000, 10) * 3, dim=1)
    assert not (label_ops.hard_wrong(labels, probs) == labels).any()


def test_hard_wrong_label_follows_the_model_belief():
    labels = torch.zeros(20000, dtype=torch.long)
    probs = torch.tensor([[0.5, 0.4, 0.1] + [0.0] * 7]).repeat(20000, 1)
    share = (label_ops.hard_wrong(labels, probs) == 1).float().mean()
    assert abs(share - 0.8) < 0.02


def test_negatives_in_the_training_batch_never_carry_the_true_label():
    for negatives in ("random", "hard"):
        model = make_model(objective={"negatives": negatives})
        images, labels = batch(500)
        probs = torch.softmax(torch.randn(500, 10), 1)
        pos, neg = model.negatives.make(images, labels, model.coding, probs)
        assert torch.equal(pos[:, :10].argmax(1), labels)
        assert not (neg[:, :10].argmax(1) == labels).any()
        assert torch.equal(pos[:, 10:], images[:, 10:]) and torch.equal(neg[:, 10:], images[:, 10:])


def test_any_label_negatives_carry_the_true_label_about_once_in_ten():
    """The article notebook's draw, kept as a named option: uniform over all ten labels, the true one included."""
    model = make_model(objective={"negatives": "any_label"})
    images, labels = batch(20000)
    pos, neg = model.negatives.make(images, labels, model.coding)
    assert torch.equal(pos[:, :10].argmax(1), labels)
    drawn = neg[:, :10].argmax(1)
    assert abs((drawn == labels).float().mean() - 0.1) < 0.01
    assert torch.bincount(drawn, minlength=10).min() > 1800  # every label, about equally


def test_batched_goodness_prediction_equals_a_loop_over_labels():
    model = make_model(objective={"predict_layers_from": 1})
    images, _ = batch(12)
    batched = model.label_goodness(images)  # (B, C, layers)
    for k in range(10):
        x = model.with_label(images, torch.full((12,), k))
        looped = torch.stack([model.goodness(a) for a in model.activities(x)], dim=1)
        assert torch.allclose(batched[:, k], looped, rtol=1e-5, atol=1e-4)
    expected = batched[:, :, 1:].sum(2).argmax(1)
    assert torch.equal(model.predict(images, "goodness"), expected)


def trained_a_little(model, steps=3):
    images, labels = batch()
    for _ in range(steps):  # move weights and running means away from their initial values
        losses, _ = model.losses(images, labels)
        sum(losses.values()).backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= 0.1 * p.grad
                p.grad = None
    return model


def test_combined_prediction_adds_goodness_per_unit_to_the_readout_log_probabilities():
    model = trained_a_little(make_model(objective={"predict_layers_from": 1, "goodness_weight": 2.5}))
    images, _ = batch(12)
    goodness = model.label_goodness(images)[:, :, 1:]
    units = torch.tensor([float(layer.out_features) for layer in model.layers[1:]])
    expected = model.readout_logits(images).log_softmax(1) + 2.5 * (goodness / units).sum(2)
    assert torch.allclose(model.combined_scores(model.readout_logits(images), goodness), expected, rtol=1e-5, atol=1e-5)
    assert torch.equal(model.predict(images, "combined"), expected.argmax(1))
    # every way from shared passes gives what each way alone gives
    together = model.predictions(images, model.ways)
    assert all(torch.equal(together[how], model.predict(images, how)) for how in model.ways)


def test_combined_prediction_reduces_to_each_way_at_the_ends_of_its_weight():
    model = trained_a_little(make_model(objective={"predict_layers_from": 1, "goodness_weight": 0.0}))
    images, _ = batch(32)
    assert torch.equal(model.predict(images, "combined"), model.predict(images, "softmax"))
    combined = model.predictions(images, ("combined",), goodness_weight=1e6)["combined"]
    summed = model.label_goodness(images)[:, :, 1:].sum(2)
    chosen = summed.gather(1, combined[:, None]).squeeze(1)
    # the label with the most goodness, up to float rounding between labels of near-equal goodness
    assert torch.allclose(chosen, summed.max(1).values, rtol=1e-5)
    agree = (combined == model.predict(images, "goodness")).float().mean()
    assert agree >= 0.9


def test_state_dict_is_complete_and_round_trips():
    model = trained_a_little(make_model())
    images, _ = batch()
    state = model.state_dict()
    assert {"stack.layers.0.linear.weight", "stack.layers.1.mean_activity", "readout.weight"} <= set(state)
    fresh = make_model()
    key = "stack.layers.1.mean_activity"
    assert not torch.equal(fresh.state_dict()[key], state[key])
    fresh.load_state_dict(state)
    for how in model.ways:
        assert torch.equal(fresh.predict(images, how), model.predict(images, how))
    assert torch.equal(fresh.label_goodness(images), model.label_goodness(images))


def test_layer_gradient_matches_the_closed_form_of_the_matlab_recipe():
    """One layer's weight gradient equals the hand-derived MATLAB update (sum of squares, theta = units)."""
    model = make_model(model={"peer_lambda": 0.0})
    layer = model.layers[0]
    pos, neg = torch.rand(8, 100), torch.rand(8, 100)
    y = layer(torch.cat([pos, neg]))
    loss, _ = model.layer_loss(0, y[:8], y[8:])
    loss.backward()
    # MATLAB: dC/dz = (1 - p) * y for positives and -p * y for negatives, averaged per kind.
    with torch.no_grad():
        x = torch.cat([pos, neg])
        xn = x / x.pow(2).mean(1, keepdim=True).sqrt()
        z = xn @ layer.linear.weight.T + layer.linear.bias
        act = z.clamp_min(0)
        p = torch.sigmoid(act.pow(2).sum(1) - 64)
        ascent = torch.cat([(1 - p[:8, None]) * act[:8], -p[8:, None] * act[8:]]) / 8
        expected = -(ascent.T @ xn)  # descent direction of the loss
    assert torch.allclose(layer.linear.weight.grad, expected, rtol=1e-4, atol=1e-6)


def test_layer_objective_is_the_layer_loss_of_its_halves_plus_the_peer_term():
    """The objective splits the goodness of the whole batch: the same loss, gradient and statistics as
    splitting the activities first."""
    model = make_model(model={"peer_lambda": 0.5}).eval()  # eval: the peer term leaves the running mean alone
    layer = model.layers[0]
    with torch.no_grad():
        layer.mean_activity.copy_(torch.rand(layer.out_features))  # a peer push that is not zero
    z = layer.pre_activation(torch.rand(16, 100))
    y = layer.activation(z)
    got, stats = model.layer_objective(0, z, y, 6)
    loss, expected = model.layer_loss(0, y[:6], y[6:])
    want = loss + layer.peer_loss(z[:6], y[:6])
    assert torch.allclose(got, want)
    grad_got, grad_want = (torch.autograd.grad(v, layer.linear.weight, retain_graph=True)[0] for v in (got, want))
    assert torch.allclose(grad_got, grad_want, atol=1e-7)
    assert stats.keys() == expected.keys() == {"g_pos", "g_neg", "acc"}
    assert all(torch.allclose(torch.as_tensor(stats[k]), torch.as_tensor(expected[k])) for k in stats)


def test_peer_normalisation_gradient_is_not_gated_by_the_relu():
    model = make_model(model={"peer_lambda": 0.5})
    layer = model.layers[0]
    layer.mean_activity.copy_(torch.linspace(0, 1, 64))
    z = torch.full((4, 64), -1.0, requires_grad=True)  # every unit silent: a ReLU would pass no gradient
    layer.peer_loss(z, torch.relu(z)).backward()
    mean = layer.mean_activity
    expected = 0.5 * (mean - mean.mean()) / 4
    assert torch.allclose(z.grad, expected.expand(4, 64), atol=1e-6)
    assert torch.allclose(mean, 0.9 * torch.linspace(0, 1, 64))  # running mean moved toward 0


def test_bf16_autocast_keeps_goodness_losses_and_gradients_in_fp32():
    """bfloat16 resolves a goodness near theta = 2000 only to steps of 16: the layers must hand back fp32."""
    model = make_model(model={"hidden": [256, 256]})
    images, labels = batch(64)
    torch.manual_seed(1)
    exact, _ = model.losses(images, labels)
    torch.manual_seed(1)  # the same hard negatives
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast, _ = model.losses(images, labels)
        acts = model.activities(images)
    assert all(a.dtype == torch.float32 for a in acts)
    for name in exact:
        assert fast[name].dtype == torch.float32, name
        assert torch.allclose(fast[name], exact[name], rtol=0.03, atol=1e-3), (name, fast[name], exact[name])
    sum(fast.values()).backward()
    assert all(p.grad.dtype == torch.float32 for p in model.parameters() if p.grad is not None)


def test_weights_saved_before_the_layer_stack_still_load():
    model = trained_a_little(make_model())
    images, _ = batch()
    legacy = {k.replace("stack.layers.", "layers."): v for k, v in model.state_dict().items()}
    assert "layers.0.linear.weight" in legacy
    fresh = make_model()
    fresh.load_state_dict(legacy)
    assert torch.equal(fresh.predict(images, "combined"), model.predict(images, "combined"))


def test_losses_under_eval_leave_every_buffer_unchanged():
    model = trained_a_little(make_model(model={"peer_lambda": 0.03}))
    images, labels = batch()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.eval()
    with torch.no_grad():
        losses, _ = model(images, labels)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    model.train()
    model(images, labels)
    assert not torch.equal(model.state_dict()["stack.layers.0.mean_activity"], before["stack.layers.0.mean_activity"])
