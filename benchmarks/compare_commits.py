"""Did a restructuring leave behaviour unchanged? Run two commits side by side and diff what they publish.

    .venv/bin/python benchmarks/compare_commits.py COMMIT_A COMMIT_B
    .venv/bin/python benchmarks/compare_commits.py main HEAD --keep /tmp/cmp   # keep the worktrees
    .venv/bin/python benchmarks/compare_commits.py main HEAD --profiles tiny   # the tiny profile alone
    nice -n 19 .venv/bin/python benchmarks/compare_commits.py main HEAD --parallel   # A and B at once

Each (commit, profile) gets its own detached git worktree (under a temporary folder, or under
--keep), with its own DVC cache and no git staging, so nothing writable is shared between runs and
a stage of B can never be restored from A's run cache (`dvc repro --no-run-cache` besides). Both
commits run on this machine, for each profile A then B (or both at once with --parallel: each keeps
its own thread count, so the numbers do not depend on it), in this interpreter's environment (its
bin folder first on PATH, PYTHONPATH at the worktree, so each runs its own rnngan):

- tiny:  the end-to-end tests' params (TINY in COMMIT_A's tests/project.py: 5 variants x 2 seeds,
         16 px, 6 steps), about two minutes a commit on 2 idle cores;
- quick: the committed params.yaml with train.seeds=[0], model.variants=[lstm,dcgan],
         model.cell=lstm, train.steps=100 (the data, reference and metrics at their defaults).

The overrides are written into each worktree's params.yaml (no `dvc exp run`: its refs would land
in the shared git repository). Then every published file is compared, A against B:
reports/metrics.json, metrics/*.json, comparison/*.json, models/*/train.json,
exports/generator.json and data/attributes/*/*.json number by number, to the last digit (JSON floats
compared exactly, NaN equal to NaN); every models/*/generator.pt tensor by tensor (dtype, shape,
torch.equal) and its config value by value. Keys named in IGNORED_KEYS (timing, machine, versions,
the ONNX file's size and hash: printed with the table) are skipped wherever they occur; a key or a
file present on one side only is a difference.

The table's first "differ" counts every value that differs (numbers, strings, a key on one side),
the second the tensors. Exit status: 0 when every compared value is identical, 1 on any difference
or a failed run, 2 on a usage error (an unknown commit, a non-empty --keep folder, an unknown
profile, no TINY at COMMIT_A).

The comparison functions (diff_tree, compare_trees) are pure and importable (tests/test_compare_commits.py).
"""
from __future__ import annotations

import argparse
import ast
import concurrent.futures
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]

# What may differ between two runs of the same behaviour on the same machine, skipped by key name at
# any depth (the whole subtree under "environment"): timing; the machine and library versions; the
# commit itself; and the ONNX file's size and hash (the exporter writes each node's source file path
# and module class into it, pkg.torch.onnx.stack_trace and class_hierarchy, so two worktrees of one
# commit already differ there; max_abs_diff against the eager generator is still compared).
IGNORED_KEYS = frozenset({
    "seconds", "train_seconds", "images_per_s",      # timing: train.json, comparison, attributes summary
    "environment", "torch", "onnxruntime",           # machine and versions: train.json, exports/generator.json
    "commit",                                        # the code version a report names
    "bytes", "sha256",                               # exports/generator.json: the ONNX file itself
})

QUICK = {"train.seeds": [0], "model.variants": ["lstm", "dcgan"], "model.cell": "lstm", "train.steps": 100}

# What the pipeline publishes, relative to the project root: numbers (JSON) and weights (torch).
JSON_PATTERNS = ("reports/metrics.json", "metrics/*.json", "comparison/*.json", "models/*/train.json",
                 "exports/generator.json", "data/attributes/*/*.json")
TORCH_PATTERNS = ("models/*/generator.pt",)

SHOWN = 3   # differences printed per file


class UsageError(Exception):
    """A command line that cannot run (exit status 2)."""


# --- the comparison (pure) ----------------------------------------------------------------------

@dataclasses.dataclass
class Tally:
    """What one comparison saw: leaves compared and the differences, as (dotted key, a, b)."""
    numbers: int = 0          # numeric leaves compared (bools and strings are compared, not counted)
    tensors: int = 0
    differences: list[tuple[str, object, object]] = dataclasses.field(default_factory=list)
    tensor_differences: int = 0

    def add(self, other: Tally) -> None:
        self.numbers += other.numbers
        self.tensors += other.tensors
        self.differences += other.differences
        self.tensor_differences += other.tensor_differences


MISSING = "<missing>"


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same_number(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _tensor_difference(a: torch.Tensor, b: torch.Tensor) -> str | None:
    if a.dtype != b.dtype or a.shape != b.shape:
        return f"{a.dtype}{tuple(a.shape)} vs {b.dtype}{tuple(b.shape)}"
    if torch.equal(a, b):
        return None
    if a.is_floating_point() or a.is_complex():
        return f"max |a-b| = {(a - b).abs().max().item():.3g}"
    return f"{int((a != b).sum())} of {a.numel()} elements differ"


def diff_tree(a, b, ignore=IGNORED_KEYS, path: str = "") -> Tally:
    """Compare two trees of dicts, lists, numbers, strings and tensors, skipping keys in `ignore`."""
    t = Tally()
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if k in ignore:
                continue
            sub = f"{path}.{k}" if path else str(k)
            if k not in a or k not in b:
                t.differences.append((sub, a.get(k, MISSING), b.get(k, MISSING)))
            else:
                t.add(diff_tree(a[k], b[k], ignore, sub))
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            t.differences.append((f"{path} (length)", len(a), len(b)))
        for i, (x, y) in enumerate(zip(a, b)):
            t.add(diff_tree(x, y, ignore, f"{path}[{i}]"))
    elif isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        t.tensors = 1
        why = _tensor_difference(a, b)
        if why is not None:
            t.tensor_differences = 1
            t.differences.append((path, "tensor", why))
    elif _is_number(a) and _is_number(b):
        t.numbers = 1
        if not _same_number(a, b):
            t.differences.append((path, a, b))
    elif type(a) is not type(b) or a != b:
        t.differences.append((path, a, b))
    return t


def compare_trees(a: dict[str, object | None], b: dict[str, object | None],
                  ignore=IGNORED_KEYS) -> dict[str, Tally]:
    """Per file name: the Tally of A's content against B's (None: the file is absent on that side)."""
    out = {}
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name), b.get(name)
        if x is None or y is None:
            out[name] = Tally(differences=[("(file)", "present" if x is not None else MISSING,
                                            "present" if y is not None else MISSING)])
        else:
            out[name] = diff_tree(x, y, ignore)
    return out


def _short(v) -> str:
    s = repr(v) if not isinstance(v, str) else v
    return s if len(s) <= 40 else s[:37] + "..."


def format_table(results: dict[str, Tally], shown: int = SHOWN) -> str:
    """One row per file: numbers compared and different, tensors compared and different, the first
    few differences as key: a vs b."""
    head = ("file", "numbers", "differ", "tensors", "differ", "first differences")
    rows = []
    for name, t in results.items():
        first = "; ".join(f"{k}: {_short(x)} vs {_short(y)}" for k, x, y in t.differences[:shown])
        if len(t.differences) > shown:
            first += f"; ... {len(t.differences) - shown} more"
        rows.append((name, str(t.numbers), str(len(t.differences) - t.tensor_differences),
                     str(t.tensors), str(t.tensor_differences), first))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = []
    for r in [head, *rows]:
        cells = [r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:-1], widths[1:])]
        lines.append("  ".join(cells + [r[-1]]).rstrip())
    return "\n".join(lines)


def tiny_overrides(project_py: str) -> dict[str, object] | None:
    """TINY of a tests/project.py source (a literal dict of params sections), as dotted keys; None
    when it has none."""
    for node in ast.parse(project_py).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "TINY" for t in node.targets):
            tiny = ast.literal_eval(node.value)
            return {f"{section}.{k}": v for section, values in tiny.items() for k, v in values.items()}
    return None


def apply_overrides(params: dict, overrides: dict[str, object]) -> dict:
    """params with each dotted key set; a key the params do not have is an error (a renamed knob)."""
    out = json.loads(json.dumps(params))
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = out
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if not isinstance(node, dict) or leaf not in node:
            raise ValueError(f"params.yaml has no {dotted}")
        node[leaf] = value
    return out


# --- loading what a run published ---------------------------------------------------------------

def published(root: Path) -> dict[str, object]:
    """Every published JSON and generator file under a project root, loaded, by relative path."""
    out = {}
    for pattern in JSON_PATTERNS:
        for p in root.glob(pattern):
            out[p.relative_to(root).as_posix()] = json.loads(p.read_text())
    for pattern in TORCH_PATTERNS:
        for p in root.glob(pattern):
            out[p.relative_to(root).as_posix()] = torch.load(p, map_location="cpu", weights_only=True)
    return dict(sorted(out.items()))


# --- orchestration ------------------------------------------------------------------------------

def git(*args: str, cwd: Path = ROOT) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout.strip()


def resolve(commit: str) -> str:
    try:
        return git("rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    except subprocess.CalledProcessError:
        raise UsageError(f"{commit}: not a commit of {ROOT}") from None


def tiny_params(sha: str) -> dict[str, object] | None:
    try:
        return tiny_overrides(git("show", f"{sha}:tests/project.py"))
    except subprocess.CalledProcessError:   # no tests/project.py at that commit
        return None


def run_env(worktree: Path) -> dict[str, str]:
    return {**os.environ, "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"],
            "PYTHONPATH": str(worktree), "DVC_NO_ANALYTICS": "1", "RNNGAN_NO_PROGRESS": "1"}


def prepare(sha: str, overrides: dict[str, object], worktree: Path) -> None:
    """Check out sha at worktree (detached), with its own DVC cache, no `git add` of outputs into the
    shared repository, and the profile's params written into params.yaml."""
    git("worktree", "add", "--quiet", "--detach", str(worktree), sha)
    found = subprocess.run([sys.executable, "-c", "import rnngan; print(rnngan.__file__)"], cwd=worktree,
                           env=run_env(worktree), capture_output=True, text=True).stdout.strip()
    if not found or not Path(found).resolve().is_relative_to(worktree.resolve()):
        raise RuntimeError(f"{worktree}: imports rnngan from {found or 'nowhere'}, not from the worktree")
    params_path = worktree / "params.yaml"
    params = apply_overrides(yaml.safe_load(params_path.read_text()), overrides)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    with (worktree / ".dvc" / "config.local").open("a") as f:
        f.write(f"[cache]\n    dir = {worktree / '.dvc' / 'cache'}\n[core]\n    autostage = false\n"
                "    analytics = false\n")


def repro(worktree: Path, log: Path) -> tuple[bool, float]:
    """`dvc repro --no-run-cache` at worktree, its output in log: (succeeded, seconds)."""
    started = time.perf_counter()
    with log.open("w") as f:
        r = subprocess.run([sys.executable, "-m", "dvc", "repro", "--no-run-cache"], cwd=worktree,
                           env=run_env(worktree), stdout=f, stderr=subprocess.STDOUT, text=True)
    return r.returncode == 0, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("commit_a")
    p.add_argument("commit_b")
    p.add_argument("--keep", type=Path, help="put the worktrees and logs here and keep them "
                   "(an empty or new folder; remove them later with `git worktree remove`)")
    p.add_argument("--profiles", default="tiny,quick", help="comma-separated: tiny, quick (default both)")
    p.add_argument("--parallel", action="store_true", help="run A and B of a profile at the same time "
                   "(each keeps its own thread count, so the numbers do not change)")
    args = p.parse_args(argv)
    try:
        shas = {"A": resolve(args.commit_a), "B": resolve(args.commit_b)}
        chosen = [s.strip() for s in args.profiles.split(",") if s.strip()]
        if not chosen or set(chosen) - {"tiny", "quick"}:
            raise UsageError(f"--profiles {args.profiles}: choose among tiny, quick")
        profiles = {"quick": QUICK}
        if "tiny" in chosen:
            tiny = {side: tiny_params(sha) for side, sha in shas.items()}
            if tiny["A"] is None:
                raise UsageError(f"{args.commit_a}: no TINY = {{...}} in tests/project.py")
            if tiny["B"] != tiny["A"]:
                print("note: COMMIT_B's tests/project.py TINY differs from COMMIT_A's; both run COMMIT_A's")
            profiles["tiny"] = tiny["A"]
        if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
            raise UsageError(f"--keep {args.keep}: not empty")
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    base = args.keep.resolve() if args.keep else Path(tempfile.mkdtemp(prefix="rnngan-compare-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"A = {args.commit_a} ({shas['A'][:12]}), B = {args.commit_b} ({shas['B'][:12]}); runs in {base}")
    print(f"ignored keys: {', '.join(sorted(IGNORED_KEYS))}")
    worktrees = []
    status = 0
    try:
        for profile in chosen:
            roots = {side: base / f"{profile}-{side}" for side in shas}
            try:
                for side, sha in shas.items():
                    worktrees.append(roots[side])
                    prepare(sha, profiles[profile], roots[side])
            except (ValueError, RuntimeError) as exc:   # a renamed knob; rnngan not the worktree's
                print(f"  {profile}: {exc}", file=sys.stderr)
                return 1
            jobs = {side: (roots[side], base / f"{profile}-{side}.log") for side in shas}
            with concurrent.futures.ThreadPoolExecutor(2 if args.parallel else 1) as pool:
                done = dict(zip(jobs, pool.map(lambda job: repro(*job), jobs.values())))
            for side, (ok, seconds) in done.items():
                print(f"  {profile} {side}: dvc repro {'done' if ok else 'FAILED'} in {seconds:.0f} s", flush=True)
                if not ok:
                    log = jobs[side][1]
                    print(f"the end of {log}:\n" + "\n".join(log.read_text().splitlines()[-30:]), file=sys.stderr)
            if not all(ok for ok, _ in done.values()):
                return 1
            results = compare_trees(published(roots["A"]), published(roots["B"]))
            different = [n for n, t in results.items() if t.differences]
            print(f"\n{profile} ({', '.join(f'{k}={v}' for k, v in profiles[profile].items())}):")
            print(format_table(results))
            verdict = f"{len(different)} files DIFFER" if different else "IDENTICAL" if results else "NOTHING PUBLISHED"
            print(f"{profile}: {verdict} ({len(results)} files)\n", flush=True)
            status = max(status, 1 if different or not results else 0)
    finally:
        if args.keep is None:
            for wt in worktrees:
                if wt.exists():
                    git("worktree", "remove", "--force", str(wt))
            shutil.rmtree(base, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
