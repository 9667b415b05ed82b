"""The recipe screen: named configurations run through the pipeline, one row per finished run.

A plan file (YAML, e.g. docs/recipe/plans/a-factorial.yaml) names configurations: a generator
and a discriminator kind, params overrides, seeds and steps. `run_plan` runs each (configuration,
seed) from its own git worktree at one fixed commit, so the main tree stays free for other work
and nothing changes under a running job, through the project itself: the worktree's params.yaml
gets the overrides, and `dvc repro analyze@<variant>-<seed>` trains, samples and scores the run
exactly as the pipeline does (the data stages come from the shared DVC cache after the first run).

The moment a run finishes its row is appended to runs.csv (written whole to a temporary file and
renamed) and the recipe page is re-rendered; rows already there (same configuration, seed,
steps and commit) are skipped, so a plan interrupted anywhere loses only the run in flight.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rnngan.environment import cpu_model
from rnngan.config import PAIR, ParamsError, parse_params, split_variant
from rnngan.io import atomic_path, log

# The columns of runs.csv, in this order (the first 19 are the contract; more follow).
COLUMNS = ("config", "g", "d", "seed", "steps", "commit", "cpu", "train_s", "fid", "kid", "precision", "recall",
           "density", "coverage", "attr_tv", "attr_modes", "real_modes", "attr_kl", "overrides",
           "profile", "plan", "variant", "finished")
KEY = ("config", "seed", "steps", "commit")      # a row already there with these is not run again
BEGIN, END = "<!-- screen:begin (rendered by rnngan screen; edit outside these lines) -->", "<!-- screen:end -->"
PLAN_KEYS = {"name", "profile", "steps", "seeds", "overrides", "configs", "description", "commit"}
CONFIG_KEYS = {"name", "g", "d", "seeds", "steps", "overrides", "why"}


class ScreenError(RuntimeError):
    """A plan that cannot run, or a run that failed (named, with where its log is)."""


@dataclass(frozen=True)
class Config:
    name: str
    g: str
    d: str
    seeds: tuple[int, ...]
    steps: int
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def variant(self) -> str:
        return self.g if self.g == self.d else f"{self.g}{PAIR}{self.d}"


@dataclass(frozen=True)
class Plan:
    name: str
    profile: str
    configs: tuple[Config, ...]
    # the commit whose params.yaml the overrides change (a plan written against one baseline
    # keeps it when the defaults move on); None: whatever --commit says, HEAD by default
    commit: str | None = None


def _mapping(obj: Any, where: str, allowed: set[str]) -> dict:
    if not isinstance(obj, dict):
        raise ScreenError(f"{where}: expected a mapping, got {obj!r}")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ScreenError(f"{where}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}")
    return obj


def load_plan(path: Path) -> Plan:
    """Read and check a plan: every configuration's params are validated as the stages would,
    before any run starts."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ScreenError(f"{path}: not a readable plan ({exc})") from exc
    raw = _mapping(raw, str(path), PLAN_KEYS)
    if not raw.get("configs"):
        raise ScreenError(f"{path}: no configs")
    common = _mapping(raw.get("overrides") or {}, f"{path}: overrides", set(raw.get("overrides") or {}))
    configs, names = [], set()
    for i, c in enumerate(raw["configs"]):
        c = _mapping(c, f"{path}: configs[{i}]", CONFIG_KEYS)
        name = str(c.get("name") or "")
        if not name or name in names or any(ch in name for ch in ",\n\"'"):
            raise ScreenError(f"{path}: configs[{i}] needs a unique name without commas or quotes, got {name!r}")
        names.add(name)
        g, d = c.get("g"), c.get("d", c.get("g"))
        variant = g if g == d else f"{g}{PAIR}{d}"
        try:
            split_variant(variant)
        except ValueError as exc:
            raise ScreenError(f"{path}: config {name}: g={g!r}, d={d!r}: {exc}") from None
        seeds = tuple(c.get("seeds", raw.get("seeds", [0])))
        steps = int(c.get("steps", raw.get("steps", 0)) or 0)
        if not seeds or steps <= 0:
            raise ScreenError(f"{path}: config {name}: needs seeds and steps > 0 (in the config or the plan)")
        cfg = Config(name, g, d, seeds, steps, {**common, **(c.get("overrides") or {})})
        for seed in seeds:
            try:
                parse_params(run_params(_default_params(path), cfg, seed))
            except ParamsError as exc:
                raise ScreenError(f"{path}: config {name}: {exc}") from None
        configs.append(cfg)
    commit = raw.get("commit")
    if commit is not None and not (isinstance(commit, str) and commit.strip()):
        raise ScreenError(f"{path}: commit must be a commit id (a string), got {commit!r}")
    return Plan(str(raw.get("name") or path.stem), str(raw.get("profile") or "long"), tuple(configs), commit)


def _default_params(plan_path: Path) -> dict:
    """The params.yaml a plan's overrides apply to: the repository's (found above the plan)."""
    for folder in [Path(plan_path).resolve().parent, *Path(plan_path).resolve().parents]:
        if (folder / "params.yaml").is_file() and (folder / "dvc.yaml").is_file():
            return yaml.safe_load((folder / "params.yaml").read_text())
    raise ScreenError(f"{plan_path}: no params.yaml beside dvc.yaml in a folder above it")


def run_params(base: dict, cfg: Config, seed: int) -> dict:
    """base params with the run's overrides: one variant, one seed, its steps, then cfg.overrides."""
    params = json.loads(json.dumps(base))
    sets = {"model.variants": [cfg.variant], "model.cell": cfg.variant, "train.seeds": [seed],
            "train.steps": cfg.steps, **cfg.overrides}
    for dotted, value in sets.items():
        node = params
        *parents, leaf = dotted.split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ParamsError(f"override {dotted}: params have no section {p!r}")
            node = node[p]
        node[leaf] = value
    return params


def reproduce_command(row: dict) -> str:
    """The command that reruns a row's run through DVC, from a clone at its commit."""
    sets = [f"model.variants=[{row['variant']}]", f"model.cell={row['variant']}", f"train.seeds=[{row['seed']}]",
            f"train.steps={row['steps']}"]
    for k, v in json.loads(row["overrides"] or "{}").items():
        sets.append(f"{k}={json.dumps(v) if not isinstance(v, str) else v}")
    return (f"git checkout {row['commit'][:12]} && dvc exp run " + " ".join(f"-S {shlex.quote(s)}" for s in sets))


# --- runs.csv and the recipe page ---------------------------------------------------------------

def read_rows(path: Path) -> list[dict]:
    if not Path(path).is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def write_rows(path: Path, rows: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(Path(path)) as tmp:
        tmp.write_text(buf.getvalue())


def _num(row: dict, key: str) -> float:
    try:
        return float(row[key])
    except (KeyError, TypeError, ValueError):
        return float("nan")


def _fmt(row: dict, key: str, digits: int) -> str:
    v = _num(row, key)
    return "n/a" if v != v else f"{v:.{digits}f}"


def render_table(rows: list[dict]) -> str:
    """The runs as markdown, one table per profile, best first (coverage, then recall), with the
    command that reproduces each row."""
    if not rows:
        return "No runs yet.\n"
    out = []
    for profile in sorted({r.get("profile", "") for r in rows}):
        group = sorted((r for r in rows if r.get("profile", "") == profile),
                       key=lambda r: (-_num(r, "coverage") if _num(r, "coverage") == _num(r, "coverage") else 1,
                                      -_num(r, "recall") if _num(r, "recall") == _num(r, "recall") else 1))
        out += [f"### Profile `{profile}`, best first (coverage, then recall)", "",
                "| # | config | G | D | seed | steps | FID | KID | precision | recall | density | coverage "
                "| attr TV | modes | attr KL | train s | commit | overrides |",
                "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for i, r in enumerate(group, 1):
            modes = f"{r['attr_modes']}/{r['real_modes']}" if r.get("attr_modes") else "n/a"
            out.append(f"| {i} | {r['config']} | {r['g']} | {r['d']} | {r['seed']} | {r['steps']} | "
                       f"{_fmt(r, 'fid', 2)} | {_fmt(r, 'kid', 4)} | {_fmt(r, 'precision', 3)} | "
                       f"{_fmt(r, 'recall', 3)} | {_fmt(r, 'density', 3)} | {_fmt(r, 'coverage', 3)} | "
                       f"{_fmt(r, 'attr_tv', 3)} | {modes} | {_fmt(r, 'attr_kl', 2)} | {_fmt(r, 'train_s', 0)} | "
                       f"`{r['commit'][:10]}` | `{r['overrides'] or '{}'}` |")
        out += ["", "<details><summary>Commands that reproduce these rows</summary>", ""]
        out += [f"{i}. `{reproduce_command(r)}`" for i, r in enumerate(group, 1)]
        out += ["", "</details>", ""]
    cpus = sorted({r.get("cpu", "") for r in rows})
    out.append(f"CPUs: {'; '.join(cpus)}. Times compare only between rows of one CPU.")
    return "\n".join(out) + "\n"


def render_recipe(path: Path, rows: list[dict]) -> None:
    """Rewrite the generated part of the recipe page (between the markers), keeping the rest."""
    path = Path(path)
    text = path.read_text() if path.is_file() else f"# The recipe screen\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text or END not in text:
        text = text.rstrip() + f"\n\n## The runs\n\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    with atomic_path(path) as tmp:
        tmp.write_text(f"{head}{BEGIN}\n{render_table(rows)}{END}{tail}")


def row_of(cfg: Config, seed: int, commit: str, profile: str, plan: str, metrics: dict, train: dict) -> dict:
    a = metrics.get("attributes") or {}
    ok = a.get("available")
    return {
        "config": cfg.name, "g": cfg.g, "d": cfg.d, "seed": seed, "steps": cfg.steps, "commit": commit,
        "cpu": cpu_model(), "train_s": train.get("seconds"), "fid": metrics["fid"], "kid": metrics["kid"],
        "precision": metrics["precision"], "recall": metrics["recall"], "density": metrics["density"],
        "coverage": metrics["coverage"], "attr_tv": a.get("tv_mean") if ok else "",
        "attr_modes": a["modes"]["produced"] if ok else "", "real_modes": a["modes"]["real_modes"] if ok else "",
        "attr_kl": a["modes"]["kl"] if ok else "", "overrides": json.dumps(cfg.overrides, sort_keys=True),
        "profile": profile, "plan": plan, "variant": cfg.variant,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


# --- the worktree ----------------------------------------------------------------------------------

def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def worktree(repo: Path, commit: str) -> Path:
    """A worktree of `repo` at `commit` under .screen/, sharing the repository's DVC cache."""
    path = repo / ".screen" / commit[:12]
    if not (path / ".git").exists():
        path.parent.mkdir(exist_ok=True)
        _git(repo, "worktree", "add", "--detach", str(path), commit)
    head = _git(path, "rev-parse", "HEAD")
    if head != commit:
        raise ScreenError(f"{path} is at {head[:12]}, not {commit[:12]}; remove it (git worktree remove --force)")
    cache = (repo / ".dvc" / "cache").resolve()
    subprocess.run([sys.executable, "-m", "dvc", "cache", "dir", "--local", str(cache)], cwd=path, check=True,
                   capture_output=True, env=_env(path))
    return path


def _env(path: Path) -> dict:
    # note: the worktree's rnngan first on the path, ahead of the editable install of the main tree;
    # the stages' `python` is this interpreter (its environment's bin first on PATH)
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PYTHONPATH": str(path), "DVC_NO_ANALYTICS": "1",
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def run_one(wt: Path, cfg: Config, seed: int, log_path: Path) -> tuple[dict, dict]:
    """Train, sample and score one run in the worktree through `dvc repro`; its metrics and train.json."""
    base = yaml.safe_load(_git(wt, "show", "HEAD:params.yaml"))
    params = run_params(base, cfg, seed)
    parse_params(params)
    (wt / "params.yaml").write_text(
        "# written by rnngan screen for one run; the committed params.yaml is the base\n"
        + yaml.safe_dump(params, sort_keys=False))
    run = f"{cfg.variant}-{seed}"
    # note: a previous attempt's half-trained checkpoint is resumed only under the same config
    # (training refuses otherwise), so a killed screen picks up where the run stopped
    cmd = [sys.executable, "-m", "dvc", "repro", f"analyze@{run}"]
    log.info("screen: %s seed %d (%s, %d steps): %s", cfg.name, seed, cfg.variant, cfg.steps, " ".join(cmd))
    with open(log_path, "a") as logf:
        logf.write(f"\n=== {cfg.name} seed {seed}: {' '.join(cmd)} ===\n")
        logf.flush()
        code = subprocess.run(cmd, cwd=wt, env=_env(wt), stdout=logf, stderr=subprocess.STDOUT).returncode
    if code:
        raise ScreenError(f"{cfg.name} seed {seed}: dvc repro exited {code}; see {log_path}")
    metrics = json.loads((wt / "metrics" / f"{run}.json").read_text())
    train = json.loads((wt / "models" / run / "train.json").read_text())
    return metrics, train


def pending(plan_path: Path, repo: Path, runs_csv: Path, commit: str | None = None,
            only: list[str] | None = None) -> tuple[Plan, str, list[tuple[Config, int]]]:
    """The plan, the commit it runs at (`commit`, else the plan's own, else HEAD), and its
    (configuration, seed) pairs not yet in runs_csv."""
    plan = load_plan(plan_path)
    commit = commit or plan.commit or "HEAD"
    if only and set(only) - {c.name for c in plan.configs}:
        raise ScreenError(f"--only {', '.join(sorted(set(only) - {c.name for c in plan.configs}))}: no such "
                          f"configuration in {plan_path}; it has {', '.join(c.name for c in plan.configs)}")
    try:
        sha = _git(Path(repo).resolve(), "rev-parse", "--verify", f"{commit}^{{commit}}")
    except subprocess.CalledProcessError as exc:
        raise ScreenError(f"--commit {commit}: not a commit of {repo} ({exc.stderr.strip()})") from None
    done = {tuple(str(r[k]) for k in KEY) for r in read_rows(runs_csv)}
    jobs = [(c, s) for c in plan.configs if not only or c.name in only for s in c.seeds
            if (c.name, str(s), str(c.steps), sha) not in done]
    log.info("screen %s at %s: %d runs to do, %d already in %s", plan.name, sha[:12], len(jobs),
             sum(len(c.seeds) for c in plan.configs if not only or c.name in only) - len(jobs), runs_csv)
    return plan, sha, jobs


def run_plan(plan_path: Path, repo: Path, runs_csv: Path, recipe_md: Path, commit: str | None = None,
             only: list[str] | None = None, dry_run: bool = False) -> list[dict]:
    """Run every (configuration, seed) of the plan not yet in runs_csv; returns the new rows.
    A failed run is logged and the plan goes on; ScreenError at the end names the failures."""
    plan, sha, jobs = pending(plan_path, repo, runs_csv, commit, only)
    repo = Path(repo).resolve()
    if dry_run or not jobs:
        return []
    wt = worktree(repo, sha)
    log_path = wt / "screen.log"
    new, failed = [], []
    for cfg, seed in jobs:
        try:
            metrics, train = run_one(wt, cfg, seed, log_path)
        except ScreenError as exc:
            log.error("%s", exc)
            failed.append(str(exc))
            continue
        row = row_of(cfg, seed, sha, plan.profile, plan.name, metrics, train)
        rows = read_rows(runs_csv) + [row]      # read again: another screen may have added rows
        write_rows(runs_csv, rows)
        render_recipe(recipe_md, rows)
        new.append(row)
        log.info("screen: %s seed %d done: FID %.2f, recall %.3f, coverage %.3f, modes %s/%s (%s s)", cfg.name,
                 seed, metrics["fid"], metrics["recall"], metrics["coverage"], row["attr_modes"], row["real_modes"],
                 row["train_s"])
    if failed:
        raise ScreenError(f"{len(failed)} of {len(jobs)} runs failed: " + "; ".join(failed))
    return new
