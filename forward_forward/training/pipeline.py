"""Layer-pipelined training on torch.distributed: each rank owns consecutive layers.

FF needs nothing back from the layers above, so a network splits into stages that only send
activities forward. Rank r of N owns layers [r L / N, (r + 1) L / N). On every step, rank 0 makes
the positive and negative inputs of the batch and, for the readout, its neutral input; each rank
runs its layers on what the rank below sent, trains them on their own losses, and sends the
detached activities on (`torch.distributed` point-to-point; sends do not wait, so rank r works on
step t while rank r + 1 works on step t - 1). The last rank also trains the readout, on the
normalised activities of the prediction layers that each stage adds to the message. Every rank
draws the same data order, so labels never travel. A stage computes its part of step t with its
weights before step t's update, as one process would: the run takes exactly the steps of one
process (tests/test_distributed.py).

At the end of each epoch the ranks send their layers to rank 0, which validates, scores and writes
the run directory as one process would; each rank also checkpoints its own optimiser state (rank r
> 0 in RUN_DIR/stage<r>/), so a run resumes from its last epoch.

Hard negatives are refused: they are sampled from the readout at the top before the bottom can make
them, a message backwards. So are the greedy schedule, sleep phases and overlapping updates, which
need layers of two stages at once, and model kinds other than ff.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..config import Config
from ..errors import FFError
from ..models import FFNetwork, model_class
from ..models.base import readout_features
from ..negatives import NEGATIVES
from .distributed import Ranks

IN_FLIGHT = 4  # sends a stage may have outstanding before it waits for the oldest


def check(cfg: Config, layers: int, ranks: Ranks) -> None:
    """One clear error for a run the pipeline cannot take."""
    why = []
    if not getattr(model_class(cfg), "pipelines", False):  # a kind whose step's pieces a stage can run says so
        why.append(f"model.kind = {cfg.model.kind} (the pipeline trains ff networks)")
    strategy = NEGATIVES[cfg.objective.negatives]
    if strategy.uses_network or strategy.needs_probs:
        why.append(f"objective.negatives = {cfg.objective.negatives} (sampled from the whole network's predictions "
                   "before the bottom stage can make them; use random or all)")
    if cfg.model.fast_weights:
        why.append("model.fast_weights (a stage would need the positives' memory of every layer it runs)")
    if cfg.optim.greedy_steps or cfg.optim.phase_steps or cfg.optim.negatives_until:
        why.append("optim.greedy_steps, phase_steps or negatives_until (the pipeline runs the plain minibatch "
                   "schedule)")
    if cfg.model.overlap:
        why.append("model.overlap (a stage's first layer would train a layer of the stage below)")
    if cfg.model.readout_recompute:
        why.append("model.readout_recompute (the last stage receives every prediction layer's features from the "
                   "stages below, so there is no pass to recompute)")
    if layers < ranks.world:
        why.append(f"{layers} hidden layers for {ranks.world} processes (each needs at least one)")
    if why:
        raise FFError(f"run.parallel = pipeline cannot take {'; '.join(why)}: change it, or use run.parallel = data.")


class Stage:
    """This rank's layers of the network, and the messages to and from its neighbours."""

    def __init__(self, model: FFNetwork, ranks: Ranks, run_dir: Path):
        self.model, self.ranks = model, ranks
        count, world = len(model.stack), ranks.world
        self.bounds = [(r * count // world, (r + 1) * count // world) for r in range(world)]
        self.start, self.stop = self.bounds[ranks.rank]
        self.first, self.last = ranks.rank == 0, ranks.rank == world - 1
        self.checkpoint_dir = run_dir if self.first else run_dir / f"stage{ranks.rank}"
        self.pending: list[tuple[dist.Work, list[torch.Tensor]]] = []

    # ---- one training step -------------------------------------------------------------------
    def step(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict]:
        """This stage's named losses for one batch, as FFNetwork.forward gives them for its layers."""
        model = self.model
        wants_readout = model.readout is not None
        if self.first:
            neutral = model.unlabelled(images) if wants_readout else None
            pos, neg = model.negatives.make(images, labels, model.coding, None, model)
            x, batch = torch.cat([pos, neg]), pos.shape[0]
            features = images.new_zeros(batch, 0)
        else:
            batch = labels.shape[0]
            x, neutral, features = self._receive(batch)
        out = model.stack(x, start=self.start, upto=self.stop)
        losses, stats = {}, {}
        for i in range(self.start, self.stop):
            z, y = out.pre[i - self.start], out.act[i - self.start]
            losses[f"layer{i}"], stats[f"layer{i}"] = model.layer_objective(i, z, y, batch)
        neutral_acts: list[torch.Tensor] = []
        if neutral is not None:
            with torch.no_grad():
                neutral_acts = model.stack(neutral, start=self.start, upto=self.stop).act
                mine = [a for i, a in enumerate(neutral_acts, self.start) if i >= model.predict_from]
                if mine:
                    features = torch.cat([features, readout_features(mine, model.norm, model.norm_eps)], 1)
        if not self.last:
            ahead = model.stack.stages[self.stop - 1]  # the stage between this rank's last layer and the next
            message = [ahead(out.act[-1]).detach()]
            if neutral is not None:
                message.append(ahead(neutral_acts[-1]).detach())
                if features.shape[1]:  # nothing to send while no prediction layer has run
                    message.append(features)
            self._send(message)
        elif model.readout is not None:
            logits = model.readout(features).float()
            losses["readout"] = F.cross_entropy(logits, labels)
            stats["readout"] = {"acc": (logits.detach().argmax(1) == labels).float().mean()}
        return losses, stats

    def _shapes(self, batch: int) -> list[tuple[int, ...]]:
        """What the rank below sends for a batch: activities of positives and negatives, then (with a
        readout) the neutral input's activities and the readout features gathered so far."""
        model = self.model
        below = model.stack.layers[self.start - 1]
        negatives = batch * model.negatives.per_image
        shapes: list[tuple[int, ...]] = [(batch + negatives, below.out_features)]
        if model.readout is not None:
            shapes.append((batch, below.out_features))
            width = sum(model.stack.units[model.predict_from : self.start])
            if width:
                shapes.append((batch, width))
        return shapes

    def _receive(self, batch: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        device = self.model.stack.layers[0].mean_activity.device
        got = [torch.empty(shape, device=device) for shape in self._shapes(batch)]
        for tensor in got:
            dist.recv(tensor, src=self.ranks.rank - 1)
        neutral = got[1] if len(got) > 1 else None
        return got[0], neutral, got[2] if len(got) > 2 else got[0].new_zeros(batch, 0)

    def _send(self, tensors: list[torch.Tensor]) -> None:
        tensors = [t.contiguous() for t in tensors]
        for tensor in tensors:
            self.pending.append((cast(dist.Work, dist.isend(tensor, dst=self.ranks.rank + 1)), tensors))
        while len(self.pending) > IN_FLIGHT * len(tensors):
            self.pending.pop(0)[0].wait()

    def flush(self) -> None:
        """Wait until every send has been received."""
        while self.pending:
            self.pending.pop(0)[0].wait()

    def agree(self, epoch: int, run_dir: Path) -> None:
        """One clear error, on every rank, when the stages would resume from different epochs."""
        device = self.model.stack.layers[0].mean_activity.device  # NCCL reduces GPU tensors only
        low, high = torch.tensor([epoch], device=device), torch.tensor([epoch], device=device)
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
        if int(low) != int(high):
            raise FFError(f"the stages of {run_dir} hold checkpoints of different epochs ({int(low)} to {int(high)}): "
                          f"it was stopped between two stages' saves, or is resumed with another number of "
                          f"processes than the {self.ranks.world} it was trained with; train it again.")

    # ---- the whole network on rank 0 ----------------------------------------------------------
    def _tensors(self, rank: int) -> list[torch.Tensor]:
        """The parameters and buffers that rank `rank` trains, in a fixed order."""
        start, stop = self.bounds[rank]
        modules = list(self.model.stack.layers[start:stop])
        if rank == self.ranks.world - 1 and self.model.readout is not None:
            modules.append(self.model.readout)
        return [t for module in modules for t in module.state_dict().values()]

    def gather(self) -> None:
        """Rank 0's copy of the network made whole: every rank sends it the layers it trains."""
        self.flush()
        if not self.first:
            for tensor in self._tensors(self.ranks.rank):
                dist.send(tensor.contiguous(), dst=0)
            return
        for rank in range(1, self.ranks.world):
            for tensor in self._tensors(rank):
                received = torch.empty(tensor.shape, dtype=tensor.dtype, device=tensor.device)
                dist.recv(received, src=rank)
                tensor.copy_(received)  # into the parameter's own storage (state_dict shares it)
