"""The all-variants table: one definition of its columns, read by the report (one row per
variant of this run, and the held-out real row) and by `rnngan compare` (one row per variant or
headline of each experiment and revision), so both show the same numbers the same way.

A row's values are one variant's flat numbers as `reports/metrics.json` keeps them under
`cells.<variant>` (`fid`, `fid_lo`, `fid_hi`, `params_g`, ...); the report adds what only it
has: the seed standard deviations (`precision_std`, ...), printed as `mean ± sd`, and the FID
bootstrap width.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from rnngan.report.formatting import count, fmt, with_interval


def finite(v: Any) -> float | None:
    """A finite number as a float; None for anything else (missing, NaN, a string, a bool)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def _number(values: Mapping[str, Any], key: str) -> float | None:
    return finite(values.get(key))


def _interval(key: str, digits: int, scale: float = 1.0) -> Callable[[Mapping], str | None]:
    def text(values: Mapping) -> str | None:
        value = _number(values, key)
        if value is None:
            return None
        return with_interval(value, _number(values, f"{key}_lo"), _number(values, f"{key}_hi"), digits, scale)
    return text


def _mean(key: str, digits: int) -> Callable[[Mapping], str | None]:
    """The mean, and `± sd` where the row carries the seeds' standard deviation (`<key>_std`)."""
    def text(values: Mapping) -> str | None:
        value = _number(values, key)
        if value is None:
            return None
        sd = _number(values, f"{key}_std")
        return fmt(value, digits) + ("" if sd is None else f" ± {fmt(sd, digits)}")
    return text


def _plain(key: str, digits: int) -> Callable[[Mapping], str | None]:
    def text(values: Mapping) -> str | None:
        value = _number(values, key)
        return None if value is None else fmt(value, digits)
    return text


def _params(values: Mapping) -> str | None:
    g, d = _number(values, "params_g"), _number(values, "params_d")
    if g is None and d is None:
        return None
    return f"{count(g)} / {count(d)}"


@dataclass(frozen=True)
class Column:
    head: str
    text: Callable[[Mapping], str | None]      # None: the row has no such number
    group: str = ""                            # "" always shown; "attributes", "bootstrap": where the caller has them


COLUMNS = (
    Column("G / D params", _params),
    Column("seeds", _plain("seeds", 0)),
    Column("FID", _interval("fid", 2)),
    Column("KID ×10⁻³", _interval("kid", 1, 1000.0)),
    Column("precision", _mean("precision", 3)),
    Column("recall", _mean("recall", 3)),
    Column("density", _mean("density", 3)),
    Column("coverage", _mean("coverage", 3)),
    Column("train s", _plain("train_seconds", 0)),
    Column("images/s", _plain("images_per_s", 0)),
    Column("FID seed sd", _plain("fid_std", 2)),
    Column("FID bootstrap width", _plain("fid_bootstrap_width", 2), "bootstrap"),
    Column("W1 grey", _plain("w1_grey", 2)),
    Column("spectral", _plain("spectral_distance", 3)),
    Column("attribute TV", _mean("attr_tv", 3), "attributes"),
    Column("joint modes", _mean("attr_modes", 3), "attributes"),
)


COLUMNS_BY_HEAD = {c.head: c for c in COLUMNS}


def columns(*groups: str) -> tuple[Column, ...]:
    """The columns always shown and those of `groups`."""
    return tuple(c for c in COLUMNS if not c.group or c.group in groups)


def cells(values: Mapping, cols: tuple[Column, ...], missing: str) -> list[str]:
    """One row's cells; `missing` where the row lacks the number (n/a, or blank for the held-out
    real row's parameter counts and timings, which it has none of)."""
    return [text if (text := c.text(values)) is not None else missing for c in cols]


def markdown(head: list[str], rows: list[list[str]], numbers: range) -> list[str]:
    """A GitHub markdown table whose columns `numbers` are right-aligned, the others text."""
    lines = ["| " + " | ".join(head) + " |",
             "| " + " | ".join("---:" if i in numbers else "---" for i in range(len(head))) + " |"]
    return lines + ["| " + " | ".join(x.replace("|", "\\|") for x in row) + " |" for row in rows]
