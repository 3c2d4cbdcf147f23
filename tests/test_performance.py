"""What keeps a training step fast: nothing in it waits for the device, and freed host memory is reused; and
the FLOP counts the benchmarks divide by are what the model multiplies."""

from __future__ import annotations

import platform

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import FlopCounterMode

from forward_forward.config import merge
from forward_forward.data import from_arrays
from forward_forward.models import build_model
from forward_forward.training import host_memory, train
from forward_forward.training.loop import Loop
from forward_forward.training.metrics import Meter
from tests.conftest import small_config

# the operators behind .item(), float(t), bool(t), .tolist() and a tensor's use as a Python number: on a
# GPU each waits for every queued kernel
HOST_READS = {"aten._local_scalar_dense.default", "aten.item.default"}


class HostReads(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if str(func) in HOST_READS:
            self.seen.append(str(func))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("sections", [
    {"objective": {"negatives": "hard"}},
    {"objective": {"negatives": "random"}},
    {"objective": {"negatives": "all"}},
    {"objective": {"negatives": "any_label"}},
    {"objective": {"negatives": "hybrid", "predict": "softmax", "label_coding": "auto"}},
    {"objective": {"negatives": "hard", "goodness_scope": "region", "region_size": 2},
     "model": {"layer": "local", "hidden": [4, 4], "kernel": 4, "stride": 2}},
], ids=["hard", "random", "all", "any_label", "hybrid", "local-regions"])
def test_a_training_step_never_reads_a_tensor_back_to_the_host(tmp_path, sections):
    """The loop's step (negatives, every layer's loss and backward, the optimiser, the meter) queues its
    work without waiting for it; statistics are read once an epoch."""
    torch.manual_seed(0)
    images, labels = torch.rand(120, 12, 12), torch.arange(120) % 10
    data = from_arrays(images[:100], labels[:100], images[100:], labels[100:], val_size=20)
    cfg = small_config(**sections, optim={"batch_size": 20})  # 4 steps to the epoch
    model = build_model(cfg, data.shape, data.num_classes)
    loop = Loop(cfg, model, data, torch.device("cpu"), tmp_path, None)
    order = loop.schedule.order(loop.generator)
    meter = Meter()
    meter.add(*loop.train_step(0, 0, order))  # the first step may set things up
    with HostReads() as reads:
        for step in (1, 2):
            meter.add(*loop.train_step(0, step, order))
    assert reads.seen == []
    assert all(p.grad is not None for p in model.stack.parameters())  # the steps did train


def test_a_cpu_run_keeps_freed_host_memory(fake_mnist, tmp_path, monkeypatch):
    """On glibc, training asks the allocator to keep freed blocks (no page faults for each step's fresh
    tensors); on other C libraries nothing is touched."""
    calls, original = [], host_memory.keep_freed_memory
    monkeypatch.setattr(host_memory, "keep_freed_memory", lambda: calls.append(1) or True)
    train(small_config(fake_mnist, optim={"epochs": 1}), tmp_path / "run", "t")
    assert calls == [1]
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert original.__wrapped__() is glibc  # the call itself, not its cached answer


PREDICTING = [{}, {"objective": {"label_coding": "extra"}}, {"model": {"norm": "layernorm"}},
              {"model": {"iterations": 2, "predict_iterations": [1, 2], "hidden": [32, 32]},
               "objective": {"label_coding": "auto"}}]


@pytest.mark.parametrize("overrides", PREDICTING)
@pytest.mark.parametrize("way", ["softmax", "goodness", "combined"])
def test_prediction_flops_are_the_matmul_flops_prediction_does(overrides, way):
    # the count the benchmarks divide by must be what the model multiplies, apart or built, recurrent or not
    cfg = merge(merge(small_config(), {"model": {"hidden": [32, 24]}, "objective": {"predict": "combined"}}), overrides)
    model = build_model(cfg, (1, 6, 6), 10).eval()
    with FlopCounterMode(display=False) as counter:
        model.predictions(torch.rand(4, 1, 6, 6), (way,))
    assert counter.get_total_flops() == 4 * model.prediction_flops_per_image(way)


@pytest.mark.parametrize("overrides", [
    {}, {"objective": {"negatives": "random"}}, {"objective": {"negatives": "all"}},
    {"objective": {"negatives": "hard", "sample_from": "goodness"}},
    {"model": {"iterations": 2, "predict_iterations": [1, 2]}, "objective": {"label_coding": "auto"}},
    {"objective": {"negatives": "hybrid", "label_coding": "auto"}},  # unsupervised: the readout reads the pass
    {"model": {"readout_recompute": True}},  # the neutral pass again in the readout's backward pass
])
def test_training_flops_are_the_matmul_flops_a_step_does(overrides):
    cfg = merge(merge(small_config(), {"model": {"hidden": [32, 24]}}), overrides)
    model = build_model(cfg, (1, 6, 6), 10)
    model.release_graphs = True  # most losses are backpropagated as the model computes them, as `ff train` does
    with FlopCounterMode(display=False) as counter:
        losses, _ = model(torch.rand(4, 1, 6, 6), torch.randint(0, 10, (4,)))
        kept = [loss for loss in losses.values() if loss.requires_grad]  # the loop backpropagates the rest
        if kept:
            sum(kept).backward()
    # matmuls only: hybrid negatives blur their masks with a convolution, which is data, not the model
    matmuls = sum(flops for op, flops in counter.get_flop_counts()["Global"].items() if "mm" in str(op))
    assert matmuls == 4 * model.matmul_flops_per_image()


def test_prediction_by_goodness_on_a_cpu_goes_in_blocks_that_stay_in_the_heap(monkeypatch):
    # ten rows an image: a large batch is scored a few images at a time, each block's activities under
    # glibc's mapping ceiling; the scores are the batch's, and a model in training is never split
    model = build_model(merge(small_config(), {"model": {"hidden": [32, 24]}}), (1, 6, 6), 10).eval()
    images = torch.rand(9, 1, 6, 6)
    whole = model.label_goodness(images)
    monkeypatch.setattr(host_memory, "HEAP_BLOCK_BYTES", 4 * 36 * 10 * 2)  # two images of 36 inputs
    assert model._images_in_heap(images) == 2
    calls = []
    stack_forward = model.stack.forward

    def counted(x, **kw):  # rows of each pass: built, or a coding.Written
        calls.append(x.shape[0] if isinstance(x, torch.Tensor) else len(x.source))
        return stack_forward(x, **kw)

    monkeypatch.setattr(model.stack, "forward", counted)
    assert torch.allclose(model.label_goodness(images), whole, atol=1e-5)
    assert calls == [20, 20, 20, 20, 10]
    model.train()
    assert model._images_in_heap(images) == 9
