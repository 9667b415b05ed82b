"""Params: read once from params.yaml into frozen, typed pydantic models, one per section.

Every stage calls `load_params()` first, so a bad value stops the pipeline before any work.
Errors name the key (dotted, as `dvc exp run -S` spells it) and the allowed values.
"""
from __future__ import annotations

import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

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
LOSSES = ("ns", "hinge", "rpgan")                 # keys of rnngan.training.losses.LOSSES
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


# Each section is a frozen pydantic model that forbids unknown keys and takes no type on trust
# (strict: `true` is not a number, 1.5 not an int); ranges and choices are declared on the field,
# so the JSON Schema (`rnngan params-schema`) carries them too. `parse_params` turns pydantic's
# errors into one line that names the dotted key and what it allows.

class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @model_validator(mode="before")
    @classmethod
    def _floats_from_strings(cls, raw: Any) -> Any:
        """PyYAML reads 2e-4 (no dot) as a string: a float field takes it as the number it spells."""
        if not isinstance(raw, dict):
            return raw
        out = dict(raw)
        for name, value in raw.items():
            f = cls.model_fields.get(name)
            if f is not None and isinstance(value, str) and float in _types(f.annotation):
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out


def _types(tp: Any) -> tuple:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _problem(text: str) -> PydanticCustomError:
    return PydanticCustomError("check", text)


def _distinct_variants(v: list[str]) -> list[str]:
    if v and all(is_variant(c) for c in v) and len(set(v)) == len(v):
        return v
    raise _problem(f"must be a non-empty list of distinct variants from: {', '.join(VARIANTS)}, or pairs "
                   f"<G>{PAIR}<D> of two of them (lstm{PAIR}dcgan: the LSTM generator against DCGAN's discriminator)")


def _variant(v: str) -> str:
    if is_variant(v):
        return v
    raise _problem(f"must be one of: {', '.join(VARIANTS)}, or a pair <G>{PAIR}<D> such as lstm{PAIR}dcgan")


def _distinct_seeds(v: list[int]) -> list[int]:
    if v and all(s >= 0 for s in v) and len(set(v)) == len(v):
        return v
    raise _problem("must be a non-empty list of distinct non-negative integers")


def _square(v: int) -> int:
    if v > 0 and math.isqrt(v) ** 2 == v:
        return v
    raise _problem("must be a positive square number (16, 64, ...)")


Positive = Annotated[int, Field(gt=0)]
Count = Annotated[int, Field(ge=0)]
Probability = Annotated[float, Field(ge=0, le=1)]
Strength = Annotated[float, Field(ge=0, lt=1)]            # a jitter or scale amplitude: [1 - s, 1 + s]
Rate = Annotated[float, Field(gt=0)]


class DataParams(Section):
    dataset: Literal[DATASETS] = "synthfaces"
    source: str | None = None
    image_size: Literal[8, 16, 32, 64, 128, 256] = 32
    count: Positive = 10000
    limit: Annotated[int | None, Field(gt=0)] = None
    crop: Literal[CROPS] = "auto"
    verify: bool = True
    workers: Count = 0


class AugmentParams(Section):
    copies: Positive = 1
    flip: Probability = 0.5
    brightness: Strength = 0.1
    contrast: Strength = 0.1
    saturation: Strength = 0.1
    hue: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    scale: Strength = 0.0
    crop: Strength = 0.0
    blur: Probability = 0.0
    lens: Annotated[float, Field(ge=0, le=0.5)] = 0.0
    # The probability that an image, real or generated (in training, before D), goes through the
    # policy at all: one function for both sides (rnngan/data/augment.py).
    p: Probability = 0.5
    # The real side: step (redrawn through the same function at every training step, like the
    # fakes) or cached (`copies` fixed draws per image written by the augment stage, sampled among)
    real: Literal[REAL_AUGMENT] = "step"


class ModelParams(Section):
    cell: Annotated[str, AfterValidator(_variant)] = "lstm"
    variants: Annotated[list[str], AfterValidator(_distinct_variants)] = list(VARIANTS)
    hidden: Positive = 128
    timesteps: Positive = 4
    z_dim: Positive = 64
    nf: Positive = 32
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
    mbstd_group: Count = 4
    d_readout: Literal[READOUTS] = "last"


class TrainParams(Section):
    steps: Positive = 650
    batch_size: Positive = 64
    lr: Rate = 2e-4
    beta1: Strength = 0.5
    beta2: Strength = 0.999
    lr_d: Annotated[float | None, Field(gt=0)] = None
    lr_g: Annotated[float | None, Field(gt=0)] = None
    g_steps: Positive = 1                                  # G updates per D update
    mode_seeking: Annotated[float, Field(ge=0)] = 0.0      # weight of MSGAN's mode-seeking term in G's loss (0 = off)
    # The objective (rnngan/training/losses.py) and D's regularisers: R1 on real and R2 on generated
    # images (gamma of each; 0 = off), applied every reg_every steps with that gain.
    loss: Literal[LOSSES] = "rpgan"
    r1: Annotated[float, Field(ge=0)] = 0.1
    r2: Annotated[float, Field(ge=0)] = 0.1
    reg_every: Positive = 4
    d_norm: Literal[D_NORMS] = "batch"
    # The EMA generator's half-life in training images (StyleGAN2-ADA's ema_kimg x 1000; 0: no
    # averaging), capped during the ramp-up at ema_rampup x the images seen (null: no ramp-up).
    ema_images: Count = 10000
    ema_rampup: Annotated[float | None, Field(gt=0, le=1)] = 0.05
    real_label: Annotated[float, Field(gt=0.5, le=1)] = 1.0
    log_every: Positive = 10
    grid_every: Positive = 100
    checkpoint_every: Positive = 100
    device: Literal[DEVICES] = "auto"
    precision: Literal[PRECISIONS] = "auto"
    compile: bool = False
    gpus: Positive = 1
    threads: Count = 0
    # The portable CPU mode (rnngan/portable.py): the same bits on any x86 CPU, about 3x slower.
    portable: bool = False
    # The training replicates: each seed is one run per variant (initialisation, batch order,
    # training noise), the same list for every variant; `seed` at the top is the data seed.
    seeds: Annotated[list[int], AfterValidator(_distinct_seeds)] = [0, 1, 2]


class SampleParams(Section):
    count: Positive = 5000
    seed: int = 1234
    grid: Annotated[int, AfterValidator(_square)] = 64


class MetricsParams(Section):
    features: Literal[FEATURES] = "randinit"
    real_count: Annotated[int, Field(ge=2)] = 5000
    batch_size: Positive = 250
    bins: Annotated[int, Field(ge=2, le=256)] = 64
    kid_subsets: Positive = 50
    kid_subset_size: Annotated[int, Field(ge=2)] = 1000
    inception_weights: str | None = None
    nearest_k: Positive = 5
    bootstrap: Annotated[int, Field(ge=10)] = 100
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95


class AttributesParams(Section):
    # The attribute classifier behind mode coverage (rnngan/attributes.py); datasets without
    # attribute labels ignore this section.
    epochs: Positive = 10
    batch_size: Positive = 128
    lr: Rate = 2e-3
    width: Positive = 32
    min_accuracy: Annotated[float, Field(ge=0.5, le=1)] = 0.85
    modes: Annotated[int, Field(ge=1, le=16)] = 8


class Params(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              json_schema_extra={"title": "rnngan params.yaml",
                                                 "description": "Every knob of the pipeline, one section per concern "
                                                                "(docs: params.yaml's comments, docs/model.md)."})
    seed: int = 0
    data: DataParams = Field(default_factory=DataParams)
    augment: AugmentParams = Field(default_factory=AugmentParams)
    model: ModelParams = Field(default_factory=ModelParams)
    train: TrainParams = Field(default_factory=TrainParams)
    sample: SampleParams = Field(default_factory=SampleParams)
    metrics: MetricsParams = Field(default_factory=MetricsParams)
    attributes: AttributesParams = Field(default_factory=AttributesParams)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, raw: Any) -> Any:
        """A section written with no keys (`train:`) is all defaults."""
        if isinstance(raw, dict):
            return {k: ({} if v is None and k in cls.model_fields and k != "seed" else v) for k, v in raw.items()}
        return raw

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


def params_schema() -> dict[str, Any]:
    """The JSON Schema of params.yaml (editors validate and complete it: the yaml-language-server
    line at the top of params.yaml points at the committed copy)."""
    return Params.model_json_schema()


def _bounds(f) -> str:
    """What a field's declared range allows, in words: 'must be > 0', 'must be between 0 and 1'."""
    b = {}
    for m in f.metadata:
        for name in ("gt", "ge", "lt", "le"):
            if getattr(m, name, None) is not None:
                b[name] = getattr(m, name)
    low = (">", b["gt"]) if "gt" in b else (">=", b["ge"]) if "ge" in b else None
    high = ("<", b["lt"]) if "lt" in b else ("<=", b["le"]) if "le" in b else None
    if low and high:
        text = (f"between {low[1]} and {high[1]}" if (low[0], high[0]) == (">=", "<=")
                else f"{low[0]} {low[1]} and {high[0]} {high[1]}")
    else:
        text = " ".join(map(str, low or high))
    optional = type(None) in _types(f.annotation)
    return f"must be {text}" + ((", or null" if low and high else " or null") if optional else "")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        tp = type(typing.get_args(tp)[0])
    return " | ".join(str(t).replace("typing.", "").replace("<class '", "").replace("'>", "").replace("NoneType", "None")
                      for t in _types(tp))


def _readable(exc: ValidationError, raw: Any) -> str:
    """pydantic's first error as the one line a user acts on, naming the dotted key."""
    err = exc.errors()[0]
    loc = [p for p in err["loc"] if isinstance(p, str)]
    model, path = Params, []
    for part in loc[:-1]:
        model, path = model.model_fields[part].annotation, path + [part]
    name = loc[-1] if loc else ""
    key = ".".join(path + [name]) if name else "params"
    if err["type"] == "extra_forbidden":
        return f"unknown key '{key}'; allowed keys here: {', '.join(model.model_fields)}"
    value = raw
    for part in loc:
        value = value.get(part) if isinstance(value, dict) else None
    f = model.model_fields.get(name) if name else None
    if err["type"] in ("model_type", "dict_type"):
        return f"{key}: expected a mapping of keys, got {value!r}"
    if err["type"] == "check":
        return f"{key}={value!r} {err['msg']}"
    if err["type"] == "literal_error":
        (tp,) = [t for t in _types(f.annotation) if typing.get_origin(t) is Literal]
        return f"{key}={value!r} must be one of: {', '.join(map(str, typing.get_args(tp)))}"
    if err["type"] in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{key}={value!r} {_bounds(f)}"
    return f"{key}: expected {_type_name(f.annotation) if f else 'a value'}, got {value!r}"


def crop_error(dataset: str, crop: str) -> str:
    return (f"data.crop={crop} does not apply to {dataset}; {dataset} allows: auto, "
            f"{', '.join(sorted(DATASET_CROPS[dataset]))}")


def parse_params(raw: Any) -> Params:
    """Build and validate Params from a parsed params.yaml mapping."""
    try:
        params = Params.model_validate({} if raw is None else raw)
    except ValidationError as exc:
        raise ParamsError(_readable(exc, raw)) from None
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
