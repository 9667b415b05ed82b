"""Where one analyze run spends its time: each part's seconds and share, on this machine.

    python benchmarks/analyze_profile.py                   # 5,000 vs 5,000 at 32 px, params.yaml's metrics
    python benchmarks/analyze_profile.py --repeats 3       # the fastest of 3 runs per part
    python benchmarks/analyze_profile.py --samples s.npy --reference r.npz --attributes data/attributes/synthfaces

It builds the inputs in code (benchmarks/analysis_inputs.py: procedural faces, a reference made
by rnngan's own `compute_reference`, an attributes folder with an untrained classifier) at the
default sizes, or takes real files. Then it runs `rnngan.evaluation.analyze` itself, with each
function that analyze calls for one part wrapped in a timer (time inside a nested timed call
counts for the inner part only), and times, in fresh interpreters, what the analyze stage pays
before it starts: the interpreter, `import torch`, and the stage's own imports and params.

Parts: start-up; loading (reference and samples); feature extraction; FID; FID bootstrap; KID
(subsets); KID bootstrap; PRDC; where the code shares work between them (issue 30's
`rnngan.metrics.analysis`), the pairwise products of KID and PRDC as a part of their own and
KID's subsets and bootstrap as one; histograms and colour moments; HSV histograms and spectra;
attribute scoring; other (writing the JSON, logging, what no timer covers). The header names the
CPU and torch's thread count. Prints a markdown table.
"""
from __future__ import annotations

import argparse
import functools
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# What analyze calls, by the name it calls it in rnngan.evaluation, and the part it belongs to.
# Names absent from a version of the code are skipped, so the script profiles the code before
# and after issue 30's rewrite alike.
PARTS = {
    "load_reference": "loading",
    "load_images": "loading",
    "extract_features": "feature extraction",
    "feature_statistics": "FID",
    "fid_from_statistics": "FID",
    "kid": "KID (subsets)",
    "fid_bootstrap": "FID bootstrap",
    "kid_bootstrap": "KID bootstrap",
    "prdc": "PRDC",
    "value_counts": "histograms",
    "histograms": "histograms",
    "histograms_from_counts": "histograms",
    "histogram_distances": "histograms",
    "colour_moments": "histograms",
    "colour_moments_from_counts": "histograms",
    "hsv_histograms": "HSV histograms and spectra",
    "hsv_distances": "HSV histograms and spectra",
    "power_spectrum": "HSV histograms and spectra",
    "spectral_distance": "HSV histograms and spectra",
    "score_attributes": "attribute scoring",
    "write_json": "other (JSON, logging)",
    # issue 30's shared computation: what INNER does not claim (validation, subset draws, sums)
    "feature_analysis": "KID (subsets) + KID bootstrap",
}
# finer parts inside the shared computation, by module attribute (looked up at call time)
INNER = {
    ("rnngan.metrics.analysis", "fid_part"): "FID",
    ("rnngan.metrics.analysis", "fid_bootstrap_part"): "FID bootstrap",
    ("rnngan.metrics.prdc", "block_product"): "shared distances (KID, PRDC)",
    ("rnngan.metrics.analysis", "kid_part"): "KID (subsets) + KID bootstrap",
    ("rnngan.metrics.analysis", "manifold_pass"): "PRDC",
    # analyze imports it inside the function, so from its module at call time
    ("rnngan.attributes", "score_attributes"): "attribute scoring",
}
ORDER = ["start-up: interpreter", "start-up: import torch", "start-up: stage imports and params",
         "loading", "feature extraction", "FID", "FID bootstrap", "KID (subsets)", "KID bootstrap",
         "shared distances (KID, PRDC)", "KID (subsets) + KID bootstrap", "PRDC", "histograms", "HSV histograms and spectra",
         "attribute scoring", "other (JSON, logging)"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class Timers:
    """Exclusive wall and CPU seconds per part: a timed call nested in another counts only for
    itself. CPU seconds are the process's, all threads together: on a busy machine they measure
    the work where wall seconds measure the wait for a core as well."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stack: list[list[float]] = []       # per open call: [wall, cpu] spent in nested timed calls

    def wrap(self, part: str, fn):
        @functools.wraps(fn)
        def timed(*args, **kwargs):
            self._stack.append([0.0, 0.0])
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
                nested = self._stack.pop()
                self.seconds[part] = self.seconds.get(part, 0.0) + total - nested[0]
                self.cpu[part] = self.cpu.get(part, 0.0) + cpu - nested[1]
                if self._stack:
                    self._stack[-1][0] += total
                    self._stack[-1][1] += cpu
        return timed


def instrument(timers: Timers) -> list[tuple[object, str, object]]:
    """Wrap every PARTS/INNER function that exists; returns what to restore."""
    import importlib

    import rnngan.evaluation as ev

    patched = []
    for name, part in PARTS.items():
        if hasattr(ev, name):
            patched.append((ev, name, getattr(ev, name)))
            setattr(ev, name, timers.wrap(part, getattr(ev, name)))
    for (module, name), part in INNER.items():
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        if hasattr(mod, name):
            patched.append((mod, name, getattr(mod, name)))
            setattr(mod, name, timers.wrap(part, getattr(mod, name)))
    return patched


STARTUP = {
    "start-up: interpreter": "pass",
    "start-up: import torch": "import torch",
    # what `python -m stages.analyze` runs before its work: rnngan.stage (with the user-error
    # classes it imports), params, then the evaluation and attribute modules
    "start-up: stage imports and params": (
        "import torch\n"
        "from rnngan.stage import user_errors\n"
        "from rnngan.config import load_params\n"
        "user_errors()\n"
        "load_params({params!r})\n"
        "import rnngan.evaluation, rnngan.attributes\n"),
}


def startup_seconds(params: Path, repeats: int, code: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Wall and CPU seconds of fresh interpreters running each snippet (the fastest of
    `repeats`), each minus the snippet before it, so the three parts add up to the stage's
    start-up."""
    walls, cpus = {}, {}
    for part, snippet in STARTUP.items():
        best, best_cpu = float("inf"), float("inf")
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", snippet.format(params=str(params))], cwd=code, check=True,
                           env={**os.environ, "PYTHONPATH": str(code)})
            best = min(best, time.perf_counter() - start)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            best_cpu = min(best_cpu, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        walls[part], cpus[part] = best, best_cpu
    out, out_cpu, before_wall, before_cpu = {}, {}, 0.0, 0.0
    for part in walls:
        out[part], out_cpu[part] = max(walls[part] - before_wall, 0.0), max(cpus[part] - before_cpu, 0.0)
        before_wall, before_cpu = walls[part], cpus[part]
    return out, out_cpu


def profile_once(samples: Path, reference: Path, attributes: Path | None, mp, out: Path):
    import rnngan.evaluation as ev

    timers = Timers()
    patched = instrument(timers)
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        ev.analyze("profile", samples, reference, mp, "cpu", out, attributes=attributes)
        total, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    finally:
        for module, name, fn in reversed(patched):
            setattr(module, name, fn)
    seconds, cpus = dict(timers.seconds), dict(timers.cpu)
    other = "other (JSON, logging)"
    seconds[other] = seconds.get(other, 0.0) + max(total - sum(timers.seconds.values()), 0.0)
    cpus[other] = cpus.get(other, 0.0) + max(cpu - sum(timers.cpu.values()), 0.0)
    return seconds, cpus, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="generated images (default 5000)")
    parser.add_argument("--real-count", type=int, default=5000, help="reference images (default 5000)")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (default 32)")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                        help="its metrics section is used (default: the repository's params.yaml)")
    parser.add_argument("--samples", type=Path, help="a samples .npy instead of built images")
    parser.add_argument("--reference", type=Path, help="the reference .npz made for --samples")
    parser.add_argument("--attributes", type=Path, help="an attributes stage folder (with --samples)")
    parser.add_argument("--no-attributes", action="store_true", help="skip attribute scoring")
    parser.add_argument("--repeats", type=int, default=1, help="analyze runs; the fastest per part is shown")
    parser.add_argument("--startup-repeats", type=int, default=3)
    parser.add_argument("--code", type=Path, help="profile the rnngan package in this folder instead "
                        "(e.g. an older commit's: git archive <commit> rnngan | tar -x -C DIR)")
    args = parser.parse_args()
    code = args.code.resolve() if args.code else ROOT
    sys.path.insert(0, str(code))
    os.environ.setdefault("RNNGAN_NO_PROGRESS", "1")

    import dataclasses

    import torch

    from rnngan.config import load_params

    mp = load_params(args.params).metrics
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.samples is not None:
            if args.reference is None:
                parser.error("--samples needs --reference")
            samples, reference, attributes = args.samples, args.reference, args.attributes
            note = f"inputs: {samples} against {reference}"
        else:
            from analysis_inputs import build_inputs

            mp = dataclasses.replace(mp, real_count=args.real_count)
            started = time.perf_counter()
            inputs = build_inputs(tmp / "inputs", args.count, args.real_count, args.size,
                                  attributes=not args.no_attributes, mp=mp)
            samples, reference, attributes = inputs.samples, inputs.reference, inputs.attributes
            note = (f"inputs: {args.count} procedural faces vs a reference of {args.real_count} at "
                    f"{args.size} px, built in {time.perf_counter() - started:.1f} s")
        if args.no_attributes:
            attributes = None
        startup, startup_cpu = startup_seconds(args.params, args.startup_repeats, code)
        best: dict[str, float] = {}
        best_cpu: dict[str, float] = {}
        totals = []
        for _ in range(args.repeats):
            seconds, cpus, total = profile_once(samples, reference, attributes, mp, tmp / "metrics.json")
            totals.append(total)
            for part in seconds:
                best[part] = min(best.get(part, float("inf")), seconds[part])
                best_cpu[part] = min(best_cpu.get(part, float("inf")), cpus[part])
    best.update(startup)
    best_cpu.update(startup_cpu)
    whole, whole_cpu = sum(best.values()), sum(best_cpu.values())
    load = os.getloadavg()
    print(f"# analyze profile: {cpu_model()}, {os.cpu_count()} CPUs, torch {torch.__version__} on "
          f"{torch.get_num_threads()} threads, load average {load[0]:.2f}")
    print(f"code: {code}; {note}; metrics: {mp.features} features, bootstrap {mp.bootstrap}, KID {mp.kid_subsets} x "
          f"{mp.kid_subset_size}, nearest_k {mp.nearest_k}, bins {mp.bins}"
          + ("" if attributes else "; no attributes folder: attribute scoring skipped"))
    print(f"analyze() runs: {', '.join(f'{t:.1f}' for t in totals)} s; start-up {sum(startup.values()):.1f} s")
    print("CPU seconds: all threads of the process together (on a busy machine the measure of work; "
          "wall seconds add the wait for a core)\n")
    print("| part | wall s | share | CPU s | share |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for part in ORDER + sorted(set(best) - set(ORDER)):
        if part in best:
            print(f"| {part} | {best[part]:.2f} | {100 * best[part] / whole:.1f}% | {best_cpu[part]:.2f} | "
                  f"{100 * best_cpu[part] / whole_cpu:.1f}% |")
    print(f"| **whole run** | **{whole:.2f}** | 100% | **{whole_cpu:.2f}** | 100% |")


if __name__ == "__main__":
    main()
