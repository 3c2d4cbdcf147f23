"""Convolutional FF: the conv layer, goodness per region or channel group, the channel-wise competitive
model (CwComp), input normalisations, residuals, flips, and the backprop twin of a conv net."""

import pytest
import torch
import torch.nn.functional as F

from forward_forward import augment
from forward_forward.config import Config, merge
from forward_forward.data import from_arrays
from forward_forward.errors import FFError
from forward_forward.layers import FFConv, InputNorm
from forward_forward.models import build_model
from forward_forward.objectives import SCOPES, Scope
from forward_forward.train import train
from tests.conftest import small_config

CONV = {"layer": "conv", "hidden": [20, 30], "kernel": 3, "padding": 1, "pool": [2, 1], "peer_lambda": 0.0}


def conv_config(**sections):
    model = {**CONV, **sections.pop("model", {})}
    if model["layer"] == "dense":  # the map's geometry is refused where nothing reads it
        model = {k: v for k, v in model.items() if k not in ("kernel", "padding", "pool")}
    coding = {} if model.get("kind") == "backprop" else {"label_coding": "channels"}  # the twin takes no label
    objective = {**coding, **sections.pop("objective", {})}
    return small_config(model=model, objective=objective, **sections)


def competitive_config(**sections):
    """small_config's data, optimiser and run, with a competitive conv model and its objective."""
    base = small_config().to_dict()
    base["model"] = {**CONV, "kind": "competitive", **sections.pop("model", {})}
    base["objective"] = {"goodness": "mean_squares", "predict": "goodness", "predict_layers_from": 0,
                         **sections.pop("objective", {})}
    for section, values in sections.items():
        base[section].update(values)
    return merge(Config(), base)


def images(n=8, c=1, side=12, seed=0):
    return torch.rand(n, c, side, side, generator=torch.Generator().manual_seed(seed))


# ---- the layer ------------------------------------------------------------------------------
def test_the_conv_layer_is_a_normalised_convolution_then_max_pooling():
    layer = FFConv((3, 12, 12), 5, 3, stride=1, padding=1, pool=2)
    x = images(4, 3)
    flat = x.flatten(1)
    expected = F.max_pool2d(F.conv2d((flat / flat.pow(2).mean(1, keepdim=True).sqrt()).view_as(x),
                                     layer.weight, layer.conv.bias, padding=1), 2)
    assert layer.out_shape == (5, 6, 6)
    assert torch.allclose(layer.pre_activation(x), expected.flatten(1), atol=1e-5)
    assert torch.allclose(layer(x), torch.relu(expected).flatten(1), atol=1e-5)
    assert layer.macs == 5 * 3 * 9 * 12 * 12


def test_channels_last_is_the_same_arithmetic_in_another_memory_order(fake_mnist, tmp_path, monkeypatch):
    layer = FFConv((3, 12, 12), 5, 3, padding=1, pool=2)
    x = images(4, 3)
    plain = layer(x)
    layer.to(memory_format=torch.channels_last)
    assert layer.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(layer(x), plain, atol=1e-5)
    cfg = conv_config(model={"hidden": [10, 10]}, optim={"epochs": 1}, run={"channels_last": True})
    cfg = merge(cfg, {"data": {"data_dir": str(fake_mnist), "train_limit": 300}})
    from forward_forward.layers import conv as conv_module

    orders, transform = [], conv_module.FFConv.transform

    def spy(self, x):  # the memory order each conv layer trains in
        orders.append(self.conv.weight.is_contiguous(memory_format=torch.channels_last))
        return transform(self, x)

    monkeypatch.setattr(conv_module.FFConv, "transform", spy)
    summary = train(cfg, tmp_path / "run")
    assert orders and all(orders)  # every conv pass of the run, training and scoring
    monkeypatch.undo()
    from forward_forward.training import load_trained
    from forward_forward.training.evaluate import error_rate

    cfg, model, data, device = load_trained(tmp_path / "run")  # back in NCHW, as ff eval rebuilds it
    assert error_rate(model, data.test, summary["predict"], 128, device) == summary["test_error"]


def test_no_derivative_crosses_a_conv_layer():
    model = build_model(conv_config(), (1, 12, 12), 10)
    losses, _ = model(images(), torch.arange(8) % 10)
    losses["layer1"].backward()
    assert all(p.grad is None for p in model.stack.layers[0].parameters())
    assert model.stack.layers[1].conv.weight.grad.abs().sum() > 0


def test_the_backprop_twin_of_a_conv_net_trains_every_layer_end_to_end():
    model = build_model(conv_config(model={"kind": "backprop"}), (1, 12, 12), 10)
    losses, _ = model(images(), torch.arange(8) % 10)
    losses["output"].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_auto_label_coding_gives_a_conv_net_label_channels(fake_mnist):
    cfg = conv_config(model={"hidden": [10, 10]}, objective={"label_coding": "auto"}, optim={"epochs": 1})
    cfg = merge(cfg, {"data": {"data_dir": str(fake_mnist), "train_limit": 300}})
    summary = train(cfg, fake_mnist.parent / "run")
    assert summary["config"]["objective"]["label_coding"] == "channels"


def test_the_pattern_coding_spreads_each_label_over_the_whole_image():
    from forward_forward.coding import Pattern

    coding = Pattern((1, 12, 12), 10)
    x = images(2)
    a, b = coding.write(x, torch.tensor([3, 3])), coding.write(x, torch.tensor([4, 4]))
    assert a.shape == x.shape and torch.equal(coding.neutral(x), x)
    assert torch.allclose((a - x).abs(), torch.full_like(x, 0.5))  # every pixel carries the label
    assert torch.allclose(a[0] - x[0], a[1] - x[1]) and not torch.allclose(a, b)  # one pattern per class
    assert torch.equal(Pattern((1, 12, 12), 10).patterns, coding.patterns)  # the same in every process
    model = build_model(conv_config(objective={"label_coding": "pattern"}), (1, 12, 12), 10)
    assert model.stack.layers[0].in_shape == (1, 12, 12)
    losses, _ = model(x, torch.tensor([1, 2]))
    assert torch.isfinite(losses["layer1"])


@pytest.mark.parametrize("model, message", [
    ({"pool": [7, 1]}, "7 x 7 pooling does not fit its 6 x 6 map"),
    ({"layer": "local", "pool": 2}, "model.pool is for conv layers"),
    ({"pool": 0}, "model.pool must be at least 1"),
    ({"layer": ["dense", "conv"]}, "puts a conv layer after a dense one"),
    ({"kernel": 0}, "model.kernel must be at least 1 for every conv layer"),
])
def test_conv_geometry_errors_name_the_field(model, message):
    with pytest.raises(FFError, match=message):
        build_model(conv_config(model=model), (1, 6, 6), 10)


# ---- goodness per region and per channel group ------------------------------------------------
def test_regions_and_channel_groups_partition_the_layer():
    y = torch.randn(3, 4 * 5 * 5)
    for scope in (Scope(region=2), Scope(region=1), Scope(groups=2), Scope(groups=4, region=3)):
        terms = scope.split(y, (4, 5, 5))
        assert terms.pow(2).sum((1, 2, 3)).allclose(y.pow(2).sum(1))  # every unit once; padding adds zeros
        assert terms.shape[-1] == scope.size((4, 5, 5))
    # one region is one patch of positions with all its channels
    region = Scope(region=2).split(y, (4, 5, 5))[:, 0, 0]
    assert torch.equal(region, y.view(3, 4, 5, 5)[:, :, :2, :2].reshape(3, -1))
    assert torch.equal(Scope(groups=2).split(y, (4, 5, 5))[:, 1, 0], y[:, 50:])


def test_each_region_has_its_own_loss_term():
    """Per-region goodness is not the whole-layer goodness in disguise: the losses differ, and a
    region's threshold is set by its own size."""
    x, labels = images(), torch.arange(8) % 10
    torch.manual_seed(1)
    whole = build_model(conv_config(), (1, 12, 12), 10)
    torch.manual_seed(1)
    regional = build_model(conv_config(objective={"goodness_scope": "region", "region_size": 2}), (1, 12, 12), 10)
    assert regional.thresholds == [20 * 4, 30 * 4] and whole.thresholds == [20 * 36, 30 * 36]
    torch.manual_seed(2)
    a, _ = whole(x, labels)
    torch.manual_seed(2)
    b, _ = regional(x, labels)
    assert not torch.allclose(a["layer0"], b["layer0"])
    # prediction by goodness reads the mean of the terms: for sum goodness, the layer's own ranking
    assert regional.layer_goodness(regional.with_label(x, labels)).shape == (8, 2)


def test_channel_groups_must_divide_every_layer():
    with pytest.raises(FFError, match="hidden layer 0 has 20: make each layer's channels a multiple of 3"):
        build_model(conv_config(objective={"goodness_scope": "channels", "channel_groups": 3}), (1, 12, 12), 10)


# ---- the channel-wise competitive model --------------------------------------------------------
def test_the_competitive_loss_is_the_cross_entropy_of_class_group_goodness():
    cfg = competitive_config(objective={"temperature": 0.5})
    model = build_model(cfg, (1, 12, 12), 10)
    x, labels = images(), torch.arange(8) % 10
    losses, _ = model(x, labels)
    y = model.stack.activities(x)[1].view(8, 10, 3, 6, 6)  # 30 channels: 10 groups of 3
    logits = y.pow(2).mean((2, 3, 4)) / 0.5
    assert torch.allclose(losses["layer1"], F.cross_entropy(logits, labels), atol=1e-5)
    assert set(losses) == {"layer0", "layer1", "readout"}


def test_the_competitive_model_takes_no_label_and_predicts_in_one_pass(monkeypatch):
    model = build_model(competitive_config(), (1, 12, 12), 10)
    calls, forward = [], model.stack.forward
    monkeypatch.setattr(model.stack, "forward", lambda x, **kw: calls.append(tuple(x.shape)) or forward(x, **kw))
    predicted = model.predictions(images(), ("goodness", "softmax", "combined"))
    assert calls == [(8, 1, 12, 12)]  # the image alone, once, for every way
    assert all(p.shape == (8,) for p in predicted.values())


def test_regional_competition_has_a_loss_term_per_region():
    x, labels = images(), torch.arange(8) % 10
    torch.manual_seed(3)
    whole = build_model(competitive_config(), (1, 12, 12), 10)
    torch.manual_seed(3)
    regional = build_model(competitive_config(objective={"goodness_scope": "region", "region_size": 3}),
                           (1, 12, 12), 10)
    a, b = whole(x, labels)[0]["layer1"], regional(x, labels)[0]["layer1"]
    y = regional.stack.activities(x)[1].view(8, 10, 3, 2, 3, 2, 3)  # 6 x 6 map: 2 x 2 regions of 3 x 3
    logits = y.pow(2).mean((2, 4, 6))  # (8, 10, 2, 2)
    assert torch.allclose(b, F.cross_entropy(logits, labels[:, None, None].expand(8, 2, 2)), atol=1e-5)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("objective, message", [
    ({"negatives": "hard"}, "objective.negatives = 'hard' would be ignored"),
    ({"threshold": 2.0}, "objective.threshold = 2.0 would be ignored"),
    ({"goodness_scope": "channels"}, "always splits channels into one group per class"),
])
def test_the_competitive_model_refuses_options_it_would_ignore(objective, message):
    with pytest.raises(FFError, match=message):
        merge(competitive_config(), {"objective": objective})


def test_the_competitive_model_refuses_a_scope_it_does_not_build(monkeypatch):
    # a plugin's scope is a valid choice, and the competitive kind, whose groups are its classes, refuses it
    monkeypatch.setitem(SCOPES, "rows", lambda objective, classes: Scope(groups=1, region=0))
    assert merge(small_config(), {"objective": {"goodness_scope": "rows"}}).objective.goodness_scope == "rows"
    with pytest.raises(FFError, match="goodness_scope = rows cannot apply"):
        merge(competitive_config(), {"objective": {"goodness_scope": "rows"}})


def test_the_competitive_model_needs_channels_in_multiples_of_the_classes():
    with pytest.raises(FFError, match="hidden layer 0 has 20: make model.hidden multiples of 7"):
        build_model(competitive_config(), (1, 12, 12), 7)


def test_a_competitive_run_trains_saves_and_reloads(tmp_path):
    from forward_forward.training import load_trained

    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 10, (400,), generator=g)
    x = torch.rand(400, 1, 12, 12, generator=g) * 0.2
    for i, k in enumerate(labels):  # class k lights row k: learnable in a few steps
        x[i, 0, k, :] = 1.0
    data = from_arrays(x[:300], labels[:300], x[300:], labels[300:], val_size=50)
    cfg = competitive_config(model={"norm": "batchnorm", "residual": True, "hidden": [20, 20]},
                             objective={"temperature": 0.1},
                             optim={"name": "adam", "lr": 0.01, "epochs": 6, "weight_decay": 0.0})
    summary = train(cfg, tmp_path / "run", data=data)
    assert summary["test_error_goodness"] < 0.5
    _, model, _, _ = load_trained(tmp_path / "run", data=data)
    assert "stack.layers.1.input_norm.batchnorm.running_mean" in model.state_dict()
    assert model.stack.residual == [False, True]


def test_overlapping_updates_train_a_layer_and_the_one_below_and_no_further():
    cfg = competitive_config(model={"hidden": [20, 20, 20], "pool": 1, "overlap": True})
    model = build_model(cfg, (1, 12, 12), 10)
    x, labels = images(), torch.arange(8) % 10
    losses, _ = model(x, labels)
    losses["layer2"].backward()
    grads = [layer.conv.weight.grad for layer in model.stack.layers]
    assert grads[0] is None and grads[1].abs().sum() > 0 and grads[2].abs().sum() > 0
    plain = build_model(merge(cfg, {"model": {"overlap": False}}), (1, 12, 12), 10)
    plain.load_state_dict(model.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(plain.stack(x).act, model.stack(x).act))  # same values


@pytest.mark.parametrize("sections, message", [
    ({"model": {"layer": "dense", "hidden": [20, 20]}, "objective": {"goodness_scope": "region"}},
     "every hidden layer here is a vector"),
    ({"model": {"hidden": [20, 30], "residual": True}}, "no hidden layer here has an output of its input's shape"),
    ({"model": {"layer": "dense", "hidden": [20, 20], "norm_scope": "position"}}, "no hidden layer after the first"),
])
def test_options_that_would_change_nothing_here_are_refused(sections, message):
    with pytest.raises(FFError, match=message):
        build_model(conv_config(**sections), (1, 12, 12), 10)


@pytest.mark.parametrize("sections, message", [
    ({"model": {"hidden": [20], "pool": 1, "overlap": True}}, "there is one hidden layer"),
    ({"model": {"norm": "batchnorm", "norm_scope": "position"}}, "would change nothing"),
    ({"model": {"layer": "dense"}, "run": {"channels_last": True}}, "this model has none"),
])
def test_config_options_without_effect_are_refused(sections, message):
    with pytest.raises(FFError, match=message):
        conv_config(**sections)


# ---- normalisation, residuals, flips ------------------------------------------------------------
def test_position_scope_normalises_the_channels_at_each_position():
    x = images(2, 4)
    out = InputNorm("rms", "position", (4, 12, 12), 0.0)(x).view(2, 4, -1)
    assert torch.allclose(out.pow(2).mean(1), torch.ones(2, 144), atol=1e-5)
    ln = InputNorm("layernorm", "layer", (4, 12, 12), 1e-8)(x)
    assert torch.allclose(ln.mean(1), torch.zeros(2), atol=1e-5)
    assert torch.allclose(ln.pow(2).mean(1), torch.ones(2), atol=1e-3)


def test_the_first_layer_normalises_its_whole_input_whatever_the_scope():
    """Per position, a one-channel image would be erased (each pixel alone has unit RMS)."""
    model = build_model(conv_config(model={"norm_scope": "position"}), (1, 12, 12), 10)
    assert not model.stack.layers[0].input_norm.per_position
    assert model.stack.layers[1].input_norm.per_position


def test_a_residual_layer_adds_its_detached_input():
    cfg = conv_config(model={"hidden": [6, 6], "pool": 1, "residual": True})
    model = build_model(cfg, (1, 12, 12), 10)
    assert model.stack.residual == [False, True]  # layer 0's input is the coded image: another shape
    x = model.with_label(images(), torch.arange(8) % 10)
    out = model.stack(x)
    assert torch.allclose(out.act[1], torch.relu(out.pre[1]) + out.act[0])
    losses, _ = model(images(), torch.arange(8) % 10)
    losses["layer1"].backward()  # nor through the skip: layer 0 learns from its own loss alone
    assert all(p.grad is None for p in model.stack.layers[0].parameters())
    assert model.stack.layers[1].conv.weight.grad.abs().sum() > 0


def test_flip_mirrors_about_half_the_images_each_whole():
    x = images(400, 2, 5)
    out = augment.flip(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert torch.all(flipped ^ kept) and 150 < int(flipped.sum()) < 250


def test_flip_on_data_that_is_not_images_is_refused(tmp_path):
    x = torch.rand(100, 20)
    data = from_arrays(x[:80], torch.arange(80) % 10, x[80:], torch.arange(20) % 10, val_size=10)
    cfg = small_config(data={"flip": True}, objective={"label_coding": "extra"})
    with pytest.raises(FFError, match="data.flip mirrors images"):
        train(cfg, tmp_path / "run", data=data)
