"""`rnngan repro --jobs N`: the study's independent runs N at a time on one machine, through DVC.

DVC runs stages one after another (iterative/dvc#755); its documented way to run independent
branches at once is several `dvc repro` processes in one workspace: each releases the repository
lock while its command runs and holds read locks on its dependencies and write locks on its
outputs. This module does only that, in three phases:

1. the stages every run depends on (data, reference, attributes), once, by a plain `dvc repro`
   of them;
2. each run's chain (train@<run>, sample@<run>, analyze@<run>), N chains at a time, every stage
   as `dvc --wait-for-lock repro --single-item <stage>`, each chain with its own share of the
   CPU cores (its affinity; `train.threads: 0` then means that share) and, with `--gpus`, its own
   `CUDA_VISIBLE_DEVICES`;
3. a plain `dvc repro` for the rest (compare, held-out row, report, export): the same dvc.lock
   as one serial `dvc repro` with the same threads per run.

A chain that fails stops the others (their processes get SIGTERM; training resumes from its last
checkpoint on the next call) and is named with its log. Up-to-date stages are skipped by DVC
itself, so rerunning resumes.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rnngan.errors import UserError
from rnngan.io import log, progress

LOGS = Path(".dvc") / "tmp" / "rnngan-repro"   # one log per chain (DVC's own tmp folder, not tracked)


class ReproError(UserError):
    """A stage that failed under `rnngan repro`, named with where its log is."""


@dataclass(frozen=True)
class Layout:
    """The stage graph cut into phases: `upstream` before the runs, `chains` (run -> its stages in
    order), and `rest` after them; `inputs` are the upstream stages a chain reads directly."""
    upstream: tuple[str, ...]
    chains: dict[str, tuple[str, ...]]
    rest: tuple[str, ...]
    inputs: tuple[str, ...] = ()


def layout(root: Path) -> Layout:
    """Read dvc.yaml's stage graph: matrix stages (`<stage>@<run>`) form one chain per run; their
    dependencies outside the chains are upstream; everything else comes after."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph   # an edge points from a stage to a stage it depends on
        names = {stage: stage.addressing for stage in graph.nodes}
        runs: dict[str, list] = {}
        for stage, name in names.items():
            if "@" in name:
                runs.setdefault(name.split("@", 1)[1], []).append(stage)
        in_chain = {s for chain in runs.values() for s in chain}
        upstream = {dep for stage in in_chain for dep in nx.descendants(graph, stage)} - in_chain
        inputs = {dep for stage in in_chain for dep in graph.successors(stage)} - in_chain
        order = list(reversed(list(nx.topological_sort(graph))))   # dependencies first
        chains = {run: tuple(names[s] for s in order if s in set(chain)) for run, chain in sorted(runs.items())}
        return Layout(tuple(names[s] for s in order if s in upstream), chains,
                      tuple(names[s] for s in order if s not in upstream and s not in in_chain),
                      tuple(names[s] for s in order if s in inputs))


def stale(root: Path, env: dict) -> set[str]:
    """The stages `dvc status` calls changed (a chain is run when any of its stages is)."""
    import json

    r = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=root, env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise ReproError(f"dvc status failed: {r.stderr.strip() or r.stdout.strip()}")
    lines = [line for line in r.stdout.splitlines() if line.strip().startswith("{")]
    status = json.loads(lines[-1]) if lines else {}
    return {key.split(":")[-1] for key in status}


def core_shares(cores: list[int], jobs: int) -> list[list[int]]:
    """Split the available cores into `jobs` contiguous shares as equal as possible (each at least one)."""
    jobs = max(1, min(jobs, len(cores)))
    size, extra = divmod(len(cores), jobs)
    shares, start = [], 0
    for i in range(jobs):
        end = start + size + (1 if i < extra else 0)
        shares.append(cores[start:end])
        start = end
    return shares


def dvc_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def _run_phase(root: Path, env: dict, stages: tuple[str, ...], what: str, everything: bool = False) -> None:
    """`dvc repro STAGES` (with their dependencies), or a plain `dvc repro` with everything."""
    if not stages and not everything:
        return
    log.info("rnngan repro: %s (%s)", what, ", ".join(stages) or "dvc repro")
    r = subprocess.run(dvc_command("repro", *stages), cwd=root, env=env)
    if r.returncode != 0:
        raise ReproError(f"{what} failed (dvc repro {' '.join(stages)} exited {r.returncode}); fix it and rerun")


@dataclass
class _Job:
    run: str
    stages: tuple[str, ...]
    env: dict
    log_path: Path
    index: int = 0
    proc: subprocess.Popen | None = None
    log_file: object = None
    slot: int = 0
    cores: tuple[int, ...] = ()

    def start_next(self, root: Path) -> bool:
        """Start the chain's next stage; False when the chain is done."""
        if self.index >= len(self.stages):
            return False
        stage = self.stages[self.index]
        self.log_file.write(f"=== dvc --wait-for-lock repro --single-item {stage} ===\n")
        self.log_file.flush()
        self.proc = subprocess.Popen(dvc_command("--wait-for-lock", "repro", "--single-item", stage), cwd=root,
                                     env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=self._pin)
        return True

    def _pin(self) -> None:
        if self.cores:
            os.sched_setaffinity(0, self.cores)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)


def repro(root: Path, jobs: int, gpus: list[str] | None = None, poll: float = 0.5) -> dict:
    """Run the pipeline with up to `jobs` runs at once (see the module docstring). Returns
    {"upstream", "runs", "rest"}: the stages of each phase that were handed to DVC."""
    root = Path(root).resolve()
    if jobs < 1:
        raise ReproError(f"--jobs {jobs}: must be at least 1")
    if gpus is not None and not gpus:
        raise ReproError("--gpus: give device ids, e.g. --gpus 0,1")
    env = {**os.environ, "DVC_NO_ANALYTICS": os.environ.get("DVC_NO_ANALYTICS", "1")}
    shape = layout(root)
    _run_phase(root, env, shape.upstream, "the shared stages")

    changed = stale(root, env)
    todo = [run for run, chain in shape.chains.items() if changed & set(chain)]
    log.info("rnngan repro: %d of %d runs to do, %d at a time", len(todo), len(shape.chains), jobs)
    cores = sorted(os.sched_getaffinity(0))
    width = min(jobs, len(gpus) if gpus else jobs, max(len(todo), 1))
    shares = core_shares(cores, width) if not gpus else [[] for _ in range(width)]
    (root / LOGS).mkdir(parents=True, exist_ok=True)
    queue = [
        _Job(run, shape.chains[run], dict(env), root / LOGS / f"{run}.log") for run in todo]
    running: list[_Job] = []
    free = list(range(width))
    bar = progress(total=len(todo), desc="runs", unit="run")
    try:
        while queue or running:
            while queue and free:
                job = queue.pop(0)
                job.slot = free.pop(0)
                job.cores = tuple(shares[job.slot]) if not gpus else ()
                if gpus:
                    job.env["CUDA_VISIBLE_DEVICES"] = gpus[job.slot % len(gpus)]
                job.log_file = open(job.log_path, "w")
                job.start_next(root)
                running.append(job)
                log.info("rnngan repro: %s started (%s; log %s)", job.run,
                         f"GPU {job.env['CUDA_VISIBLE_DEVICES']}" if gpus else f"cores {list(job.cores)}",
                         job.log_path.relative_to(root))
            time.sleep(poll)
            for job in list(running):
                code = job.proc.poll()
                if code is None:
                    continue
                if code != 0:
                    stage = job.stages[job.index]
                    raise ReproError(f"{stage} failed (exit {code}); its log: {job.log_path.relative_to(root)}. "
                                     "The other runs were stopped; fix it and rerun `rnngan repro` (finished "
                                     "stages are kept, training resumes from its checkpoint)")
                job.index += 1
                if not job.start_next(root):
                    job.log_file.close()
                    running.remove(job)
                    free.append(job.slot)
                    bar.update(1)
    except BaseException:
        for job in running:
            job.stop()
        for job in running:
            if job.proc is not None:
                job.proc.wait()
            job.log_file.close()
        raise
    finally:
        bar.close()
    _run_phase(root, env, (), "the stages after the runs", everything=True)
    return {"upstream": list(shape.upstream), "runs": todo, "rest": list(shape.rest)}
