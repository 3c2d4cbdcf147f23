"""Text data, next-character FF, generated negatives, writing, baselines (small texts made here,
plus short real runs on Aesop's fables in FF_DATA_DIR)."""

import json
import math
from pathlib import Path

import pytest
import torch

from forward_forward import cli, fast_weights, ngram, sequence, text
from forward_forward.config import DataConfig, merge
from forward_forward.data import load
from forward_forward.errors import FFError
from forward_forward.models import FFNetwork, build_model
from forward_forward.training import load_trained, train
from tests.conftest import small_config

WORDS = "the fox saw a crow on a branch with a piece of cheese in her beak and wished to have it for himself".split()


def write_text(path: Path, documents: int = 40, seed: int = 0) -> Path:
    """A text of `documents` blocks, each a few sentences of random words, separated by blank lines."""
    g = torch.Generator().manual_seed(seed)
    blocks = []
    for d in range(documents):
        words = [WORDS[i] for i in torch.randint(len(WORDS), (40,), generator=g).tolist()]
        blocks.append(f"Story {d}\n\n" + " ".join(words).capitalize() + ". The End!")
    path.write_text("\n\n\n\n".join(blocks) + "\n")
    return path


def text_config(path: Path, **sections):
    base = {"data": {"dataset": "text", "path": str(path), "val_size": 8, "window": 4, "string_length": 30,
                     "strings": 24},
            "model": {"hidden": [48, 48]},
            "objective": {"label_coding": "auto", "predict_layers_from": 0},
            "optim": {"epochs": 1, "batch_size": 26}}
    for section, values in sections.items():
        base.setdefault(section, {}).update(values)
    return small_config(**base)


def test_encoding_round_trips_and_cleaning_maps_punctuation():
    s = "the fox, the crow; the end."
    assert text.decode(text.encode(s)) == s
    assert text.encode("The Fox").tolist() == text.encode("the fox").tolist()
    assert text.clean('"Well!" said he -- "No: never?"\n  ') == "well. said he no; never."
    assert len(text.ALPHABET) == 30 and len(set(text.ALPHABET)) == 30


def test_windows_pair_each_context_with_the_next_character():
    strings = text.encode("abcdefg")[None]
    contexts, targets = text.windows(strings, 3)
    assert [text.decode(c) for c in contexts] == ["abc", "bcd", "cde", "def"]
    assert text.decode(targets) == "defg"
    x = text.one_hot(contexts)
    assert x.shape == (4, 90) and x.sum(1).tolist() == [3.0] * 4


def test_held_out_strings_come_from_other_documents_and_never_overlap_training(tmp_path):
    path = write_text(tmp_path / "t.txt")
    data = load(text_config(path).data)
    corpus = data.corpus
    assert corpus.train.shape == (24, 30) and len(corpus.val) and len(corpus.test)
    assert len(corpus.val) <= 8
    train = {text.decode(s) for s in corpus.train}
    for held in (corpus.val, corpus.test):
        for s in held:
            assert text.decode(s) not in train
    # each training string is the start of its own document; a held-out string starts no training document
    documents = [text.clean(d) for d in text.text_documents(path.read_text())]
    owners = {next(i for i, d in enumerate(documents) if d.startswith(s)) for s in train}
    assert len(owners) == 24
    held_docs = {i for i, d in enumerate(documents) for s in map(text.decode, corpus.test) if s in d}
    assert not held_docs & owners
    assert data.shape == (4 * 30,) and data.num_classes == 30 and data.kind == "text"
    assert len(data.train) == 24 * (30 - 4)


def test_the_split_is_reproducible_whatever_the_run_seed(tmp_path):
    path = write_text(tmp_path / "t.txt")
    a = load(text_config(path).data).corpus
    torch.manual_seed(123)
    b = load(text_config(path).data).corpus
    assert torch.equal(a.train, b.train) and torch.equal(a.test, b.test)


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("1234 5678 \n\n 9999 [] {}", "holds no characters of the alphabet"),
    ("short text.", "needs"),
])
def test_bad_text_files_get_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(FFError, match=message):
        load(DataConfig(dataset="text", path=str(path), strings=5))


def test_missing_and_binary_text_files_are_refused(tmp_path):
    with pytest.raises(FFError, match="not a file"):
        load(DataConfig(dataset="text", path=str(tmp_path / "nope.txt")))
    binary = tmp_path / "b.txt"
    binary.write_bytes(bytes(range(128, 256)) * 10)
    with pytest.raises(FFError, match="not UTF-8"):
        load(DataConfig(dataset="text", path=str(binary)))


def test_text_fields_on_image_data_are_refused_not_ignored():
    with pytest.raises(FFError, match="data.window"):
        merge(small_config(), {"data": {"window": 5}})
    with pytest.raises(FFError, match="string_length"):
        merge(small_config(), {"data": {"dataset": "text", "path": "x", "window": 10, "string_length": 10}})


def test_sampling_fields_are_refused_under_a_strategy_that_does_not_read_them():
    with pytest.raises(FFError, match="objective.sample_from"):
        merge(small_config(), {"objective": {"negatives": "random", "sample_from": "goodness"}})
    with pytest.raises(FFError, match="regenerate_every"):
        merge(small_config(), {"objective": {"negatives": "hard", "regenerate_every": 5}})
    with pytest.raises(FFError, match="generated text"):  # on images, generated negatives are the generator's
        merge(small_config(), {"objective": {"negatives": "generated", "generated_length": 20}})


def _text_model(tmp_path, **objective):
    path = write_text(tmp_path / "t.txt")
    cfg = text_config(path, objective=objective)
    data = load(cfg.data)
    from forward_forward.training.run import fit_to_data

    cfg = fit_to_data(cfg, data)
    return cfg, build_model(cfg, data.shape, data.num_classes), data


def test_batched_candidate_scoring_equals_a_loop_over_candidates(tmp_path):
    cfg, model, data = _text_model(tmp_path)
    x = data.val.images[:7]
    batched = model.label_goodness(x)  # (B, 30, layers) in one pass
    looped = torch.stack([model.layer_goodness(model.with_label(x, torch.full((7,), c))) for c in range(30)], dim=1)
    torch.testing.assert_close(batched, looped)
    logp = model.class_log_probs(x, ("goodness",))["goodness"]
    assert torch.allclose(logp.exp().sum(1), torch.ones(7))


def test_generated_negatives_are_written_by_the_model_and_change_with_its_weights(tmp_path, monkeypatch):
    cfg, model, data = _text_model(tmp_path, negatives="generated", generated_length=12, regenerate_every=1)
    strategy = model.negatives
    x, y = data.train.images[:26], data.train.labels[:26]
    torch.manual_seed(1)
    pos, neg = strategy.make(x, y, model.coding, model=model)
    assert torch.equal(pos, model.with_label(x, y))
    first = strategy.bank
    # windows of the batch's own windows continued: each holds a written character (12 written, 11 windows)
    prompts = x.view(26, 4, 30).argmax(2)
    assert torch.equal(first[0].view(26, 11, 4)[:, 0, :3], prompts[:, 1:])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    torch.manual_seed(1)
    strategy.make(x, y, model.coding, model=model)
    assert not torch.equal(first[1], strategy.bank[1])  # same random stream, other weights: other text
    # what was written is what the model's own probabilities say, by the configured way and temperature
    calls = []
    original = sequence.write
    monkeypatch.setattr(sequence, "write", lambda *a, **k: calls.append(a) or original(*a, **k))
    strategy.make(x, y, model.coding, model=model)
    assert calls and calls[0][0] is model and calls[0][3:5] == (cfg.objective.sample_from, 1.0)


def test_hard_negatives_from_goodness_never_carry_the_true_character(tmp_path):
    cfg, model, data = _text_model(tmp_path, negatives="hard", sample_from="goodness", sample_temperature=0.5)
    x, y = data.train.images[:50], data.train.labels[:50]
    probs = model.sampling_probs(x)
    goodness = model.label_goodness(x)[:, :, model.predict_from :]
    per_unit = (goodness / torch.tensor(model.goodness_scales[model.predict_from :])).sum(2)
    torch.testing.assert_close(probs, (per_unit / 0.5).softmax(1))
    _, neg = model.negatives.make(x, y, model.coding, probs, model)
    assert (neg[:, -30:].argmax(1) != y).all()


def test_write_with_temperature_zero_takes_the_likeliest_character(tmp_path):
    cfg, model, data = _text_model(tmp_path)
    prompts = data.corpus.val[:3, :4]
    out = sequence.write(model, prompts, 5, "softmax", temperature=0)
    assert out.shape == (3, 9) and torch.equal(out[:, :4], prompts)
    first = sequence.next_log_probs(model, prompts, "softmax").argmax(1)
    assert torch.equal(out[:, 4], first)


def test_ngram_probabilities_sum_to_one_and_beat_unigram_on_repetitive_text(tmp_path):
    strings = text.encode("the fox and the crow. " * 20)[: 400].view(4, 100)
    model = ngram.NGram(strings, 5)
    for context in [(), tuple(text.encode("the f").tolist()), tuple(text.encode("zzzzz").tolist())]:
        p = model.probs(context, 0.7)
        assert abs(float(p.sum()) - 1) < 1e-9 and (p > 0).all()
    corpus = text.Corpus(5, strings[:2], strings[2:3], strings[3:])
    result = ngram.baselines(corpus)
    assert result["6-gram"]["test"]["acc"] > 0.95 > result["unigram"]["test"]["acc"]
    assert result["6-gram"]["test"]["bpc"] < result["unigram"]["test"]["bpc"]


def test_a_text_run_reports_bits_free_running_error_and_samples_and_generates(tmp_path, capsys):
    path = write_text(tmp_path / "t.txt")
    cfg = text_config(path, objective={"negatives": "generated", "regenerate_every": 3, "predict": "best"})
    run = tmp_path / "run"
    summary = train(cfg, run)
    for key in ("val_bpc_goodness", "test_bpc_softmax", "test_free_error", "val_free_error", "temperature_goodness"):
        assert key in summary, key
    assert 0 < summary["test_bpc_softmax"] < 10 and 0 <= summary["test_free_error"] <= 1
    epoch = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"val_bpc", "val_free_error", "val_error"} <= set(epoch)
    samples = (run / "samples" / "epoch0001.txt").read_text().splitlines()
    assert len(samples) == 1 + min(4, len(load(cfg.data).corpus.val)) and all(len(s) == 30 for s in samples[1:])
    capsys.readouterr()
    assert cli.main(["generate", str(run), "--prompt", "The fox", "--length", "12", "--temperature", "0"]) == 0
    written = capsys.readouterr().out.rstrip("\n")
    assert written.startswith("the fox") and len(written) == 7 + 12
    assert cli.main(["generate", str(run), "--prompt", "the fox #1"]) != 0
    assert "outside the alphabet" in capsys.readouterr().err
    _, model, _, _ = load_trained(run)
    assert model.state_dict()


def test_generate_refuses_an_image_run(tmp_path, fake_mnist, capsys):
    run = tmp_path / "img"
    train(small_config(fake_mnist, optim={"epochs": 1}), run)
    assert cli.main(["generate", str(run), "--prompt", "the"]) != 0
    assert "not on text" in capsys.readouterr().err


def test_aesop_gives_the_papers_248_strings_of_100_characters(aesop_dir):
    data = load(DataConfig(dataset="aesop", data_dir=str(aesop_dir), val_size=60))
    assert data.corpus.train.shape == (248, 100) and len(data.train) == 248 * 90
    assert data.corpus.val.shape == (60, 100) and len(data.corpus.test) > 100
    assert text.decode(data.corpus.train[0]) != text.decode(data.corpus.train[1])
    # the unigram baseline lands where the literature has it (19.6 % on its own strings)
    got = ngram.unigram(data.corpus.train, data.corpus.test, 10)
    assert 0.17 < got["acc"] < 0.22 and 4.0 < got["bpc"] < 4.4


@pytest.mark.slow
def test_ff_learns_next_characters_of_aesop(aesop_dir, tmp_path):
    """A short real run: far above the unigram's 19 % after one epoch of a small net."""
    cfg = merge(small_config(aesop_dir), {
        "data": {"dataset": "aesop", "val_size": 30, "verify_checksums": True},
        "model": {"hidden": [400, 400]}, "objective": {"label_coding": "auto", "predict": "softmax"},
        "optim": {"epochs": 2, "batch_size": 100}, "run": {"score_ways": ["softmax"]}})
    summary = train(cfg, tmp_path / "run")
    assert summary["test_error"] < 0.72 and summary["test_bpc_softmax"] < 3.6
    assert not math.isnan(summary["test_free_error"])


def _fast_model(tmp_path, **model):
    path = write_text(tmp_path / "t.txt")
    cfg = text_config(path, model={"fast_weights": True, **model}, optim={"epochs": 1, "batch_size": 52},
                      run={"eval_batch_size": 52 * 4})
    data = load(cfg.data)
    from forward_forward.training.run import fit_to_data

    cfg = fit_to_data(cfg, data)
    return cfg, build_model(cfg, data.shape, data.num_classes), data


def test_fast_weights_reach_back_past_the_window_and_never_forward(tmp_path):
    cfg, model, data = _fast_model(tmp_path)
    assert cfg.model.fast_positions == 26
    x = data.train.images[: 2 * 26].clone()  # two whole strings
    base = model.label_goodness(x)
    changed = x.clone()
    changed[3] = text.one_hot(text.encode("zzzz")[None])[0]  # window 3 of the first string
    after = model.label_goodness(changed)
    assert torch.allclose(after[:3], base[:3])  # earlier windows: untouched
    assert not torch.allclose(after[10], base[10])  # window 10 sees window 3 through its memory only
    assert torch.allclose(after[26:], base[26:])  # the other string: untouched
    # batched over labels equals a loop: label c's pass, its memory read from the real characters' passes
    model.fast.rate = 0.0
    plain = model.label_goodness(x)
    cfg0 = merge(cfg, {"model": {"fast_weights": False, "fast_positions": 0}})
    twin = build_model(cfg0, data.shape, data.num_classes)
    twin.load_state_dict(model.state_dict())
    torch.testing.assert_close(plain, twin.label_goodness(x))  # no memory: the window model itself


def test_fast_weight_memory_is_read_from_the_real_next_characters(tmp_path):
    cfg, model, data = _fast_model(tmp_path)
    x, y = data.train.images[:26], data.train.labels[:26]
    # the reference of each window is the next one's last character: the real next character
    assert torch.equal(fast_weights.next_characters(x, 26)[:-1], y[:-1])
    g = model.label_goodness(x)  # (26, 30, layers)
    # the true label's goodness by the label-major pass equals a positive pass (memory from the same positives)
    positive = model.layer_goodness(model.with_label(x, y))
    torch.testing.assert_close(g[torch.arange(26), y], positive, rtol=1e-4, atol=1e-4)


def test_fast_weights_train_and_score_teacher_forced(tmp_path, capsys, monkeypatch):
    cfg, _, _ = _fast_model(tmp_path)
    monkeypatch.setattr("forward_forward.training.loop.SPARSITY_SAMPLES", 100)  # not a whole number of strings
    run = tmp_path / "run"
    summary = train(cfg, run)
    assert "test_bpc_softmax" in summary and "test_free_error" not in summary
    assert cli.main(["generate", str(run), "--prompt", "the fox"]) != 0
    assert "fast weights" in capsys.readouterr().err
    twin = train(merge(cfg, {"model": {"kind": "backprop"}, "objective": {"negatives": "random", "predict": "softmax",
                                                                          "label_coding": "auto"}}), tmp_path / "bp")
    assert "test_bpc_softmax" in twin and "test_free_error" not in twin  # the twin keeps the fast weights
    assert cli.main(["plot", str(run)]) == 2  # its figures would take windows one by one
    assert "fast weights read whole strings" in capsys.readouterr().err
    assert cli.main(["report", str(run), str(tmp_path / "bp"), "--out", str(tmp_path / "page.html")]) == 0
    assert "<img" in (tmp_path / "page.html").read_text()  # the comparison figure, and no run's figures


@pytest.mark.parametrize("change, message", [
    ({"optim": {"batch_size": 50}}, "optim.batch_size = 50"),
    ({"objective": {"negatives": "all"}}, "random or hard"),
    ({"data": {"dataset": "mnist", "path": None, "window": 10, "string_length": 100, "strings": 248}}, "need text"),
    ({"model": {"fast_weights": False, "fast_rate": 0.1}}, "model.fast_rate"),
    ({"model": {"kind": "competitive"}, "objective": {"negatives": "random"}}, r"model.kind = competitive \(this kind"),
])
def test_fast_weights_refuse_what_they_cannot_honour(tmp_path, change, message, monkeypatch):
    from forward_forward.negatives import NEGATIVES
    from forward_forward.negatives.wrong_labels import AnyLabel

    path = write_text(tmp_path / "t.txt")
    cfg = text_config(path, model={"fast_weights": True}, optim={"batch_size": 52}, run={"eval_batch_size": 52})
    with pytest.raises(FFError, match=message):
        merge(cfg, change)
    # a strategy that says it keeps each negative in its sample's row is accepted, whatever its name
    monkeypatch.setitem(NEGATIVES, "in_its_row", type("InItsRow", (AnyLabel,), {"in_place": True}))
    assert merge(cfg, {"objective": {"negatives": "in_its_row"}}).objective.negatives == "in_its_row"


def test_sleep_phases_train_on_generated_negatives(tmp_path, monkeypatch):
    """Separate positive and negative phases (optim.phase_steps) with negatives the model writes."""
    from forward_forward.negatives.generated import Generated

    rewrites, phases = [], []
    original, forward = Generated.rewrite, FFNetwork.forward
    monkeypatch.setattr(Generated, "rewrite", lambda self, *a: rewrites.append(1) or original(self, *a))
    monkeypatch.setattr(FFNetwork, "forward",
                        lambda self, *a, **k: phases.append(k.get("phase")) or forward(self, *a, **k))
    path = write_text(tmp_path / "t.txt")
    cfg = text_config(path, objective={"negatives": "generated", "regenerate_every": 4}, optim={"phase_steps": 3})
    train(cfg, tmp_path / "run")
    steps = len(load(cfg.data).train) // cfg.optim.batch_size
    assert phases[:7] == ["positive"] * 3 + ["negative"] * 3 + ["positive"]  # each step trains one phase
    assert len(rewrites) == math.ceil(steps / 4)  # rewritten on steps 0, 4, 8, ...
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert {"g_pos", "g_neg"} <= set(records[-1]["layers"]["layer0"])


@pytest.mark.parametrize("change", [
    {"objective": {"goodness": "mean_abs"}},
    {"objective": {"loss": "symba"}},
    {"model": {"activation": "gelu"}},
    {"model": {"norm": "layernorm"}},
    {"objective": {"negatives": "random"}, "model": {"fast_weights": True}},
])
def test_every_objective_option_works_on_text(tmp_path, change):
    path = write_text(tmp_path / "t.txt")
    cfg = merge(text_config(path, optim={"batch_size": 26}, run={"eval_batch_size": 26}), change)
    data = load(cfg.data)
    from forward_forward.training.run import fit_to_data

    cfg = fit_to_data(cfg, data)
    model = build_model(cfg, data.shape, data.num_classes)
    losses, _ = model(data.train.images[:26], data.train.labels[:26])
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(p.grad is not None for p in model.stack.parameters())
