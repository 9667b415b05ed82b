"""The verdict in sentences: for every metric tested across seeds, which variants the
seed-level tests separate (tiers), the closest pair and its power, and the pairwise table."""
from __future__ import annotations

from rnngan.report.attributes import ATTRIBUTE_TESTED
from rnngan.report.formatting import fmt as _fmt
from rnngan.report.formatting import spread as _spread
from rnngan.report.formatting import with_interval


# The metrics tested across seeds, as the report names them: key, label, digits, scale.
TESTED = (("fid", "FID", 2, 1.0), ("kid", "KID ×10⁻³", 1, 1000.0), ("precision", "precision", 3, 1.0),
          ("recall", "recall", 3, 1.0), ("density", "density", 3, 1.0), ("coverage", "coverage", 3, 1.0))


def code_list(variants) -> str:
    return ", ".join(f"`{v}`" for v in variants)


def table_cell(v: dict, key: str, digits: int, scale: float = 1.0) -> str:
    return with_interval(v[key], v.get(key + "_lo"), v.get(key + "_hi"), digits, scale)


def tiers_text(tiers: list[list[str]]) -> str:
    return " > ".join("{" + code_list(t) + "}" for t in tiers)


def and_list(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def tested_metrics(comparison: dict) -> list[tuple[str, str, int, float]]:
    """Every metric the compare stage tested, as (key, label, digits, scale), attributes included."""
    return [*TESTED, *((k, label, d, 1.0) for k, label, d in ATTRIBUTE_TESTED if k in comparison["tests"])]


def _basis(comparison: dict, test: dict) -> str:
    if test["basis"] == "seeds":
        return f"Welch tests over {len(comparison['seeds'])} seeds, Holm-adjusted"
    return "the sample bootstrap of one seed: provisional, training variation not measured"


def _decider(row: dict) -> dict | None:
    """The test a pair's verdict rests on: over seeds where measured, else the sample bootstrap."""
    return row["seeds"] or row["samples"]


def closest_pair(test: dict) -> tuple[dict, int] | None:
    """The unseparated pair that the fewest seeds would separate (80% power), with that count;
    None where no pair would with up to MAX_SEEDS (or with one seed, where power is not computed)."""
    options = [(r, r["seeds"]["seeds_for_80_power"]) for r in test["pairs"]
               if r["seeds"] and not r["seeds"]["significant"] and r["seeds"]["seeds_for_80_power"] is not None]
    return min(options, key=lambda o: o[1]) if options else None


def verdict(head: str, comparison: dict, key: str, label: str, digits: int, scale: float) -> str:
    """One metric's verdict in a sentence: which variant is better than which (every significant
    pair, by winner, each variant's mean ± seed sd where first named), or that none is and how
    many seeds would separate the closest pair; where the headline stands."""
    test = comparison["tests"][key]
    variants = comparison["variants"]
    s = {v: comparison["per_variant"][v]["summary"][key] for v in variants}
    if len(variants) == 1:
        return f"**{label}:** one variant only."
    if test["basis"] is None:
        return f"**{label}:** not tested: one seed, and no within-run bootstrap for this metric."
    won = [r for r in test["pairs"] if r["better"]]
    if not won:
        text = f"**{label}:** no variant is separated from another ({_basis(comparison, test)})"
        if test["basis"] == "seeds":
            closest = closest_pair(test)
            text += (f"; the closest pair, `{closest[0]['a']}` and `{closest[0]['b']}`, would need {closest[1]} seeds "
                     "per variant for 80% power" if closest else
                     "; no pair would separate with fewer than 1000 seeds per variant: no practical difference")
        return text + "."
    lower = test["lower_is_better"]
    rank = {v: i for i, tier in enumerate(test["tiers"]) for v in tier}
    order = sorted(variants, key=lambda v: (rank[v], s[v]["mean"] if lower else -s[v]["mean"]))
    named: set[str] = set()

    def name(v: str) -> str:
        first = v not in named
        named.add(v)
        return f"`{v}` {_spread(s[v], digits, scale)}" if first else f"`{v}`"

    parts = []
    for winner in [v for v in order if any(r["better"] == v for r in won)]:
        losers = [v for v in order if any(r["better"] == winner and v in (r["a"], r["b"]) and v != winner for r in won)]
        parts.append(f"{name(winner)} is better than {and_list([name(v) for v in losers])}")
    worst = max(_decider(r)["p_holm"] for r in won)     # every separation named holds at this p
    p_text = "p < 0.001" if worst < 0.001 else f"p ≤ {worst:.2g}"
    others = len(test["pairs"]) - len(won)
    rest = ("" if not others else "; the other pair is not separated" if others == 1 else
            f"; the other {others} pairs are not separated")
    tier = rank[head] + 1
    where = ("the headline is in the best tier" if tier == 1 else
             f"the headline `{head}` is in tier {tier} of {len(test['tiers'])}")
    return (f"**{label}** ({'lower' if lower else 'higher'} is better): {'; '.join(parts)} "
            f"({_basis(comparison, test)}, {p_text}){rest}; {where}.")


def verdict_lines(head: str, comparison: dict) -> list[str]:
    """The first screen's verdict over every tested metric: a bullet per metric that separates
    some variants, then one for all those that separate none, with the seeds each would need."""
    separated, unseparated = [], []
    for key, label, digits, scale in tested_metrics(comparison):
        test = comparison["tests"][key]
        if any(r["better"] for r in test["pairs"]):
            separated.append("- " + verdict(head, comparison, key, label, digits, scale))
        else:
            unseparated.append((key, label, test))
    lines = separated
    if len(comparison["variants"]) == 1:
        return lines + ["- One variant only: nothing to compare."]
    tested = [(k, label, t) for k, label, t in unseparated if t["basis"] is not None]
    untested = [label for _, label, t in unseparated if t["basis"] is None]
    if tested:
        basis = _basis(comparison, tested[0][2])
        line = (f"- **No variant is separated** ({basis}) on {and_list([label for _, label, _ in tested])}"
                if separated else f"- **No variant is separated from another** on any tested metric ({basis}): "
                                  f"{and_list([label for _, label, _ in tested])}")
        if tested[0][2]["basis"] == "seeds":
            need = []
            for _, label, t in tested:
                closest = closest_pair(t)
                need.append(f"{label} {closest[1]} (`{closest[0]['a']}`, `{closest[0]['b']}`)" if closest else
                            f"{label} more than 1000")
            line += (". Seeds per variant that would separate the closest pair with 80% power, if the observed "
                     f"differences and spreads are the true ones: {'; '.join(need)}")
        lines.append(line + ".")
    if untested:
        lines.append(f"- Not tested with one seed (no within-run bootstrap): {and_list(untested)}.")
    return lines


# Recall below this (Kynkäänniemi et al. 2019: the share of real images inside the k-NN manifold
# of the generated ones) means the samples miss nearly all of the data's variety.
NEAR_ZERO_RECALL = 0.05


def recall_reading(comparison: dict) -> str | None:
    """A line for the variants whose recall is near zero: what it means, since it reads as a bug."""
    low = [v for v in comparison["variants"] if comparison["per_variant"][v]["summary"]["recall"]["mean"] < NEAR_ZERO_RECALL]
    if not low:
        return None
    means = and_list([f"`{v}` {_fmt(comparison['per_variant'][v]['summary']['recall']['mean'], 3)}" for v in low])
    return (f"- **Recall near zero** ({means}; held-out real images {_fmt(comparison['real']['recall'], 3)}): almost "
            "no real image lies inside the k-NN manifold of these samples, so they cover a small part of the data's "
            "variety (a few repeated prototypes, or collapse), whatever their precision; coverage"
            + (" and joint modes say" if "attr_modes" in comparison["tests"] else " says") + " how much is left.")


def _power_text(n) -> str:
    return "more than 1000" if n is None else str(n)


def pairs_table(comparison: dict, key: str, label: str, digits: int, scale: float) -> list[str]:
    """Every pair's seed-level Welch test (Holm over the pairs) and, where there is one, the
    sample-noise test beside it."""
    test = comparison["tests"][key]
    if test["basis"] is None:
        return [f"{label}: not tested: one seed, and no within-run bootstrap for this metric."]
    has_samples = any(r["samples"] for r in test["pairs"])
    lines = [f"| pair ({label}) | mean a − b | Welch t (df) | p, Holm | separated | seeds for 80% power |"
             + (" sample noise: p, Holm |" if has_samples else ""),
             "| --- | ---: | ---: | ---: | --- | ---: |" + (" ---: |" if has_samples else "")]
    for r in test["pairs"]:
        w, b = r["seeds"], r["samples"]
        diff = (w or b)["difference"]
        cells = [f"`{r['a']}` − `{r['b']}`", _fmt(scale * diff, digits)]
        if w is None:
            cells += ["n/a (one seed)", "n/a", "not tested", "n/a"]
        else:
            cells += [f"{_fmt(w['t'], 2)} ({_fmt(w['df'], 1)})", f"{w['p']:.3g}, {w['p_holm']:.3g}",
                      f"yes: `{r['better']}`" if w["significant"] else "no",
                      "" if w["significant"] else _power_text(w["seeds_for_80_power"])]
        if has_samples:
            cells.append(f"{b['p']:.3g}, {b['p_holm']:.3g}" + (" (sig.)" if b["significant"] else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def pairs_note(comparison: dict) -> str:
    """What the pairs tables' columns mean: said once, under the first of them."""
    n_pairs = len(comparison["tests"]["fid"]["pairs"])
    return (f"{n_pairs} pair{'s' if n_pairs != 1 else ''} per metric; *separated* where the Holm-adjusted p (over "
            f"the pairs of that metric) is below {1 - comparison['confidence']:.2g}. Seeds for 80% power: per "
            "variant, for a Welch test at the Bonferroni level to separate the pair if the observed difference and "
            "spreads are the true ones (\"more than 1000\": no practical difference).")
