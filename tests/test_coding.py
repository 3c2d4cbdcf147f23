"""Label codings: the label as pixels of the image or as extra input channels."""

import math

import pytest
import torch
import torch.nn.functional as F

from forward_forward.coding import LABEL_CODINGS, Channels, Extra, Pixels, Written
from forward_forward.config import merge
from forward_forward.errors import FFError
from forward_forward.layers import FFLinear
from forward_forward.models import build_model
from forward_forward.training import train
from tests.conftest import small_config


def test_pixels_overwrite_the_first_values_of_any_shape():
    images, labels = torch.rand(4, 1, 5, 5) * 0.5, torch.tensor([0, 3, 9, 3])
    coding = Pixels((1, 5, 5), 10)
    coded = coding.write(images, labels)
    assert coded.shape == images.shape and coding.input_shape == (1, 5, 5)
    assert torch.equal(coded.flatten(1)[:, :10], F.one_hot(labels, 10).float())
    assert torch.equal(coded.flatten(1)[:, 10:], images.flatten(1)[:, 10:])
    assert torch.equal(coding.neutral(images).flatten(1)[:, :10], torch.full((4, 10), 0.1))
    peak = Pixels((1, 5, 5), 10, value="max").write(images, labels)
    assert torch.allclose(peak.flatten(1)[:, :10].sum(1), images.flatten(1).amax(1))
    with pytest.raises(FFError, match="has no room; use channels"):
        Pixels((8,), 10)


def test_channels_add_one_constant_plane_per_class_and_keep_the_image():
    images, labels = torch.rand(4, 3, 6, 5), torch.tensor([0, 3, 9, 3])
    coding = Channels((3, 6, 5), 10)
    assert coding.input_shape == (13, 6, 5)
    coded = coding.write(images, labels)
    assert coded.shape == (4, 13, 6, 5) and torch.equal(coded[:, :3], images)
    planes = coded[:, 3:]
    assert torch.equal(planes, F.one_hot(labels, 10).float()[:, :, None, None].expand(4, 10, 6, 5))
    assert torch.equal(coding.neutral(images)[:, 3:], torch.full((4, 10, 6, 5), 0.1))
    flat = Channels((7,), 10).write(torch.rand(4, 7), labels)  # no spatial shape: C extra features
    assert flat.shape == (4, 17) and torch.equal(flat[:, 7:], F.one_hot(labels, 10).float())


def test_extra_inputs_follow_the_flattened_image():
    images, labels = torch.rand(4, 2, 3, 3), torch.tensor([0, 3, 9, 3])
    coding = Extra((2, 3, 3), 10)
    coded = coding.write(images, labels)
    assert coding.input_shape == (28,) and coded.shape == (4, 28)
    assert torch.equal(coded[:, :18], images.flatten(1)) and torch.equal(coded[:, 18:], F.one_hot(labels, 10).float())
    assert torch.equal(coding.neutral(images)[:, 18:], torch.full((4, 10), 0.1))


@pytest.mark.parametrize("name", sorted(LABEL_CODINGS))
def test_every_label_equals_a_loop_over_labels(name):
    coding = LABEL_CODINGS[name]((1, 6, 6), 10)
    images = torch.rand(3, 1, 6, 6)
    every = coding.every_label(images).view(3, 10, *coding.input_shape)
    for k in range(10):
        assert torch.equal(every[:, k], coding.write(images, torch.full((3,), k)))


@pytest.mark.parametrize("coding, value", [(Pixels, "one"), (Pixels, "max"), (Extra, "one")])
@pytest.mark.parametrize("norm", ["rms", "l2"])
def test_a_dense_layer_reads_every_label_apart_as_it_reads_the_built_inputs(coding, value, norm):
    # each image multiplied once and each label's columns added must equal the layer on the ten built rows:
    # the same pre-activation and the same weight gradient
    images = torch.rand(5, 1, 6, 6)
    code = coding((1, 6, 6), 10, value=value)
    written = code.every_label_apart(images)
    assert torch.equal(written.dense(), code.every_label(images))
    layer = FFLinear(math.prod(code.input_shape), 7, norm=norm)
    assert layer.takes_apart
    apart, built = layer.pre_activation(written), layer.pre_activation(code.every_label(images))
    assert torch.allclose(apart, built, rtol=1e-5, atol=1e-5)
    weights = torch.randn(50, 7)
    grads = [torch.autograd.grad((z * weights).sum(), layer.linear.weight)[0] for z in (apart, built)]
    assert torch.allclose(*grads, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("overrides, apart", [
    ({}, True),
    ({"objective": {"label_coding": "extra"}, "model": {"hidden": [46, 46], "residual": True}}, True),  # a residual
    ({"objective": {"label_coding": "pattern"}}, False),  # the label is over every pixel
    ({"model": {"norm": "layernorm"}}, False),  # the norm is not a factor on the whole row
])
def test_prediction_by_goodness_keeps_labels_apart_where_the_first_layer_reads_them_so(overrides, apart):
    cfg = merge(small_config(), {"model": {"hidden": [32, 32]}, **overrides})
    model = build_model(cfg, (1, 6, 6), 10).eval()
    assert model.labels_apart is apart
    images = torch.rand(6, 1, 6, 6)
    passes, stack_forward = [], model.stack.forward
    model.stack.forward = lambda x, **kw: passes.append(isinstance(x, Written)) or stack_forward(x, **kw)
    with torch.no_grad():
        apart_goodness = model.label_goodness(images)
        assert passes and set(passes) == {apart}  # the label kept apart from the image, or written into it
        model.labels_apart = False
        built_goodness = model.label_goodness(images)
    assert torch.allclose(apart_goodness, built_goodness, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("layer, coding", [("dense", "extra"), ("local", "channels")])
def test_a_network_with_its_label_beside_the_image_learns(fake_mnist, tmp_path, layer, coding):
    model = {"layer": layer, "hidden": [64, 64]} if layer == "dense" else {
        "layer": layer, "hidden": [4, 4], "kernel": [6, 3], "stride": [2, 2]}
    cfg = small_config(fake_mnist, model=model, objective={"label_coding": coding, "predict": "best"},
                       optim={"epochs": 3})
    summary = train(cfg, tmp_path / "run", "test")
    assert summary["config"]["objective"]["label_coding"] == coding
    assert summary["test_error"] < 0.2, summary
    if layer == "dense":  # goodness reads the label coding directly: ten coded inputs per image
        assert summary["test_error_goodness"] < 0.35, summary

