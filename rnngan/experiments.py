"""`rnngan compare`: the report's all-variants table across DVC experiments and revisions.

Input is what `dvc exp show --json` prints (DVC 3.x; shape observed with 3.67): a list of
baseline states, the workspace first (`rev` "workspace"), then one per commit. A state is
`{rev, name, data, error, experiments}`: `name` is a branch name or null; `data` holds
`params` and `metrics` keyed by file path (relative to the repository root), each
`{"data": {...}}` or `{"error": {"type", "msg"}}`; `error` is null or `{"msg", "type"}`
(a failed experiment says "Experiment run failed"). A commit's `experiments` is null or a list
of ranges `{revs: [state], executor, name}`, where `executor` is null (run in the workspace)
or `{state: queued|running|success|failed, name, local: {log, returncode, ...}}`.

Two things in that output mislead if read naively, and are handled here: a failed experiment
still lists the metrics file of the commit it started from (stale numbers, not its own), and
a queued one lists its params (overrides applied) with no metrics.

Parsing and rendering are pure functions; `exp_show` runs DVC.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rnngan.config import VariantError, split_variant
from rnngan.errors import UserError
from rnngan.io import flatten
from rnngan.report import table as variant_table
from rnngan.report.table import finite
from rnngan.report.formatting import NA, param_text, variant_name
from rnngan.report.html import markdown_to_html

# What a row carries from the metrics file: the headline's top level, or one `cells.<cell>`.
METRIC_KEYS = ("fid", "fid_lo", "fid_hi", "fid_std", "kid", "kid_lo", "kid_hi", "kid_std", "precision",
               "recall", "density", "coverage", "spectral_distance", "w1_grey", "params_g", "params_d",
               "train_seconds", "images_per_s", "fid_tier", "kid_tier", "seeds", "attr_tv", "attr_modes", "attr_kl")
# Top level only, the same for every variant of a run: FIDs compare only where these agree.
COMPARABLE_KEYS = ("dataset", "image_size", "features")
# ... and what the intervals are: "seeds" (of the mean over train.seeds) or "bootstrap" (one run's
# samples redrawn; also what a metrics file from before replicates has).
RUN_KEYS = (*COMPARABLE_KEYS, "interval")
FORMATS = ("md", "html", "csv", "json")
NO_NUMBERS = {"queued": "queued: not run yet", "running": "still running"}


class CompareError(UserError, ValueError):
    """Input that is not a `dvc exp show --json` output, or has nothing to compare."""


@dataclass(frozen=True)
class Row:
    name: str                 # experiment name, branch name, short rev, or "workspace"
    rev: str                  # 7-character rev, or "workspace"
    kind: str                 # workspace | commit | experiment
    baseline: str             # the commit an experiment started from; "" otherwise
    status: str               # workspace | commit | success | done | queued | running | failed
    params: dict[str, Any]    # flattened: "model.cell" (params.yaml) or "<file>:<key>"
    cell: str | None = None   # the variant these numbers are for
    headline: bool = True     # the run's model.cell (always true without --variants)
    metrics: dict[str, Any] = field(default_factory=dict)   # RUN_KEYS + METRIC_KEYS found
    note: str = ""            # why there are no numbers, or what went wrong

    def number(self, key: str) -> float | None:
        return finite(self.metrics.get(key))


@dataclass(frozen=True)
class Comparison:
    rows: list[Row]           # by FID, best first; rows without a FID last, in DVC's order
    params: list[str]         # the param keys whose values differ between the rows
    best: Row | None
    verdicts: list[str]       # per row: best | overlaps best | worse | "" (no FID)
    notes: list[str]
    metrics_file: str
    variants: bool


def _short(rev: str) -> str:
    return rev if rev == "workspace" else rev[:7]


def _params(data: dict | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path, entry in ((data or {}).get("params") or {}).items():
        values = entry.get("data") if isinstance(entry, dict) else None
        if isinstance(values, dict):
            prefix = "" if path == "params.yaml" else f"{path}:"
            out.update(flatten(values, prefix))
    return out


def _metrics_entry(data: dict | None, metrics_file: str) -> tuple[dict | None, str]:
    """The metrics file's values in one state, or None and why not."""
    files = (data or {}).get("metrics") or {}
    want = metrics_file.removeprefix("./")
    entry = files.get(want)
    if entry is None:
        return None, f"no {want} in this revision" + (f" (it has: {', '.join(files)})" if files else "")
    if not isinstance(entry, dict):
        return None, f"{want}: unreadable entry"
    if entry.get("error"):
        return None, f"{want}: {_error_text(entry['error'])}"
    values = entry.get("data")
    if not isinstance(values, dict):
        return None, f"{want}: not a JSON object"
    return values, ""


def _error_text(err: Any) -> str:
    """DVC's `{"type", "msg"}` error objects, as one line."""
    if isinstance(err, dict):
        return str(err.get("msg") or err.get("type") or "error")
    return str(err) if err else ""


def _pick(values: dict, keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: values[k] for k in keys if k in values}


def _rows_of_state(state: dict, *, name: str, kind: str, baseline: str, status: str,
                   metrics_file: str, variants: bool, log: str | None = None) -> list[Row]:
    rev = str(state.get("rev", "?"))
    data = state.get("data") if isinstance(state.get("data"), dict) else None
    base = Row(name=name, rev=_short(rev), kind=kind, baseline=baseline, status=status,
               params=_params(data))
    err_msg = _error_text(state.get("error"))
    # A failed experiment lists the metrics of the commit it started from: not its own numbers.
    if status == "failed":
        note = "failed" + (f": {err_msg}" if err_msg else "") + (f" (log: {log})" if log else "")
        return [replace(base, note=note)]
    if status in NO_NUMBERS:
        return [replace(base, note=NO_NUMBERS[status])]
    if err_msg:
        return [replace(base, note=f"error: {err_msg}")]
    values, why = _metrics_entry(data, metrics_file)
    if values is None:
        return [replace(base, note=why)]
    run = _pick(values, RUN_KEYS)
    head = values.get("cell")
    cells = values.get("cells")
    if not variants:
        return [replace(base, cell=head, metrics={**run, **_pick(values, METRIC_KEYS)})]
    if not isinstance(cells, dict) or not cells:
        return [replace(base, cell=head, metrics={**run, **_pick(values, METRIC_KEYS)},
                        note=f"no cells.* in {metrics_file}: headline only")]
    return [replace(base, cell=c, headline=(c == head),
                    metrics={**run, **_pick(v if isinstance(v, dict) else {}, METRIC_KEYS)})
            for c, v in cells.items()]


def _same_result(a: dict | None, b: dict | None, metrics_file: str) -> bool:
    if not a or not b:
        return False
    return a.get("params") == b.get("params") and _metrics_entry(a, metrics_file) == _metrics_entry(b, metrics_file)


def parse_exp_show(exp_show: Any, metrics_file: str = "reports/metrics.json",
                   variants: bool = False) -> tuple[list[Row], list[str]]:
    """Rows in DVC's order (each baseline, then its experiments), and notes on what was folded.

    The workspace row is left out where its params and metrics equal a listed commit's (the
    usual case right after a commit); an edited or re-run workspace is shown."""
    if not isinstance(exp_show, list) or not all(isinstance(s, dict) and "rev" in s for s in exp_show):
        raise CompareError("not the output of `dvc exp show --json`: expected a list of "
                           "revisions, each with a 'rev'")
    rows: list[Row] = []
    notes: list[str] = []
    runs: dict[str, list[str]] = {}    # --variants: one run's numbers -> the rows showing them

    def add(new: list[Row]) -> None:
        # Experiments that differ only in model.cell share one training run: with --variants
        # their rows would repeat the same numbers, so they are listed once.
        if variants and new and not any(r.note for r in new):
            key = json.dumps([{k: v for k, v in new[0].params.items() if k != "model.cell"},
                              [(r.cell, r.metrics) for r in new]], sort_keys=True, default=str)
            runs.setdefault(key, []).append(new[0].name)
            if len(runs[key]) > 1:
                return
        rows.extend(new)

    commits = [s for s in exp_show if s.get("rev") != "workspace"]
    for state in exp_show:
        rev = str(state["rev"])
        if rev == "workspace":
            same = next((c for c in commits if _same_result(state.get("data"), c.get("data"), metrics_file)), None)
            if same is not None:
                notes.append(f"The workspace has the same params and metrics as "
                             f"`{same.get('name') or _short(str(same['rev']))}`; not listed separately.")
                continue
            add(_rows_of_state(state, name="workspace", kind="workspace", baseline="",
                               status="workspace", metrics_file=metrics_file, variants=variants))
            continue
        base_name = state.get("name") or _short(rev)
        add(_rows_of_state(state, name=base_name, kind="commit", baseline="", status="commit",
                           metrics_file=metrics_file, variants=variants))
        for exp_range in state.get("experiments") or []:
            revs = exp_range.get("revs") if isinstance(exp_range, dict) else None
            if not revs or not isinstance(revs[0], dict):
                continue
            exp = revs[0]      # DVC 3: one rev per range (more only for legacy checkpoints)
            executor = exp_range.get("executor") or {}
            status = executor.get("state") or ("failed" if exp.get("error") else "done")
            log = (executor.get("local") or {}).get("log")
            name = exp.get("name") or exp_range.get("name") or _short(str(exp.get("rev", "?")))
            add(_rows_of_state(exp, name=name, kind="experiment", baseline=base_name,
                               status=status, metrics_file=metrics_file, variants=variants, log=log))
    for first, *same in runs.values():
        if same:
            notes.append(f"{', '.join(f'`{n}`' for n in same)}: the same run as `{first}` (params differ "
                         f"at most in `model.cell`, every variant's numbers are equal); listed once, as `{first}`.")
    return rows, notes


def _differing(rows: list[Row]) -> list[str]:
    """Param keys whose values differ between the rows that have params (absent counts as a value)."""
    with_params = [r for r in rows if r.params]
    keys: list[str] = []
    for r in with_params:
        keys += [k for k in r.params if k not in keys]

    def value(r: Row, k: str) -> str:
        return json.dumps(r.params[k], sort_keys=True, default=str) if k in r.params else "<absent>"

    return [k for k in keys if len({value(r, k) for r in with_params}) > 1]


def _overlaps(a: Row, b: Row) -> bool | None:
    lo_a, hi_a, lo_b, hi_b = (a.number("fid_lo"), a.number("fid_hi"), b.number("fid_lo"), b.number("fid_hi"))
    if None in (lo_a, hi_a, lo_b, hi_b):
        return None
    return lo_a <= hi_b and lo_b <= hi_a


def _label(r: Row) -> str:
    return f"`{r.name}`" + (f" ({variant_name(r.cell)})" if r.cell else "")


def compare(rows: list[Row], notes: list[str] = (), metrics_file: str = "reports/metrics.json",
            variants: bool = False) -> Comparison:
    """Sort by FID, mark the best, and say which rows the FID intervals cannot separate from it."""
    if not rows:
        raise CompareError("no revisions or experiments to compare")
    if not any(r.number("fid") is not None for r in rows):
        why = next((r for r in rows if r.kind != "experiment" and r.note), None) or next(
            (r for r in rows if r.note), None)
        raise CompareError(f"no FID in {metrics_file} in any of the {len(rows)} revisions/experiments"
                           + (f" (`{why.name}`: {why.note})" if why else "")
                           + "; run `dvc repro` (or `dvc exp run`) first, or name the file with --metrics-file")
    order = sorted(range(len(rows)), key=lambda i: (rows[i].number("fid") is None, rows[i].number("fid") or 0.0, i))
    rows = [rows[i] for i in order]
    best = rows[0]
    verdicts, overlapping, unknown = [], [], []
    for r in rows:
        if r is best:
            verdicts.append("best")
        elif r.number("fid") is None:
            verdicts.append("")
        else:
            o = _overlaps(r, best)
            if o is None:
                unknown.append(r)
            elif o:
                overlapping.append(r)
            verdicts.append({True: "overlaps best", False: "worse", None: "no interval"}[o])
    out_notes = []
    confs = {r.params.get("metrics.confidence") for r in rows if r.number("fid") is not None}
    conf = (f"{100 * finite(next(iter(confs))):g}%" if len(confs) == 1 and finite(next(iter(confs))) is not None
            else "their stated")
    out_notes.append(f"Best FID: {_label(best)}, {variant_table.COLUMNS_BY_HEAD['FID'].text(best.metrics)}.")
    if overlapping:
        out_notes.append(f"FID intervals overlapping the best's: {', '.join(_label(r) for r in overlapping)}. "
                         f"From these numbers they are not separable from the best at {conf} confidence.")
    elif len([r for r in rows if r.number("fid") is not None]) > 1 and not unknown:
        out_notes.append(f"No other FID interval overlaps the best's ({conf} intervals).")
    if unknown:
        out_notes.append(f"No FID interval for {', '.join(_label(r) for r in unknown)}: not compared with the best.")
    kinds = {r.metrics.get("interval", "bootstrap") for r in rows if r.number("fid") is not None}
    if kinds == {"seeds"}:
        out_notes.append("Intervals are of each row's central value over its training seeds (`seeds`: Student's t "
                         "on the logarithms of the per-seed FIDs and KIDs, back-transformed, so they stay above zero; "
                         "metrics files from before this rule used Student's t on the values): they "
                         "include training variation. Overlap is a coarse test; within one revision the report's "
                         "seed-level Welch tests (`fid_tier`, `kid_tier`) are sharper, but they compare the "
                         "variants of that revision only, never across these rows.")
    else:
        single = [r for r in rows if r.number("fid") is not None and r.metrics.get("interval", "bootstrap") != "seeds"]
        out_notes.append(f"{', '.join(_label(r) for r in single)}: one training seed, so the interval is that run's "
                         "bootstrap over its samples, which omits training variation (a new seed or another CPU "
                         "moves a recurrent GAN's FID by points): provisional, compare with care."
                         + (" The other rows' intervals are over seeds." if "seeds" in kinds else ""))
    for key in COMPARABLE_KEYS:
        seen = {str(r.metrics.get(key)) for r in rows if r.number("fid") is not None and key in r.metrics}
        if len(seen) > 1:
            out_notes.append(f"Rows differ in `{key}` ({', '.join(sorted(seen))}): their FID and KID "
                             "are not comparable across those.")
    out_notes += list(notes)
    for r in rows:
        if r.note:
            out_notes.append(f"{_label(r)} [{r.status}]: {r.note}")
    return Comparison(rows=rows, params=_differing(rows), best=best, verdicts=verdicts, notes=out_notes,
                      metrics_file=metrics_file, variants=variants)


# --- rendering ------------------------------------------------------------------------------

# The report's all-variants columns (rnngan.report.table), every group: attribute coverage shows
# n/a where a revision predates it; the FID bootstrap width is the report's alone.
COLUMNS = variant_table.columns("attributes")
TABLE_HEAD = (*(c.head for c in COLUMNS), "vs best")


def table(c: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the comparison table, as text (the report's all-variants columns)."""
    head = ["experiment", "rev", "baseline", "status", *c.params, "variant", *TABLE_HEAD]
    body = []
    for r, verdict in zip(c.rows, c.verdicts):
        cell = variant_name(r.cell) if r.cell else NA
        if c.variants and r.headline and r.cell:
            cell += " (headline)"
        # a metrics file from before replicates is one run: one seed
        values = {**r.metrics, "seeds": r.metrics.get("seeds", 1)} if r.metrics else {}
        body.append([r.name, r.rev, r.baseline or "", r.status,
                     *(param_text(r.params[k]) if k in r.params else NA for k in c.params),
                     cell, *variant_table.cells(values, COLUMNS, NA), verdict or NA])
    return head, body


def _intro(c: Comparison) -> str:
    what = "every variant (`cells.*`)" if c.variants else "the headline variant (`model.cell`)"
    rows = f"{len(c.rows)} row" + ("" if len(c.rows) == 1 else "s")
    return (f"{rows} from `{c.metrics_file}`, {what} of each revision or experiment, "
            "sorted by FID (lower is better).")


def render_markdown(c: Comparison) -> str:
    head, body = table(c)
    rows = []
    for r, cells in zip(c.rows, body):
        rows.append([f"**{cells[0]}**", *cells[1:-1], "**best**"] if r is c.best else cells)
    first = head.index("variant") + 1
    lines = [_intro(c), "", *variant_table.markdown(head, rows, range(first, first + len(COLUMNS))), ""]
    return "\n".join(lines + [f"- {n}" for n in c.notes]) + "\n"


def render_html(c: Comparison) -> str:
    """The markdown as a standalone page, through the report's renderer and stylesheet (raw HTML
    in a cell, e.g. an experiment's name, is shown as text)."""
    return markdown_to_html("# rnngan compare\n\n" + render_markdown(c), Path("."), raw_html=False)


def _networks(cell: str | None) -> tuple[str | None, str | None]:
    """The generator's and the discriminator's kind of a variant (None where unknown)."""
    try:
        return split_variant(cell) if cell is not None else (None, None)
    except VariantError:
        return None, None


def records(c: Comparison) -> list[dict[str, Any]]:
    """One flat record per row: identity, the differing params, the variant with its G and D kinds,
    every metric key (None = absent)."""
    out = []
    for r, verdict in zip(c.rows, c.verdicts):
        g, d = _networks(r.cell)
        out.append({"experiment": r.name, "rev": r.rev, "kind": r.kind, "baseline": r.baseline,
                    "status": r.status, **{k: r.params.get(k) for k in c.params},
                    "cell": r.cell, "generator": g, "discriminator": d,
                    "headline": r.headline if r.cell is not None else None,
                    **{k: r.metrics.get(k) for k in RUN_KEYS + METRIC_KEYS},
                    "vs_best": verdict or None, "note": r.note or None})
    return out


def render_csv(c: Comparison) -> str:
    recs = records(c)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(recs[0]), lineterminator="\n")
    w.writeheader()
    for rec in recs:
        w.writerow({k: "" if v is None else (param_text(v) if isinstance(v, (list, bool)) else v)
                    for k, v in rec.items()})
    return buf.getvalue()


def render_json(c: Comparison) -> str:
    best = None if c.best is None else {"experiment": c.best.name, "rev": c.best.rev, "cell": c.best.cell}
    return json.dumps({"metrics_file": c.metrics_file, "variants": c.variants, "params": c.params,
                       "best": best, "rows": records(c), "notes": c.notes}, indent=2) + "\n"


RENDERERS = {"md": render_markdown, "html": render_html, "csv": render_csv, "json": render_json}


def render(c: Comparison, fmt: str = "md") -> str:
    if fmt not in RENDERERS:
        raise CompareError(f"--format {fmt!r} must be one of: {', '.join(FORMATS)}")
    return RENDERERS[fmt](c)


# --- DVC ------------------------------------------------------------------------------------

def load_exp_show(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CompareError(f"{source}: not JSON ({exc})") from None


def exp_show(all_commits: bool = False, revs: list[str] | None = None, num: int = 1,
             cwd: str | None = None) -> Any:
    """Run `dvc exp show --json` (this interpreter's DVC) and return what it printed, parsed."""
    cmd = [sys.executable, "-m", "dvc", "exp", "show", "--json"]
    if all_commits:
        cmd.append("--all-commits")
    for rev in revs or []:
        cmd += ["--rev", rev]
    if num != 1:
        cmd += ["-n", str(num)]
    shown = " ".join(["dvc", *cmd[3:]])
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise CompareError(f"could not run `{shown}`: {exc}") from None
    if r.returncode != 0:
        errors = [ln.removeprefix("ERROR: ").strip() for ln in r.stderr.splitlines() if ln.startswith("ERROR")]
        detail = "; ".join(errors) or (r.stderr.strip().splitlines() or ["no message"])[-1]
        raise CompareError(f"`{shown}` failed (exit {r.returncode}): {detail}")
    return load_exp_show(r.stdout, f"`{shown}`")
