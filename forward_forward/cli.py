"""The `ff` command: a thin layer over the package. Every user error is one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

from . import __version__, presets
from . import config as config_mod
from .errors import FFError, os_error_message


def _build_config(args, notify: bool = True) -> config_mod.Config:
    """The preset with the --config file and --set on it. A preset's value that the result's own settings do not
    read is left at its default (--preset ff-sleep --set optim.name=adam drops its SGD momentum), with a notice;
    a value you give that nothing reads is refused. A run's config.json (it names its preset) is a base, as a
    preset is: only --set is yours (--set model.kind=backprop makes a run's twin). Any other file is yours."""
    overrides = config_mod.load_file(args.config) if args.config else {}
    # a run's config.json names the preset it was made from; in a TOML file, merge refuses the key
    recorded = overrides.pop("preset", None) if Path(args.config or "").suffix == ".json" else None
    if recorded is not None and not isinstance(recorded, str):
        raise FFError(f"{args.config}: \"preset\" must be a preset's name, got {recorded!r}.")
    if args.preset is None:
        args.preset = recorded if recorded in presets.PRESETS else presets.DEFAULT_PRESET
    in_file, settings = _paths(overrides), config_mod.parse_overrides(args.set or [])
    for section, values in settings.items():
        given = overrides.setdefault(section, {})
        if isinstance(given, dict):  # else merge says what is wrong with the file's section
            given.update(values)
    # a run's config.json is a base, as the preset is: only --set is yours, and refused if nothing reads it
    yours = _paths(settings) | (set() if recorded is not None else in_file)
    cfg, reset = config_mod.merge_where_read(presets.preset(args.preset), overrides, keep=yours)
    for path in reset if notify else ():
        source = f"{args.config}'s" if path in in_file else f"the {args.preset} preset's"
        print(f"{path}: {source} value is not read with your settings; left at its default", file=sys.stderr)
    return _apply_flags(cfg, args)


def _paths(overrides: dict) -> set[str]:
    """The `section.field` paths a table of overrides sets."""
    return {f"{section}.{key}" for section, values in overrides.items() if isinstance(values, dict) for key in values}


def _apply_flags(cfg: config_mod.Config, args) -> config_mod.Config:
    """The flags that stand for config fields (--data-dir, --device, --epochs, --no-progress), where given."""
    flags = {
        "data": {"data_dir": args.data_dir},
        "run": {"device": args.device, "progress": False if args.no_progress else None},
        "optim": {"epochs": args.epochs},
    }
    return config_mod.merge(cfg, {s: {k: v for k, v in kv.items() if v is not None} for s, kv in flags.items()})


def cmd_train(args) -> None:
    from . import checkpoint, runs  # torch: imported when a command runs, inside main's try
    from .training import train

    if args.nproc < 1:
        raise FFError(f"--nproc must be at least 1, got {args.nproc}.")
    launched = "WORLD_SIZE" in os.environ  # by torchrun: one of several processes
    if args.nproc > 1 and not launched and not args.print_config:
        return _launch(args)
    if launched and not (args.run_dir or args.resume):
        raise FFError("every process of a distributed run writes to one folder: give --run-dir.")
    main_rank = int(os.environ.get("RANK", "0")) == 0
    if args.resume:
        if args.preset or args.config or args.set or args.run_dir:
            raise FFError("--resume uses the run's own config.json: drop --preset, --config, --set and --run-dir.")
        if args.print_config:
            own = Path(args.resume) / "config.json"
            raise FFError(f"--print-config prints a new run's config; this run's is {own}.")
        run_dir = Path(args.resume)
        cfg, preset = runs.load_config(run_dir)
        if args.epochs is not None and args.epochs != cfg.optim.epochs:
            if args.epochs < cfg.optim.epochs:
                raise FFError(f"--epochs {args.epochs} is fewer than the run's {cfg.optim.epochs}: a run is extended, "
                              "never shortened.")
            checkpoint.load(run_dir)  # a damaged checkpoint is refused before the config changes
            if main_rank:  # one process of a distributed run rewrites the config
                # the learning-rate schedule is that of the longer run from here on (hinton: flat for its first half)
                print(f"extending {run_dir} from {cfg.optim.epochs} to {args.epochs} epochs", flush=True)
                longer = config_mod.merge(cfg, {"optim": {"epochs": args.epochs}})  # only the epochs change on disk
                runs.write_json_atomic(run_dir / runs.CONFIG, {"preset": preset, **longer.to_dict()})
        cfg = _apply_flags(cfg, args)
        if main_rank:
            print(f"resuming {run_dir}", flush=True)
        summary = train(cfg, run_dir, preset, resume=True)
    else:
        cfg = _build_config(args)
        if args.print_config:
            print(config_mod.to_toml(cfg), end="")
            return
        run_dir = Path(args.run_dir) if args.run_dir else runs.new_run_dir(args.preset)
        if main_rank:
            print(f"training preset {args.preset!r} into {run_dir}", flush=True)
        summary = train(cfg, run_dir, args.preset)
    if not summary:  # a process other than rank 0 of a distributed run: rank 0 reports
        return
    by = summary["predict"]
    val = ("no validation images; by " if summary["val_error"] is None
           else f"validation {100 * summary['val_error']:.2f} %; both by ") + by
    print(f"test error {100 * summary['test_error']:.2f} % ({val}) after {summary['epochs']} epochs in "
          f"{summary['train_seconds']:.0f} s on {summary['device']}; run saved in {run_dir}")


def _launch(args) -> None:
    """`ff train --nproc N`: the same command in N processes under torch.distributed.run (torchrun)."""
    from . import runs

    argv, skip = [], False
    for arg in args.argv:  # the command line without --nproc
        if skip or arg.startswith("--nproc="):
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        argv.append(arg)
    if not (args.run_dir or args.resume):  # chosen once here, so that every process writes the same folder
        _build_config(args, notify=False)  # a bad config is refused before the processes start; names the preset
        argv += ["--run-dir", str(runs.new_run_dir(args.preset))]
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={args.nproc}",
               "-m", "forward_forward.cli", *argv]
    threads = max(1, (os.cpu_count() or 1) // args.nproc)  # the cores shared out, not oversubscribed
    status = subprocess.call(command, env={"OMP_NUM_THREADS": str(threads), **os.environ})
    if status:
        raise FFError(f"the {args.nproc} training processes ended with exit status {status}; their messages are "
                      "above.")


def _load_trained(args):
    from .training import load_trained

    return load_trained(args.run_dir, data_dir=args.data_dir, device=args.device)


def cmd_eval(args) -> None:
    from .training import error_rate
    from .training.device import scoring_autocast
    from .training.evaluate import layer_error_rates

    cfg, model, data, device = _load_trained(args)
    how = args.predict or cfg.objective.predict
    if how not in model.ways:
        raise FFError(f"{args.run_dir} can predict by {' or '.join(model.ways)} only, not by {how}.")
    if args.goodness_weight is not None:
        if how != "combined":
            raise FFError(f"--goodness-weight weighs goodness in --predict combined, not in {how}.")
        # through the config's own checks, so a bad weight gets the same message as in a config file
        cfg = config_mod.merge(cfg, {"objective": {"goodness_weight": args.goodness_weight}})
    weight = cfg.objective.goodness_weight
    split = {"test": data.test, "val": data.val, "train": data.train}[args.split]
    if not len(split):
        raise FFError(f"{args.run_dir} was trained with data.val_size = 0: it has no validation images to score.")
    if args.per_layer and "goodness" not in model.ways:
        raise FFError(f"--per-layer scores each layer's goodness, and {args.run_dir} does not predict by goodness.")
    with scoring_autocast(cfg, device):  # in the run's precision, as its summary was scored
        err = error_rate(model, split, how, cfg.run.eval_batch_size, device, weight)
        shown = f", goodness weight {weight:g}" if how == "combined" else ""
        print(f"{args.split} error {100 * err:.2f} % (predict by {how}{shown})")
        if args.per_layer:
            for layer, layer_err in enumerate(layer_error_rates(model, split, cfg.run.eval_batch_size, device)):
                print(f"  layer{layer} alone, by goodness: {args.split} error {100 * layer_err:.2f} %")



def _draw(run_dir: Path, cfg, model, data, out: Path | None = None, samples: int = 1000) -> list[Path]:
    """Every figure `ff plot` draws of a run (`figures_of`: its model kind's, and a generator's)."""
    import torch

    from .figures import GENERATOR_FIGURES, figures_for, plot_generator, plot_run
    from .training.device import scoring_autocast

    names = figures_for(cfg)
    if not names:
        why = "fast weights read whole strings" if cfg.model.fast_weights else f"model.kind = {cfg.model.kind}"
        raise FFError(f"ff plot draws no figures of {run_dir} ({why}): compare it with other runs in `ff report`.")
    own = tuple(name for name in names if name not in GENERATOR_FIGURES)
    model.cpu()
    with scoring_autocast(cfg, torch.device("cpu")):  # its confusion matrix and layer errors as `ff eval` scores them
        paths = plot_run(run_dir, model, data, cfg.objective.predict, out, samples, names=own) if own else []
    return paths + (plot_generator(run_dir, model, out) if set(GENERATOR_FIGURES) & set(names) else [])


def cmd_plot(args) -> None:
    if args.samples < 1:
        raise FFError(f"--samples must be at least 1, got {args.samples}.")
    cfg, model, data, _ = _load_trained(args)
    for path in _draw(args.run_dir, cfg, model, data, args.out, args.samples):
        print(path)


def cmd_report(args) -> None:
    from .figures import figures_of
    from .report import load_summary, write_report
    from .training import load_trained

    out = args.out or (args.run_dirs[0] / "report.html" if len(args.run_dirs) == 1 else Path("report.html"))
    out.parent.mkdir(parents=True, exist_ok=True)  # a folder that cannot be made is refused before any plotting
    unplotted = []
    for run_dir in args.run_dirs:  # plot what has not been plotted yet
        summary = load_summary(run_dir)
        drawn = all((run_dir / "figures" / f"{name}.png").exists() for name in figures_of(summary.get("config", {})))
        if not drawn:
            print(f"plotting {run_dir} first", flush=True)
            try:
                cfg, model, data, _ = load_trained(run_dir, device="cpu")
                _draw(run_dir, cfg, model, data)
            except FFError as e:  # one run that cannot be plotted (its data gone, say) does not stop the page
                print(f"{run_dir}: its figures cannot be drawn ({e}); the report shows its summary alone",
                      file=sys.stderr)
                unplotted.append(run_dir)
    print(write_report(args.run_dirs, out, unplotted))


def cmd_sweep(args) -> None:
    from .sweep import Sweep, from_toml, parse_grid, run_sweep

    table, overrides = from_toml(config_mod.load_toml(args.config)) if args.config else ({}, {})
    for section, values in config_mod.parse_overrides(args.set or []).items():
        overrides.setdefault(section, {}).update(values)
    flags = {"data": {"data_dir": args.data_dir}, "run": {"device": args.device}, "optim": {"epochs": args.epochs}}
    for section, values in flags.items():
        overrides.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    if not isinstance(table.get("grid", {}), dict):
        raise FFError(f"[sweep] grid must be a table of section.key = [values], got {table['grid']!r}.")
    grid = dict(table.get("grid", {}))
    grid.update(parse_grid(text) for text in args.grid or [])
    seeds = list(range(args.seeds)) if args.seeds is not None else table.get("seeds", [0])
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    sweep = Sweep(preset=args.preset or table.get("preset", "tiny"), grid=grid, seeds=seeds,
                  overrides={k: v for k, v in overrides.items() if v})
    if args.jobs < 1:
        raise FFError(f"--jobs must be at least 1, got {args.jobs}.")
    run_sweep(sweep, args.out, jobs=args.jobs, progress=not args.no_progress)
    print((args.out / "results.md").read_text(), end="")
    print(f"sweep saved in {args.out} (results.md, results.json, results.png, runs/)")


def cmd_samples(args) -> None:
    import torch

    from . import sample_quality

    cfg, model, data, device = _load_trained(args)
    if getattr(model, "generator", None) is None:
        raise FFError(f"{args.run_dir} has no generator: ff samples measures runs trained with objective.negatives "
                      "= generated on images.")
    reference = args.reference or (Path(cfg.run.reference) if cfg.run.reference else None)
    if reference is None:
        raise FFError("ff samples judges samples by a reference classifier: pass --reference RUN_DIR (e.g. the "
                      "backprop twin of `quick`), or train with run.reference set.")
    out = args.out or args.run_dir / "figures"
    torch.manual_seed(args.seed)
    result = sample_quality.run_measures(model, sample_quality.load_reference(reference, device, model),
                                         data.test.images.to(device), out, f"samples of {args.run_dir.name}")
    print(json.dumps(result))


def cmd_probe(args) -> None:
    from . import probe, runs  # torch: imported when a command runs, inside main's try

    cfg, model, data, device = _load_trained(args)
    layers = None
    if args.layers:
        try:
            layers = [int(i) for i in args.layers.split(",")]
        except ValueError:
            raise FFError(f"--layers takes hidden-layer indices like 1,2,3; got {args.layers!r}.") from None
    if args.epochs < 1 or not 0 < args.lr < math.inf or args.batch_size < 1 or not 0 <= args.weight_decay < math.inf:
        raise FFError("--epochs and --batch-size must be at least 1, --lr positive and finite, and --weight-decay "
                      "finite and not negative.")
    result = probe.run_probe(model, data.train, data.val, data.test, data.num_classes, layers, device,
                             progress=not args.no_progress, epochs=args.epochs, lr=args.lr,
                             weight_decay=args.weight_decay, batch_size=args.batch_size, holdout=args.holdout)
    if args.holdout:  # one line per setting tried; the final probe's file is left as it was
        name = "probe-holdout.jsonl"
        runs.append_jsonl(args.run_dir / name, result)
        print(f"linear probe on layers {result['layers']}, fitted on all training images but the last {args.holdout}: "
              f"error on those {100 * result['val_error']:.2f} % (train {100 * result['train_error']:.2f} %; test not "
              f"scored); saved in {args.run_dir / name}")
        return
    name = "probe.json"
    runs.write_json_atomic(args.run_dir / name, result)
    val = "no validation" if result["val_error"] is None else f"validation {100 * result['val_error']:.2f} %"
    print(f"linear probe on layers {result['layers']}: test error {100 * result['test_error']:.2f} % ({val}, "
          f"train {100 * result['train_error']:.2f} %); saved in {args.run_dir / name}")


def cmd_generate(args) -> None:
    import torch

    from . import sequence, text

    cfg, model, data, device = _load_trained(args)
    if data.corpus is None:
        raise FFError(f"{args.run_dir} was trained on {cfg.data.dataset}, not on text: ff generate needs a run of "
                      "data.dataset = aesop or text.")
    how = args.predict or model.validation_method
    if how not in model.ways:
        raise FFError(f"{args.run_dir} can predict by {' or '.join(model.ways)} only, not by {how}.")
    if args.length < 0 or not 0 <= args.temperature < math.inf:
        raise FFError("--length must not be negative, and --temperature must be finite and not negative.")
    given = text.encode(args.prompt, "the prompt")
    padding = text.encode(" " * max(data.corpus.window - len(given), 0))  # before a short prompt, as between words
    generator = torch.Generator(device).manual_seed(args.seed)
    prompt = torch.cat([padding, given])[None].to(device)
    written = sequence.write(model, prompt, args.length, how, args.temperature, generator)
    print(text.decode(written[0, len(padding) :].cpu()))


def cmd_baselines(args) -> None:
    from . import data as data_mod
    from . import ngram

    cfg = _build_config(args)
    if cfg.data.dataset not in config_mod.TEXT_DATASETS:
        raise FFError(f"ff baselines scores count-based next-character models, and data.dataset = "
                      f"{cfg.data.dataset}: use a text preset (aesop) or --set data.dataset=aesop.")
    corpus = data_mod.load(cfg.data).corpus
    assert corpus is not None
    result = ngram.baselines(corpus)
    for name, got in result.items():
        print(f"{name}: test accuracy {100 * got['test']['acc']:.2f} %, {got['test']['bpc']:.3f} bits per character "
              f"(validation {100 * got['val']['acc']:.2f} %, {got['val']['bpc']:.3f})")
    print(json.dumps(result))


def cmd_metrics(args) -> None:
    import csv
    import io

    from . import runs  # torch: imported when a command runs, inside main's try
    from .figures import metrics_table, read_metrics

    columns, rows = metrics_table(read_metrics(args.run_dir))
    if args.csv:
        text = io.StringIO()
        csv.writer(text).writerows([columns, *rows])
        runs.write_atomic(args.csv, lambda f: f.write(text.getvalue().encode()))
        print(f"{len(rows)} epochs x {len(columns)} columns written to {args.csv}")
        return
    shown = [[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in shown)]) for i, c in enumerate(columns)]
    for line in [columns, *shown]:
        print("  ".join(v.rjust(w) for v, w in zip(line, widths)))


def cmd_presets(args) -> None:
    width = max(map(len, presets.PRESETS))
    for name in presets.PRESETS:
        print(f"{name:<{width}}  {presets.DESCRIPTIONS[name]}")
        if args.verbose:
            print(f"{'':<{width}}  {json.dumps(presets.PRESETS[name])}")


DATA_DIR_HELP = "dataset folder (default: the run's, else $FF_DATA_DIR, else ~/.cache/forward-forward)"
DEVICE_HELP = "auto, cpu, cuda or cuda:N (default: the run's)"


def _torch_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("torch")
    except PackageNotFoundError:
        return "not installed"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ff", description="Forward-Forward training without backpropagation.")
    p.add_argument("--version", action="version", version=f"ff {__version__} (torch {_torch_version()})")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network and write a run directory")
    t.add_argument("--preset", help=f"named config (default {presets.DEFAULT_PRESET}, or the one a --config "
                                    "config.json was made from)")
    t.add_argument("--config", help="TOML file of [section] key = value overrides, or a run's config.json")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one field (repeatable)")
    t.add_argument("--run-dir", help="where to write the run (default runs/<preset>-<timestamp>)")
    t.add_argument("--data-dir", help="dataset folder (default $FF_DATA_DIR, else ~/.cache/forward-forward)")
    t.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--epochs", type=int, help="shortcut for --set optim.epochs=N (with --resume: extend the run)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--print-config", action="store_true",
                   help="print the config this command would train, as TOML for --config, and stop")
    t.add_argument("--nproc", type=int, default=1,
                   help="train in N processes on this machine (torchrun; gloo on CPU, NCCL on GPUs), "
                        "data-parallel or as run.parallel says")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a stopped run from its last checkpoint; with --epochs N, extend a finished one")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="rebuild a trained network from its run directory and print its test error")
    e.add_argument("run_dir", type=Path, help="a run directory (holds config.json and model.pt)")
    e.add_argument("--predict", choices=config_mod.WAYS,
                   help="default: the run's objective.predict")
    e.add_argument("--split", choices=["test", "val", "train"], default="test",
                   help="score the test set (default), the run's validation images or its training images")
    e.add_argument("--goodness-weight", type=float, help="objective.goodness_weight for --predict combined")
    e.add_argument("--per-layer", action="store_true", help="also the error of each layer alone, by its goodness")
    e.add_argument("--data-dir", help=DATA_DIR_HELP)
    e.add_argument("--device", help=DEVICE_HELP)
    e.set_defaults(func=cmd_eval)

    f = sub.add_parser("plot", help="write PNG figures of a trained run into RUN_DIR/figures")
    f.add_argument("run_dir", type=Path, help="a run directory")
    f.add_argument("--out", type=Path, help="folder for the figures (default RUN_DIR/figures)")
    f.add_argument("--samples", type=int, default=1000, help="validation images for the goodness histograms")
    f.add_argument("--data-dir", help=DATA_DIR_HELP)
    f.add_argument("--device", help=DEVICE_HELP)
    f.set_defaults(func=cmd_plot)

    r = sub.add_parser("report", help="one self-contained HTML page for one or several plotted runs")
    r.add_argument("run_dirs", type=Path, nargs="+", help="run directories, each plotted with ff plot")
    r.add_argument("--out", type=Path, help="default RUN_DIR/report.html for one run, ./report.html for several")
    r.set_defaults(func=cmd_report)

    q = sub.add_parser("samples", help="measure a generator's samples: class coverage, confidence, Frechet distance")
    q.add_argument("run_dir", type=Path, help="a run directory trained with objective.negatives = generated")
    q.add_argument("--reference", type=Path, help="a trained classifier's run directory (default: run.reference)")
    q.add_argument("--out", type=Path,
                   help="folder for measured_samples.png and samples.json (default RUN_DIR/figures)")
    q.add_argument("--seed", type=int, default=0, help="seed of the samples drawn")
    q.add_argument("--data-dir", help=DATA_DIR_HELP)
    q.add_argument("--device", help=DEVICE_HELP)
    q.set_defaults(func=cmd_samples)

    b = sub.add_parser("probe", help="fit a linear softmax on a trained network's frozen features and score it")
    b.add_argument("run_dir", type=Path, help="a run directory")
    b.add_argument("--layers", help="hidden layers (0-based, comma-separated); default: those its readout uses")
    b.add_argument("--epochs", type=int, default=config_mod.PROBE_EPOCHS,
                   help="passes of the probe over the training features (default %(default)d)")
    b.add_argument("--lr", type=float, default=config_mod.PROBE_LR, help="Adam learning rate (default %(default)g)")
    b.add_argument("--weight-decay", type=float, default=0.0, help="the probe's L2 weight cost")
    b.add_argument("--batch-size", type=int, default=config_mod.PROBE_BATCH_SIZE,
                   help="features per probe step (default %(default)d)")
    b.add_argument("--holdout", type=int, default=0,
                   help="to choose the settings: fit on the training images but the last N, report the error on "
                        "those N, and leave the test set unscored")
    b.add_argument("--no-progress", action="store_true", help="no progress bar")
    b.add_argument("--data-dir", help=DATA_DIR_HELP)
    b.add_argument("--device", help=DEVICE_HELP)
    b.set_defaults(func=cmd_probe)

    w = sub.add_parser("sweep", help="train a grid of configs x seeds and tabulate mean +- std of the errors")
    w.add_argument("--grid", action="append", metavar="SECTION.KEY=V1,V2",
                   help="values to try for one field (repeatable; a TOML array for list values); none: the "
                        "config as it is, once per seed")
    w.add_argument("--seeds", type=int, help="seeds 0..N-1 for every grid point (default 1, or [sweep] seeds)")
    w.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (default 1)")
    w.add_argument("--out", type=Path, required=True, help="sweep folder; the same command again resumes it")
    w.add_argument("--preset", help="base config (default tiny, or [sweep] preset)")
    w.add_argument("--config", help="TOML file: [section] overrides and a [sweep] table (preset, seeds, grid)")
    w.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one field in every run")
    w.add_argument("--epochs", type=int, help="shortcut for --set optim.epochs=N")
    w.add_argument("--data-dir", help=DATA_DIR_HELP)
    w.add_argument("--device", help=DEVICE_HELP)
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    w.set_defaults(func=cmd_sweep)

    g = sub.add_parser("generate", help="continue a prompt with a next-character model trained on text")
    g.add_argument("run_dir", type=Path, help="a run directory of a text model (data.dataset = aesop or text)")
    g.add_argument("--prompt", required=True, help="the text to continue (a-z, space, , ; .)")
    g.add_argument("--length", type=int, default=200, help="characters to write (default 200)")
    g.add_argument("--temperature", type=float, default=1.0, help="sampling temperature; 0: the likeliest each step")
    g.add_argument("--predict", choices=config_mod.WAYS, help="the way it predicts (default: its validation way)")
    g.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    g.add_argument("--data-dir", help=DATA_DIR_HELP)
    g.add_argument("--device", help=DEVICE_HELP)
    g.set_defaults(func=cmd_generate)

    n = sub.add_parser("baselines", help="unigram and n-gram next-character baselines on a text dataset")
    n.add_argument("--preset", help="named config (default aesop)", default="aesop")
    n.add_argument("--config", help="TOML file of [section] key = value overrides")
    n.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one field (repeatable)")
    n.add_argument("--data-dir", help=DATA_DIR_HELP)
    n.set_defaults(func=cmd_baselines, device=None, no_progress=False, epochs=None)

    m = sub.add_parser("metrics", help="a run's metrics.jsonl as a table: one row per epoch")
    m.add_argument("run_dir", type=Path, help="a run directory")
    m.add_argument("--csv", type=Path, help="write the table to this CSV file instead of printing it")
    m.set_defaults(func=cmd_metrics)

    s = sub.add_parser("presets", help="list the named configs")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_presets)
    return p


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    return f"ff: note: {message}\n"


def main(argv: list[str] | None = None) -> int:
    previous_format = warnings.formatwarning
    warnings.formatwarning = _one_line_warning  # a deprecation is a note for the user, not a source location
    args = parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    command = ["ff", *args.argv]
    try:
        _set_command(command)  # torch loads here, inside the try: a Ctrl-C during the import is caught too
        args.func(args)
    except FFError as e:
        print(f"ff: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a full disk, a missing folder, a file where a folder should be: one line, not a trace
        print(f"ff: error: {os_error_message(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ff: interrupted", file=sys.stderr)
        return 130
    finally:
        if "forward_forward.runs" in sys.modules:  # only if it loaded: nothing is imported on the way out
            loaded: Any = sys.modules["forward_forward.runs"]
            loaded.cli_command = None
        warnings.formatwarning = previous_format
    return 0


def _set_command(command: list[str] | None) -> None:
    """The `ff` command line that run directories record in command.txt while it runs."""
    from . import runs

    runs.cli_command = command


if __name__ == "__main__":
    sys.exit(main())
