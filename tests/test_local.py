"""The locally connected layer: a dense layer with a masked weight matrix, computed without loops."""

import torch

from forward_forward.layers import FFLocal
from forward_forward.train import train
from tests.conftest import small_config


def _dense_reference(layer: FFLocal) -> torch.Tensor:
    """The (out, in) matrix built unit by unit from the layer's weights: zero outside each field."""
    (c_in, h, w), (c_out, _, _), k = layer.in_shape, layer.out_shape, layer.kernel
    dense = torch.zeros(c_out * h * w, c_in * h * w)
    for co in range(c_out):
        for i in range(h):
            for j in range(w):
                for ci in range(c_in):
                    for di in range(k):
                        for dj in range(k):
                            y, x = i + di - k // 2, j + dj - k // 2
                            if 0 <= y < h and 0 <= x < w:  # zero padding: outside the image, nothing
                                patch = ci * k * k + di * k + dj  # unfold's order: channel, row, column
                                row, col = co * h * w + i * w + j, ci * h * w + y * w + x
                                dense[row, col] = layer.weight[i * w + j, patch, co]
    return dense


def test_local_layer_equals_a_masked_dense_layer():
    torch.manual_seed(0)
    layer = FFLocal((2, 5, 6), channels=3, kernel=3)
    torch.nn.init.normal_(layer.bias)
    dense = _dense_reference(layer)
    x = torch.randn(4, 2 * 5 * 6)
    assert torch.allclose(layer.transform(x), x @ dense.T + layer.bias.reshape(-1), atol=1e-5)
    assert torch.allclose(layer.dense_weight(), dense, atol=1e-6)
    assert (dense != 0).sum() < 0.5 * dense.numel()  # really local: most weights are structurally absent


def test_a_unit_ignores_pixels_outside_its_receptive_field():
    # the layer's map, before the whole-vector normalisation that (by design) rescales every unit
    torch.manual_seed(0)
    layer = FFLocal((1, 9, 9), channels=2, kernel=3)
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
    local = {"hidden": [1, 1], "local_kernel": 3}
    sup = train(small_config(fake_mnist, model=local, objective={"predict": "softmax"}, optim={"epochs": 2}),
                tmp_path / "sup", "test")
    assert sup["test_error"] < 0.3, sup
    unsup = train(small_config(fake_mnist, model=local, objective={"negatives": "hybrid", "predict": "softmax"},
                               optim={"epochs": 2}), tmp_path / "unsup", "test")
    assert unsup["test_error"] < 0.3, unsup
