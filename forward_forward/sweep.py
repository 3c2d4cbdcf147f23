"""`ff sweep`: a grid over any config fields times several seeds, each point an ordinary run directory.

The sweep folder holds `sweep.json` (what was asked), `precision.json` (the precision its runs left at
`auto` train in, one per run.device), `runs/<key=value,...,seed=k>/` (one run each), `results.md`
(mean +- std per grid point) and `results.png`. Running the same sweep again skips finished runs and
resumes interrupted ones from their checkpoints, so a killed sweep loses at most one epoch per run in
flight.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import statistics
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from . import presets, runs
from .config import Config, from_dict, merge_where_read, parse_override, read_json
from .errors import Diverged, FFError, Interrupted

FAILED = "failed.txt"  # a run that diverged: its message, so a resumed sweep does not retry it
PRECISION = "precision.json"  # per run.device, the precision its runs left at `auto` train in, and why


@dataclass
class Sweep:
    preset: str
    grid: dict[str, list]  # "section.key" -> the values to try, in order
    seeds: list[int]
    overrides: dict = field(default_factory=dict)  # {section: {key: value}} for every run

    def points(self) -> list[dict]:
        """Every combination of grid values, as {"section.key": value}, in grid order."""
        keys = list(self.grid)
        return [dict(zip(keys, values)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def config(self, point: dict, seed: int) -> Config:
        return self.settled(point, seed)[0]

    def settled(self, point: dict, seed: int) -> tuple[Config, list[str]]:
        """The config of one run, and the common settings (preset, --set) it leaves at their defaults
        because its own settings do not read them (`config.merge_where_read`): a grid over a switch
        applies the settings of its "on" value there only."""
        overrides = {section: dict(values) if isinstance(values, dict) else values
                     for section, values in self.overrides.items()}
        for path, value in {**point, "run.seed": seed}.items():
            section, key = path.split(".")
            if not isinstance(overrides.setdefault(section, {}), dict):
                break  # merge says what is wrong with the section
            overrides[section][key] = value
        return merge_where_read(presets.preset(self.preset), overrides, keep=set(self.grid))

    def short_names(self) -> dict[str, str]:
        """Grid fields without their section, unless two sections share a key name."""
        short = {path: path.split(".")[1] for path in self.grid}
        return short if len(set(short.values())) == len(short) else {path: path for path in self.grid}

    def name(self, point: dict, seed: int) -> str:
        short = self.short_names()
        parts = [f"{short[path]}={_slug(value)}" for path, value in point.items()]
        return ",".join([*parts, f"seed={seed}"])


def _slug(value) -> str:
    if isinstance(value, list):
        return "x".join(_slug(v) for v in value)
    return str(value).replace("/", "_").replace(" ", "")


def _value(path: str, raw: str):
    """One grid value, read as `--set` reads it (TOML, else a string)."""
    (values,) = parse_override(f"{path}={raw}").values()
    (value,) = values.values()
    return value


def parse_grid(text: str) -> tuple[str, list]:
    """`section.key=a,b,c` (or a TOML array, `model.hidden=[[500],[500,500]]`) -> (path, values)."""
    if "=" not in text:
        raise FFError(f"--grid expects section.key=value1,value2,..., got {text!r}.")
    path, raw = (part.strip() for part in text.split("=", 1))
    if raw.startswith("["):
        values = _value(path, raw)
        if not isinstance(values, list):
            raise FFError(f"--grid {path}: {raw!r} is not a TOML array of values.")
    else:
        values = [_value(path, v) for v in raw.split(",")]
    if len(path.split(".")) != 2 or not values:
        raise FFError(f"--grid expects section.key=value1,value2,..., got {text!r}.")
    return path, values


def from_toml(data: dict) -> tuple[dict, dict]:
    """Split a TOML document into its [sweep] table and the config overrides around it."""
    data = dict(data)
    table = data.pop("sweep", {})
    unknown = set(table) - {"preset", "seeds", "grid"}
    if unknown:
        raise FFError(f"unknown key(s) in [sweep]: {', '.join(sorted(unknown))}; known: preset, seeds, grid.")
    return table, data


def check(sweep: Sweep) -> list[str]:
    """Build every config before any run starts, so a bad grid value fails now and names itself. Returns the
    common settings that some runs leave at their defaults (`Sweep.settled`)."""
    if not isinstance(sweep.grid, dict):
        raise FFError(f"the sweep's grid must be a table of section.key = [values], got {sweep.grid!r}.")
    if not isinstance(sweep.seeds, list) or not sweep.seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in sweep.seeds):
        raise FFError(f"a sweep's seeds must be a count or a list of whole numbers from 0; got {sweep.seeds!r}.")
    for path, values in sweep.grid.items():
        if not isinstance(path, str) or len(path.split(".")) != 2 or not all(path.split(".")):
            raise FFError(f"grid field {path!r} must be section.key, e.g. optim.lr.")
        if not isinstance(values, list) or not values:
            raise FFError(f"grid field {path} needs a non-empty list of values, got {values!r}.")
    names: dict[str, dict] = {}
    resets: list[set[str]] = []
    for point in sweep.points():
        name = sweep.name(point, sweep.seeds[0])
        if name in names:  # 0.01 and 1e-2: one run folder, counted twice
            raise FFError(f"grid points {names[name]} and {point} name the same run: drop the duplicate value.")
        if len(name.encode()) > 200:
            raise FFError(f"grid point {point} makes a run folder name of {len(name.encode())} bytes; shorten the "
                          "values or sweep fewer fields at once.")
        names[name] = point
        for seed in sweep.seeds:
            resets.append(set(sweep.settled(point, seed)[1]))
    given = {f"{section}.{key}" for section, values in sweep.overrides.items() for key in values}
    nowhere = sorted(given.intersection(*resets))
    if nowhere:  # a setting no run reads is a mistake, as it is in one run
        raise FFError(f"{', '.join(nowhere)} {'is' if len(nowhere) == 1 else 'are'} read by no run of this grid "
                      "(their owner is off in every one): drop them, or grid over what turns them on.")
    return sorted(set().union(*resets))


def _record(out: Path, sweep: Sweep) -> None:
    """Write sweep.json, or check that the folder holds this very sweep (the resume case)."""
    spec = asdict(sweep)
    path = out / "sweep.json"
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != json.loads(json.dumps(spec)):
            raise FFError(f"{out} holds a different sweep (see its sweep.json); give another --out, "
                          f"or repeat the same grid, seeds and settings to resume it.")
        return
    runs.write_json_atomic(path, spec)


STOP = ".stop"  # in the sweep folder: written on Ctrl-C or an error, so no queued run starts after it


def _watch_parent(parent: int) -> None:
    """In a worker: when the sweep's process dies (even by SIGKILL), checkpoint and leave, not train on."""
    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os.kill(os.getpid(), signal.SIGINT)  # the training loop checkpoints at its next step and stops
        time.sleep(10)  # then leave, even if the result has nowhere to go
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_one(cfg_dict: dict, run_dir: str | Path, preset: str, threads: int) -> dict:
    """One grid point and seed (in a worker process when jobs > 1): train, or resume, or skip."""
    from .train import train

    run_dir = Path(run_dir)
    if (run_dir.parent.parent / STOP).exists():
        return {"stopped": True}
    if (run_dir / "summary.json").exists():
        return json.loads((run_dir / "summary.json").read_text())
    if (run_dir / FAILED).exists():
        return {"failed": (run_dir / FAILED).read_text().strip()}
    threads = cfg_dict["run"]["threads"] or threads  # a thread count the user set wins
    cfg = from_dict({**cfg_dict, "run": {**cfg_dict["run"], "threads": threads, "progress": False}})
    try:
        return train(cfg, run_dir, preset, resume=runs.holds_run(run_dir))
    except Diverged as e:  # a property of this grid point: recorded, and the sweep goes on
        (run_dir / FAILED).write_text(str(e) + "\n")
        return {"failed": str(e)}
    # any other error (missing data, full disk, Ctrl-C) concerns every run: it stops the sweep


def run_sweep(sweep: Sweep, out: Path, jobs: int = 1, progress: bool = True) -> list[dict]:
    """Run every point x seed (`jobs` at a time); return one result row per grid point."""
    for path in check(sweep):
        tqdm.write(f"{path}: left at its default in the runs that do not read it (see each run's config.json)")
    out.mkdir(parents=True, exist_ok=True)
    _record(out, sweep)
    (out / STOP).unlink(missing_ok=True)  # the same command again resumes the sweep
    tasks = []
    for point in sweep.points():
        for seed in sweep.seeds:
            cfg = sweep.config(point, seed)
            tasks.append((point, seed, cfg.to_dict(), str(out / "runs" / sweep.name(point, seed))))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    _settle_precision(out, tasks, threads)
    results: dict[str, dict] = {}
    bar = tqdm(total=len(tasks), desc="sweep", disable=None if progress else True)  # None: no bar when not a terminal
    try:
        _execute(tasks, results, sweep.preset, jobs, threads, bar)
    except BaseException as e:
        (out / STOP).touch()  # queued runs already handed to a worker see it and do not start
        if not isinstance(e, (Interrupted, KeyboardInterrupt)):
            raise
        raise FFError("sweep interrupted; finished runs are kept and interrupted ones checkpointed: "
                      "run the same command again to resume it.") from None
    finally:
        bar.close()
    rows = _aggregate(sweep, tasks, results)
    write_results(out, sweep, rows)
    return rows


def _settle_precision(out: Path, tasks: list, threads: int) -> None:
    """Every run left at run.precision = auto takes one precision per run.device, kept in the sweep folder:
    that of the runs already started (a sweep begun before the record), or else chosen by timing the first
    such run's step at a run's thread count, before any run starts. Runs that each timed their own steps,
    side by side or on a resume, could choose differently, and the grid would then compare precisions too."""
    auto = [(cfg, Path(run_dir)) for _, _, cfg, run_dir in tasks if cfg["run"]["precision"] == "auto"]
    path = out / PRECISION
    kept = read_json(path, "record of the sweep's precision") if path.exists() else {}
    for device in sorted({cfg["run"]["device"] for cfg, _ in auto}):
        mine = [(cfg, run_dir) for cfg, run_dir in auto if cfg["run"]["device"] == device]
        if device not in kept:
            kept[device] = _started_precision(out, mine) or _timed_precision(mine[0][0], threads)
            runs.write_json_atomic(path, kept)
            tqdm.write(f"precision {kept[device]['precision']} for the runs on device {device} left at auto "
                       f"({kept[device]['reason']})")
        chosen = kept[device].get("precision") if isinstance(kept[device], dict) else None
        if chosen not in ("fp32", "bf16"):
            raise FFError(f"{path} names no precision (fp32 or bf16) for device {device}; it was edited or damaged: "
                          "delete it and the sweep settles the precision again.")
        for cfg, _ in mine:
            cfg["run"]["precision"] = chosen


def _started_precision(out: Path, mine: list) -> dict | None:
    """The precision the runs already started (config.json records what auto chose) trained in, if any."""
    found = set()
    for _, run_dir in mine:
        if (run_dir / "config.json").exists():
            found.add(read_json(run_dir / "config.json", "run config").get("run", {}).get("precision"))
    found &= {"fp32", "bf16"}  # a run from before auto was recorded as made concrete says nothing
    if len(found) > 1:
        raise FFError(f"the runs in {out} already trained in both fp32 and bf16, so their grid would compare "
                      "precisions too: finish them as separate runs (ff train --resume), or start the sweep again "
                      "in a new folder.")
    return {"precision": found.pop(), "reason": "the precision its runs already started in"} if found else None


def _timed_precision(cfg_dict: dict, threads: int) -> dict:
    import torch

    from .training.run import settle_precision

    before = torch.get_num_threads()
    torch.set_num_threads(cfg_dict["run"]["threads"] or threads)
    try:
        precision, why = settle_precision(from_dict(cfg_dict))
    finally:
        torch.set_num_threads(before)
    return {"precision": precision, "reason": why}


def _execute(tasks: list, results: dict, preset: str, jobs: int, threads: int, bar) -> None:
    if jobs == 1:
        for _, _, cfg_dict, run_dir in tasks:
            results[run_dir] = _run_one(cfg_dict, run_dir, preset, threads)
            bar.update()
        return
    # spawn, not fork: each worker starts a clean interpreter with its own torch thread pool
    with ProcessPoolExecutor(jobs, mp_context=get_context("spawn"), initializer=_watch_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(_run_one, cfg_dict, run_dir, preset, threads): run_dir
                   for _, _, cfg_dict, run_dir in tasks}
        try:
            for future in as_completed(futures):
                results[futures[future]] = future.result()
                bar.update()
        except BaseException:
            pool.shutdown(cancel_futures=True)  # do not start the queued runs after an error
            raise


def _mean_std(values: list[float]) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else math.nan


def _aggregate(sweep: Sweep, tasks: list, results: dict) -> list[dict]:
    rows = []
    for point in sweep.points():
        summaries = [(seed, results[run_dir]) for p, seed, _, run_dir in tasks if p == point]
        failed = [f"seed {seed}: {s['failed']}" for seed, s in summaries if "failed" in s]
        done = [s for _, s in summaries if "failed" not in s]
        vals = [s["val_error"] for s in done if s.get("val_error") is not None]
        rows.append({
            "point": point,
            "runs": len(done),
            "failed": failed,
            "val_error": _mean_std(vals),
            "test_error": _mean_std([s["test_error"] for s in done]),
            "train_seconds": _mean_std([s["train_seconds"] for s in done]),
        })
    return rows


def _pct(mean_std: tuple[float, float]) -> str:
    mean, std = mean_std
    if math.isnan(mean):
        return "–"
    return f"{100 * mean:.2f} ± {100 * std:.2f}" if not math.isnan(std) else f"{100 * mean:.2f}"


def markdown_table(sweep: Sweep, rows: list[dict]) -> str:
    """Mean ± std (sample std over seeds) of the errors in %, and the mean training time."""
    keys = list(sweep.grid)
    best = min((r["val_error"][0] for r in rows if not math.isnan(r["val_error"][0])), default=None)
    # no grid: the seeds of one config, named by its preset
    header = [*(sweep.short_names().values() or ["preset"]), "val error %", "test error %", "train s", "runs"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        val = _pct(r["val_error"])
        if best is not None and r["val_error"][0] == best:
            val = f"**{val}**"  # the point a user would pick: chosen on validation, never on test
        seconds = "–" if math.isnan(r["train_seconds"][0]) else f"{r['train_seconds'][0]:.0f}"
        count = f"{r['runs']}/{r['runs'] + len(r['failed'])}"
        cells = [_slug(r["point"][k]) for k in keys] or [sweep.preset]
        cells += [val, _pct(r["test_error"]), seconds, count]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_results(out: Path, sweep: Sweep, rows: list[dict]) -> None:
    table = markdown_table(sweep, rows)
    failures = [f"- {', '.join(f'{k}={_slug(v)}' for k, v in r['point'].items())}, {msg}"
                for r in rows for msg in r["failed"]]
    title = (f"Sweep over {', '.join(sweep.grid)} (preset {sweep.preset}, seeds {sweep.seeds})" if sweep.grid
             else f"Preset {sweep.preset} (seeds {sweep.seeds})")
    text = f"# {title}\n\n{table}"
    if failures:
        text += "\nFailed runs:\n" + "\n".join(failures) + "\n"
    runs.write_atomic(out / "results.md", lambda f: f.write(text.encode()))
    def plain(mean_std):  # NaN is not JSON
        return {"mean": None if math.isnan(mean_std[0]) else mean_std[0],
                "std": None if math.isnan(mean_std[1]) else mean_std[1]}

    runs.write_json_atomic(out / "results.json", {"rows": [
        {**r, **{k: plain(r[k]) for k in ("val_error", "test_error", "train_seconds")}} for r in rows]})
    try:
        _plot(out / "results.png", sweep, rows)
    except FFError:  # matplotlib missing: the table is the result, the figure a convenience
        pass


def _plot(path: Path, sweep: Sweep, rows: list[dict]) -> None:
    from .figures import pyplot

    plt = pyplot()
    labels = [", ".join(_slug(v) for v in r["point"].values()) or sweep.preset for r in rows]
    fig, ax = plt.subplots(figsize=(7, 0.28 * len(rows) + 1.2))
    y = range(len(rows))
    for key, offset, colour in (("val_error", -0.18, "tab:blue"), ("test_error", 0.18, "tab:orange")):
        means = [100 * r[key][0] for r in rows]
        stds = [0 if math.isnan(r[key][1]) else 100 * r[key][1] for r in rows]
        ax.barh([i + offset for i in y], means, height=0.36, xerr=stds, color=colour, label=key.replace("_", " "))
    ax.set_yticks(list(y), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="error (%), mean ± std over seeds",
           title=" × ".join(sweep.grid) or f"{sweep.preset}, {len(sweep.seeds)} seeds")
    ax.legend(fontsize=8)
    fig.tight_layout()
    runs.write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
