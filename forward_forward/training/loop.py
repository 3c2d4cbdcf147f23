"""The training loop. It knows nothing of goodness: a model hands it named losses, it sums, steps, logs.

The schedule (minibatch, sleep phases, greedy) says which images and which named losses each step
uses; the loop is the same for all of them, and so are checkpoints, resume and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Hashable, Iterator, cast

import torch
from tqdm import tqdm

from .. import augment, checkpoint, runs, sample_quality, sequence, text
from ..config import Config
from ..data import Datasets
from ..errors import Interrupted
from ..text import Corpus
from . import distributed, pipeline
from .device import autocast, scoring_autocast
from .evaluate import error_rate, scoring
from .metrics import Meter, log_tensorboard, tensorboard_writer
from .optim import build_optimizer
from .schedules import schedule_for

if TYPE_CHECKING:
    from ..models import FFNetwork, Network


SPARSITY_SAMPLES = 1000
SAMPLE_STRINGS = 4  # strings a text model writes into RUN_DIR/samples after each epoch


class Loop:
    """State of one run's training: optimiser, schedule, data-order RNG, checkpoints, metrics."""

    def __init__(self, cfg: Config, model: Network, data: Datasets, device: torch.device, run_dir: Path,
                 resume_state: dict | None, ranks: distributed.Ranks = distributed.ALONE):
        self.cfg, self.model, self.data, self.device, self.run_dir = cfg, model, data, device, run_dir
        self.ranks = ranks
        self.train = data.train.to(device)
        self.schedule = schedule_for(cfg, model.loss_names, len(self.train))
        # a pipeline stage runs this rank's layers; else a step calls DDP over the model (data-parallel)
        piped = ranks.parallel and cfg.run.parallel == "pipeline"
        self.stage = pipeline.Stage(cast("FFNetwork", model), ranks, run_dir) if piped else None
        self.sharded = distributed.ALONE if piped else ranks  # whose slice of each batch this rank takes
        self.step_model = distributed.wrap(cast(torch.nn.Module, model), self.sharded, device,
                                           some_losses_idle=bool(cfg.optim.greedy_steps or cfg.optim.phase_steps))
        if self.step_model is model:  # each layer's loss backpropagated as soon as it is computed
            hint(model, release_graphs=True)
        micro = cfg.optim.micro_batch
        hint(model, repeat_slots=math.ceil(cfg.optim.chunk_size / micro) if micro else 1)  # one per micro-batch
        total_steps = self.schedule.steps_per_epoch * cfg.optim.epochs
        self.optimizer, self.scheduler = build_optimizer(cfg, model, total_steps)
        self.generator = torch.Generator(device="cpu").manual_seed(cfg.run.seed)
        self.position = checkpoint.Position()
        if resume_state is not None:
            self.position = checkpoint.restore(resume_state, model=model, optimizer=self.optimizer,
                                               scheduler=self.scheduler, generator=self.generator)
        if self.stage is not None:
            self.stage.agree(self.position.epoch, run_dir)  # every stage resumes from the same epoch
        elif resume_state is not None and ranks.rank > 0:  # data-parallel: rank 0's checkpoint holds its stream
            torch.manual_seed(cfg.run.seed + 7919 * ranks.rank + 104729 * self.position.epoch + self.position.step)
        self.started = time.perf_counter() - self.position.elapsed
        self.tensorboard = tensorboard_writer(run_dir) if cfg.log.tensorboard and ranks.main else None
        # run.reference: the classifier that judges a generator's samples after each epoch
        with own_random_stream(device):  # building the reference draws initial weights: not from the run's stream
            self.reference = (sample_quality.load_reference(cfg.run.reference, device, model) if cfg.run.reference
                              else None)

    def save(self, epoch: int, step: int, order: torch.Tensor | None, step_seconds: float) -> None:
        self.position = checkpoint.Position(epoch, step, order, time.perf_counter() - self.started, step_seconds)
        if self.stage is not None:  # each stage its own optimiser state, rank 0 in the run directory
            self.stage.checkpoint_dir.mkdir(exist_ok=True)
            folder = self.stage.checkpoint_dir
        elif self.ranks.main:
            folder = self.run_dir
        else:  # data-parallel: every rank holds the same state; one writes it
            return
        checkpoint.save(folder, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                        generator=self.generator, position=self.position)

    def stop(self, epoch: int, step: int, order: torch.Tensor | None, step_seconds: float) -> None:
        """Ctrl-C between steps: checkpoint here and leave with a message on how to continue."""
        nproc = f" --nproc {self.ranks.world}" if self.ranks.parallel else ""
        if self.stage is not None:  # the stages stand at different steps: only an epoch's end is whole
            raise Interrupted(f"interrupted in epoch {epoch}; a pipeline run continues from the end of its last "
                              f"epoch: `ff train --resume {self.run_dir}{nproc}`.")
        self.save(epoch, step, order, step_seconds)
        raise Interrupted(f"interrupted at epoch {epoch}, step {step}; a checkpoint is saved: continue with "
                          f"`ff train --resume {self.run_dir}{nproc}`.")

    def train_step(self, epoch: int, step: int, order: torch.Tensor | None) -> tuple[dict, dict]:
        index, active, phase = self.schedule.step(epoch, step, order)
        images, labels = self.train.images[index], self.train.labels[index]
        seed = self.schedule.seed(epoch, step)
        key = self.schedule.repeat_key(epoch, step)
        self.optimizer.zero_grad(set_to_none=True)  # before the forward pass, which may backpropagate already
        with own_random_stream(self.device, seed) if seed is not None else contextlib.nullcontext():
            generator = self.generator if seed is None else torch.Generator().manual_seed(seed)
            images = augment.batch(images, self.cfg.data, generator)
            # data-parallel: this rank's slice, taken after the whole batch was augmented, so every
            # image gets its own draws whatever its rank
            images, labels = self.sharded.shard(images), self.sharded.shard(labels)
            if self.stage is not None:
                with autocast(self.cfg, self.device):
                    losses, stats = self.stage.step(images, labels)
                _backward(losses, 1.0)
            else:
                losses, stats = accumulate(self.model, images, labels, self.cfg, self.device,
                                           step_model=self.step_model, active=active, phase=phase, key=key)
        self.optimizer.step()
        self.scheduler.step()
        distributed.average_buffers(cast(torch.nn.Module, self.model), self.sharded)
        return losses, stats

    def end_epoch(self, epoch: int, meter: Meter, step_seconds: float) -> None:
        meter.check_finite(epoch, checkpointed=(self.run_dir / checkpoint.CHECKPOINT).exists())
        if self.stage is not None:
            self.stage.gather()  # rank 0's network made whole, to validate and save
        if not self.ranks.main:  # rank 0 validates, logs and checkpoints for all; a stage keeps its optimiser
            due = epoch % self.cfg.run.checkpoint_every == 0 or epoch == self.cfg.optim.epochs
            if self.stage is not None and due:
                self.save(epoch + 1, 0, None, step_seconds)
            self.position = checkpoint.Position(epoch + 1, 0, None, time.perf_counter() - self.started, step_seconds)
            return
        cfg = self.cfg
        entry = {"epoch": epoch, "seconds": round(time.perf_counter() - self.started, 2),
                 "lr": self.scheduler.get_last_lr()[0], "layers": meter.means()}
        # sparsity once an epoch, on the first training images: every step would cost 3 % of its time
        count = min(len(self.train), SPARSITY_SAMPLES)
        sample = slice(0, count - count % getattr(self.schedule, "group", 1))  # fast weights: whole strings
        # eval mode: batchnorm's running statistics are not moved by these images; and a noisy stage
        # must not shift the run's random stream
        with own_random_stream(self.device), scoring(self.model):
            sparsity = self.model.layer_sparsity(self.train.images[sample], self.train.labels[sample])
        for name, values in sparsity.items():
            entry["layers"].setdefault(name, {}).update(values)
        due = epoch % cfg.run.eval_every == 0 or epoch == cfg.optim.epochs  # validation's epochs
        if len(self.data.val) and due:
            way = self.model.validation_method
            if self.data.corpus is not None:  # text: bits per character and free-running accuracy too
                with own_random_stream(self.device), scoring(self.model):
                    entry.update(text_epoch(self.model, self.data.corpus, way, cfg.run.eval_batch_size,
                                            self.run_dir, epoch))
            else:
                with scoring_autocast(cfg, self.device):
                    entry["val_error"] = error_rate(self.model, self.data.val, way, cfg.run.eval_batch_size,
                                                    self.device)
            entry["val_predict"] = way
            tqdm.write(f"epoch {epoch}: validation error {100 * entry['val_error']:.2f} % by {way}  "
                       f"({entry['seconds']:.0f} s)")
        elif not len(self.data.val):
            tqdm.write(f"epoch {epoch} done ({entry['seconds']:.0f} s; data.val_size = 0, no validation)")
        if getattr(self.model, "generator", None) is not None:  # validation images, or training ones without
            real = self.data.val if len(self.data.val) else self.data.train
            with own_random_stream(self.device), scoring(self.model):  # the reference's measures as validation's
                entry["generator"] = sample_quality.epoch_report(self.model, self.reference if due else None,
                                                                 real.images[: sample_quality.SAMPLES].to(self.device),
                                                                 real.labels[: sample_quality.SAMPLES].to(self.device))
        runs.append_metrics(self.run_dir, entry)
        if self.tensorboard is not None:
            log_tensorboard(self.tensorboard, self.model, entry)
        if epoch % cfg.run.checkpoint_every == 0 or epoch == cfg.optim.epochs:
            self.save(epoch + 1, 0, None, step_seconds)


def text_epoch(model: Network, corpus: Corpus, way: str, batch_size: int, run_dir: Path, epoch: int) -> dict:
    """A next-character model's validation after an epoch: error, bits per character and free-running
    accuracy by `way`, and a few strings it writes from validation prompts (RUN_DIR/samples/)."""
    if not sequence.writes(model):
        got = sequence.scores(model, corpus.val, (way,), batch_size, free_running=False)
        return {"val_error": 1 - got[f"acc_{way}"], "val_bpc": got[f"bpc_{way}"]}
    got = sequence.scores(model, corpus.val, (way,), batch_size)
    prompts = corpus.val[:SAMPLE_STRINGS, : corpus.window].to(next(model.parameters()).device)
    written = sequence.write(model, prompts, corpus.val.shape[1] - corpus.window, way)
    lines = [f"epoch {epoch}, sampled by {way} at temperature 1 after the first {corpus.window} characters:"]
    lines += [text.decode(s) for s in written.cpu()]
    page = "\n".join(lines + [""]).encode()
    runs.write_atomic(run_dir / "samples" / f"epoch{epoch:04d}.txt", lambda f: f.write(page))
    return {"val_error": 1 - got[f"acc_{way}"], "val_bpc": got[f"bpc_{way}"],
            "val_free_error": 1 - got[f"free_acc_{way}"]}


def accumulate(model: Network, images: torch.Tensor, labels: torch.Tensor, cfg: Config, device: torch.device, *,
               step_model: torch.nn.Module | None = None, active: frozenset[str] | None = None, phase: str = "both",
               key: Hashable | None = None) -> tuple[dict, dict]:
    """A step's gradients: the model's losses backpropagated, summed over the step's micro-batches
    (cfg.optim.micro_batch; one when 0), each loss weighted by its micro-batch's share of the images,
    so the sum is the whole batch's gradient with a micro-batch's activities in memory at a time.
    step_model: what to call (the model, or DDP around it); key: the schedule's repeat key.
    Returns the losses and statistics of the whole batch."""
    step_model = step_model if step_model is not None else cast(torch.nn.Module, model)
    parts = micro_batches(len(images), cfg.optim.micro_batch or len(images))
    losses: dict[str, torch.Tensor] = {}
    stats: dict[str, dict] = {}
    try:
        for i, part in enumerate(parts):
            share = (part.stop - part.start) / len(images)
            # one repeat key per micro-batch (each has its own input); its losses weighted by its share
            hint(model, repeat_key=key if key is None or len(parts) == 1 else (key, i), loss_scale=share)
            last = i == len(parts) - 1
            # data-parallel: the gradients are averaged over the ranks once, after the last micro-batch
            no_sync = getattr(step_model, "no_sync", None)
            with no_sync() if no_sync is not None and not last else contextlib.nullcontext():
                with autocast(cfg, device):
                    part_losses, part_stats = step_model(images[part], labels[part], active=active, phase=phase)
                _backward(part_losses, share)
            if len(parts) == 1:
                return part_losses, part_stats
            for name, loss in part_losses.items():
                losses[name] = losses.get(name, 0.0) + share * loss.detach()
            for name, group in part_stats.items():
                mine = stats.setdefault(name, {})
                for stat, value in group.items():
                    mine[stat] = mine.get(stat, 0.0) + share * value
        return losses, stats
    finally:
        hint(model, loss_scale=1.0)  # a model handed back releases whole losses again


def hint(model: Network, **settings) -> None:
    """Set the training hints a model kind offers (release_graphs, repeat_key, repeat_slots, loss_scale:
    see LayerLosses and FFNetwork); a kind without one trains the same without it, only slower or with more memory."""
    for name, value in settings.items():
        if hasattr(model, name):
            setattr(model, name, value)


def micro_batches(n: int, size: int) -> list[slice]:
    """The parts of n images, `size` at a time; a lone last image joins the part before (a hybrid
    negative mixes two images of its part)."""
    parts = [slice(start, min(start + size, n)) for start in range(0, n, size)]
    if len(parts) > 1 and parts[-1].stop - parts[-1].start == 1:
        parts[-2:] = [slice(parts[-2].start, n)]
    return parts


def _backward(losses: dict[str, torch.Tensor], share: float) -> None:
    """Backpropagate what the model has not backpropagated itself, weighted by `share` of the batch."""
    total = cast(torch.Tensor, sum(losses.values()))
    if total.requires_grad:
        (total if share == 1 else total * share).backward()


@contextlib.contextmanager
def own_random_stream(device: torch.device, seed: int | None = None) -> Iterator[None]:
    """Random draws inside (negatives, noise) leave the run's own streams as they were; from `seed` if given."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        if seed is not None:
            torch.manual_seed(seed)
        yield


def fit(cfg: Config, model: Network, data: Datasets, device: torch.device, run_dir: Path,
        resume_state: dict | None = None, ranks: distributed.Ranks = distributed.ALONE) -> checkpoint.Position:
    """Train `model` for cfg.optim.epochs under its schedule, from `resume_state` if given; `ranks`:
    this process's place in a data-parallel run.

    Returns the final position, whose `step_seconds` is the time in training steps alone.
    """
    model.train()  # a model handed over from load_trained is in eval mode; training moves its running means
    loop = Loop(cfg, model, data, device, run_dir, resume_state, ranks)
    position, epochs = loop.position, cfg.optim.epochs
    step_seconds = position.step_seconds
    with checkpoint.StopRequest() as stop:
        try:
            for epoch in range(position.epoch, epochs + 1):
                resuming = epoch == position.epoch and (position.order is not None or position.step > 0)
                first = position.step if resuming else 0
                order = position.order if resuming else loop.schedule.order(loop.generator)
                order = order.to(device) if order is not None else None
                meter = Meter(first)
                tick = time.perf_counter()
                bar = tqdm(range(first, loop.schedule.steps_per_epoch), desc=f"epoch {epoch}/{epochs}",
                           disable=None if cfg.run.progress and ranks.main else True,  # None: none when piped
                           leave=False)
                for step in bar:
                    if stop.requested:
                        loop.stop(epoch, step, order, step_seconds + time.perf_counter() - tick)
                    meter.add(*loop.train_step(epoch, step, order))
                meter.flush()
                step_seconds += time.perf_counter() - tick
                loop.end_epoch(epoch, meter, step_seconds)
        except RuntimeError as e:
            if ranks.parallel and distributed.is_peer_error(e):  # a peer died or hung
                raise distributed.lost_peer(e, ranks, run_dir) from None
            raise
        finally:
            # a model handed back behaves as built: one backward per step, no input of a step kept
            hint(model, release_graphs=False, repeat_key=None, repeat_slots=1)
    return loop.position
