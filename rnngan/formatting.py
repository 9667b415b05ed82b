"""Numbers as the report and `rnngan compare` print them: one place, so both tables read alike."""
from __future__ import annotations

NA = "n/a"


def fmt(x: float | None, digits: int = 3) -> str:
    return NA if x is None else f"{x:.{digits}f}"


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
