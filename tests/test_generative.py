"""FF as a generative model: the prior's EM, the decoders' delta rule, generated negatives (alone, mixed,
by class), the measures of samples against plain references, sleep deprivation, config errors, and a
short real run."""

import json

import pytest
import torch
import torch.nn.functional as F

from forward_forward import config as config_mod
from forward_forward import sample_quality
from forward_forward.cli import main
from forward_forward.errors import FFError
from forward_forward.figures import GENERATOR_FIGURES, PLAIN_FIGURES
from forward_forward.generator import GaussianMixture
from forward_forward.layers import normalize
from forward_forward.models import FFNetwork, build_model
from forward_forward.negatives.hybrid import hybrid_images
from forward_forward.presets import preset
from forward_forward.train import train
from forward_forward.training.schedules import Minibatch
from tests.conftest import shared_data, small_config

SHAPE = (1, 6, 6)


def generative(base: str = "hybrid", mix: float = 1.0, **objective) -> FFNetwork:
    fields = {"negatives": "generated", "generated_base": base, "generated_mix": mix, "prior_components": 2,
              "prior_codes": 64, "regenerate_every": 3, **objective}
    if base == "hybrid":
        fields.update(predict="softmax", label_coding="auto")
    net = build_model(small_config(model={"hidden": [20, 16]}, objective=fields), SHAPE, 10)
    assert isinstance(net, FFNetwork) and net.generator is not None
    return net


def test_em_finds_two_separated_clusters_and_samples_from_them():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(300, 3) * 0.1 + 2, torch.randn(100, 3) * 0.3 - 2])
    gm = GaussianMixture(1, 2, 3)
    gm.fit(x)
    order = gm.means[0, :, 0].argsort()
    assert torch.allclose(gm.means[0, order], torch.tensor([[-2.0] * 3, [2.0] * 3]), atol=0.1)
    assert torch.allclose(gm.log_weights[0, order].exp(), torch.tensor([0.25, 0.75]), atol=0.02)
    assert torch.allclose(gm.variances[0, order].sqrt(), torch.tensor([[0.3] * 3, [0.1] * 3]), atol=0.05)
    drawn = gm.sample(torch.zeros(4000, dtype=torch.long))
    assert abs(float((drawn[:, 0] > 0).float().mean()) - 0.75) < 0.03


def test_each_class_has_its_own_mixture():
    gm = GaussianMixture(2, 1, 2)
    gm.fit(torch.randn(200, 2) * 0.1 + 5, group=1)
    assert gm.fitted.tolist() == [False, True]
    gm.fit(torch.randn(200, 2) * 0.1 - 5, group=0)
    drawn = gm.sample(torch.tensor([0] * 50 + [1] * 50))
    assert (drawn[:50] < -4).all() and (drawn[50:] > 4).all()


def test_each_decoder_learns_by_its_own_delta_rule():
    """The decoders' gradients are the delta rule on detached activities: (prediction - target) x input,
    written out here, and nothing reaches the FF layers."""
    net = generative()
    images = torch.rand(8, *SHAPE)
    acts = net.activities(images)
    loss, _ = net.generator.loss(images, acts)
    loss.backward()
    assert all(p.grad is None for p in net.stack.parameters())
    codes = [normalize(a, "rms", 1e-8) for a in acts]
    targets = [images.flatten(1), codes[0]]
    for i, decoder in enumerate(net.generator.decoders):
        out = codes[i] @ decoder.weight.T + decoder.bias
        pred = out if i == 0 else out.clamp_min(0)
        delta = 2 * (pred - targets[i]) / pred.numel() * (1 if i == 0 else (out > 0).float())
        assert torch.allclose(decoder.weight.grad, delta.T @ codes[i], atol=1e-6)
        assert torch.allclose(decoder.bias.grad, delta.sum(0), atol=1e-6)


def test_a_generator_step_trains_only_the_decoders():
    net = generative()
    losses, stats = net(torch.rand(8, *SHAPE), torch.randint(10, (8,)), active=frozenset({"generator"}))
    sum(losses.values()).backward()
    assert set(losses) == {"generator"} and "recon0" in stats["generator"]
    assert all(p.grad is None for p in [*net.stack.parameters(), *net.readout.parameters()])
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.generator.parameters())


def test_generator_is_in_the_state_dict_and_a_loaded_copy_samples_alike():
    net = generative()
    for _ in range(3):
        net(torch.rand(16, *SHAPE), torch.randint(10, (16,)))
    assert net.generator.ready  # refitted after regenerate_every = 3 steps
    state = net.state_dict()
    assert {"generator.decoders.0.weight", "generator.prior.means", "generator.prior.fitted"} <= set(state)
    copy = generative()
    assert not copy.generator.ready
    copy.load_state_dict(state)
    torch.manual_seed(1)
    a = net.generator.sample(torch.arange(5))
    torch.manual_seed(1)
    assert torch.equal(a, copy.generator.sample(torch.arange(5)))


def marked(net: FFNetwork, value: float = 0.123) -> None:
    """Make the generator ready and its samples recognisable: every pixel `value`."""
    net.generator.prior.fitted[:] = True
    net.generator.sample = lambda labels: torch.full((len(labels), *SHAPE), value)


def test_before_the_prior_is_fitted_the_negatives_are_the_base_strategys():
    net = generative()
    images = torch.rand(8, *SHAPE)
    torch.manual_seed(3)
    _, neg = net.negatives.make(images, torch.zeros(8, dtype=torch.long), net.coding, None, net)
    torch.manual_seed(3)
    assert torch.equal(neg, hybrid_images(images, SHAPE, 6))


@pytest.mark.parametrize("mix", [0.0, 0.5, 1.0])
def test_the_mix_sets_the_fraction_of_generated_negatives(mix):
    net = generative(mix=mix)
    marked(net)
    _, neg = net.negatives.make(torch.rand(2000, *SHAPE), torch.zeros(2000, dtype=torch.long), net.coding, None, net)
    generated = (neg == 0.123).flatten(1).all(1).float().mean()
    assert abs(float(generated) - mix) < 0.04


def test_with_labels_a_sample_is_drawn_for_its_images_class_and_carries_it():
    net = generative(base="random", mix=1.0)
    drawn_for = []
    net.generator.prior.fitted[:] = True
    net.generator.sample = lambda labels: drawn_for.append(labels) or torch.full((len(labels), *SHAPE), 0.5)
    images, labels = torch.rand(50, *SHAPE), torch.randint(10, (50,))
    pos, neg = net.negatives.make(images, labels, net.coding, None, net)
    assert torch.equal(drawn_for[0], labels)
    assert torch.equal(neg, net.coding.write(torch.full((50, *SHAPE), 0.5), labels))
    assert torch.equal(pos, net.coding.write(images, labels))  # positives: the real images, true labels


def test_a_supervised_generator_has_a_mixture_per_class_and_an_unsupervised_one_one():
    assert generative(base="random").generator.prior.means.shape == (10, 2, 16)  # prior_components = 2
    net = generative(base="hybrid", prior_components=3, prior_codes=40)
    assert net.generator.prior.means.shape == (1, 3, 16) and net.generator.codes.shape == (40, 16)
    optim = config_mod.OptimConfig(generator_lr=0.7)
    assert [g["lr"] for g in net.param_groups(optim)[-2:]] == [0.7, 0.7]  # the decoders' weights and biases


def test_sleep_deprivation_stops_the_negative_phase():
    cfg = small_config(optim={"negatives_until": 25, "batch_size": 10})
    schedule = Minibatch(cfg, ["layer0"], 100)  # 10 steps an epoch
    order = torch.arange(100)
    phases = [schedule.step(epoch, step, order)[2] for epoch in (1, 2, 3) for step in range(10)]
    assert phases == ["both"] * 25 + ["positive"] * 5


def test_coverage_and_confidence_of_plain_cases():
    uniform = torch.eye(10).repeat(10, 1)
    got = sample_quality.coverage(uniform)
    assert got["tv_from_uniform"] == pytest.approx(0) and got["classes_under_half"] == 0 and got["confidence"] == 1
    one = torch.zeros(100, 10)
    one[:, 3] = 1
    got = sample_quality.coverage(one)
    assert got["tv_from_uniform"] == pytest.approx(0.9) and got["classes_under_half"] == 9


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    torch.manual_seed(0)
    a = torch.randn(200_000, 3) * torch.tensor([1.0, 2.0, 0.5])
    b = torch.randn(200_000, 3) * torch.tensor([3.0, 1.0, 0.5]) + torch.tensor([1.0, 0.0, -2.0])
    expected = 1 + 4 + sum((x - y) ** 2 for x, y in [(1, 3), (2, 1), (0.5, 0.5)])  # |mu|^2 + sum (s_a - s_b)^2
    assert sample_quality.frechet(a, b) == pytest.approx(expected, rel=0.02)
    assert sample_quality.frechet(a, a) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize("change, message", [
    ({"model": {"layer": "local", "kernel": 3}}, "dense feed-forward layers"),
    ({"objective": {"generated_base": "all"}}, "generated_base must be one of"),
    ({"objective": {"generated_mix": 1.5}}, "between 0 and 1"),
    ({"objective": {"generated_length": 20}}, "generated text"),
    ({"objective": {"sample_temperature": 2.0}}, "generated_base = hybrid does not make"),
    ({"objective": {"generated_base": "random", "hybrid_blur_passes": 3, "label_coding": "pixels"}},
     "generated_base = random does not make"),
])
def test_generated_negatives_config_errors(change, message):
    fields = {"negatives": "generated", "predict": "softmax", "label_coding": "auto"}
    with pytest.raises(FFError, match=message):
        small_config(**{**change, "objective": {**fields, **change.get("objective", {})}})


@pytest.mark.parametrize("change, message", [
    ({"optim": {"generator_lr": 0.1}}, "generator of images"),
    ({"run": {"reference": "somewhere"}}, "generator of images"),
    ({"objective": {"generated_mix": 0.5}}, "objective.negatives = generated"),
    ({"optim": {"negatives_until": 10, "phase_steps": 5}, "objective": {"loss": "logistic"}}, "negatives_until"),
    ({"optim": {"negatives_until": 10}, "objective": {"loss": "symba"}}, "symba scores pairs"),
])
def test_generator_fields_are_refused_without_a_generator(change, message):
    with pytest.raises(FFError, match=message):
        small_config(**change)


def test_text_runs_refuse_the_image_generators_fields():
    with pytest.raises(FFError, match="writes text"):
        config_mod.merge(config_mod.Config(), {"data": {"dataset": "aesop"}, "objective": {
            "negatives": "generated", "generated_mix": 0.5}})


def test_a_short_real_run_measures_its_samples(tmp_path, capsys):
    root = shared_data("mnist/train-images-idx3-ubyte.gz")
    base = {"data": {"data_dir": str(root), "train_limit": 3000, "val_size": 1000},
            "run": {"progress": False, "device": "cpu"}, "optim": {"epochs": 2}}
    reference = tmp_path / "reference"
    train(config_mod.merge(config_mod.Config(), {**base, "model": {"kind": "backprop", "hidden": [100]},
                                                 "objective": {"predict": "softmax"}}),
          run_dir=reference)
    run = tmp_path / "gen"
    cfg = config_mod.merge(preset("ff-gen-mnist"), {
        **base, "model": {"hidden": [200, 200]}, "objective": {"regenerate_every": 10},
        "run": {**base["run"], "reference": str(reference), "precision": "fp32"}})
    train(cfg, run_dir=run)
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = epochs[-1]["generator"]
    assert sum(last["class_share"]) == pytest.approx(1, abs=1e-3) and last["frechet"] > 0
    assert len(last["goodness_real"]) == 2
    recon = [e["layers"]["generator"]["recon0"] for e in epochs]
    assert recon[-1] < recon[0]  # the decoders learn
    capsys.readouterr()
    main(["samples", str(run), "--out", str(tmp_path / "figs")])
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (tmp_path / "figs" / "measured_samples.png").stat().st_size > 1000
    assert json.loads((tmp_path / "figs" / "samples.json").read_text()) == printed
    assert 0 < printed["confidence"] <= 1


def test_plot_and_report_draw_a_generators_figures(tmp_path, fake_mnist, capsys):
    cfg = small_config(fake_mnist, objective={"negatives": "generated", "predict": "softmax", "label_coding": "auto",
                                              "regenerate_every": 5})
    run = tmp_path / "run"
    train(cfg, run_dir=run)
    main(["plot", str(run)])
    # unsupervised: no label to draw the goodness of, so the plain figures beside the generator's
    assert sorted(p.stem for p in (run / "figures").glob("*.png")) == sorted([*PLAIN_FIGURES, *GENERATOR_FIGURES])
    main(["report", str(run), "--out", str(tmp_path / "report.html")])
    page = (tmp_path / "report.html").read_text()
    assert page.count("<img") == 5 and "<h3>samples</h3>" in page and "<h3>generator</h3>" in page
    assert main(["samples", str(run)]) == 2  # no reference: one clear error
    assert "--reference" in capsys.readouterr().err
    assert main(["samples", str(run), "--reference", str(tmp_path / "nowhere")]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_peak_goodness_is_scale_free_and_spans_one_to_the_width():
    from forward_forward.objectives import GOODNESS

    peak = GOODNESS["peak"].fn
    y = torch.relu(torch.randn(64, 50))
    assert torch.allclose(peak(y), peak(7.5 * y))  # a phase cannot win by scaling every activity
    assert torch.allclose(peak(torch.ones(2, 50)), torch.tensor(1.0))
    assert torch.allclose(peak(F.one_hot(torch.tensor([3]), 50).float()), torch.tensor(50.0))


def test_the_prior_is_fitted_in_fp32_under_bf16_autocast():
    a, b = generative(), generative()
    codes, labels = torch.relu(torch.randn(64, 16)), torch.zeros(64, dtype=torch.long)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for _ in range(3):  # refitted on the third
            a.generator.remember(codes, labels)
    torch.manual_seed(1)
    for _ in range(3):
        b.generator.remember(codes, labels)
    assert a.generator.ready and torch.equal(a.generator.prior.means, b.generator.prior.means)


def test_the_refit_cadence_is_saved_and_the_decoders_use_the_layers_activation():
    net = generative()
    net.generator.remember(torch.rand(4, 16), torch.zeros(4, dtype=torch.long))
    copy = generative()
    copy.load_state_dict(net.state_dict())
    assert int(copy.generator.steps) == 1
    gelu = build_model(small_config(model={"hidden": [20, 16], "activation": "gelu"}, objective={
        "negatives": "generated", "predict": "softmax", "label_coding": "auto"}), SHAPE, 10)
    assert isinstance(gelu.generator.activation, torch.nn.GELU) and not gelu.generator.nonnegative
    assert net.generator.nonnegative


def test_a_text_strategy_copies_and_features_are_refused(tmp_path):
    import copy

    from forward_forward.negatives.generated import Generated

    text = Generated(config_mod.ObjectiveConfig(negatives="generated"), 30, (300,))
    assert isinstance(copy.deepcopy(text), Generated)
    import numpy as np

    path = tmp_path / "features.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.random((200, 12)).astype("float32"), y_train=rng.integers(0, 3, 200),
             x_test=rng.random((50, 12)).astype("float32"), y_test=rng.integers(0, 3, 50))
    cfg = config_mod.merge(config_mod.Config(), {
        "data": {"dataset": "file", "path": str(path), "val_size": 0}, "model": {"hidden": [8]},
        "objective": {"negatives": "generated", "generated_base": "random", "predict_layers_from": 0},
        "run": {"progress": False, "device": "cpu"}})
    with pytest.raises(FFError, match="features"):
        train(cfg, run_dir=tmp_path / "run")


def test_the_code_bank_is_a_ring_of_the_latest_codes():
    net = generative()  # prior_codes = 64
    for step in range(10):  # batches of 10 codes, each batch's code lit at its step's unit
        net.generator.remember(F.one_hot(torch.full((10,), step), 16).float(), torch.zeros(10, dtype=torch.long))
    held = net.generator.codes[: net.generator.filled].argmax(1)
    # 0..5 fill 60 places, step 6 the last 4 (the rest of its batch dropped), 7..9 overwrite the oldest
    assert net.generator.filled == 64 and sorted(set(held.tolist())) == [3, 4, 5, 6, 7, 8, 9]
    assert held[:30].tolist() == [7] * 10 + [8] * 10 + [9] * 10


def test_supervised_ff_trains_on_generated_negatives_of_each_class(tmp_path, fake_mnist):
    cfg = small_config(fake_mnist, objective={"negatives": "generated", "generated_base": "random",
                                              "generated_mix": 0.5, "regenerate_every": 5, "predict": "goodness"},
                       run={"score_ways": ["goodness"]})
    run = tmp_path / "run"
    summary = train(cfg, run_dir=run)
    assert summary["test_error"] < 0.5
    main(["plot", str(run), "--samples", "50"])
    names = {p.name for p in (run / "figures").glob("*.png")}
    assert {"samples.png", "generator.png", "goodness.png", "confusion.png"} <= names
