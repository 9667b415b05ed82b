"""Numbers and names as the report and `rnngan compare` print them: one place, so both read alike."""
from __future__ import annotations

import math

from rnngan.config import VariantError, split_variant

NA = "n/a"


def fmt(x: float | None, digits: int = 3) -> str:
    """`x` rounded to `digits`; n/a for missing or NaN. A value that rounds to zero prints without
    a sign: "-0.0" would claim a direction the digits do not show."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return NA
    text = f"{x:.{digits}f}"
    if text.startswith("-") and not text.strip("-0."):
        text = text[1:]
    return text


def with_interval(value: float | None, lo: float | None, hi: float | None, digits: int,
                  scale: float = 1.0) -> str:
    """'9.30 [8.76, 9.90]': the value and, where both bounds are known, its interval."""
    if value is None:
        return NA
    text = fmt(scale * value, digits)
    if lo is not None and hi is not None:
        text += f" [{fmt(scale * lo, digits)}, {fmt(scale * hi, digits)}]"
    return text


def spread(summary: dict, digits: int, scale: float = 1.0) -> str:
    """'0.512 ± 0.031': the mean over seeds and their standard deviation (just the value with one seed)."""
    text = fmt(scale * summary["mean"], digits)
    return text if summary["std"] is None else f"{text} ± {fmt(scale * summary['std'], digits)}"


def count(n: int | float | None) -> str:
    """A parameter count, in thousands from 10,000 on: '612k', '1,235k', '4,736'."""
    if n is None:
        return NA
    return f"{n / 1e3:,.0f}k" if n >= 10_000 else f"{n:,.0f}"


def variant_name(variant: str) -> str:
    """A variant as a reader meets it: `lstm` stays `lstm` (its own G and D); a pair
    `lstm+dcgan` says which network is which: 'lstm+dcgan (G lstm, D dcgan)'."""
    try:
        g, d = split_variant(variant)
    except VariantError:
        return variant           # a name from another revision's params: shown as written
    return variant if g == d else f"{variant} (G {g}, D {d})"


def param_text(v) -> str:
    """A param value as params.yaml spells it: true, null, 0.0002, [0, 1, 2]."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(param_text(x) for x in v) + "]"
    return str(v)
