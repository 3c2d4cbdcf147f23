"""The `ff` command: a thin layer over the package. Every user error is one line, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import config as config_mod
from . import presets, runs
from .errors import FFError


def _build_config(args) -> config_mod.Config:
    cfg = presets.preset(args.preset)
    if args.config:
        cfg = config_mod.merge(cfg, config_mod.load_toml(args.config))
    for text in args.set or []:
        cfg = config_mod.merge(cfg, config_mod.parse_override(text))
    return _apply_flags(cfg, args)


def _apply_flags(cfg: config_mod.Config, args) -> config_mod.Config:
    """The flags that stand for config fields (--data-dir, --device, --epochs, --no-progress), where given."""
    flags = {
        "data": {"data_dir": args.data_dir},
        "run": {"device": args.device, "progress": False if args.no_progress else None},
        "optim": {"epochs": args.epochs},
    }
    return config_mod.merge(cfg, {s: {k: v for k, v in kv.items() if v is not None} for s, kv in flags.items()})


def cmd_train(args) -> None:
    from .train import train

    if args.resume:
        if args.config or args.set or args.epochs or args.run_dir:
            raise FFError("--resume uses the run's own config.json: drop --config, --set, --epochs and --run-dir.")
        run_dir = Path(args.resume)
        cfg, preset = runs.load_config(run_dir)
        cfg = _apply_flags(cfg, args)
        print(f"resuming {run_dir}", flush=True)
        summary = train(cfg, run_dir, preset, resume=True)
    else:
        cfg = _build_config(args)
        run_dir = Path(args.run_dir) if args.run_dir else runs.new_run_dir(args.preset)
        print(f"training preset {args.preset!r} into {run_dir}", flush=True)
        summary = train(cfg, run_dir, args.preset)
    print(
        f"test error {100 * summary['test_error']:.2f} % (predict by {summary['predict']}; "
        f"validation {100 * summary['val_error']:.2f} %) after {summary['epochs']} epochs in "
        f"{summary['train_seconds']:.0f} s on {summary['device']}; run saved in {run_dir}"
    )


def _load_trained(args):
    from .train import load_trained

    return load_trained(args.run_dir, data_dir=args.data_dir, device=args.device)


def cmd_eval(args) -> None:
    from .train import error_rate

    cfg, model, data, device = _load_trained(args)
    how = args.predict or cfg.objective.predict
    err = error_rate(model, data.test, how, cfg.run.eval_batch_size, device)
    print(f"test error {100 * err:.2f} % (predict by {how})")


def cmd_plot(args) -> None:
    from .figures import plot_run

    _, model, data, _ = _load_trained(args)
    model.cpu()
    for path in plot_run(args.run_dir, model, data, args.out, args.samples):
        print(path)


def cmd_report(args) -> None:
    from .report import write_report

    out = args.out or (args.run_dirs[0] / "report.html" if len(args.run_dirs) == 1 else Path("report.html"))
    print(write_report(args.run_dirs, out))


def cmd_presets(args) -> None:
    for name in presets.PRESETS:
        print(name if not args.verbose else f"{name}: {json.dumps(presets.PRESETS[name])}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ff", description="Forward-Forward training without backpropagation.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a network and write a run directory")
    t.add_argument("--preset", default=presets.DEFAULT_PRESET, help=f"named config (default {presets.DEFAULT_PRESET})")
    t.add_argument("--config", help="TOML file of [section] key = value overrides")
    t.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one field (repeatable)")
    t.add_argument("--run-dir", help="where to write the run (default runs/<preset>-<timestamp>)")
    t.add_argument("--data-dir", help="dataset folder (default $FF_DATA_DIR, else ~/.cache/forward-forward)")
    t.add_argument("--device", help="auto, cpu, cuda or cuda:N")
    t.add_argument("--epochs", type=int, help="shortcut for --set optim.epochs=N")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a stopped run from its last checkpoint")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="rebuild a trained network from its run directory and print its test error")
    e.add_argument("run_dir", type=Path)
    e.add_argument("--predict", choices=["softmax", "goodness"], help="default: the run's objective.predict")
    e.add_argument("--data-dir")
    e.add_argument("--device")
    e.set_defaults(func=cmd_eval)

    f = sub.add_parser("plot", help="write PNG figures of a trained run into RUN_DIR/figures")
    f.add_argument("run_dir", type=Path)
    f.add_argument("--out", type=Path, help="folder for the figures (default RUN_DIR/figures)")
    f.add_argument("--samples", type=int, default=1000, help="validation images for the goodness histograms")
    f.add_argument("--data-dir")
    f.add_argument("--device")
    f.set_defaults(func=cmd_plot)

    r = sub.add_parser("report", help="one self-contained HTML page for one or several plotted runs")
    r.add_argument("run_dirs", type=Path, nargs="+")
    r.add_argument("--out", type=Path, help="default RUN_DIR/report.html for one run, ./report.html for several")
    r.set_defaults(func=cmd_report)

    s = sub.add_parser("presets", help="list the named configs")
    s.add_argument("-v", "--verbose", action="store_true")
    s.set_defaults(func=cmd_presets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except FFError as e:
        print(f"ff: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ff: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
