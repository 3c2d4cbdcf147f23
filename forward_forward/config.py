"""Typed run configuration: one dataclass per part, TOML files and `section.key=value` overrides.

Every field is validated by type when a config is built from user input, so a typo or a bad value
is one clear error that names the field instead of a crash deep inside training.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import sys
import tomllib
import types
import typing
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FFError


@dataclass
class DataConfig:
    # mnist | fashion-mnist | cifar10 | file (data.path) | arrays (given in Python) | aesop (next character
    # on Aesop's fables) | text (the same for the plain-text file at data.path)
    dataset: str = "mnist"
    # dataset = file: a .npz or .pt file with x_train, y_train, x_test, y_test; dataset = text: a text file
    path: str | None = None
    data_dir: str | None = None  # None: $FF_DATA_DIR, else ~/.cache/forward-forward
    download: bool = True  # fetch missing files from the official mirrors
    verify_checksums: bool = True  # compare every file with its published MD5
    # the last N training images are held out for validation; 0: train on all. Text: at most N held-out
    # validation strings (from other documents than the training strings)
    val_size: int = 10000
    # shift each training image by up to N pixels each way, fresh every batch, filling with zeros: the
    # "random crop with padding N" of CIFAR training
    jitter: int = 0
    flip: bool = False  # mirror a random half of every training batch left to right (CIFAR, Fashion-MNIST)
    # turn each training image by its own random angle in [-rotate, rotate] degrees and zoom it by its own
    # factor in [1 - scale, 1 + scale] about its centre (bilinear, filling with zeros), fresh every batch:
    # the small distortions of handwriting that shifts alone do not make
    rotate: float = 0.0
    scale: float = 0.0
    train_limit: int = 0  # use only the first N training images (0: all); for tiny runs
    # text datasets (aesop, text): characters of context a sample holds, the length of a string (its
    # first `window` characters are given, the rest predicted), and the number of training strings
    window: int = 10
    string_length: int = 100
    strings: int = 248


@dataclass
class ModelConfig:
    # (models.MODELS) ff: goodness of positive against negative data | competitive: one channel group
    # per class, no negative data (CwComp) | backprop: the same layers trained end to end by cross-entropy
    kind: str = "ff"
    # Layer type (layers.LAYERS): one name for every hidden layer, or a list with one per layer.
    # dense: fully connected; local: locally connected on the map below (no weight sharing);
    # conv: convolutional (shared weights) on the map below.
    layer: str | list[str] = "dense"
    hidden: list[int] = field(default_factory=lambda: [2000, 2000, 2000, 2000])  # units (local, conv: channels)
    # Geometry of local and conv layers. Each is one number for every layer or a list with one per
    # hidden layer; dense layers ignore their entries.
    kernel: int | list[int] = 0  # k: each location's field is k x k on the map below, all its channels
    stride: int | list[int] = 1  # distance between neighbouring locations on the map below
    padding: int | list[int] = 0  # zeros around the map below (k // 2 with stride 1: same-size grid)
    pool: int | list[int] = 1  # conv: max pooling p x p (stride p) of the pre-activation; 1: none
    # parameter-free residual: a layer whose output has its input's shape adds the (detached) input to
    # its activity (DeeperForward, ICLR 2025)
    residual: bool = False
    # overlapping local updates (Trifecta): each layer's loss also trains the layer below it (one
    # more forward pass of each layer); FF and competitive models
    overlap: bool = False
    activation: str = "relu"  # relu, leaky_relu, gelu, silu, tanh, sigmoid, relu_st (layers.ACTIVATIONS)
    # how each layer's input is normalised (layers.NORMS): rms | l2 (no mean subtraction, paper) |
    # layernorm (mean and variance) | batchnorm (per channel over the batch, running statistics)
    norm: str = "rms"
    # over what: layer (the whole input vector) | position (the channels at each position of a map;
    # a vector input, and the first layer, which reads the data, fall back to layer). batchnorm always
    # normalises per channel.
    norm_scope: str = "layer"
    norm_eps: float = 1e-8  # added to the norm so an all-zero vector stays finite
    init: str = "hinton"  # hinton: W ~ N(0, 1/fan_in), b = 0 | torch: nn.Linear's default
    peer_lambda: float = 0.0  # peer normalisation strength (paper/MATLAB: 0.03); 0 turns it off
    peer_decay: float = 0.9  # decay of each unit's running mean activity
    readout: bool = True  # a linear softmax readout trained alongside on detached activities
    # the readout's input (every prediction layer's activity) recomputed for its weight gradient by a second
    # neutral pass instead of held: a step's memory then stays the same at every depth, for one more forward
    # pass (FF network with labels in the input; models/recomputed_readout.py)
    readout_recompute: bool = False
    # fast weights (Ba et al. 2016, forward_forward/fast_weights.py): each layer adds a decaying
    # outer-product memory of its activity at the earlier positions of a string (text data only)
    fast_weights: bool = False
    fast_decay: float = 0.95  # lambda: the memory of a position fades by this factor per position
    fast_rate: float = 0.5  # eta: the memory's strength
    fast_positions: int = 0  # windows per string the memory spans; 0: data.string_length - data.window
    # the recurrent top-down net (paper §4, forward_forward/recurrence.py): 0 runs the layers once, bottom
    # to top; N > 0 sets the hidden layers by one bottom-up pass, then runs N synchronous iterations in
    # which each layer reads the layers below and above it (above the top one: the label) as they were
    iterations: int = 0
    damping: float = 0.3  # each iteration's activity = damping * the previous one + (1 - damping) * computed
    predict_iterations: list[int] = field(default_factory=lambda: [3, 4, 5])  # whose goodness (or output) predicts
    blackbox: str = "none"  # stage between layers (blackbox.BLACKBOXES): none | quantize | noise | random_nonlinearity
    blackbox_strength: float = 0.0  # quantize: bits; noise: std relative to RMS; random_nonlinearity: amplitude


@dataclass
class ObjectiveConfig:
    goodness: str = "sum_squares"  # sum_/mean_squares, sum_/mean_abs, neg_* (objectives.GOODNESS)
    # what one goodness is computed over (objectives.SCOPES): layer (all of it) | region (each
    # region_size x region_size patch of positions of a map, all channels: its own goodness and loss
    # term) | channels (each of channel_groups groups of channels). A vector layer is one region.
    goodness_scope: str = "layer"
    region_size: int = 1  # goodness_scope = region: patch side in positions (1: every position)
    channel_groups: int = 0  # goodness_scope = channels: the number of groups; 0: one per class
    threshold: float | None = None  # theta; None: number of units (sum) or 1.0 (mean)
    temperature: float = 1.0  # p(positive) = sigmoid((goodness - theta) / temperature)
    loss: str = "logistic"  # logistic | symba | hinge (forward_forward.objectives.LOSSES)
    symba_alpha: float = 4.0  # the SymBa loss's sharpness alpha
    # how the label enters the input (coding.LABEL_CODINGS): pixels | channels | extra, or auto: pixels
    # where the data leaves room for them (MNIST's blank corner, the built-in datasets), else extra
    label_coding: str = "auto"
    label_value: str = "one"  # value of the hot label entry: one (1.0) | max (the image's max)
    neutral_value: float = 0.1  # every label pixel of the neutral ("no label") input
    # negative data (negatives.NEGATIVES): wrong labels random | hard (sampled from the readout) | all,
    # or hybrid images (unsupervised: no label in the input) | generated (the model's own) | any_label
    # (uniform over all classes, the true one included: the article notebook's draw, to measure its cost)
    negatives: str = "random"
    # what hard and generated negatives sample from: softmax (the readout, one pass) | goodness (each
    # candidate label's goodness per unit summed over the prediction layers, one pass per class)
    sample_from: str = "softmax"
    sample_temperature: float = 1.0  # the scores are divided by it before the softmax they are sampled from
    # generated negatives: the model writes `generated_length` characters after each of a batch's real
    # windows, and negatives are drawn from those strings, rewritten every `regenerate_every` steps
    generated_length: int = 90
    regenerate_every: int = 100
    # generated negatives on images (forward_forward/generator.py): the fraction of negatives the generator
    # makes; the rest, and all until its prior is first fitted (after regenerate_every steps), come from
    # generated_base: hybrid (unsupervised FF) | random | hard (the label in the input; a sample is then
    # drawn from its image's own class). The prior: a mixture of prior_components diagonal Gaussians per
    # class (one mixture when unsupervised) over the top layer's code, refitted every regenerate_every
    # steps to the codes of the last prior_codes real images.
    generated_mix: float = 1.0
    generated_base: str = "hybrid"
    prior_components: int = 10
    prior_codes: int = 10000
    hybrid_blur_passes: int = 6  # hybrid negatives: blur passes that make the mask (more: larger regions)
    # test_error by: softmax (one pass) | goodness (every label) | combined (both) | best (lowest val error)
    predict: str = "softmax"
    # combined: readout log-probabilities + goodness_weight * goodness per unit, summed over prediction layers
    goodness_weight: float = 3.0
    predict_layers_from: int = 1  # first hidden layer (0-based) used to predict; 1 skips layer 0


@dataclass
class OptimConfig:
    name: str = "sgd"  # sgd | adam
    lr: float = 0.01  # learning rate of the FF layers
    momentum: float = 0.9  # sgd only
    dampening: float = 0.9  # sgd only; 0.9 = exponentially smoothed gradient, as in the MATLAB code
    weight_decay: float = 0.001  # L2 weight cost of the FF weights (biases are not decayed)
    layer_lr: list[float] = field(default_factory=list)  # one factor on optim.lr per hidden layer; empty: all 1
    readout_lr: float = 0.1  # learning rate of the softmax readout
    readout_weight_decay: float = 0.003  # L2 weight cost of the softmax readout
    schedule: str = "hinton"  # hinton: constant for the first half, then linear to 0 | constant
    batch_size: int = 100  # training images per step
    # >0: images per forward/backward pass; a step sums its micro-batches' gradients, each weighted by its
    # share of the batch, then steps once: the same update, with a micro-batch's activities in memory
    micro_batch: int = 0
    epochs: int = 60  # passes over the training images; the schedule is laid over this length
    phase_steps: int = 0  # >0: "sleep" phases, K steps on positive data only, then K on negative only
    # >0: sleep deprivation: the negative phase stops after N steps, and every later step trains on
    # positive data alone
    negatives_until: int = 0
    generator_lr: float = 0.3  # learning rate of the generator's decoders (generated negatives on images)
    greedy_steps: int = 0  # >0: the article's greedy schedule, N full-chunk steps per layer
    chunk_size: int = 20000  # images per chunk in the greedy schedule
    # greedy: step draws fresh negatives (and jitter, noise) on every step | chunk draws them once per
    # chunk and reuses them on each of its steps, as the article's notebook does
    greedy_negatives: str = "step"


@dataclass
class RunConfig:
    seed: int = 0  # the initial weights, the order of the batches, the negatives and the augmentation
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N
    eval_every: int = 1  # validation error every N epochs (and always after the last)
    eval_batch_size: int = 1000  # images per prediction batch (x10 inputs when predicting by goodness)
    # the ways the end of a run scores validation and test by (softmax, goodness, combined); empty: every
    # way the network has. Goodness costs one pass per class, so a large net may want only the configured one.
    score_ways: list[str] = field(default_factory=list)
    progress: bool = True  # tqdm progress bar
    threads: int = 0  # torch CPU threads; 0 leaves torch's default
    checkpoint_every: int = 1  # write RUN_DIR/checkpoint.pt every N epochs (and after the last)
    deterministic: bool = False  # deterministic kernels: a resumed run then ends bit-identical
    # fp32 | bf16: training matmuls in bfloat16 (autocast); goodness, losses, weights stay fp32 |
    # auto: bf16 where the device computes it natively (CUDA 8.0+, CPUs with AVX512-BF16 or AMX), else fp32
    precision: str = "fp32"
    # conv layers' weights and inputs in channels-last memory order during training (faster on CPUs
    # with oneDNN, measured by benchmarks/conv_speed.py); the same arithmetic in another order
    channels_last: bool = False
    # how the processes of a distributed run (ff train --nproc N, torchrun) share the work: data (each a
    # slice of every batch) | pipeline (each its own consecutive layers, activities sent forward)
    parallel: str = "data"
    # a finished run whose classifier measures a generator's samples at every validation (class coverage,
    # confidence, Frechet distance on its features; generated negatives on images): its run directory
    reference: str = ""
    # modules imported before this config is checked, so the parts they register (goodness, losses,
    # activations, negative strategies, layer types, model kinds) can be named in it: in ff train,
    # sweeps, resumed runs and ff eval alike
    plugins: list[str] = field(default_factory=list)


@dataclass
class LogConfig:
    tensorboard: bool = False  # also write TensorBoard scalars and histograms to RUN_DIR/tensorboard


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


DEFAULTS = Config()
MAX_UNITS = 100_000  # a layer wider than this is a typo, not a model: refuse it before allocating
SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
WAYS = ("softmax", "goodness", "combined")  # the ways a network predicts (objective.predict also has best)
TEXT_DATASETS = ("aesop", "text")  # next-character data: windows of a text
PATH_DATASETS = ("file", "text")  # the datasets read from the file data.path names
CHOICES = {
    "model.norm_scope": ("layer", "position"),
    "model.init": ("hinton", "torch"),
    "objective.label_value": ("one", "max"),
    "objective.predict": (*WAYS, "best"),
    "objective.sample_from": ("softmax", "goodness"),
    "optim.greedy_negatives": ("step", "chunk"),
    "run.precision": ("fp32", "bf16", "auto"),
    "run.parallel": ("data", "pipeline"),
}


def _section_class(name: str) -> type:
    return typing.get_type_hints(Config)[name]


def _check_value(path: str, value, annotation):
    """Return `value` converted to `annotation`, or raise FFError naming `path`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_value(path, value, arg)
            except FFError as e:
                errors.append(e)
        raise errors[0]
    if origin is list:
        (item,) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise FFError(f"{path} must be a list, got {value!r}.")
        return [_check_value(f"{path}[{i}]", v, item) for i, v in enumerate(value)]
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
    name = getattr(annotation, "__name__", str(annotation))
    raise FFError(f"{path} must be of type {name}, got {value!r}.")


def _get(cfg: Config, path: str):
    section, key = path.split(".")
    return getattr(getattr(cfg, section), key)


# `ff probe`'s defaults. Adam's rate for a probe on thousands of unit-RMS features was chosen on the last 10,000
# training images of a hinton-local run (seed 1), probes fitted on the other 50,000: 1e-3 gave 1.69 % error
# there, 3e-4 1.23 %, 1e-4 1.25 %, 3e-5 1.24 % (docs/experiments.md, "A linear probe's learning rate"): a flat
# range 0.02 points wide, one seed, and 1e-4 in its middle, a step from either edge.
PROBE_LR = 1e-4
PROBE_EPOCHS = 20
PROBE_BATCH_SIZE = 100

# (fields, check, what the check demands); the checks are written so that NaN fails them.
RANGES = [
    (("optim.batch_size", "optim.epochs", "optim.chunk_size", "optim.lr", "objective.temperature",
      "data.window", "data.string_length", "data.strings", "objective.sample_temperature",
      "objective.generated_length", "objective.regenerate_every",
      "objective.region_size", "objective.prior_components", "objective.prior_codes", "optim.generator_lr",
      "model.norm_eps", "run.eval_every", "run.checkpoint_every", "run.eval_batch_size"),
     lambda v: v > 0, "positive"),
    (("run.seed", "data.val_size", "data.train_limit", "data.jitter", "model.peer_lambda", "model.blackbox_strength",
      "optim.weight_decay", "optim.readout_lr", "optim.readout_weight_decay", "optim.greedy_steps",
      "optim.phase_steps", "run.threads", "objective.hybrid_blur_passes", "objective.goodness_weight",
      "objective.channel_groups", "model.iterations", "optim.negatives_until", "optim.micro_batch"),
     lambda v: v >= 0, "not negative"),
    (("optim.momentum", "optim.dampening", "model.peer_decay", "model.fast_decay", "model.damping"),
     lambda v: 0 <= v < 1,
     "in [0, 1)"),
    (("model.fast_rate", "model.fast_positions"), lambda v: 0 <= v < math.inf, "finite and not negative"),
    (("objective.threshold", "optim.lr", "objective.temperature", "optim.readout_lr", "objective.goodness_weight",
      "model.norm_eps", "model.peer_lambda", "model.blackbox_strength", "optim.weight_decay",
      "optim.readout_weight_decay", "objective.symba_alpha", "objective.generated_mix", "optim.generator_lr"),
     lambda v: v is None or math.isfinite(v), "a finite number"),
    # sizes that would overflow a C integer, allocate without bound or run without end: refused up front
    (("run.seed",), lambda v: v < 2**63, "below 2**63"),
    (("run.threads",), lambda v: v <= 4096, "at most 4096"),
    (("data.jitter",), lambda v: v <= 256, "at most 256 pixels"),
    (("data.rotate",), lambda v: 0 <= v <= 180, "in [0, 180] degrees"),
    (("data.scale",), lambda v: 0 <= v < 1, "in [0, 1)"),
    (("data.window", "data.string_length", "objective.generated_length"), lambda v: v <= 100_000,
     "at most 100,000 characters"),
    (("data.strings",), lambda v: v <= 10**7, "at most 10,000,000"),
    (("model.iterations",), lambda v: v <= 1000, "at most 1000"),
    (("objective.hybrid_blur_passes", "objective.region_size", "objective.channel_groups",
      "objective.prior_components"), lambda v: v <= 1000, "at most 1000"),
    (("objective.prior_codes",), lambda v: v <= 10**6, "at most 1,000,000"),
    (("optim.epochs", "optim.greedy_steps", "run.eval_every", "run.checkpoint_every"),
     lambda v: v <= 10**7, "at most 10,000,000"),
    (("optim.batch_size", "optim.chunk_size", "run.eval_batch_size", "optim.phase_steps", "optim.negatives_until",
      "optim.micro_batch"),
     lambda v: v <= 10**8, "at most 100,000,000"),
]


def changed_fields(cfg: Config, section: str, fields: typing.Iterable[str]) -> list[str]:
    """The `section.field` paths among `fields` set away from their defaults."""
    default = _section_class(section)()
    return [f"{section}.{f}" for f in fields if getattr(getattr(cfg, section), f) != getattr(default, f)]


def _check_text(cfg: Config) -> None:
    """The text fields shape text data only: refused on other data rather than ignored."""
    if cfg.data.dataset not in TEXT_DATASETS:
        changed = changed_fields(cfg, "data", ("window", "string_length", "strings"))
        if changed:
            raise FFError(f"{', '.join(changed)} shape text data, and data.dataset = {cfg.data.dataset}: leave them "
                          "at their defaults, or use data.dataset = aesop or text.")
    elif cfg.data.string_length <= cfg.data.window:
        raise FFError(f"data.string_length = {cfg.data.string_length} leaves nothing to predict after a window of "
                      f"data.window = {cfg.data.window} characters: make it longer than the window.")


def _check_fast_weights(cfg: Config, strategies: typing.Mapping, trains_on_negatives: bool,
                        has_fast_weights: bool) -> None:
    """Fast weights remember the earlier windows of a string: text data, whole strings in every batch."""
    m = cfg.model
    if not m.fast_weights:
        changed = changed_fields(cfg, "model", ("fast_decay", "fast_rate", "fast_positions"))
        if changed:
            raise FFError(f"{', '.join(changed)} shape fast weights, and model.fast_weights is off: set it to true, "
                          "or leave them at their defaults.")
        return
    positions = cfg.data.string_length - cfg.data.window
    why = []
    if cfg.data.dataset not in TEXT_DATASETS:
        why.append(f"data.dataset = {cfg.data.dataset} (they need text: aesop or text)")
    if not has_fast_weights:
        why.append(f"model.kind = {m.kind} (this kind of network has none)")
    if trains_on_negatives and not strategies[cfg.objective.negatives].in_place:
        fit = " or ".join(name for name, strategy in strategies.items() if strategy.in_place)
        why.append(f"objective.negatives = {cfg.objective.negatives} (negatives must be the real windows, each in "
                   f"its own row, with a wrong next character: {fit})")
    if cfg.optim.phase_steps or cfg.optim.greedy_steps:
        why.append("optim.phase_steps or greedy_steps (a step needs the positives beside the negatives)")
    if m.fast_positions and m.fast_positions != positions:
        why.append(f"model.fast_positions = {m.fast_positions} (strings here have {positions} windows)")
    for path in ("optim.batch_size", "run.eval_batch_size", "optim.micro_batch"):
        if _get(cfg, path) % positions:
            why.append(f"{path} = {_get(cfg, path)} (a multiple of the {positions} windows of a string)")
    if why:
        raise FFError("model.fast_weights cannot work with " + "; ".join(why) + ".")


def _check_micro_batch(cfg: Config, has_peer_loss: bool) -> None:
    """A step split into micro-batches is the whole batch's step only when each sample's loss is its own."""
    if not cfg.optim.micro_batch:
        return
    step, images = ("optim.chunk_size", cfg.optim.chunk_size) if cfg.optim.greedy_steps else \
        ("optim.batch_size", cfg.optim.batch_size)
    if cfg.optim.micro_batch >= images:  # it would change nothing: say so rather than ignore it
        raise FFError(f"optim.micro_batch = {cfg.optim.micro_batch} does not split a step of {step} = {images} images; "
                      f"set it below {images}, or to 0.")
    from .layers.norms import reads_batch  # late: layers import torch

    why = []
    if reads_batch(cfg.model.norm):
        why.append(f"model.norm = {cfg.model.norm} (it normalises over the batch)")
    if cfg.model.peer_lambda and has_peer_loss:  # the backprop twin has none
        why.append("model.peer_lambda > 0 (peer normalisation reads the batch's mean activity)")
    if cfg.run.parallel == "pipeline":
        why.append("run.parallel = pipeline (its stages exchange whole batches)")
    if why:  # what a negative strategy needs of micro-batches, it checks itself (negatives/)
        raise FFError("optim.micro_batch adds up the gradients of a step's parts, which is the step's gradient only "
                      "when each image's loss is its own; here it is not: " + "; ".join(why)
                      + ". Set optim.micro_batch = 0.")


def _check_recurrent(cfg: Config) -> None:
    """The recurrent net's fields are refused when it is off, rather than ignored."""
    changed = changed_fields(cfg, "model", ("damping", "predict_iterations"))
    if not cfg.model.iterations and changed:
        raise FFError(f"{', '.join(changed)} shape the recurrent net, and model.iterations = 0: set it to the number "
                      "of iterations (the paper: 8), or leave them at their defaults.")


def _check_generator(cfg: Config, strategies: typing.Mapping, trains_on_negatives: bool, pairs: bool) -> None:
    """What only a generator of images uses is refused without one, rather than ignored."""
    generates = (trains_on_negatives and strategies[cfg.objective.negatives].makes_data
                 and cfg.data.dataset not in TEXT_DATASETS)
    if not generates:
        changed = changed_fields(cfg, "optim", ("generator_lr",)) + changed_fields(cfg, "run", ("reference",))
        if changed:
            makers = " or ".join(name for name, strategy in strategies.items() if strategy.makes_data)
            raise FFError(f"{', '.join(changed)} shape(s) the generator of images, which only objective.negatives = "
                          f"{makers} on image data builds: leave them at their defaults, or switch.")
    if cfg.optim.negatives_until and (cfg.optim.phase_steps or cfg.optim.greedy_steps):
        raise FFError("optim.negatives_until stops the negatives of interleaved training; with optim.phase_steps or "
                      "greedy_steps set the schedule is another: set one of them to 0.")
    if cfg.optim.negatives_until and pairs:
        raise FFError(f"optim.negatives_until leaves steps of positive data alone, and objective.loss = "
                      f"{cfg.objective.loss} scores pairs of a positive and a negative: use logistic or hinge.")
    if cfg.optim.negatives_until and not trains_on_negatives:
        raise FFError(f"optim.negatives_until stops FF's negative data, and model.kind = {cfg.model.kind} has none: "
                      "set it to 0.")


def _check_negatives_fields(cfg: Config, strategies: typing.Mapping, trains_on_negatives: bool) -> None:
    """A strategy's own objective fields, set away from their defaults under another strategy, are refused."""
    own = strategies[cfg.objective.negatives].reads
    others = {f for s in strategies.values() for f in s.reads} - set(own)
    changed = changed_fields(cfg, "objective", sorted(others))
    if changed and trains_on_negatives:
        users = sorted(name for name, s in strategies.items() if set(s.reads) & {c.split(".")[1] for c in changed})
        raise FFError(f"{', '.join(changed)} shape(s) the negatives of objective.negatives = {' or '.join(users)}, "
                      f"and this run uses {cfg.objective.negatives}: leave them at their defaults, or switch.")


def _check_loss_fields(cfg: Config, losses: typing.Mapping) -> None:
    """A loss's own objective fields, set away from their defaults under another loss, are refused."""
    fields = {name: {field for _, field in loss.options} for name, loss in losses.items()}
    changed = changed_fields(cfg, "objective", sorted(set().union(*fields.values()) - fields[cfg.objective.loss]))
    if changed:
        users = sorted(name for name, own in fields.items() if own & {c.split(".")[1] for c in changed})
        raise FFError(f"{', '.join(changed)} shape(s) objective.loss = {' or '.join(users)}, and this run uses "
                      f"{cfg.objective.loss}: leave them at their defaults, or switch.")


def _check_optimizer_fields(cfg: Config, optimizers: typing.Mapping) -> None:
    """An optimiser's own fields (SGD's momentum), set away from their defaults under another, are refused."""
    others = {f for name, o in optimizers.items() if name != cfg.optim.name for f in o.reads}
    changed = changed_fields(cfg, "optim", sorted(others - set(optimizers[cfg.optim.name].reads)))
    if changed:
        users = sorted(name for name, o in optimizers.items() if set(o.reads) & {c.split(".")[1] for c in changed})
        raise FFError(f"{', '.join(changed)} shape(s) optim.name = {' or '.join(users)}, and this run uses "
                      f"{cfg.optim.name}: leave them at their defaults, or switch.")


@dataclass(frozen=True)
class Owned:
    """Fields that only one setting reads: `owner`, as a message names it, which `reads` says a config has."""

    fields: tuple[str, ...]  # section.field paths
    reads: typing.Callable[[Config], bool]
    owner: str


# Set away from their defaults where their owner is off, these are refused in a new config (they would be
# ignored), and put back to their defaults where an earlier version accepted them and in a sweep's grid
# points that do not read a common setting (`unread`).
OWNED = (
    Owned(("objective.region_size",), lambda c: c.objective.goodness_scope == "region",
          "objective.goodness_scope = region"),
    Owned(("objective.channel_groups",), lambda c: c.objective.goodness_scope == "channels",
          "objective.goodness_scope = channels"),
    Owned(("optim.chunk_size", "optim.greedy_negatives"), lambda c: c.optim.greedy_steps > 0,
          "the greedy schedule (optim.greedy_steps > 0)"),
    Owned(("optim.batch_size",), lambda c: c.optim.greedy_steps == 0,
          "minibatch training (optim.greedy_steps = 0; the greedy schedule steps on optim.chunk_size images)"),
    Owned(("model.kernel", "model.stride", "model.padding", "model.pool"), lambda c: _reads_map(c.model),
          "a layer that reads a map (model.layer = conv or local)"),
    Owned(("optim.dampening",), lambda c: c.optim.momentum != 0, "SGD's momentum (optim.momentum > 0)"),
    Owned(("optim.readout_lr", "optim.readout_weight_decay", "model.readout_recompute"), lambda c: c.model.readout,
          "the readout (model.readout = true)"),
    Owned(("model.peer_decay",), lambda c: c.model.peer_lambda > 0, "peer normalisation (model.peer_lambda > 0)"),
    Owned(("model.blackbox_strength",), lambda c: c.model.blackbox != "none", "a black-box stage (model.blackbox)"),
    Owned(("model.blackbox",), lambda c: len(c.model.hidden) > 1,
          "two hidden layers or more (a stage sits between two)"),
)


def _reads_map(model: ModelConfig) -> bool:
    from .layers import LAYERS  # late: it imports torch

    return any(LAYERS[kind].reads_map for kind in per_layer(model, "layer") if kind in LAYERS)


def _check_kind_fields(cfg: Config, kind) -> None:
    """The fields the model kind never reads (its `ignores`), set away from their defaults, are refused."""
    changed = [path for path in getattr(kind, "ignores", ()) if _get(cfg, path) != _get(DEFAULTS, path)]
    if changed:
        one = len(changed) == 1
        raise FFError(f"{', '.join(changed)} {'is' if one else 'are'} not read by model.kind = {cfg.model.kind}: "
                      f"leave {'it at its default' if one else 'them at their defaults'}, or choose a kind that reads "
                      f"{'it' if one else 'them'}.")


def _check_owned(cfg: Config) -> None:
    """OWNED's fields, set away from their defaults where their owner is off, are refused."""
    for owned in OWNED:
        if owned.reads(cfg):
            continue
        changed = [path for path in owned.fields if _get(cfg, path) != _get(DEFAULTS, path)]
        if changed:
            one = len(changed) == 1
            raise FFError(f"{', '.join(changed)} {'is' if one else 'are'} read only with {owned.owner}, which this run "
                          f"does not use: leave {'it at its default' if one else 'them at their defaults'}, "
                          "or use that.")


def _validate(cfg: Config) -> Config:
    """Range and choice checks that types alone cannot express; each registry entry checks its own fields."""
    # late: these import torch, and config must stay light
    from .blackbox import BLACKBOXES
    from .coding import LABEL_CODINGS
    from .data import DATASETS
    from .layers import ACTIVATIONS, BOUNDED, LAYERS, NORMS
    from .models import MODELS, model_class
    from .negatives import NEGATIVES
    from .objectives import GOODNESS, LOSSES, SCOPES
    from .training.optim import OPTIMIZERS, SCHEDULES

    registries: dict[str, typing.Mapping[str, object]] = {
        "data.dataset": DATASETS,
        "model.kind": MODELS, "model.activation": ACTIVATIONS, "model.blackbox": BLACKBOXES, "model.norm": NORMS,
        "objective.goodness_scope": SCOPES, "objective.goodness": GOODNESS, "objective.loss": LOSSES,
        "objective.negatives": NEGATIVES, "objective.label_coding": LABEL_CODINGS,
        "optim.name": OPTIMIZERS, "optim.schedule": SCHEDULES}
    choices_of = {**CHOICES, **{k: tuple(v) for k, v in registries.items()}}
    choices_of["objective.label_coding"] += ("auto",)
    for path, choices in choices_of.items():
        if _get(cfg, path) not in choices:
            raise FFError(f"{path} must be one of {', '.join(choices)}; got {_get(cfg, path)!r}.")
    for paths, check, demand in RANGES:
        for path in paths:
            if not check(_get(cfg, path)):
                raise FFError(f"{path} must be {demand}; got {_get(cfg, path)!r}.")
    if not cfg.model.hidden or any(not 0 < n <= MAX_UNITS for n in cfg.model.hidden):
        raise FFError(
            f"model.hidden must list at least one layer size between 1 and {MAX_UNITS}; got {cfg.model.hidden!r}."
        )
    _check_layers(cfg.model, LAYERS)
    BLACKBOXES[cfg.model.blackbox].check(cfg.model.blackbox_strength)
    kind = model_class(cfg)
    reads_from = "objective.predict_layers_from" not in getattr(kind, "ignores", ())
    if reads_from and not 0 <= cfg.objective.predict_layers_from < len(cfg.model.hidden):
        raise FFError(
            f"objective.predict_layers_from must be a layer index below {len(cfg.model.hidden)}; "
            f"got {cfg.objective.predict_layers_from!r}."
        )
    if kind.trains_on_negatives:  # any such kind, a plugin's too, gets its strategy's own checks
        NEGATIVES[cfg.objective.negatives].check(cfg)
    kind.check(cfg)
    _warn_if_unreachable(cfg, GOODNESS, LOSSES, BOUNDED)
    if cfg.optim.layer_lr and (len(cfg.optim.layer_lr) != len(cfg.model.hidden)
                               or not all(0 < f < math.inf for f in cfg.optim.layer_lr)):
        raise FFError(f"optim.layer_lr must give one positive factor per hidden layer ({len(cfg.model.hidden)}); "
                      f"got {cfg.optim.layer_lr!r}.")
    if any(w not in WAYS for w in cfg.run.score_ways):
        raise FFError(f"run.score_ways may list {', '.join(WAYS)}; got {cfg.run.score_ways!r}.")
    if cfg.run.score_ways and cfg.objective.predict not in (*cfg.run.score_ways, "best"):
        raise FFError(f"objective.predict = {cfg.objective.predict} must be among run.score_ways "
                      f"{cfg.run.score_ways}: add it.")
    _check_text(cfg)
    _check_negatives_fields(cfg, NEGATIVES, kind.trains_on_negatives)
    _check_loss_fields(cfg, LOSSES)
    _check_optimizer_fields(cfg, OPTIMIZERS)
    _check_owned(cfg)
    _check_kind_fields(cfg, kind)
    _check_fast_weights(cfg, NEGATIVES, kind.trains_on_negatives, kind.has_fast_weights)
    if cfg.model.readout_recompute and not getattr(kind, "recomputes_readout", False):
        built = f"model.kind = {cfg.model.kind}" + (" with model.iterations > 0" if cfg.model.iterations else "")
        raise FFError(f"model.readout_recompute is read by the feed-forward FF network (model.kind = ff, "
                      f"model.iterations = 0), and this run has {built}: set it to false.")
    _check_micro_batch(cfg, kind.has_peer_loss)
    _check_recurrent(cfg)
    if cfg.objective.predict == "best" and cfg.data.val_size == 0:
        raise FFError("objective.predict = best chooses on validation images, and data.val_size = 0 leaves none: "
                      "choose softmax, goodness or combined.")
    if cfg.optim.phase_steps and LOSSES[cfg.objective.loss].pairs:
        raise FFError(f"optim.phase_steps needs a loss that scores each side alone; {cfg.objective.loss} pairs them: "
                      "use logistic.")
    _check_generator(cfg, NEGATIVES, kind.trains_on_negatives, LOSSES[cfg.objective.loss].pairs)
    if cfg.optim.phase_steps and cfg.optim.greedy_steps:
        raise FFError("optim.phase_steps and optim.greedy_steps are two different schedules: set one to 0.")
    if cfg.model.overlap and len(cfg.model.hidden) < 2:
        raise FFError("model.overlap trains each layer also by the loss of the layer above, and there is one "
                      "hidden layer: add a layer, or set model.overlap = false.")
    if cfg.model.norm_scope == "position" and cfg.model.norm == "batchnorm":
        raise FFError("model.norm = batchnorm always normalises each channel over the batch, so model.norm_scope "
                      "= position would change nothing: set norm_scope = layer, or another norm.")
    if cfg.run.channels_last and "conv" not in per_layer(cfg.model, "layer"):
        raise FFError("run.channels_last reorders conv layers' memory, and this model has none: set it to false.")
    if cfg.model.overlap and cfg.model.blackbox != "none":
        raise FFError("model.overlap trains a layer through the one above it, and a black-box stage between them "
                      "passes no derivative: set model.blackbox = none, or model.overlap = false.")
    if cfg.data.path is not None and cfg.data.dataset not in PATH_DATASETS:
        names = " or ".join(PATH_DATASETS)
        raise FFError(f"data.path is read only with data.dataset = {names}, and the dataset is "
                      f"{cfg.data.dataset}: set data.dataset = {names}, or drop data.path.")
    return cfg


def _warn_if_unreachable(cfg: Config, goodness, loss, bounded) -> None:
    """A bounded activation cannot reach a threshold of 1 a unit: a thresholded loss trains to chance."""
    o = cfg.objective
    if (cfg.model.activation in bounded and o.threshold is None and loss[o.loss].thresholded
            and goodness[o.goodness].unit_activity):
        warnings.warn(f"model.activation = {cfg.model.activation} keeps every unit below 1, so goodness "
                      f"{o.goodness} never reaches its default threshold and objective.loss = {o.loss} trains to "
                      "chance: set objective.threshold lower (e.g. a quarter of the units) or use loss symba.",
                      UserWarning, stacklevel=5)


PER_LAYER = ("layer", "kernel", "stride", "padding", "pool")  # model fields with one value per layer
GEOMETRY = PER_LAYER[1:]  # read by local and conv layers only


def per_layer(model: ModelConfig, name: str) -> list:
    """`model.<name>` as one value per hidden layer (a single value applies to every layer)."""
    value = getattr(model, name)
    return list(value) if isinstance(value, list) else [value] * len(model.hidden)


def _check_layers(model: ModelConfig, layer_types: dict) -> None:
    kinds = per_layer(model, "layer")
    # geometry only matters with map layers (dense configs of earlier versions may carry stale lists)
    maps = any(layer_types[kind].reads_map for kind in kinds if kind in layer_types)
    for name in PER_LAYER if maps else ("layer",):
        values = per_layer(model, name)
        if len(values) != len(model.hidden):
            raise FFError(f"model.{name} lists {len(values)} values for {len(model.hidden)} hidden layers; "
                          "give one value, or one per layer.")
    for index, kind in enumerate(kinds):
        if kind not in layer_types:
            raise FFError(f"model.layer must be one of {', '.join(layer_types)} for every layer; got {kind!r}.")
        flat = [k for k in kinds[:index] if not layer_types[k].reads_map]
        if layer_types[kind].reads_map and flat:
            raise FFError(f"model.layer puts a {kind} layer after a {flat[0]} one ({kinds}); a {kind} layer needs the "
                          f"map of the layer below: put {kind} layers first.")
        layer_types[kind].check(model, index)


def _import_plugins(modules: list[str]) -> None:
    if modules and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # `ff` runs from its own bin folder; a plugin beside the user's files counts
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as e:  # a plugin's own error, whatever it is, is the user's to fix
            raise FFError(f"run.plugins: importing {name!r} failed ({type(e).__name__}: {e}); it must be a module "
                          "on the Python path (the current folder counts).") from None


RENAMED = {"local_kernel": "kernel", "local_stride": "stride", "local_padding": "padding"}  # old name: new


def _migrate(cfg: Config, overrides: dict) -> dict:
    """Configs of earlier versions keep working, with a one-line notice: model.local_* are now the
    geometry of every map layer (model.kernel, stride, padding), and before `model.layer` existed a
    non-zero model.local_kernel chose local layers."""
    model = overrides.get("model")
    if not isinstance(model, dict) or not set(RENAMED) & set(model):
        return overrides
    model = dict(model)
    if "layer" not in model and "local_kernel" in model and isinstance(cfg.model.layer, str):
        kernel = model["local_kernel"]
        wanted = "dense" if kernel == 0 or kernel == [] else "local"
        if wanted != cfg.model.layer:
            warnings.warn(f"model.local_kernel = {kernel} without model.layer is read as model.layer = {wanted!r}; "
                          f"this reading is deprecated: add model.layer = {wanted!r}.", FutureWarning, stacklevel=3)
            model["layer"] = wanted
    for old, new in RENAMED.items():
        if old in model:
            if new in model:
                raise FFError(f"model.{old} is the old name of model.{new}, and both are given: keep model.{new}.")
            warnings.warn(f"model.{old} is now model.{new}; the old name is read as the new one.",
                          FutureWarning, stacklevel=3)
            model[new] = model.pop(old)
    return {**overrides, "model": model}


def merge(cfg: Config, overrides: dict) -> Config:
    """Return a copy of `cfg` with nested `overrides` ({section: {key: value}}) applied and checked. The fields
    `cfg` holds that the result's model kind never reads (its `ignores`) go back to their defaults, so an FF
    config is one `model.kind = backprop` away from its twin; given in `overrides`, they are refused."""
    data = _combine(cfg, overrides)
    given = {f"{section}.{key}" for section, values in overrides.items() if isinstance(values, dict)
             for key in values}
    _reset(data, _ignored_by_kind(_config_of(data)) - given)
    return _build(data)


def _ignored_by_kind(cfg: Config) -> set[str]:
    """The fields `cfg`'s model kind never reads; none where it names no kind (`_build` says what is wrong)."""
    from .models import model_class  # late: it imports torch

    try:
        return set(getattr(model_class(cfg), "ignores", ()))
    except FFError:
        return set()


def merge_where_read(cfg: Config, overrides: dict, keep: typing.Collection[str]) -> tuple[Config, list[str]]:
    """`merge`, with every field that the result's own settings do not read put back to its default, but
    those in `keep` (refused as `merge` refuses them), and the paths so reset. A sweep's common settings then
    apply at the grid points that read them: --set model.peer_decay=0.8 --grid model.peer_lambda=0,0.03."""
    data, reset = unread(_combine(cfg, overrides), keep)
    return _build(data), reset


def _combine(cfg: Config, overrides: dict) -> dict:
    """`cfg` as a dict with `overrides` applied, each value converted to its field's type (or refused)."""
    if not isinstance(overrides, dict):
        raise FFError(f"a config must be a table of sections, got {overrides!r}.")
    overrides = _migrate(cfg, overrides)
    data = cfg.to_dict()
    for section, values in overrides.items():
        if section not in SECTIONS:
            raise FFError(f"unknown config section {section!r}; known: {', '.join(SECTIONS)}.")
        if not isinstance(values, dict):
            raise FFError(f"config section {section!r} must be a table of keys, got {values!r}.")
        hints = typing.get_type_hints(_section_class(section))
        for key, value in values.items():
            if key not in hints:
                raise FFError(
                    f"unknown config field {section}.{key}; known in [{section}]: {', '.join(hints)}."
                )
            data[section][key] = _check_value(f"{section}.{key}", value, hints[key])
    # before anything looks up a registry: a plugin's model kind says what it ignores, its entries are checked
    _import_plugins(data["run"]["plugins"])
    return data


def _config_of(data: dict) -> Config:
    """The Config of a whole config dict of converted values (`_combine`'s), not yet checked."""
    return Config(**{name: _section_class(name)(**data[name]) for name in SECTIONS})


def _build(data: dict) -> Config:
    """A checked Config from a whole config dict of converted values (`_combine`'s)."""
    return _validate(_config_of(data))


def _reset(data: dict, paths: typing.Iterable[str]) -> list[str]:
    """`paths` put back to their defaults in `data` (a config dict, whole or in part; changed in place)
    where it holds another value, and the paths so reset."""
    reset = []
    for path in sorted(paths):
        section, name = path.split(".")
        default = getattr(_section_class(section)(), name)
        if name in data.get(section, {}) and data[section][name] != default:
            data[section][name] = default
            reset.append(path)
    return reset


def unread(data: dict, keep: typing.Collection[str] = ()) -> tuple[dict, list[str]]:
    """`data`, a config as {section: {field: value}} (whole or in part), with the fields its own settings
    never read put back to their defaults, but those in `keep`, and the paths so reset: an optimiser's
    fields under another (SGD's momentum under Adam), a loss's options under another, and OWNED's."""
    from .objectives import LOSSES  # late: they import torch, and config must stay light
    from .training.optim import OPTIMIZERS

    if not isinstance(data, dict) or not all(isinstance(data.get(name, {}), dict) for name in SECTIONS):
        return data, []  # merge says what is wrong with it
    plugins = data.get("run", {}).get("plugins", [])
    if isinstance(plugins, list) and all(isinstance(name, str) for name in plugins):
        _import_plugins(plugins)  # a plugin's optimiser, loss or layer type says what it reads
    optim, objective = data.get("optim", {}), data.get("objective", {})
    read = {f"optim.{f}" for f in getattr(OPTIMIZERS.get(optim.get("name", OptimConfig.name)), "reads", ())}
    read |= {f"objective.{f}" for _, f in getattr(LOSSES.get(objective.get("loss", ObjectiveConfig.loss)),
                                                   "options", ())}
    paths = ({f"optim.{f}" for o in OPTIMIZERS.values() for f in o.reads}
             | {f"objective.{f}" for loss in LOSSES.values() for _, f in loss.options}) - read
    try:  # OWNED's owners, read off the config as it stands (it is checked when it is built)
        cfg = Config(**{name: _section_class(name)(**{**dataclasses.asdict(_section_class(name)()),
                                                       **data.get(name, {})}) for name in SECTIONS})
        paths |= {path for owned in OWNED if not owned.reads(cfg) for path in owned.fields}
        paths |= _ignored_by_kind(cfg)
    except (TypeError, ValueError):  # an unknown field or a value of the wrong type: merge names it
        pass
    sections = {name: dict(values) if name in SECTIONS else values for name, values in data.items()}
    return sections, _reset(sections, paths - set(keep))


def as_trained(data: dict) -> dict:
    """A saved run's config with the fields its own settings never read put back to their defaults
    (`unread`). Earlier versions accepted, and ignored, SGD's momentum under Adam, SymBa's alpha under
    another loss and OWNED's fields without their owner; such a run trained as if they were at their
    defaults, and now loads so."""
    return unread(data)[0]


def from_dict(data: dict) -> Config:
    """Build a validated config from a plain dict such as a run directory's config.json."""
    return merge(Config(), data)


def parse_override(text: str) -> dict:
    """Turn `section.key=value` into {section: {key: value}}; the value is read as TOML, else as a string."""
    if "=" not in text:
        raise FFError(f"--set expects section.key=value, got {text!r}.")
    path, raw = text.split("=", 1)
    parts = path.strip().split(".")
    if len(parts) != 2 or not all(parts):
        raise FFError(f"--set expects section.key=value (e.g. optim.lr=0.02), got {text!r}.")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return {parts[0]: {parts[1]: value}}


def parse_overrides(texts: list[str]) -> dict:
    """Several `section.key=value` into one nested dict, so that fields that depend on each other
    (data.val_size = 0 with objective.predict) are checked together, not one at a time."""
    out: dict = {}
    for text in texts:
        for section, values in parse_override(text).items():
            out.setdefault(section, {}).update(values)
    return out


def to_toml(cfg: Config) -> str:
    """`cfg` as a TOML file that `--config` reads back to the same config (fields that are None are left out)."""

    def value(v) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return json.dumps(v) if isinstance(v, str) else repr(v)

    parts = []
    for section, values in cfg.to_dict().items():
        parts.append(f"[{section}]")
        parts += [f"{key} = {value(v)}" for key, v in values.items() if v is not None]
        parts.append("")
    return "\n".join(parts)


def read_json(path: str | Path, what: str) -> dict:
    """A JSON file that must hold a table (a run's config or summary), or one clear error: missing,
    not UTF-8, not JSON, not a table."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FFError(f"{path} does not exist.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FFError(f"{path} is not a valid {what} ({type(e).__name__}: {str(e)[:120]}); it was not read.") from None
    if not isinstance(data, dict):
        raise FFError(f"{path} is not a valid {what}: it holds a {type(data).__name__}, not a table.")
    return data


def load_file(path: str | Path) -> dict:
    """Overrides from a TOML file, or from a run's config.json (with its "preset" entry, which ff train reads)."""
    path = Path(path)
    return read_json(path, "run config") if path.suffix == ".json" else load_toml(path)


def load_toml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise FFError(f"config file {path} does not exist.") from None
    except tomllib.TOMLDecodeError as e:
        raise FFError(f"config file {path} is not valid TOML ({e}); fix the line it names.") from None
