"""The training loop. It knows nothing of goodness: a model hands it named losses, it sums, steps, logs.

Two schedules: minibatch training that updates every layer on every batch (the paper), and the
article's greedy schedule that trains one layer at a time for many full-chunk steps.
"""

from __future__ import annotations

import functools
import json
import math
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from . import augment, checkpoint, runs
from . import data as data_mod
from .backprop import BackpropClassifier
from .config import Config, merge
from .data import Datasets, Split
from .errors import Diverged, FFError, Interrupted
from .model import FFClassifier
from .unsupervised import FFUnsupervised


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FFError(f"run.device {name!r} is not a device name; use auto, cpu, cuda or cuda:N.") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FFError(f"run.device is {name!r} but no CUDA device is available; use cpu or auto.")
    return device


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def build_model(cfg: Config, input_dim: int, num_classes: int,
                image_shape: tuple[int, int, int] | None = None) -> FFClassifier | BackpropClassifier:
    """The network `cfg` describes: FF with labels in the image, unsupervised FF (hybrid negatives),
    or the backprop baseline. `image_shape` (C, H, W) is needed to make hybrid images."""
    args = dict(input_dim=input_dim, num_classes=num_classes, model=cfg.model, objective=cfg.objective)
    if cfg.model.kind == "backprop":
        return BackpropClassifier(**args, image_shape=image_shape)
    if cfg.objective.negatives == "hybrid":
        assert image_shape is not None, "hybrid negatives need the image shape"
        return FFUnsupervised(**args, image_shape=image_shape)
    return FFClassifier(**args, image_shape=image_shape)


def build_optimizer(cfg: Config, model: FFClassifier, total_steps: int):
    """FF weights and the readout get their own learning rate and weight cost; biases are not decayed."""
    o = cfg.optim
    weights = [layer.weight for layer in model.layers]
    biases = [layer.bias for layer in model.layers]
    groups = [
        {"params": weights, "lr": o.lr, "weight_decay": o.weight_decay},
        {"params": biases, "lr": o.lr, "weight_decay": 0.0},
    ]
    if isinstance(model, BackpropClassifier):  # the output layer is one more layer of the same network
        groups += [
            {"params": [model.readout.weight], "lr": o.lr, "weight_decay": o.weight_decay},
            {"params": [model.readout.bias], "lr": o.lr, "weight_decay": 0.0},
        ]
    elif model.readout is not None:
        groups += [
            {"params": [model.readout.weight], "lr": o.readout_lr, "weight_decay": o.readout_weight_decay},
            {"params": [model.readout.bias], "lr": o.readout_lr, "weight_decay": 0.0},
        ]
    if o.name == "sgd":
        make = functools.partial(torch.optim.SGD, groups, lr=o.lr, momentum=o.momentum, dampening=o.dampening)
    else:
        make = functools.partial(torch.optim.Adam, groups, lr=o.lr)
    try:
        # One fused kernel instead of several passes over every weight; for SGD the result is
        # bit-identical. On a 2-core CPU it saves 0-15 % of a 4 x 2000 training step.
        optimizer = make(fused=True)
    except (RuntimeError, TypeError):  # a torch or device without fused kernels
        optimizer = make()

    def factor(step: int) -> float:
        if o.schedule == "constant":
            return 1.0
        return min(1.0, 2.0 * (1.0 - step / max(total_steps, 1)))  # Hinton: flat, then linear to 0

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def autocast(cfg: Config, device: torch.device):
    """bfloat16 matmuls for `run.precision = bf16` (about 1.8x faster on a CPU with AVX512-BF16); the
    layers cast their output back to fp32, so goodness, losses and the optimiser's weights stay fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.run.precision == "bf16")


@torch.no_grad()
def error_rates(model: FFClassifier, split: Split, ways: tuple[str, ...], batch_size: int,
                device: torch.device) -> dict[str, float]:
    """Fraction of `split` misclassified by each of `ways` ("softmax", "goodness", "combined"), from
    one pass over the split."""
    if not len(split):
        raise FFError("cannot score an empty split.")
    model.eval()
    wrong = dict.fromkeys(ways, 0)
    for start in range(0, len(split), batch_size):
        x = split.images[start : start + batch_size].to(device, non_blocking=True)
        y = split.labels[start : start + batch_size].to(device, non_blocking=True)
        for how, predicted in model.predictions(x, ways).items():
            wrong[how] += (predicted != y).sum().item()
    model.train()
    return {how: n / len(split) for how, n in wrong.items()}


def error_rate(model: FFClassifier, split: Split, how: str, batch_size: int, device: torch.device) -> float:
    """Fraction of `split` misclassified, predicting by `how`."""
    return error_rates(model, split, (how,), batch_size, device)[how]


class _Meter:
    """Sums detached statistics on the device; one synchronisation per epoch, not per step.

    It also keeps every step's losses, so a divergence can be traced to its layer and step.
    """

    def __init__(self, first_step: int = 0):
        self.sums: dict[tuple[str, str], torch.Tensor] = defaultdict(lambda: 0.0)
        self.counts: dict[tuple[str, str], int] = defaultdict(int)
        self.first_step = first_step
        self.loss_rows: list[tuple[list[str], torch.Tensor]] = []

    def add(self, losses: dict, stats: dict) -> None:
        self.loss_rows.append((list(losses), torch.stack([v.detach() for v in losses.values()])))
        values = {(name, "loss"): loss.detach() for name, loss in losses.items()}
        values.update({(name, key): v for name, group in stats.items() for key, v in group.items()})
        for key, value in values.items():
            self.sums[key] = self.sums[key] + value
            self.counts[key] += 1

    def check_finite(self, epoch: int) -> None:
        """Raise an FFError naming the first layer and step whose loss was NaN or infinite."""
        if not self.loss_rows:
            return
        if bool(torch.isfinite(torch.cat([row for _, row in self.loss_rows])).all()):
            return  # the common case: one check, one synchronisation
        for index, (names, row) in enumerate(self.loss_rows):
            bad = [n for n, v in zip(names, row.tolist()) if not math.isfinite(v)]
            if bad:
                raise Diverged(
                    f"training diverged: the loss of {bad[0]} became {row[names.index(bad[0])].item()} at epoch "
                    f"{epoch}, step {self.first_step + index + 1}; the last good checkpoint is kept. Lower "
                    "optim.lr (or raise the threshold) and train again."
                )

    def flush(self) -> None:
        """Wait for queued device work, so step timings are honest on asynchronous devices."""
        if torch.cuda.is_available():
            torch.cuda.synchronize()

    def means(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = defaultdict(dict)
        for (name, key), total in self.sums.items():
            out[name][key] = float(total) / self.counts[name, key]
        return dict(out)


class _Loop:
    """State shared by both schedules: optimiser, schedule, data-order RNG, checkpoints, metrics."""

    def __init__(self, cfg: Config, model: FFClassifier, data: Datasets, device: torch.device, run_dir: Path,
                 total_steps: int, resume_state: dict | None):
        self.cfg, self.model, self.data, self.device, self.run_dir = cfg, model, data, device, run_dir
        self.optimizer, self.scheduler = build_optimizer(cfg, model, total_steps)
        self.generator = torch.Generator(device="cpu").manual_seed(cfg.run.seed)
        self.position = checkpoint.Position()
        if resume_state is not None:
            self.position = checkpoint.restore(resume_state, model=model, optimizer=self.optimizer,
                                               scheduler=self.scheduler, generator=self.generator)
        self.started = time.perf_counter() - self.position.elapsed
        self.tensorboard = _tensorboard_writer(run_dir) if cfg.log.tensorboard else None

    def save(self, epoch: int, step: int, order: torch.Tensor | None, step_seconds: float) -> None:
        self.position = checkpoint.Position(epoch, step, order, time.perf_counter() - self.started, step_seconds)
        checkpoint.save(self.run_dir, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                        generator=self.generator, position=self.position)

    def stop(self, epoch: int, step: int, order: torch.Tensor | None, step_seconds: float) -> None:
        """Ctrl-C between steps: checkpoint here and leave with a message on how to continue."""
        self.save(epoch, step, order, step_seconds)
        raise Interrupted(f"interrupted at epoch {epoch}, step {step}; a checkpoint is saved: continue with "
                      f"`ff train --resume {self.run_dir}`.")

    def end_epoch(self, epoch: int, meter: _Meter, step_seconds: float) -> None:
        meter.check_finite(epoch)
        cfg = self.cfg
        entry = {"epoch": epoch, "seconds": round(time.perf_counter() - self.started, 2),
                 "lr": self.scheduler.get_last_lr()[0], "layers": meter.means()}
        if len(self.data.val) and (epoch % cfg.run.eval_every == 0 or epoch == cfg.optim.epochs):
            entry["val_error"] = error_rate(self.model, self.data.val, self.model.validation_method,
                                            cfg.run.eval_batch_size, self.device)
            tqdm.write(f"epoch {epoch}: validation error {100 * entry['val_error']:.2f} %  ({entry['seconds']:.0f} s)")
        elif not len(self.data.val):
            tqdm.write(f"epoch {epoch} done ({entry['seconds']:.0f} s; data.val_size = 0, no validation)")
        runs.append_metrics(self.run_dir, entry)
        if self.tensorboard is not None:
            _log_tensorboard(self.tensorboard, self.model, entry)
        if epoch % cfg.run.checkpoint_every == 0 or epoch == cfg.optim.epochs:
            self.save(epoch + 1, 0, None, step_seconds)


def _tensorboard_writer(run_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise FFError("log.tensorboard needs tensorboard: pip install 'forward-forward[tensorboard]'.") from None
    return SummaryWriter(log_dir=str(run_dir / "tensorboard"))


def _log_tensorboard(writer, model: FFClassifier, entry: dict) -> None:
    """The epoch's metrics as scalars (layer/key), and each layer's weights and biases as histograms."""
    epoch = entry["epoch"]
    for name, values in entry["layers"].items():
        for key, value in values.items():
            writer.add_scalar(f"{name}/{key}", value, epoch)
    if "val_error" in entry:
        writer.add_scalar("val_error", entry["val_error"], epoch)
    writer.add_scalar("lr", entry["lr"], epoch)
    for i, layer in enumerate(model.layers):
        writer.add_histogram(f"layer{i}/weight", layer.weight.detach().cpu(), epoch)
        writer.add_histogram(f"layer{i}/bias", layer.bias.detach().cpu(), epoch)
    writer.flush()


def _phase(phase_steps: int, global_step: int) -> str:
    """Interleaved ("both"), or K steps of positive data alone, then K of negative alone, and so on."""
    if not phase_steps:
        return "both"
    return "positive" if (global_step // phase_steps) % 2 == 0 else "negative"


def fit_minibatch(cfg: Config, model: FFClassifier, data: Datasets, device: torch.device, run_dir: Path,
                  resume_state: dict | None = None) -> checkpoint.Position:
    """Every layer is updated on every minibatch, each by its own loss (paper §3.3).

    Returns the final position, whose `step_seconds` is the time in training steps alone.
    """
    o = cfg.optim
    train = data.train.to(device)
    steps_per_epoch = len(train) // o.batch_size
    if steps_per_epoch == 0:
        raise FFError(f"optim.batch_size = {o.batch_size} is larger than the {len(train)} training images.")
    loop = _Loop(cfg, model, data, device, run_dir, steps_per_epoch * o.epochs, resume_state)
    position = loop.position
    step_seconds = position.step_seconds
    with checkpoint.StopRequest() as stop:
        for epoch in range(position.epoch, o.epochs + 1):
            resuming = epoch == position.epoch and position.order is not None
            first = position.step if resuming else 0
            if resuming:
                order = position.order.to(device)
            else:
                order = torch.randperm(len(train), generator=loop.generator).to(device)
            meter = _Meter(first)
            tick = time.perf_counter()
            bar = tqdm(range(first, steps_per_epoch), desc=f"epoch {epoch}/{o.epochs}", disable=not cfg.run.progress,
                       leave=False)
            for step in bar:
                if stop.requested:
                    loop.stop(epoch, step, order, step_seconds + time.perf_counter() - tick)
                idx = order[step * o.batch_size : (step + 1) * o.batch_size]
                images, labels = train.images[idx], train.labels[idx]
                if cfg.data.jitter:
                    images = augment.jitter(images, data.image_shape, cfg.data.jitter, loop.generator)
                phase = _phase(o.phase_steps, (epoch - 1) * steps_per_epoch + step)
                with autocast(cfg, device):
                    losses, stats = model.losses(images, labels, phase)
                loop.optimizer.zero_grad(set_to_none=True)
                sum(losses.values()).backward()
                loop.optimizer.step()
                loop.scheduler.step()
                meter.add(losses, stats)
            meter.flush()
            step_seconds += time.perf_counter() - tick
            loop.end_epoch(epoch, meter, step_seconds)
    return loop.position


def fit_greedy(cfg: Config, model: FFClassifier, data: Datasets, device: torch.device, run_dir: Path,
               resume_state: dict | None = None) -> checkpoint.Position:
    """The article's schedule: per chunk of images, each layer in turn takes `greedy_steps` full-chunk steps.

    Negatives are drawn once per chunk; a layer's inputs are the trained previous layer's outputs.
    Checkpoints are taken between epochs: an interrupted epoch starts again on resume.
    """
    o = cfg.optim
    train = data.train.to(device)
    chunks = math.ceil(len(train) / o.chunk_size)
    loop = _Loop(cfg, model, data, device, run_dir, o.epochs * chunks * len(model.layers) * o.greedy_steps,
                 resume_state)
    step_seconds = loop.position.step_seconds
    with checkpoint.StopRequest() as stop:
        for epoch in range(loop.position.epoch, o.epochs + 1):
            meter = _Meter()
            tick = time.perf_counter()
            bar = tqdm(total=chunks * len(model.layers) * o.greedy_steps, desc=f"epoch {epoch}/{o.epochs}",
                       disable=not cfg.run.progress, leave=False)
            for start in range(0, len(train), o.chunk_size):
                images, labels = train.images[start : start + o.chunk_size], train.labels[start : start + o.chunk_size]
                pos, neg = model.positive_negative(images, labels)
                batch = pos.shape[0]
                x = torch.cat([pos, neg])
                for i, layer in enumerate(model.layers):
                    for _ in range(o.greedy_steps):
                        if stop.requested:
                            raise Interrupted(f"interrupted in epoch {epoch}; continue from its start with "
                                          f"`ff train --resume {run_dir}`.")
                        with autocast(cfg, device):
                            y = layer(x)
                        loss, stats = model.layer_loss(i, y[:batch], y[batch:])
                        loop.optimizer.zero_grad(set_to_none=True)
                        loss.backward()
                        loop.optimizer.step()
                        loop.scheduler.step()
                        bar.update()
                    meter.add({f"layer{i}": loss}, {f"layer{i}": stats})
                    with torch.no_grad(), autocast(cfg, device):
                        x = layer(x)
            bar.close()
            meter.flush()
            step_seconds += time.perf_counter() - tick
            loop.end_epoch(epoch, meter, step_seconds)
    return loop.position


def train(cfg: Config, run_dir: Path, preset: str = "custom", resume: bool = False) -> dict:
    """Train a model as `cfg` says, write the run directory, and return the summary.

    With `resume`, continue the run in `run_dir` from its last checkpoint (or from the start if it
    was stopped before its first one); the result is the same as a run never interrupted.
    """
    if not resume and runs.holds_run(run_dir):
        raise FFError(f"{run_dir} already holds a run, which training would overwrite: continue it with "
                      f"`ff train --resume {run_dir}`, or give another --run-dir.")
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)
    if cfg.run.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.run.seed)
    device = resolve_device(cfg.run.device)
    data = data_mod.load(cfg.data)
    state = checkpoint.load(run_dir) if resume else None
    if state is None:
        runs.start(run_dir, cfg, preset)
    else:
        runs.truncate_metrics(run_dir, before_epoch=state["epoch"])  # the epoch in progress is logged again
    model = build_model(cfg, data.train.images.shape[1], data.num_classes, data.image_shape).to(device)
    fit = fit_greedy if cfg.optim.greedy_steps else fit_minibatch
    position = fit(cfg, model, data, device, run_dir, state)
    runs.save_weights(run_dir, model.state_dict())
    summary = {"preset": preset, "epochs": cfg.optim.epochs, "train_seconds": round(position.elapsed, 1),
               "step_seconds": round(position.step_seconds, 1),
               "train_images": len(data.train), "device": device_name(device)}
    summary.update(score(cfg, model, data, device))
    summary["config"] = cfg.to_dict()
    runs.write_json_atomic(run_dir / "summary.json", summary)
    return summary


def load_trained(run_dir: Path, data_dir: str | None = None, device: str | None = None):
    """Rebuild a finished run: (config, model with its weights, datasets, device)."""
    cfg, _ = runs.load_config(run_dir)
    if data_dir:
        cfg = merge(cfg, {"data": {"data_dir": data_dir}})
    if cfg.objective.predict == "best":  # the way chosen on validation when the run ended
        summary = Path(run_dir) / "summary.json"
        chosen = json.loads(summary.read_text()).get("predict", "softmax") if summary.exists() else "softmax"
        cfg = merge(cfg, {"objective": {"predict": chosen}})
    torch_device = resolve_device(device or cfg.run.device)
    data = data_mod.load(cfg.data)
    model = build_model(cfg, data.test.images.shape[1], data.num_classes, data.image_shape)
    try:
        model.load_state_dict(runs.load_weights(run_dir))
    except RuntimeError as e:
        raise FFError(f"the weights in {run_dir} do not fit its config.json ({str(e).splitlines()[0]}).") from None
    return cfg, model.to(torch_device), data, torch_device


def score(cfg: Config, model: FFClassifier, data: Datasets, device: torch.device) -> dict:
    """Validation and test error by every prediction the model supports; `test_error` is the configured
    one, or with "best" the one with the lower validation error.

    The test set is only scored here, once training is over; nothing is selected on it.
    """
    ways = model.ways
    # with data.val_size = 0 there is nothing to validate on: val_error_* are None
    val = error_rates(model, data.val, ways, cfg.run.eval_batch_size, device) if len(data.val) else {}
    test = error_rates(model, data.test, ways, cfg.run.eval_batch_size, device)
    out = {}
    for how in ways:
        out[f"val_error_{how}"], out[f"test_error_{how}"] = val.get(how), test[how]
    chosen = cfg.objective.predict
    if chosen == "best":  # chosen on validation alone; ties go to the cheaper one-pass readout
        chosen = min(ways, key=lambda how: out[f"val_error_{how}"])
    out["val_error"] = out[f"val_error_{chosen}"]
    out["test_error"] = out[f"test_error_{chosen}"]
    out["predict"] = chosen
    return out
