"""The one core: every schedule runs the model's one forward path, models own their parameters, and
registries are the one place each kind of part is chosen."""


import pytest
import torch
from torch import nn

from forward_forward import checkpoint
from forward_forward import data as data_mod
from forward_forward.config import ObjectiveConfig, OptimConfig, as_trained, from_dict, merge
from forward_forward.errors import FFError
from forward_forward.models import build_model
from forward_forward.negatives import NEGATIVES
from forward_forward.negatives.wrong_labels import WrongLabels
from forward_forward.training import build_optimizer, train
from forward_forward.training.loop import Loop, fit
from tests.conftest import ARCHITECTURES, ctrl_c_at_step, small_config

GREEDY = {"greedy_steps": 2, "chunk_size": 500, "epochs": 1}


def greedy_loop(fake_mnist, tmp_path, **sections):
    """A greedy run's loop on the fake data, before its first step."""
    sections["optim"] = {**GREEDY, **sections.get("optim", {})}
    cfg = small_config(fake_mnist, **sections)
    data = data_mod.load(cfg.data)
    model = build_model(cfg, data.shape, data.num_classes)
    return Loop(cfg, model, data, torch.device("cpu"), tmp_path, None)


def greedy_step(loop, name: str, chunk: int = 0):
    """One greedy step that trains the loss `name` on chunk `chunk`; returns the losses it gave."""
    names = loop.model.loss_names
    step = chunk * len(names) * GREEDY["greedy_steps"] + names.index(name) * GREEDY["greedy_steps"]
    assert loop.schedule.step(1, step, None)[1] == {name}
    losses, _ = loop.train_step(1, step, None)
    return losses


# ---- the greedy schedule honours what the model honours ------------------------------------------
def test_greedy_trains_one_named_loss_per_step_in_order(fake_mnist, tmp_path):
    loop = greedy_loop(fake_mnist, tmp_path)
    names = ["layer0", "layer1", "readout"]
    assert loop.model.loss_names == names
    plan = [loop.schedule.step(1, s, None) for s in range(loop.schedule.steps_per_epoch)]
    assert len(plan) == 2 * 3 * 2  # 1000 images in chunks of 500, 3 losses, 2 steps each
    assert [sorted(active)[0] for _, active, _ in plan[:6]] == [n for n in names for _ in range(2)]
    assert plan[0][0] == slice(0, 500) and plan[6][0] == slice(500, 1000)
    before = {k: v.clone() for k, v in loop.model.state_dict().items()}
    assert set(greedy_step(loop, "layer1")) == {"layer1"}
    moved = {k for k, v in loop.model.state_dict().items() if not torch.equal(v, before[k])}
    assert moved == {"stack.layers.1.linear.weight", "stack.layers.1.linear.bias", "stack.layers.1.mean_activity"}


def test_greedy_passes_through_black_box_stages(fake_mnist, tmp_path, monkeypatch):
    loop = greedy_loop(fake_mnist, tmp_path, model={"blackbox": "quantize", "blackbox_strength": 1},
                       objective={"negatives": "random"})  # no neutral pass through every layer
    seen = []
    stage = loop.model.stack.stages[0]
    original = type(stage).forward
    monkeypatch.setattr(type(stage), "forward", lambda self, y: seen.append(y.shape) or original(self, y))
    greedy_step(loop, "layer0")
    assert not seen  # layer 0's step does not run what is above it
    greedy_step(loop, "layer1")
    assert seen, "layer 1 trained on layer 0's activity without the black box between them"


def test_greedy_applies_peer_normalisation(fake_mnist, tmp_path):
    loop = greedy_loop(fake_mnist, tmp_path, model={"peer_lambda": 0.03})
    layer = loop.model.layers[0]
    assert torch.equal(layer.mean_activity, torch.full_like(layer.mean_activity, 0.5))
    greedy_step(loop, "layer0")
    assert not torch.equal(layer.mean_activity, torch.full_like(layer.mean_activity, 0.5))


def test_greedy_trains_the_readout(fake_mnist, tmp_path):
    loop = greedy_loop(fake_mnist, tmp_path)
    assert not loop.model.readout.weight.any()
    assert set(greedy_step(loop, "readout")) == {"readout"}
    assert loop.model.readout.weight.any()


def test_greedy_samples_hard_negatives_from_the_readout(fake_mnist, tmp_path, monkeypatch):
    from forward_forward.negatives import wrong_labels

    loop = greedy_loop(fake_mnist, tmp_path, objective={"negatives": "hard"})
    with torch.no_grad():
        loop.model.readout.bias.copy_(torch.arange(10.0) * 3)  # the readout believes in class 9
    sampled = []
    original = wrong_labels.label_ops.hard_wrong
    monkeypatch.setattr(wrong_labels.label_ops, "hard_wrong",
                        lambda labels, probs, **kw: sampled.append(probs) or original(labels, probs, **kw))
    greedy_step(loop, "layer0")
    assert sampled and sampled[0].argmax(1).eq(9).all(), "hard negatives were not drawn from the readout"


def test_greedy_jitters_the_images(fake_mnist, tmp_path, monkeypatch):
    from forward_forward import augment

    loop = greedy_loop(fake_mnist, tmp_path, data={"jitter": 2})
    calls = []
    original = augment.jitter
    monkeypatch.setattr(augment, "jitter", lambda images, *a: calls.append(images.shape) or original(images, *a))
    greedy_step(loop, "layer1")
    assert calls == [(500, 1, 28, 28)]


@pytest.mark.parametrize("rotate, scale", [(12.5, 0.1), (0.0, 0.1), (12.5, 0.0)])
def test_the_loop_turns_and_zooms_the_images_it_is_told_to(fake_mnist, tmp_path, monkeypatch, rotate, scale):
    from forward_forward import augment

    loop = greedy_loop(fake_mnist, tmp_path, data={"rotate": rotate, "scale": scale})
    calls = []
    original = augment.affine
    monkeypatch.setattr(augment, "affine", lambda images, *a: calls.append(a[:2]) or original(images, *a))
    greedy_step(loop, "layer1")
    assert calls == [(rotate, scale)]  # either alone is honoured


@pytest.mark.parametrize("draws", ["step", "chunk"])
def test_greedy_negatives_fresh_every_step_or_once_per_chunk(fake_mnist, tmp_path, monkeypatch, draws):
    from forward_forward.negatives import wrong_labels

    loop = greedy_loop(fake_mnist, tmp_path, objective={"negatives": "random"},
                       optim={"greedy_negatives": draws, "greedy_steps": 2})
    drawn = []
    original = wrong_labels.label_ops.random_wrong
    monkeypatch.setattr(wrong_labels.label_ops, "random_wrong",
                        lambda *a, **k: drawn.append(original(*a, **k)) or drawn[-1])
    for step in (0, 1, 2, 6):  # layer0 twice, layer1, then layer0 on the second chunk
        loop.train_step(1, step, None)
    same_chunk = torch.equal(drawn[0], drawn[1]) and torch.equal(drawn[0], drawn[2])
    assert same_chunk == (draws == "chunk")
    assert not torch.equal(drawn[0], drawn[3])  # the next chunk's images get their own


@pytest.mark.parametrize("norm, negatives, micro_batch, saved",
                         [("l2", "random", 0, 2 * 2 * (3 - 1)), ("batchnorm", "random", 0, 0), ("l2", "hard", 0, 0),
                          ("l2", "random", 200, 2 * 2 * (3 - 1) * 3)])
def test_greedy_steps_that_repeat_their_inputs_run_the_frozen_layers_once(fake_mnist, tmp_path, monkeypatch, norm,
                                                                          negatives, micro_batch, saved):
    """With negatives drawn once per chunk, a layer's steps on one chunk all read the same input: the
    layers below it run once for the block, and training ends exactly where running them every step
    ends (jitter and a noisy black box included, whose draws repeat with the chunk's seed). Under
    batchnorm, whose running statistics move on every pass, the frozen layers still run every step; so
    they do for hard negatives, which the readout's pass through the trained layer draws anew each step.
    A chunk split into micro-batches keeps one input per micro-batch."""
    sections = dict(model={"hidden": [32, 32, 32], "blackbox": "noise", "blackbox_strength": 0.1, "norm": norm,
                           "peer_lambda": 0.0 if micro_batch else 0.03},  # peer normalisation reads whole batches
                    objective={"negatives": negatives}, data={"jitter": 1},
                    optim={"greedy_negatives": "chunk", "greedy_steps": 3, "micro_batch": micro_batch})

    def train_epoch(repeat: bool):
        torch.manual_seed(0)
        loop = greedy_loop(fake_mnist, tmp_path / str(repeat), **sections)
        assert loop.model.repeat_slots == (3 if micro_batch else 1)  # 500 images: 200, 200, 100
        if not repeat:
            monkeypatch.setattr(loop.schedule, "repeat_key", lambda epoch, step: None)
        first = loop.model.stack.layers[0]
        runs = []
        original = first.pre_activation
        monkeypatch.setattr(first, "pre_activation", lambda *a, **k: runs.append(1) or original(*a, **k))
        for step in range(loop.schedule.steps_per_epoch):
            loop.train_step(1, step, None)
        return loop.model.state_dict(), len(runs)

    kept, runs_kept = train_epoch(repeat=True)
    every, runs_every = train_epoch(repeat=False)
    assert kept.keys() == every.keys() and all(torch.equal(kept[k], every[k]) for k in kept)
    # per chunk of 500: 3 steps of each of layers 0-2 run layer 0 (the readout's pass aside); kept, the
    # steps of layers 1 and 2 run it once each (once per micro-batch)
    assert runs_every - runs_kept == saved


@pytest.mark.parametrize("kind, fields", ARCHITECTURES)
def test_micro_batches_give_the_step_of_the_whole_batch(kind, fields, fake_mnist, tmp_path):
    """optim.micro_batch: the gradients of the parts, weighted by their share, are the whole batch's
    (up to rounding), for the losses the model backpropagates itself and the ones the loop does."""
    negatives = {"negatives": "all"} if kind == "ff" else {}  # the same negatives however split
    states = []
    for micro in (0, 16):  # 50 images: 16, 16, 16, 2
        torch.manual_seed(0)
        cfg = small_config(fake_mnist, model={"kind": kind, "peer_lambda": 0.0, **fields},
                           objective={"predict": "softmax", **negatives}, optim={"micro_batch": micro})
        data = data_mod.load(cfg.data)
        model = build_model(cfg, data.shape, data.num_classes)
        loop = Loop(cfg, model, data, torch.device("cpu"), tmp_path / str(micro), None)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        order = loop.schedule.order(loop.generator)
        for step in range(3):
            losses, stats = loop.train_step(1, step, order)
        states.append(model.state_dict())
    whole, parts = states
    assert any(not torch.equal(whole[k], before[k]) for k in whole)
    for k in whole:
        torch.testing.assert_close(parts[k], whole[k], rtol=1e-4, atol=1e-5, msg=k)
    assert set(losses) == set(model.loss_names) and all(v.dim() == 0 for v in losses.values())


def test_micro_batches_are_refused_where_a_loss_reads_the_whole_batch():
    for model, why in (({"norm": "batchnorm", "peer_lambda": 0.0}, "model.norm = batchnorm"),
                       ({"peer_lambda": 0.03}, "peer normalisation")):
        with pytest.raises(FFError, match=f"optim.micro_batch adds up the gradients.*{why}"):
            small_config(model=model, optim={"micro_batch": 10})
    for objective, why in (({"negatives": "generated"}, "refits its generator once per pass"),
                           ({"negatives": "hybrid", "predict": "softmax"}, "optim.micro_batch = 1 holds one")):
        with pytest.raises(FFError, match=f"objective.negatives = {objective['negatives']} .*{why}"):
            small_config(model={"peer_lambda": 0.0}, objective=objective, optim={"micro_batch": 1})
    with pytest.raises(FFError, match="optim.micro_batch must be not negative"):
        small_config(optim={"micro_batch": -1})
    # the backprop twin has no peer loss, so the base config's peer_lambda does not stand in its way
    twin = small_config(model={"kind": "backprop"}, objective={"predict": "softmax"}, optim={"micro_batch": 10})
    assert twin.optim.micro_batch == 10 and twin.model.peer_lambda == 0


def test_a_micro_batch_that_would_not_split_a_step_is_refused():
    """A micro-batch as large as a step's images would change nothing: an error, not a silent no-op."""
    with pytest.raises(FFError, match="does not split a step of optim.batch_size = 50 images"):
        small_config(model={"peer_lambda": 0.0}, optim={"micro_batch": 50})
    with pytest.raises(FFError, match="does not split a step of optim.chunk_size = 500 images"):
        small_config(model={"peer_lambda": 0.0}, optim={**GREEDY, "micro_batch": 600})
    assert small_config(model={"peer_lambda": 0.0}, optim={**GREEDY, "micro_batch": 100}).optim.micro_batch == 100


def test_a_micro_batch_never_holds_one_image_alone(fake_mnist, tmp_path, monkeypatch):
    """A hybrid negative mixes two images of its micro-batch: a lone last image joins the one before."""
    cfg = small_config(fake_mnist, model={"peer_lambda": 0.0}, objective={"negatives": "hybrid", "predict": "softmax"},
                       optim={"micro_batch": 7})  # batches of 50: 7 x 7 and a lone 50th
    data = data_mod.load(cfg.data)
    loop = Loop(cfg, build_model(cfg, data.shape, data.num_classes), data, torch.device("cpu"), tmp_path, None)
    sizes = []
    model_step = loop.step_model
    monkeypatch.setattr(loop, "step_model", lambda images, labels, **kw: sizes.append(len(images))
                        or model_step(images, labels, **kw))
    loop.train_step(1, 0, loop.schedule.order(loop.generator))
    assert sizes == [7] * 6 + [8]


def test_greedy_run_with_every_feature_on_learns_and_resumes_mid_epoch(fake_mnist, tmp_path):
    cfg = small_config(fake_mnist, model={"blackbox": "quantize", "blackbox_strength": 4, "peer_lambda": 0.03},
                       objective={"negatives": "hard"}, data={"jitter": 1},
                       optim={"greedy_steps": 10, "chunk_size": 500, "epochs": 2, "lr": 0.003},
                       run={"deterministic": True})
    reference = train(cfg, tmp_path / "reference", "test")
    assert reference["test_error"] < 0.5, reference
    run = tmp_path / "interrupted"
    with ctrl_c_at_step(25), pytest.raises(FFError, match="interrupted at epoch 1, step 25"):
        train(cfg, run, "test")  # step 25: epoch 1, chunk 1, the readout's phase
    assert checkpoint.load(run)["step"] == 25
    assert train(cfg, run, "test", resume=True)["test_error"] == reference["test_error"]


def test_a_model_handed_back_keeps_no_greedy_inputs(fake_mnist, tmp_path):
    """After training, a model keeps no chunk's input for later steps, nor room for several: trained
    again without micro-batches, each kept input would be a whole chunk's."""
    cfg = small_config(fake_mnist, model={"peer_lambda": 0.0}, objective={"negatives": "random"},
                       optim={**GREEDY, "greedy_negatives": "chunk", "micro_batch": 200})
    data = data_mod.load(cfg.data)
    model = build_model(cfg, data.shape, data.num_classes)
    seen = []
    original = model.forward
    model.forward = lambda *a, **k: seen.append((model.repeat_slots, len(model._repeated))) or original(*a, **k)
    fit(cfg, model, data, torch.device("cpu"), tmp_path)
    assert max(slots for slots, _ in seen) == 3 and max(kept for _, kept in seen) > 0  # kept while training
    assert model.repeat_slots == 1 and model.repeat_key is None and not model._repeated


# ---- models own their interface ------------------------------------------------------------------
@pytest.mark.parametrize("kind, fields", ARCHITECTURES)
def test_every_parameter_a_model_has_is_optimised_even_a_new_one(kind, fields):
    cfg = small_config(model={"kind": kind, **fields}, objective={"predict": "softmax"})
    model = build_model(cfg, (1, 8, 8), 10)
    units = model.layers[0].out_features
    model.layers[0].gain = nn.Parameter(torch.ones(units))  # a part a researcher adds to a layer
    optimizer, _ = build_optimizer(cfg, model, total_steps=10)
    grouped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert grouped == {id(p) for p in model.parameters()}
    model.layers[0].gain.grad = torch.ones(units)
    optimizer.step()
    assert not torch.equal(model.layers[0].gain, torch.ones(units))


@pytest.mark.parametrize("kind, fields", ARCHITECTURES)
def test_each_layer_may_have_its_own_learning_rate(kind, fields):
    cfg = small_config(model={"kind": kind, **fields}, objective={"predict": "softmax"},
                       optim={"layer_lr": [1.0, 0.25]})
    model = build_model(cfg, (1, 8, 8), 10)
    optimizer, _ = build_optimizer(cfg, model, total_steps=10)
    lr_of = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert lr_of[id(model.layers[0].weight)] == lr_of[id(model.layers[0].bias)] == pytest.approx(0.01)
    assert lr_of[id(model.layers[1].weight)] == lr_of[id(model.layers[1].bias)] == pytest.approx(0.0025)
    if fields:  # a layer's top-down weights are its incoming weights too
        assert lr_of[id(model.topdown.down[1].weight)] == pytest.approx(0.0025)
    with pytest.raises(FFError, match="one positive factor per hidden layer"):
        small_config(optim={"layer_lr": [1.0]})


@pytest.mark.parametrize("name, schedule, expected_class", [
    ("sgd", "hinton", torch.optim.SGD), ("adam", "constant", torch.optim.Adam)])
def test_the_optimiser_and_schedule_are_the_ones_configured(name, schedule, expected_class):
    cfg = small_config(optim={"name": name, "schedule": schedule, "lr": 0.5})
    optimizer, scheduler = build_optimizer(cfg, build_model(cfg, (100,), 10), total_steps=10)
    assert type(optimizer) is expected_class
    if name == "sgd":  # the MATLAB recipe's smoothed gradient
        assert optimizer.param_groups[0]["momentum"] == optimizer.param_groups[0]["dampening"] == 0.9
    rates = []
    for _ in range(10):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    # hinton: the paper's rate for the first half, then linear to 0 over the second
    expected = [0.5] * 6 + [0.4, 0.3, 0.2, 0.1] if schedule == "hinton" else [0.5] * 10
    assert rates == pytest.approx(expected)


def test_a_model_whose_groups_leave_a_parameter_out_is_refused():
    cfg = small_config()
    model = build_model(cfg, (100,), 10)
    model.param_groups = lambda optim: [{"params": list(model.layers.parameters())}]
    with pytest.raises(AssertionError, match="readout.weight"):
        build_optimizer(cfg, model, total_steps=10)


@pytest.mark.parametrize("kind, fields", ARCHITECTURES)
def test_forward_is_the_named_losses_and_works_under_data_parallel(kind, fields, tmp_path):
    import torch.distributed as dist

    cfg = small_config(model={"kind": kind, "peer_lambda": 0.0, **fields},  # no running means
                       objective={"predict": "softmax"})
    model = build_model(cfg, (1, 8, 8), 10)
    images, labels = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    torch.manual_seed(3)
    direct, _ = model(images, labels)
    torch.manual_seed(3)
    named, _ = model.losses(images, labels)
    assert list(direct) == model.loss_names == list(named)
    assert all(torch.equal(direct[k], named[k]) for k in direct)
    dist.init_process_group("gloo", store=dist.FileStore(str(tmp_path / "store"), 1), rank=0, world_size=1)
    try:
        wrapped = nn.parallel.DistributedDataParallel(model)
        losses, _ = wrapped(images, labels)
        sum(losses.values()).backward()
        assert [n for n, p in model.named_parameters() if p.grad is None] == []
    finally:
        # the wrapper's reducer holds the process group: freed after it, gloo's teardown once hung joining
        # its threads here
        wrapped = losses = None
        dist.destroy_process_group()


# ---- registries ----------------------------------------------------------------------------------
class Shuffled(WrongLabels):
    """A strategy a user adds: each image with the label of another image in the batch (may be true)."""

    def wrong(self, images, labels, probs):
        return images, labels.roll(1)


def test_a_new_negative_strategy_is_one_registry_entry(monkeypatch, fake_mnist, tmp_path):
    with pytest.raises(FFError, match="objective.negatives must be one of random, hard, all, any_label, hybrid, "
                                      "generated; got 'shuffled'"):
        small_config(objective={"negatives": "shuffled"})
    monkeypatch.setitem(NEGATIVES, "shuffled", Shuffled)
    cfg = small_config(fake_mnist, objective={"negatives": "shuffled"}, optim={"epochs": 1})
    model = build_model(cfg, (100,), 10)
    images, labels = torch.rand(4, 100), torch.tensor([1, 2, 3, 4])
    _, neg = model.negatives.make(images, labels, model.coding)
    assert neg[:, :10].argmax(1).tolist() == [4, 1, 2, 3]
    assert train(cfg, tmp_path / "run", "test")["test_error"] < 0.9


def test_a_strategy_checks_the_config_of_any_kind_that_trains_on_negatives(monkeypatch):
    from forward_forward.models import MODELS, CompetitiveNetwork

    class Strict(WrongLabels):
        @staticmethod
        def check(cfg):
            raise FFError("strict refuses this config")

    class OwnKind(CompetitiveNetwork):  # a kind of its own that trains on negatives, not an FFNetwork
        trains_on_negatives = True

    monkeypatch.setitem(NEGATIVES, "strict", Strict)
    monkeypatch.setitem(MODELS, "own", OwnKind)
    for kind in ("ff", "own"):
        with pytest.raises(FFError, match="strict refuses"):
            small_config(model={"kind": kind}, objective={"negatives": "strict"})


def test_registry_entries_check_their_own_fields():
    with pytest.raises(FFError, match="hard samples from the softmax readout"):
        small_config(model={"readout": False}, objective={"negatives": "hard", "predict": "goodness"})
    with pytest.raises(FFError, match="number of bits for quantize"):
        small_config(model={"blackbox": "quantize", "blackbox_strength": 20})
    with pytest.raises(FFError, match="model.kind = backprop trains end to end"):
        small_config(model={"kind": "backprop"}, objective={"predict": "softmax"}, optim={"greedy_steps": 5})
    with pytest.raises(FFError, match="label_coding has nothing to code"):
        small_config(objective={"negatives": "hybrid", "predict": "softmax", "label_coding": "channels"})
    # any FF config is one field away from its twin, whose config holds the FF-only fields at their defaults
    # (it never reads them); given to the twin, they are refused rather than ignored
    ff = small_config(model={"readout": False}, objective={"negatives": "random", "predict": "goodness"})
    twin = merge(ff, {"model": {"kind": "backprop"}, "objective": {"predict": "softmax"}})
    assert twin.model.kind == "backprop" and twin.model.readout and twin.model.peer_lambda == 0
    assert twin.objective == ObjectiveConfig(predict="softmax") and twin.optim.readout_lr == OptimConfig().readout_lr
    for field in ({"model": {"peer_lambda": 0.03}}, {"objective": {"threshold": 3.0}}, {"model": {"readout": False}},
                  {"optim": {"readout_lr": 0.3}}, {"objective": {"negatives": "hard"}}):
        with pytest.raises(FFError, match="not read by model.kind = backprop"):
            merge(twin, field)
    # a twin saved by an earlier version holds the FF values it ignored: it loads with them at their defaults
    saved = {**ff.to_dict(), "model": {**ff.to_dict()["model"], "kind": "backprop"},
             "objective": {**ff.to_dict()["objective"], "predict": "softmax", "threshold": 3.0}}
    loaded = from_dict(as_trained(saved))
    assert loaded.model.peer_lambda == 0 and loaded.objective == ObjectiveConfig(predict="softmax")


# ---- each layer's loss backpropagated as soon as it is computed ------------------------------------
@pytest.mark.parametrize("kind, objective", [("ff", {"negatives": "hard", "label_coding": "pixels"}),
                                             ("ff", {"negatives": "hybrid"}), ("competitive", {})])
def test_releasing_each_layers_graph_gives_the_gradients_of_one_backward(kind, objective):
    """With release_graphs (what the loop sets), every layer's loss is backpropagated inside forward and
    its graph freed; the gradients are those of one backward of the summed losses."""
    cfg = small_config(objective=objective, model={"kind": kind, "hidden": [30, 30, 30]})
    torch.manual_seed(0)
    model = build_model(cfg, (1, 8, 8), 10)
    images, labels = torch.rand(20, 1, 8, 8), torch.arange(20) % 10
    before = {k: v.clone() for k, v in model.state_dict().items()}  # the peer-normalisation means move
    torch.manual_seed(1)
    losses, _ = model(images, labels)
    sum(losses.values()).backward()
    summed = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.load_state_dict(before)
    model.release_graphs = True
    torch.manual_seed(1)
    released, _ = model(images, labels)
    assert all(not released[f"layer{i}"].requires_grad for i in range(3))  # already backpropagated
    total = sum(released.values())
    if total.requires_grad:  # the readout's loss, which reads a pass of its own
        total.backward()
    for name, p in model.named_parameters():
        assert torch.equal(p.grad, summed[name]), name
    assert all(torch.equal(released[k], losses[k].detach()) for k in losses)
    seen = []
    out = model.stack(model.unlabelled(images), each=lambda i, z, y: seen.append(i), keep=False)
    assert seen == [0, 1, 2] and out.pre == out.act == []  # nothing of a layer outlives the next one
