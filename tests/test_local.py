"""The locally connected layer: a dense layer with a masked weight matrix, computed without loops."""

import pytest
import torch

from forward_forward.errors import FFError
from forward_forward.layers import FFLocal
from forward_forward.train import train
from tests.conftest import small_config


def _dense_reference(layer: FFLocal) -> torch.Tensor:
    """The (out, in) matrix built unit by unit from the layer's weights: zero outside each field."""
    (c_in, h, w), (c_out, gh, gw) = layer.in_shape, layer.out_shape
    k, s, p = layer.kernel, layer.stride, layer.padding
    dense = torch.zeros(c_out * gh * gw, c_in * h * w)
    for co in range(c_out):
        for i in range(gh):
            for j in range(gw):
                for ci in range(c_in):
                    for di in range(k):
                        for dj in range(k):
                            y, x = i * s + di - p, j * s + dj - p
                            if 0 <= y < h and 0 <= x < w:  # zero padding: outside the image, nothing
                                patch = ci * k * k + di * k + dj  # unfold's order: channel, row, column
                                row, col = co * gh * gw + i * gw + j, ci * h * w + y * w + x
                                dense[row, col] = layer.weight[i * gw + j, patch, co]
    return dense


@pytest.mark.parametrize("shape, kernel, stride, padding, grid", [
    ((2, 5, 6), 3, 1, 1, (5, 6)),  # same-size grid
    ((1, 28, 28), 10, 6, 0, (4, 4)),  # the hinton-local first layer
    ((3, 4, 4), 2, 1, 0, (3, 3)),  # all channels of 2 x 2 neighbouring locations
    ((2, 7, 9), 4, 3, 2, (3, 4)),
])
def test_local_layer_equals_a_masked_dense_layer(shape, kernel, stride, padding, grid):
    torch.manual_seed(0)
    layer = FFLocal(shape, channels=3, kernel=kernel, stride=stride, padding=padding)
    assert layer.out_shape == (3, *grid) and layer.out_features == 3 * grid[0] * grid[1]
    torch.nn.init.normal_(layer.bias)
    dense = _dense_reference(layer)
    x = torch.randn(4, shape[0] * shape[1] * shape[2])
    assert torch.allclose(layer.transform(x), x @ dense.T + layer.bias.reshape(-1), atol=1e-5)
    assert torch.allclose(layer.dense_weight(), dense, atol=1e-6)
    assert (dense != 0).sum() < 0.5 * dense.numel()  # really local: most weights are structurally absent


def test_a_unit_ignores_pixels_outside_its_receptive_field():
    # the layer's map, before the whole-vector normalisation that (by design) rescales every unit
    torch.manual_seed(0)
    layer = FFLocal((1, 9, 9), channels=2, kernel=3, padding=1)
    x = torch.randn(1, 81)
    unit = 1 * 81 + 4 * 9 + 4  # channel 1, centre (4, 4): its field is rows and columns 3..5
    outside = torch.ones(9, 9, dtype=torch.bool)
    outside[3:6, 3:6] = False
    changed = x.clone().view(9, 9)
    changed[outside] += torch.randn(int(outside.sum()))
    assert torch.equal(layer.transform(x)[0, unit], layer.transform(changed.view(1, 81))[0, unit])
    inside = x.clone().view(9, 9)
    inside[4, 5] += 1.0
    assert not torch.equal(layer.transform(x)[0, unit], layer.transform(inside.view(1, 81))[0, unit])


def test_local_layers_stack_and_train_supervised_and_unsupervised(fake_mnist, tmp_path):
    local = {"layer": "local", "hidden": [2, 3], "kernel": [5, 3], "stride": [2, 1]}
    sup = train(small_config(fake_mnist, model=local, objective={"predict": "softmax"}, optim={"epochs": 2}),
                tmp_path / "sup", "test")
    assert sup["test_error"] < 0.3, sup
    unsup = train(small_config(fake_mnist, model=local, objective={"negatives": "hybrid", "predict": "softmax"},
                               optim={"epochs": 2}), tmp_path / "unsup", "test")
    assert unsup["test_error"] < 0.3, unsup


@pytest.mark.parametrize("model, message", [
    ({"layer": "local", "hidden": [4, 4], "kernel": [5, 3, 3]},
     "model.kernel lists 3 values for 2 hidden layers"),
    ({"layer": "local", "hidden": [4], "kernel": 3, "stride": 0}, "model.stride must be at least 1"),
    ({"layer": "local", "hidden": [4], "kernel": 3, "padding": -1},
     "model.padding must be at least 0"),
    ({"layer": "local", "hidden": [4]}, "model.kernel must be at least 1 .* set model.layer = dense"),
    ({"layer": ["local", "lstm"], "hidden": [4, 4], "kernel": 3}, "model.layer must be one of dense, local, conv"),
    ({"layer": ["local"], "hidden": [4, 4], "kernel": 3}, "model.layer lists 1 values for 2 hidden layers"),
])
def test_bad_local_geometry_is_named(model, message):
    with pytest.raises(FFError, match=message):
        small_config(model=model)


def test_a_field_larger_than_its_map_is_a_clear_error(fake_mnist, tmp_path):
    cfg = small_config(fake_mnist, model={"layer": "local", "hidden": [4, 4], "kernel": [10, 10],
                                          "stride": [6, 1]})
    with pytest.raises(FFError, match="hidden layer 1: a 10 x 10 field with padding 0 does not fit its 4 x 4"):
        train(cfg, tmp_path / "run", "test")


def test_hinton_local_preset_is_the_papers_geometry():
    from forward_forward import presets
    from forward_forward.layers import build_layers

    cfg = presets.preset("hinton-local")
    layers = build_layers(cfg.model, (1, 28, 28))
    assert [layer.out_shape for layer in layers] == [(128, 4, 4), (220, 3, 3), (512, 2, 2)]
    assert [layer.weight.shape[1] for layer in layers] == [100, 4 * 128, 4 * 220]  # fan-in of one location
    assert cfg.objective.negatives == "hybrid" and cfg.model.peer_lambda == 0.03 and cfg.optim.epochs == 60


def test_local_layers_then_dense_ones_and_a_dense_one_cannot_feed_a_local_one(fake_mnist, tmp_path):
    from forward_forward.layers import FFLinear, build_layers

    mixed = small_config(model={"layer": ["local", "dense"], "hidden": [3, 16], "kernel": [5, 0],
                                "stride": [2, 1]}).model
    local, dense = build_layers(mixed, (1, 28, 28))
    assert isinstance(local, FFLocal) and isinstance(dense, FFLinear) and dense.in_features == 3 * 12 * 12
    with pytest.raises(FFError, match="puts a local layer after a dense one"):
        small_config(model={"layer": ["dense", "local"], "hidden": [16, 3], "kernel": 3})
    table = small_config(model={"layer": "local", "hidden": [3], "kernel": 3}).model
    with pytest.raises(FFError, match="hidden layer 0 is local and needs a .* map below it"):
        build_layers(table, (40,))


def test_a_config_from_before_model_layer_still_means_local_layers():
    """Runs saved when a non-zero local_kernel chose local layers load as they were, with a notice;
    a zero local_kernel on a local preset still means dense layers."""
    with pytest.warns(FutureWarning, match="add model.layer = 'local'"):
        cfg = small_config(model={"hidden": [4, 4], "local_kernel": [5, 3]})
    assert cfg.model.layer == "local"
    assert small_config(model={"hidden": [4, 4]}).model.layer == "dense"
    from forward_forward import presets
    from forward_forward.config import merge

    with pytest.warns(FutureWarning, match="add model.layer = 'dense'"):
        dense = merge(presets.preset("hinton-local"),  # the preset's stride is refused where nothing reads it
                      {"model": {"hidden": [2000, 2000, 2000], "local_kernel": 0, "stride": 1}})
    assert dense.model.layer == "dense"


def test_the_old_geometry_names_are_read_as_the_new_ones():
    from forward_forward.config import merge

    with pytest.warns(FutureWarning, match="model.local_stride is now model.stride"):
        cfg = small_config(model={"layer": "local", "hidden": [4], "local_kernel": 5, "local_stride": 2})
    assert (cfg.model.kernel, cfg.model.stride) == (5, 2)
    with pytest.raises(FFError, match="both are given"):
        merge(cfg, {"model": {"local_kernel": 3, "kernel": 3}})
