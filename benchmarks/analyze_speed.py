"""One analyze run before and after issue 30's rewrite, side by side on the same inputs.

    python benchmarks/analyze_speed.py                     # 5,000 vs 5,000 at 32 px, 2 interleaved rounds
    python benchmarks/analyze_speed.py --rounds 3 --old 87a0c16
    python benchmarks/analyze_speed.py --samples s.npy --reference r.npz --attributes data/attributes/synthfaces

The code before is taken from git history (`--old`, default 87a0c16, the last commit before the
rewrite: `git archive` of its rnngan/, stages/ and params.yaml into a temporary folder); the
code after is this working tree. Each round runs the analyze stage itself,
`python -m stages.analyze`, in a fresh interpreter (start-up included, as DVC runs it), once
with the old code and once with the new, alternating which goes first, on the same samples,
reference and attributes folder (built in code by benchmarks/analysis_inputs.py at the default
sizes unless given). Both use their own params.yaml, whose `metrics` sections must agree.

Prints each run's seconds, the median of each side and their ratio, then every number of the
two metrics JSON files compared: the largest absolute and relative difference per key (lists
and per-attribute entries grouped), and how many numbers are bit-identical.
"""
from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

DEFAULT_OLD = "87a0c16"


def export_tree(commit: str, out: Path) -> Path:
    """rnngan/, stages/ and params.yaml of `commit`, unpacked into `out`."""
    data = subprocess.run(["git", "archive", "--format=tar", commit, "rnngan", "stages", "params.yaml"],
                          cwd=ROOT, check=True, capture_output=True).stdout
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(out, filter="data")
    return out


def run_stage(tree: Path, samples: Path, reference: Path, attributes: Path | None,
              out: Path) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of `python -m stages.analyze` with the code in `tree`."""
    cmd = [sys.executable, "-m", "stages.analyze", "--params", str(tree / "params.yaml"), "--run", "bench",
           "--samples", str(samples), "--reference", str(reference), "--out", str(out)]
    if attributes is not None:
        cmd += ["--attributes", str(attributes)]
    env = {**os.environ, "PYTHONPATH": str(tree), "RNNGAN_NO_PROGRESS": "1"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"analyze failed in {tree}:\n{done.stderr[-3000:]}")
    return seconds, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def leaves(value, path: str = ""):
    """(path, number) for every number in a JSON value; list indices as [i]."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, (int, float)):
        yield path, float(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from leaves(v, f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from leaves(v, f"{path}[{i}]")


def group_of(path: str) -> str:
    """Lists and the 40 per-attribute entries collapse into one row each."""
    path = re.sub(r"\[\d+\]", "[*]", path)
    return re.sub(r"^attributes\.(frequency|tv)\..*$", r"attributes.\1.*", path)


def compare(old: dict, new: dict) -> tuple[list[tuple], int, int]:
    """Rows (group, numbers, largest |diff|, largest relative diff, old value, new value) of the
    groups that differ anywhere; the count of numbers compared and of identical ones."""
    a, b = dict(leaves(old)), dict(leaves(new))
    if a.keys() != b.keys():
        missing = sorted(set(a) ^ set(b))
        raise SystemExit(f"the two JSON files hold different numbers: {missing[:10]}")
    groups: dict[str, list] = {}
    identical = 0
    for path in a:
        x, y = a[path], b[path]
        same = x == y or (math.isnan(x) and math.isnan(y))
        identical += same
        diff = 0.0 if same else abs(x - y)
        rel = 0.0 if same else diff / max(abs(x), abs(y))
        g = groups.setdefault(group_of(path), [0, 0.0, 0.0, x, y])
        g[0] += 1
        if diff > g[1]:
            g[1:] = [diff, max(rel, g[2]), x, y]
        g[2] = max(g[2], rel)
    rows = [(k, *v) for k, v in groups.items() if v[1] > 0]
    return rows, len(a), identical


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default=DEFAULT_OLD, help=f"commit of the code before (default {DEFAULT_OLD})")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (default 2)")
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--real-count", type=int, default=5000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--samples", type=Path)
    parser.add_argument("--reference", type=Path)
    parser.add_argument("--attributes", type=Path)
    parser.add_argument("--no-attributes", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")

    import torch
    import yaml

    from analysis_inputs import build_inputs
    from analyze_profile import cpu_model
    from rnngan.config import load_params

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = export_tree(args.old, tmp / "old")
        old_metrics = yaml.safe_load((old_tree / "params.yaml").read_text())["metrics"]
        new_metrics = yaml.safe_load((ROOT / "params.yaml").read_text())["metrics"]
        if old_metrics != new_metrics:
            raise SystemExit(f"params.yaml metrics differ: {args.old} {old_metrics} vs now {new_metrics}")
        if args.samples is not None:
            if args.reference is None:
                parser.error("--samples needs --reference")
            samples, reference, attributes = args.samples, args.reference, args.attributes
            what = f"{samples} against {reference}"
        else:
            mp = load_params(ROOT / "params.yaml").metrics.model_copy(update={"real_count": args.real_count})
            inputs = build_inputs(tmp / "inputs", args.count, args.real_count, args.size,
                                  attributes=not args.no_attributes, mp=mp)
            samples, reference, attributes = inputs.samples, inputs.reference, inputs.attributes
            what = f"{args.count} procedural faces against a reference of {args.real_count}, {args.size} px"
        if args.no_attributes:
            attributes = None
        times: dict[str, list[float]] = {"old": [], "new": []}
        cpu: dict[str, list[float]] = {"old": [], "new": []}
        trees = {"old": old_tree, "new": ROOT}
        for i in range(args.rounds):
            order = ("old", "new") if i % 2 == 0 else ("new", "old")
            for side in order:
                wall, used = run_stage(trees[side], samples, reference, attributes, tmp / f"{side}.json")
                times[side].append(wall)
                cpu[side].append(used)
            print(f"round {i + 1}: old {times['old'][-1]:.1f} s ({cpu['old'][-1]:.1f} CPU s), "
                  f"new {times['new'][-1]:.1f} s ({cpu['new'][-1]:.1f} CPU s)", flush=True)
        old_json = json.loads((tmp / "old.json").read_text())
        new_json = json.loads((tmp / "new.json").read_text())

    load = os.getloadavg()
    old_s, new_s = statistics.median(times["old"]), statistics.median(times["new"])
    print(f"\n# analyze stage, old ({args.old}) vs new (working tree): {cpu_model()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} on {torch.get_num_threads()} threads, load average {load[0]:.2f}")
    print(f"inputs: {what}; metrics: {new_metrics}"
          + ("" if attributes else "; attribute scoring skipped"))
    old_c, new_c = statistics.median(cpu["old"]), statistics.median(cpu["new"])
    print("wall: seconds until the stage's process ended; CPU: its seconds on all threads together "
          "(on a busy machine the measure of work, where wall time adds the wait for a core)")
    print("\n| run | old wall s | new wall s | new / old | old CPU s | new CPU s | new / old |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i in range(len(times["old"])):
        o, n, oc, nc = times["old"][i], times["new"][i], cpu["old"][i], cpu["new"][i]
        print(f"| {i + 1} | {o:.1f} | {n:.1f} | {n / o:.3f} | {oc:.1f} | {nc:.1f} | {nc / oc:.3f} |")
    print(f"| median | {old_s:.1f} | {new_s:.1f} | {new_s / old_s:.3f} ({old_s / new_s:.1f}x faster) | "
          f"{old_c:.1f} | {new_c:.1f} | {new_c / old_c:.3f} ({old_c / new_c:.1f}x less) |")

    rows, total, identical = compare(old_json, new_json)
    print(f"\n{total} numbers compared, {identical} bit-identical; the groups that differ "
          "(largest differences):\n")
    print("| key | numbers | max abs diff | max rel diff | old | new |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for key, n, diff, rel, x, y in rows:
        print(f"| {key} | {n} | {diff:.3g} | {rel:.3g} | {x!r} | {y!r} |")
    if not rows:
        print("| (none) | | | | | |")


if __name__ == "__main__":
    main()
