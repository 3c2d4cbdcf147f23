"""`train`: one run from a config to a run directory with its weights, metrics and summary."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import cast

import torch
from torch import nn
from tqdm import tqdm

from .. import augment, checkpoint, runs
from .. import data as data_mod
from ..coding import resolve
from ..config import PATH_DATASETS, Config, merge
from ..data import Datasets
from ..errors import Diverged, FFError
from ..models import Network, build_model, model_class
from ..negatives import NEGATIVES
from . import distributed, host_memory, pipeline
from .calibrate import choose_precision
from .device import channels_last, device_name, resolve_device
from .evaluate import score, scored_ways
from .loop import fit, own_random_stream
from .schedules import schedule_for


def fit_to_data(cfg: Config, data: Datasets, given: bool = False) -> Config:
    """`cfg` with what depends on the data made concrete and checked against it, so config.json records
    what the run really did: objective.label_coding = auto resolved, the splits of `given` data (yours,
    from `from_arrays`) as they are, a data file's path made absolute. Call it in your own loop too."""
    changes: dict[str, dict] = {}
    if given:  # your Datasets are already split: the config says so instead of holding values it ignored
        changes["data"] = {"val_size": len(data.val), "train_limit": 0}
    elif cfg.data.dataset in PATH_DATASETS and cfg.data.path:
        changes["data"] = {"path": str(Path(cfg.data.path).expanduser().resolve())}
    for field, does in augment.IMAGE_ONLY.items():
        value = getattr(cfg.data, field)
        if value and data.kind != "image":
            off = "false" if isinstance(value, bool) else "0"
            raise FFError(f"data.{field} {does}, and this data is {data.kind} of shape {data.shape}: set it to {off}.")
    if NEGATIVES[cfg.objective.negatives].makes_data and data.kind == "features":
        raise FFError(f"objective.negatives = {cfg.objective.negatives} makes images or writes text, and this data "
                      f"is features of shape {data.shape}: choose another strategy.")
    if cfg.model.fast_weights and not cfg.model.fast_positions:  # the memory spans a string's windows
        changes["model"] = {"fast_positions": cfg.data.string_length - cfg.data.window}
    first_layer = cfg.model.layer if isinstance(cfg.model.layer, str) else cfg.model.layer[0]
    coding = resolve(cfg.objective.label_coding, data.shape, data.label_room, first_layer)
    takes_label = getattr(model_class(cfg), "label_in_input", None)  # plugin kinds may predate it
    label_in_input = takes_label(cfg) if takes_label else NEGATIVES[cfg.objective.negatives].takes_label(cfg)
    if label_in_input and coding != cfg.objective.label_coding:
        changes["objective"] = {"label_coding": coding}
    return merge(cfg, changes) if changes else cfg


def train(cfg: Config, run_dir: str | Path, preset: str = "custom", resume: bool = False,
          data: Datasets | None = None) -> dict:
    """Train a model as `cfg` says, write the run directory, and return the summary.

    data: your own `Datasets` (`data.from_arrays`) instead of `cfg.data`'s; the run then records
    `data.dataset = arrays`. With `resume`, continue the run in `run_dir` from its last checkpoint
    (or from the start if it was stopped before its first one); the result is the same as a run
    never interrupted. Launched by torchrun, each process trains on its shard of every batch
    (`training.distributed`); rank 0 writes the run directory and returns the summary, the others {}.
    """
    run_dir = Path(run_dir)
    rank0 = int(os.environ.get("RANK", "0")) == 0  # the process group is joined below, once the device is known
    if rank0 and not resume and runs.holds_run(run_dir):
        raise FFError(f"{run_dir} already holds a run, which training would overwrite: continue it with "
                      f"`ff train --resume {run_dir}`, or give another --run-dir.")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.run.seed)
    device = resolve_device(cfg.run.device)
    if device.type == "cpu":
        host_memory.keep_freed_memory()  # a CPU step reuses its freed blocks instead of faulting in new pages
    ranks = distributed.join(device)
    finished = False
    try:
        summary = _train(cfg, run_dir, preset, resume, data, distributed.device_for(ranks, device), ranks)
        finished = True
        return summary
    finally:
        distributed.leave(ranks, finished)


def _train(cfg: Config, run_dir: Path, preset: str, resume: bool, data: Datasets | None, device: torch.device,
           ranks: distributed.Ranks) -> dict:
    if data is None:
        data = data_mod.load(cfg.data)
    elif cfg.data.dataset != "arrays":
        cfg = merge(cfg, {"data": {"dataset": "arrays", "path": None}})
    cfg = fit_to_data(cfg, data, given=cfg.data.dataset == "arrays")
    # everything that can fail on the config and the data fails here, before the run directory exists
    model = _build(cfg, data, device)
    piped = ranks.parallel and cfg.run.parallel == "pipeline"
    if cfg.run.parallel != "data" and not ranks.parallel:
        warnings.warn(f"run.parallel = {cfg.run.parallel} shares the work of several processes (ff train --nproc N); "
                      "this run is one process and trains alone.", UserWarning, stacklevel=3)
    if ranks.parallel and getattr(model, "generator", None) is not None:
        # each rank would fit its prior to its own codes, and averaging mixtures whose components do not
        # correspond (as every buffer is averaged after a step) would make nonsense of them
        raise FFError("objective.negatives = generated trains its generator in one process: run it without --nproc.")
    if piped:
        pipeline.check(cfg, len(model.layers), ranks)
    elif ranks.parallel:
        chunk = cfg.optim.chunk_size
        batches = {chunk, len(data.train) % chunk or chunk} if cfg.optim.greedy_steps else {cfg.optim.batch_size}
        for size in batches:  # every batch must split evenly: refused now, not in the middle of an epoch
            ranks.shard(torch.arange(size))
    if ranks.rank > 0:  # the same weights everywhere, then each rank its own negatives and noise; rank 0
        torch.manual_seed(cfg.run.seed + 7919 * ranks.rank)  # keeps the stream one process has
    schedule_for(cfg, model.loss_names, len(data.train))
    scored_ways(cfg, model)
    # a resumed run keeps what `auto` chose at its start (config.json), not a new timing that might differ
    started = runs.load_config(run_dir)[0].run.precision if resume and runs.holds_run(run_dir) else None
    if started and cfg.run.precision == "auto":
        cfg = merge(cfg, {"run": {"precision": started}})
    precision, why = choose_precision(cfg, lambda: _build(cfg, data, device), data.train, device, ranks)
    if precision == started:
        why = "resumed in the precision its start chose (config.json)"
    if precision != cfg.run.precision:  # config.json records what the run does, so a resume does the same
        cfg = merge(cfg, {"run": {"precision": precision}})
        if ranks.main:
            tqdm.write(f"precision {precision} ({why})")
    if not ranks.main:  # the others train in step with rank 0 and leave the run directory to it
        own = run_dir / f"stage{ranks.rank}" if piped else run_dir  # a pipeline stage's own checkpoint
        fit(cfg, model, data, device, run_dir, checkpoint.load(own) if resume else None, ranks)
        return {}
    created = not run_dir.exists()
    try:
        with runs.lock(run_dir):  # one writer at a time; a second `ff train` into the same folder is refused
            if not resume and runs.holds_run(run_dir):  # again, now that no one else can start it
                raise FFError(f"{run_dir} already holds a run, which training would overwrite: continue it with "
                              f"`ff train --resume {run_dir}`, or give another --run-dir.")
            state = checkpoint.load(run_dir) if resume else None
            if state is None:
                runs.start(run_dir, cfg, preset, keep_command=resume)
            else:
                runs.truncate_metrics(run_dir, before_epoch=state["epoch"])  # the epoch in progress is logged again
            position = fit(cfg, model, data, device, run_dir, state, ranks)
            runs.save_weights(run_dir, model.state_dict())
            summary = {"preset": preset, "epochs": cfg.optim.epochs, "train_seconds": round(position.elapsed, 1),
                       "step_seconds": round(position.step_seconds, 1),
                       "train_images": len(data.train), "device": device_name(device), "precision": precision,
                       "precision_reason": why, "ways": list(model.ways),  # the ways it predicts by, scored or not
                       "processes": ranks.world, "parallel": cfg.run.parallel if ranks.parallel else "none"}
            summary.update(score(cfg, model, data, device))
            summary["config"] = cfg.to_dict()
            runs.write_json_atomic(run_dir / "summary.json", summary)
    except BaseException as e:
        # a start that fails before its first checkpoint leaves nothing, so the corrected command can run;
        # a divergence is a result, which the run directory keeps (a sweep records it there)
        if created and not isinstance(e, Diverged) and not (run_dir / checkpoint.CHECKPOINT).exists():
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return summary


def settle_precision(cfg: Config) -> tuple[str, str]:
    """run.precision made concrete as `train` would make it for `cfg`, and why, without training: what
    `ff sweep` decides once for all its runs, so they differ only in what its grid changes."""
    if cfg.run.precision != "auto":
        return cfg.run.precision, "as configured"
    device = resolve_device(cfg.run.device)
    if device.type == "cpu":
        host_memory.keep_freed_memory()  # as the runs will step
    data = data_mod.load(cfg.data)
    cfg = fit_to_data(cfg, data)
    with own_random_stream(device):  # building the model draws weights: not from this process's stream
        chosen = choose_precision(cfg, lambda: _build(cfg, data, device), data.train, device)
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the timed model's blocks go back to the runs
    return chosen


def _build(cfg: Config, data: Datasets, device: torch.device) -> Network:
    """The run's model, untrained, on its device (its conv weights channels-last where run.channels_last)."""
    model = build_model(cfg, data.shape, data.num_classes).to(device)
    if cfg.run.channels_last:
        channels_last(cast(nn.Module, model))
    return model
