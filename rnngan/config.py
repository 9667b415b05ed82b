"""Params: read once from params.yaml into frozen, typed dataclasses, one per section.

Every stage calls `load_params()` first, so a bad value stops the pipeline before any work.
Errors name the key (dotted, as `dvc exp run -S` spells it) and the allowed values.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnngan.errors import UserError

CELLS = ("rnn", "lstm", "gru", "sru")            # keys of rnngan.models.cells.CELLS
KINDS = CELLS + ("dcgan",)                        # kinds of G and D: the cells plus the feed-forward DCGAN baseline
VARIANTS = KINDS                                  # the pure variants; a variant may also be a pair <G>+<D>
PAIR = "+"
READOUTS = ("last", "mean")                       # the recurrent D's head reads its last state | the mean over rows
REAL_AUGMENT = ("step", "cached")                 # the real side of the augmentation: redrawn every step | cached
DATASETS = ("synthfaces", "celeba", "lsun_bedroom", "cityscapes")   # keys of rnngan.data.sources.SOURCES
# The preprocessing protocols each dataset can take (docs/datasets.md); the first is what
# data.crop=auto means. rnngan.data.preprocess implements them.
DATASET_CROPS = {"synthfaces": ("landmarks", "center"), "celeba": ("center", "landmarks", "wild"),
                 "lsun_bedroom": ("center",), "cityscapes": ("halves", "center")}
CROPS = ("auto", "center", "landmarks", "wild", "halves")
FEATURES = ("randinit", "pixels", "inception")    # keys of rnngan.metrics.features.EXTRACTORS
LOSSES = ("ns", "hinge", "rpgan")                 # keys of rnngan.losses.LOSSES
D_NORMS = ("batch", "spectral", "none")           # the discriminator's normalisation (rnngan.models.networks)
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "bf16", "fp32")


class ParamsError(UserError, ValueError):
    """A params.yaml value that the pipeline cannot run with."""


class VariantError(UserError, ValueError):
    """A variant name that names no generator and discriminator."""


def split_variant(name: str) -> tuple[str, str]:
    """(generator kind, discriminator kind) of a variant: `lstm` -> (lstm, lstm), `lstm+dcgan` ->
    (lstm, dcgan): the LSTM generator against DCGAN's discriminator. Raises VariantError naming
    the allowed spellings."""
    parts = str(name).split(PAIR)
    if len(parts) == 1 and name in KINDS:
        return name, name
    if len(parts) == 2 and all(p in KINDS for p in parts) and parts[0] != parts[1]:
        return parts[0], parts[1]
    raise VariantError(f"unknown model variant {name!r}; allowed: {', '.join(KINDS)}, or a generator and a "
                       f"discriminator of different kinds as <G>{PAIR}<D> (e.g. lstm{PAIR}dcgan)")


def is_variant(name: Any) -> bool:
    try:
        split_variant(name)
    except VariantError:
        return False
    return True


# Each field may carry a check in its metadata: a callable returning an error text or None.
def _check(fn, default=dataclasses.MISSING, **kw):
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"check": fn}, **kw)
    return field(default=default, metadata={"check": fn}, **kw)


def positive(v):
    return None if v > 0 else "must be > 0"


def non_negative(v):
    return None if v >= 0 else "must be >= 0"


def unit(v):
    return None if 0 <= v <= 1 else "must be between 0 and 1"


def below_one(v):
    return None if 0 <= v < 1 else "must be >= 0 and < 1"


def one_of(*allowed):
    def check(v):
        return None if v in allowed else f"must be one of: {', '.join(map(str, allowed))}"
    return check


@dataclass(frozen=True)
class DataParams:
    dataset: str = _check(one_of(*DATASETS), "synthfaces")
    source: str | None = None
    image_size: int = _check(lambda v: None if v in (8, 16, 32, 64, 128, 256)
                             else "must be one of: 8, 16, 32, 64, 128, 256", 32)
    count: int = _check(positive, 10000)
    limit: int | None = _check(lambda v: None if v is None or v > 0 else "must be > 0 or null", None)
    crop: str = _check(one_of(*CROPS), "auto")
    verify: bool = True
    workers: int = _check(non_negative, 0)


@dataclass(frozen=True)
class AugmentParams:
    copies: int = _check(positive, 1)
    flip: float = _check(unit, 0.5)
    brightness: float = _check(below_one, 0.1)
    contrast: float = _check(below_one, 0.1)
    saturation: float = _check(below_one, 0.1)
    hue: float = _check(lambda v: None if 0 <= v <= 0.5 else "must be between 0 and 0.5", 0.0)
    scale: float = _check(below_one, 0.0)
    crop: float = _check(below_one, 0.0)
    blur: float = _check(unit, 0.0)
    lens: float = _check(lambda v: None if 0 <= v <= 0.5 else "must be between 0 and 0.5", 0.0)
    # The probability that an image, real or generated (in training, before D), goes through the
    # policy at all: one function for both sides (rnngan/data/augment.py).
    p: float = _check(unit, 0.5)
    # The real side: step (redrawn through the same function at every training step, like the
    # fakes) or cached (`copies` fixed draws per image written by the augment stage, sampled among)
    real: str = _check(one_of(*REAL_AUGMENT), "step")


@dataclass(frozen=True)
class ModelParams:
    cell: str = _check(lambda v: None if is_variant(v) else
                       f"must be one of: {', '.join(VARIANTS)}, or a pair <G>{PAIR}<D> such as lstm{PAIR}dcgan", "lstm")
    variants: list[str] = _check(
        lambda v: (None if v and all(is_variant(c) for c in v) and len(set(v)) == len(v)
                   else f"must be a non-empty list of distinct variants from: {', '.join(VARIANTS)}, or pairs "
                        f"<G>{PAIR}<D> of two of them (lstm{PAIR}dcgan: the LSTM generator against DCGAN's "
                        f"discriminator)"),
        list(VARIANTS))
    hidden: int = _check(positive, 128)
    timesteps: int = _check(positive, 4)
    z_dim: int = _check(positive, 64)
    nf: int = _check(positive, 32)
    feedback: bool = True
    match_params: bool = False
    # Generator knobs (the recipe screen, docs/recipe.md): the recurrent decoder reads z at every
    # step (GRAN); self-modulated BatchNorm in every generator (Chen et al. 2019)
    z_decoder: bool = True
    modulation: bool = False
    # spectral normalisation of every weight of every generator, its cell's too (SAGAN, BigGAN)
    g_spectral: bool = False
    # Discriminator knobs, the same for every variant: minibatch-stddev group in both D's (0 =
    # off); what the recurrent D's head reads
    mbstd_group: int = _check(non_negative, 4)
    d_readout: str = _check(one_of(*READOUTS), "last")


@dataclass(frozen=True)
class TrainParams:
    steps: int = _check(positive, 650)
    batch_size: int = _check(positive, 64)
    lr: float = _check(positive, 2e-4)
    beta1: float = _check(below_one, 0.5)
    beta2: float = _check(below_one, 0.999)
    lr_d: float | None = _check(lambda v: None if v is None or v > 0 else "must be > 0 or null", None)
    lr_g: float | None = _check(lambda v: None if v is None or v > 0 else "must be > 0 or null", None)
    g_steps: int = _check(positive, 1)          # G updates per D update
    mode_seeking: float = _check(non_negative, 0.0)   # weight of MSGAN's mode-seeking term in G's loss (0 = off)
    # The objective (rnngan/losses.py) and D's regularisers: R1 on real and R2 on generated
    # images (gamma of each; 0 = off), applied every reg_every steps with that gain.
    loss: str = _check(one_of(*LOSSES), "rpgan")
    r1: float = _check(non_negative, 0.1)
    r2: float = _check(non_negative, 0.1)
    reg_every: int = _check(positive, 4)
    d_norm: str = _check(one_of(*D_NORMS), "batch")
    # The EMA generator's half-life in training images (StyleGAN2-ADA's ema_kimg x 1000; 0: no
    # averaging), capped during the ramp-up at ema_rampup x the images seen (null: no ramp-up).
    ema_images: int = _check(non_negative, 10000)
    ema_rampup: float | None = _check(lambda v: None if v is None or 0 < v <= 1 else "must be > 0 and <= 1, or null",
                                      0.05)
    real_label: float = _check(lambda v: None if 0.5 < v <= 1 else "must be > 0.5 and <= 1", 1.0)
    log_every: int = _check(positive, 10)
    grid_every: int = _check(positive, 100)
    checkpoint_every: int = _check(positive, 100)
    device: str = _check(one_of(*DEVICES), "auto")
    precision: str = _check(one_of(*PRECISIONS), "auto")
    compile: bool = False
    gpus: int = _check(positive, 1)
    threads: int = _check(non_negative, 0)
    # The portable CPU mode (rnngan/portable.py): the same bits on any x86 CPU, about 3x slower.
    portable: bool = False
    # The training replicates: each seed is one run per variant (initialisation, batch order,
    # training noise), the same list for every variant; `seed` at the top is the data seed.
    seeds: list[int] = _check(
        lambda v: (None if v and all(s >= 0 for s in v) and len(set(v)) == len(v)
                   else "must be a non-empty list of distinct non-negative integers"),
        [0, 1, 2])


@dataclass(frozen=True)
class SampleParams:
    count: int = _check(positive, 5000)
    seed: int = 1234
    grid: int = _check(lambda v: None if v > 0 and math.isqrt(v) ** 2 == v
                       else "must be a positive square number (16, 64, ...)", 64)


@dataclass(frozen=True)
class MetricsParams:
    features: str = _check(one_of(*FEATURES), "randinit")
    real_count: int = _check(lambda v: None if v >= 2 else "must be >= 2", 5000)
    batch_size: int = _check(positive, 250)
    bins: int = _check(lambda v: None if 2 <= v <= 256 else "must be between 2 and 256", 64)
    kid_subsets: int = _check(positive, 50)
    kid_subset_size: int = _check(lambda v: None if v >= 2 else "must be >= 2", 1000)
    inception_weights: str | None = None
    nearest_k: int = _check(positive, 5)
    bootstrap: int = _check(lambda v: None if v >= 10 else "must be >= 10", 100)
    confidence: float = _check(lambda v: None if 0.5 <= v < 1 else "must be >= 0.5 and < 1", 0.95)


@dataclass(frozen=True)
class AttributesParams:
    # The attribute classifier behind mode coverage (rnngan/attributes.py); datasets without
    # attribute labels ignore this section.
    epochs: int = _check(positive, 10)
    batch_size: int = _check(positive, 128)
    lr: float = _check(positive, 2e-3)
    width: int = _check(positive, 32)
    min_accuracy: float = _check(lambda v: None if 0.5 <= v <= 1 else "must be between 0.5 and 1", 0.85)
    modes: int = _check(lambda v: None if 1 <= v <= 16 else "must be between 1 and 16", 8)


@dataclass(frozen=True)
class Params:
    seed: int = 0
    data: DataParams = field(default_factory=DataParams)
    augment: AugmentParams = field(default_factory=AugmentParams)
    model: ModelParams = field(default_factory=ModelParams)
    train: TrainParams = field(default_factory=TrainParams)
    sample: SampleParams = field(default_factory=SampleParams)
    metrics: MetricsParams = field(default_factory=MetricsParams)
    attributes: AttributesParams = field(default_factory=AttributesParams)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(tp)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:  # YAML writes 1e-4 as a string unless it has a dot; accept ints too
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    return str(tp).replace("typing.", "").replace("<class '", "").replace("'>", "")


def _build(cls: type, raw: Any, prefix: str):
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{prefix or 'params'}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        key = f"{prefix}{unknown[0]}"
        raise ParamsError(f"unknown key '{key}'; allowed keys here: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        key = f"{prefix}{name}"
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, raw.get(name), f"{key}.")
            continue
        if name not in raw:
            continue
        value = raw[name]
        if tp is float and isinstance(value, str):  # PyYAML reads '2e-4' as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if not _type_ok(value, tp):
            raise ParamsError(f"{key}: expected {_type_name(tp)}, got {value!r}")
        check = f.metadata.get("check")
        problem = check(value) if check else None
        if problem:
            raise ParamsError(f"{key}={value!r} {problem}")
        values[name] = float(value) if tp is float else value
    return cls(**values)


def crop_error(dataset: str, crop: str) -> str:
    return (f"data.crop={crop} does not apply to {dataset}; {dataset} allows: auto, "
            f"{', '.join(sorted(DATASET_CROPS[dataset]))}")


def parse_params(raw: Any) -> Params:
    """Build and validate Params from a parsed params.yaml mapping."""
    params = _build(Params, raw, "")
    if params.model.cell not in params.model.variants:
        raise ParamsError(
            f"model.cell={params.model.cell!r} is not in model.variants "
            f"{params.model.variants}: add it to model.variants or pick one of them")
    if params.augment.real == "step" and params.augment.copies != 1:
        raise ParamsError(
            f"augment.copies={params.augment.copies} applies to augment.real=cached; with augment.real=step "
            "every step redraws the real side: set augment.copies=1 or augment.real=cached")
    a = params.augment
    ops = [k for k in ("flip", "brightness", "contrast", "saturation", "hue", "scale", "crop", "blur", "lens")
           if getattr(a, k) > 0]
    if a.p == 1 and ops:
        raise ParamsError(
            f"augment.p=1 with {', '.join(ops)} on leaks: D then sees only augmented images, and G may learn the "
            "augmentation instead of the data (Karras et al. 2020, ADA: the policy does not leak while each image "
            "goes through it with probability below 1). Set augment.p below 1 (0.8 at most is safe), or switch "
            "the ops off")
    if params.data.dataset == "synthfaces" and params.data.source is not None:
        raise ParamsError(
            f"data.source={params.data.source!r}: synthfaces is drawn, not read; "
            "set data.source to null")
    data = params.data
    if data.crop != "auto" and data.crop not in DATASET_CROPS[data.dataset]:
        raise ParamsError(crop_error(data.dataset, data.crop))
    if params.train.loss != "ns" and params.train.real_label != 1:
        raise ParamsError(
            f"train.real_label={params.train.real_label} (one-sided label smoothing) belongs to the ns loss; "
            f"set train.real_label=1 with train.loss={params.train.loss}")
    if params.train.mode_seeking > 0 and params.train.batch_size // params.train.gpus < 2:
        raise ParamsError(
            f"train.mode_seeking={params.train.mode_seeking} pairs images within each process's batch, which "
            f"holds train.batch_size/train.gpus={params.train.batch_size // params.train.gpus}; it needs at least 2")
    if params.train.batch_size % params.train.gpus:
        raise ParamsError(
            f"train.batch_size={params.train.batch_size} must be a multiple of train.gpus="
            f"{params.train.gpus}: each process takes an equal share of every batch")
    if params.metrics.nearest_k >= min(params.metrics.real_count, params.sample.count):
        raise ParamsError(
            f"metrics.nearest_k={params.metrics.nearest_k} must be below metrics.real_count="
            f"{params.metrics.real_count} and sample.count={params.sample.count}")
    if params.metrics.kid_subset_size > min(params.metrics.real_count, params.sample.count):
        raise ParamsError(
            f"metrics.kid_subset_size={params.metrics.kid_subset_size} must not exceed "
            f"metrics.real_count={params.metrics.real_count} or sample.count={params.sample.count}")
    return params


def load_params(path: str | Path = "params.yaml") -> Params:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ParamsError(f"{path}: not valid YAML: {exc}") from exc
    return parse_params(raw)
