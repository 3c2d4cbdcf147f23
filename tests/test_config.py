"""Config validation: every bad field is an FFError that names it."""

import json

import pytest

from forward_forward import presets, runs
from forward_forward.config import Config, from_dict, load_toml, merge, parse_override
from forward_forward.errors import FFError


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"optim": {"lrr": 0.1}}, "optim.lrr"),
        ({"optimiser": {"lr": 0.1}}, "optimiser"),
        ({"optim": {"lr": "fast"}}, "optim.lr"),
        ({"optim": {"lr": -1.0}}, "optim.lr"),
        ({"optim": {"epochs": 2.5}}, "optim.epochs"),
        ({"optim": {"epochs": 0}}, "optim.epochs"),
        ({"optim": {"momentum": 1.5}}, "optim.momentum"),
        ({"optim": {"readout_lr": float("nan")}}, "optim.readout_lr"),
        ({"optim": {"weight_decay": float("nan")}}, "optim.weight_decay"),
        ({"optim": {"name": "rmsprop"}}, "optim.name"),
        ({"optim": {"schedule": "cosine"}}, "optim.schedule"),
        ({"optim": {"name": "adam", "momentum": 0.5}}, "optim.name = sgd, and this run uses adam"),
        ({"optim": {"name": "adam", "dampening": 0.0}}, "optim.dampening shape"),
        ({"objective": {"symba_alpha": 2.0}}, "objective.symba_alpha shape"),
        ({"model": {"hidden": [100, -3]}}, "model.hidden"),
        ({"model": {"hidden": [10**9, 10]}}, "model.hidden"),
        ({"objective": {"threshold": float("inf")}}, "objective.threshold"),
        ({"model": {"hidden": "big"}}, "model.hidden"),
        ({"model": {"activation": "swish-ish"}}, "model.activation"),
        ({"model": {"readout": "yes"}}, "model.readout"),
        ({"objective": {"goodness": "nope"}}, "objective.goodness"),
        ({"objective": {"predict_layers_from": 4}}, "objective.predict_layers_from"),
        ({"data": {"dataset": "imagenet"}}, "data.dataset"),
        ({"data": {"val_size": -1}}, "data.val_size"),
        ({"model": {"readout": False}}, "readout"),
        ({"model": 3}, "model"),
        ({"run": {"precision": "fp16"}}, "run.precision"),
        ({"objective": {"goodness_weight": -1.0}}, "objective.goodness_weight"),
        ({"objective": {"goodness_weight": float("inf")}}, "objective.goodness_weight"),
        ({"objective": {"predict": "vote"}}, "objective.predict"),
        ({"model": {"readout": False}, "objective": {"predict": "combined"}}, "model.readout"),
        ({"optim": {"greedy_negatives": "chunk"}}, "optim.greedy_negatives is read only with the greedy schedule"),
        ({"optim": {"chunk_size": 500}}, "optim.chunk_size is read only with the greedy schedule"),
        ({"optim": {"greedy_steps": 10, "batch_size": 50}}, "optim.batch_size is read only with minibatch training"),
        ({"model": {"kernel": 5}}, "model.kernel is read only with a layer that reads a map"),
        ({"model": {"stride": [2, 1, 1], "pool": 2}}, "model.stride, model.pool are read only with a layer that reads"),
        ({"model": {"readout": False}, "objective": {"predict": "goodness"}, "optim": {"readout_lr": 0.03}},
         "optim.readout_lr is read only with the readout"),
        ({"optim": {"momentum": 0.0, "dampening": 0.5}}, "optim.dampening is read only with SGD's momentum"),
        ({"model": {"peer_lambda": 0.0, "peer_decay": 0.5}}, "model.peer_decay is read only with peer normalisation"),
        ({"model": {"blackbox_strength": 2.0}}, "model.blackbox_strength is read only with a black-box stage"),
        ({"model": {"hidden": [100], "blackbox": "noise", "blackbox_strength": 0.5},
          "objective": {"predict_layers_from": 0}},
         "model.blackbox is read only with two hidden layers or more"),
        ({"objective": {"region_size": 2}},
         "objective.region_size is read only with objective.goodness_scope = region"),
        ({"objective": {"channel_groups": 5}},
         "objective.channel_groups is read only with objective.goodness_scope = channels"),
        ({"objective": {"negatives": "hybrid", "label_value": "max", "predict": "softmax"}},
         "objective.label_value would set nothing"),
        ({"objective": {"label_coding": "pattern", "neutral_value": 0.5}}, "objective.neutral_value would set nothing"),
        ({"model": {"kind": "competitive"}, "objective": {"sample_temperature": 2.0}},
         "objective.sample_temperature = 2.0 would be ignored"),
        ({"model": {"kind": "competitive"}, "objective": {"neutral_value": 0.5}},
         "objective.neutral_value = 0.5 would"),
        ({"data": {"path": "x.npz"}}, "data.path is read only with data.dataset = file or text"),
        ({"model": {"kind": "backprop"}, "objective": {"predict": "combined"}}, "objective.predict"),
    ],
)
def test_bad_fields_are_named(overrides, field):
    with pytest.raises(FFError, match=field.replace("[", r"\[").replace(".", r"\.")):
        merge(Config(), overrides)


def test_good_overrides_apply_and_convert():
    cfg = merge(Config(), {"optim": {"lr": 1, "epochs": 3}, "model": {"hidden": [10, 20]},
                           "objective": {"threshold": None}})
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float) and cfg.model.hidden == [10, 20]


def test_parse_override_reads_toml_values_and_falls_back_to_strings():
    assert parse_override("optim.lr=0.02") == {"optim": {"lr": 0.02}}
    assert parse_override("model.hidden=[10, 20]") == {"model": {"hidden": [10, 20]}}
    assert parse_override("run.device=cpu") == {"run": {"device": "cpu"}}
    assert parse_override("model.readout=false") == {"model": {"readout": False}}
    for bad in ("optim.lr", "lr=3", "a.b.c=1"):
        with pytest.raises(FFError, match="section.key=value"):
            parse_override(bad)


def test_toml_file(tmp_path):
    (tmp_path / "ok.toml").write_text("[optim]\nlr = 0.05\n[model]\nhidden = [30, 30]\n")
    cfg = merge(Config(), load_toml(tmp_path / "ok.toml"))
    assert cfg.optim.lr == 0.05 and cfg.model.hidden == [30, 30]
    (tmp_path / "bad.toml").write_text("[optim\nlr = \n")
    with pytest.raises(FFError, match="not valid TOML"):
        load_toml(tmp_path / "bad.toml")
    with pytest.raises(FFError, match="does not exist"):
        load_toml(tmp_path / "missing.toml")


def test_every_preset_is_valid_and_round_trips_through_a_dict():
    for name in presets.PRESETS:
        cfg = presets.preset(name)
        assert from_dict(cfg.to_dict()) == cfg
    with pytest.raises(FFError, match="unknown preset"):
        presets.preset("fastest")


def test_hinton_preset_is_the_matlab_recipe():
    cfg = presets.preset("hinton-mnist")
    assert cfg.model.hidden == [2000] * 4 and cfg.model.norm == "rms" and cfg.model.peer_lambda == 0.03
    assert cfg.objective.goodness == "sum_squares" and cfg.objective.threshold is None  # theta = units
    assert cfg.objective.negatives == "hard" and cfg.objective.predict_layers_from == 1
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.schedule) == ("sgd", 0.01, 0.9, "hinton")
    assert cfg.optim.epochs == 60 and cfg.optim.batch_size == 100


def test_hinton_jitter_is_hinton_mnist_on_jittered_images_for_500_epochs():
    jitter, plain = presets.preset("hinton-jitter").to_dict(), presets.preset("hinton-mnist").to_dict()
    changed = {f"{section}.{key}" for section in plain for key in plain[section]
               if jitter[section][key] != plain[section][key]}
    assert changed == {"data.jitter", "optim.epochs"}
    assert (jitter["data"]["jitter"], jitter["optim"]["epochs"]) == (2, 500)


def test_every_preset_has_a_description_and_prints_as_toml_that_reads_back(tmp_path, capsys):
    from forward_forward.cli import main

    assert set(presets.DESCRIPTIONS) == set(presets.PRESETS)
    for name in presets.PRESETS:
        assert main(["train", "--preset", name, "--print-config"]) == 0
        path = tmp_path / f"{name}.toml"
        path.write_text(capsys.readouterr().out)
        assert merge(Config(), load_toml(path)) == presets.preset(name)
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("ff 0.1.0 (torch ")


def test_a_run_of_an_earlier_version_loads_as_it_trained_with_the_fields_it_ignored_at_their_defaults(tmp_path):
    saved = Config().to_dict()
    saved["optim"].update(name="adam", momentum=0.5, dampening=0.0)
    saved["objective"].update(loss="logistic", symba_alpha=2.0)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    cfg, _ = runs.load_config(tmp_path)
    assert (cfg.optim.name, cfg.optim.momentum, cfg.optim.dampening) == ("adam", 0.9, 0.9)
    assert (cfg.objective.loss, cfg.objective.symba_alpha) == ("logistic", 4.0)
    saved["optim"]["name"], saved["objective"]["loss"] = "sgd", "symba"  # the fields they do read are kept
    (tmp_path / "config.json").write_text(json.dumps(saved))
    cfg, _ = runs.load_config(tmp_path)
    assert (cfg.optim.momentum, cfg.optim.dampening, cfg.objective.symba_alpha) == (0.5, 0.0, 2.0)
    with pytest.raises(FFError, match="optim.momentum"):  # a new config is refused, not quietly changed
        from_dict(saved | {"optim": {**saved["optim"], "name": "adam"}})


def test_a_saved_run_loads_with_a_field_its_owner_never_read_at_its_default(tmp_path):
    saved = Config().to_dict()
    saved["model"].update(peer_lambda=0.0, peer_decay=0.5, blackbox_strength=3.0)
    saved["objective"].update(goodness_scope="layer", region_size=2)
    (tmp_path / "config.json").write_text(json.dumps(saved))
    cfg, _ = runs.load_config(tmp_path)
    assert (cfg.model.peer_decay, cfg.model.blackbox_strength, cfg.objective.region_size) == (0.9, 0.0, 1)
    saved["model"]["peer_lambda"] = 0.03  # read where its owner is on
    (tmp_path / "config.json").write_text(json.dumps(saved))
    assert runs.load_config(tmp_path)[0].model.peer_decay == 0.5
    with pytest.raises(FFError, match="is read only with"):  # a new config is refused
        from_dict(saved)


def test_a_presets_value_your_settings_do_not_read_is_dropped_with_a_notice_and_yours_is_refused(capsys):
    import tomllib

    from forward_forward.cli import main

    assert main(["train", "--preset", "ff-sleep", "--set", "optim.name=adam", "--print-config"]) == 0
    out = capsys.readouterr()
    assert "optim.momentum: the ff-sleep preset's value is not read with your settings" in out.err
    printed = tomllib.loads(out.out)["optim"]
    assert (printed["name"], printed["momentum"], printed["dampening"]) == ("adam", 0.9, 0.9)
    assert main(["train", "--preset", "ff-sleep", "--set", "optim.name=adam", "--set", "optim.momentum=0.5",
                 "--print-config"]) == 2
    assert "optim.momentum shape(s) optim.name = sgd" in capsys.readouterr().err
