"""`rnngan cluster --engine submitit|ray`: the study's independent runs on a cluster, through an
existing engine, with DVC keeping the books through a remote and its run-cache.

No scheduler of our own: SLURM through submitit (one job array, one task per stale run) or Ray
(one task per stale run, `num_gpus` each). What this module adds is the DVC side, as DVC's
maintainers describe it for parallel and remote execution:

1. here: the shared stages (`dvc repro` of them) and `dvc push`, so every task can pull its inputs;
2. each task, wherever the engine runs it: a fresh `git clone` of the repository at this commit,
   this workspace's `dvc.lock` written into it (the shared stages' hashes), `dvc pull` of the
   shared stages' outputs, each stage of its run's chain (train@<run>, sample@<run>,
   analyze@<run>) as `dvc repro --single-item`, then `dvc push --run-cache`; the clone is removed;
3. here again: `dvc repro --pull`, which finds every run in the remote's run-cache and pulls
   and checks out its outputs instead of training (the compare, held-out, report and export
   stages run here).

It needs a DVC remote that both sides reach (`dvc remote add -d store /shared/dvc-store`, or
S3, SSH, ...) and a git repository the tasks can clone (`--repo`, default this one: fine on a
shared filesystem). Params and code must be committed: a task sees the commit, not the
workspace (only `dvc.lock` travels, since step 1 changes it).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from rnngan.errors import UserError
from rnngan.io import log
from rnngan.parallel import dvc_command, layout, stale

ENGINES = ("submitit", "ray")


class ClusterError(UserError):
    """A cluster run that cannot start or a task that failed, named with what to do."""


@dataclass(frozen=True)
class Task:
    """What one task needs: where to clone from, which commit, the lock, its stages, and the remote."""
    run: str
    repo: str
    commit: str
    lock: str
    inputs: tuple[str, ...]      # the shared stages whose outputs the chain reads (pulled)
    stages: tuple[str, ...]
    workdir: str


def _sh(args: list[str], cwd: Path, env: dict, what: str) -> str:
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stdout + r.stderr).strip().splitlines()[-15:])
        raise ClusterError(f"{what} failed (exit {r.returncode}):\n{tail}")
    return r.stdout


def run_task(task: Task) -> dict:
    """One task, in the engine's worker: clone, pull the shared inputs, run the chain, push the
    results with the run-cache. Returns the run and the stages it ran."""
    clone = Path(task.workdir) / f"{task.run}-{uuid.uuid4().hex[:8]}"
    clone.parent.mkdir(parents=True, exist_ok=True)
    # the clone's own code and data, never the submitting checkout's installed package
    env = {**os.environ, "PYTHONPATH": str(clone), "DVC_NO_ANALYTICS": "1", "RNNGAN_NO_PROGRESS": "1"}
    try:
        _sh(["git", "clone", "--quiet", task.repo, str(clone)], clone.parent, env, f"{task.run}: git clone {task.repo}")
        _sh(["git", "checkout", "--quiet", task.commit], clone, env, f"{task.run}: git checkout {task.commit[:12]}")
        (clone / "dvc.lock").write_text(task.lock)
        _sh(dvc_command("pull", *task.inputs), clone, env, f"{task.run}: dvc pull of the shared stages' outputs")
        for stage in task.stages:
            _sh(dvc_command("repro", "--single-item", stage), clone, env, f"{task.run}: dvc repro --single-item {stage}")
        _sh(dvc_command("push", "--run-cache"), clone, env, f"{task.run}: dvc push --run-cache")
    finally:
        shutil.rmtree(clone, ignore_errors=True)
    return {"run": task.run, "stages": list(task.stages)}


def _git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()


def prepare(root: Path, repo: str | None, workdir: str | None) -> tuple[list[Task], dict]:
    """Steps 1 and the task list: refuse a dirty workspace or a missing remote, run and push the
    shared stages, and describe one task per stale run."""
    env = {**os.environ, "DVC_NO_ANALYTICS": os.environ.get("DVC_NO_ANALYTICS", "1")}
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True,
                            text=True, check=True).stdout   # "XY path" lines: not stripped, X may be a space
    dirty = [line[3:] for line in status.splitlines() if line[3:] != "dvc.lock"]
    if dirty:
        raise ClusterError(f"uncommitted changes to {', '.join(dirty[:5])}: the tasks clone the commit, so "
                           "commit params and code first (git commit -am ...)")
    # `dvc remote default` prints the name, or says there is none and exits 1
    found = subprocess.run(dvc_command("remote", "default"), cwd=root, env=env,
                           capture_output=True, text=True)
    if found.returncode != 0 or not found.stdout.strip():
        raise ClusterError("no default DVC remote: the tasks pull their inputs from it and push their results "
                           "to it; add one both sides reach, e.g. dvc remote add -d store /shared/dvc-store")
    shape = layout(root)
    if shape.upstream:
        log.info("rnngan cluster: the shared stages here (%s), then dvc push", ", ".join(shape.upstream))
        _sh(dvc_command("repro", *shape.upstream), root, env, "dvc repro of the shared stages")
        _sh(dvc_command("push", *shape.inputs), root, env, "dvc push of the shared stages")
    changed = stale(root, env)
    todo = [run for run, chain in shape.chains.items() if changed & set(chain)]
    commit = _git(root, "rev-parse", "HEAD")
    lock = (root / "dvc.lock").read_text() if (root / "dvc.lock").exists() else ""
    workdir = workdir or str(Path(tempfile.gettempdir()) / "rnngan-cluster")
    tasks = [Task(run, repo or str(root), commit, lock, shape.inputs, shape.chains[run], workdir) for run in todo]
    return tasks, env


def collect(root: Path, env: dict) -> list[str]:
    """Step 3: `dvc repro --pull`: each run found in the remote's run-cache is checked out (its
    outputs pulled) instead of run, then the rest of the pipeline runs here. (`dvc pull
    --run-cache` alone fetches the run-cache entries but not the outputs they name, and fails on
    the stages not run yet.) Shows DVC's output as it comes; returns the stages DVC restored."""
    proc = subprocess.Popen(dvc_command("repro", "--pull"), cwd=root, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
    restored = []
    for line in proc.stdout:
        sys.stdout.write(line)
        found = re.search(r"Stage '([^']+)' is cached - skipping run", line)
        if found:
            restored.append(found.group(1))
    if proc.wait() != 0:
        raise ClusterError(f"dvc repro --pull after the tasks exited {proc.returncode}")
    return restored


def submit_submitit(tasks: list[Task], folder: Path, local: bool, slurm: dict) -> list[dict]:
    """One job array, one task per run: SLURM (`slurm` holds submitit's slurm_* parameters, e.g.
    partition, time, gpus_per_node), or submitit's local executor (`local`: subprocesses here)."""
    import submitit

    executor = submitit.LocalExecutor(folder=str(folder)) if local else submitit.AutoExecutor(folder=str(folder))
    if local:
        executor.update_parameters(timeout_min=int(slurm.get("timeout_min", 24 * 60)))
    else:
        executor.update_parameters(name="rnngan", **slurm)
    jobs = executor.map_array(run_task, tasks)
    results = []
    for task, job in zip(tasks, jobs):
        try:
            results.append(job.result())
        except Exception as exc:   # submitit re-raises the task's error with its log
            for other in jobs:
                other.cancel(check=False)
            raise ClusterError(f"{task.run}: the task failed (submitit job {job.job_id}, logs in {folder}): "
                               f"{_first_line(exc)}; the other tasks were cancelled. Fix it and rerun: "
                               "runs already pushed are restored, not retrained") from None
    return results


def submit_ray(tasks: list[Task], address: str | None, gpus: float, cpus: float) -> list[dict]:
    """One Ray task per run (`num_gpus`/`num_cpus` each) on the cluster at `address` (None: a
    local Ray started for this call)."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 **({} if address else {"num_cpus": max(1, len(os.sched_getaffinity(0)))}))
    try:
        remote = ray.remote(num_gpus=gpus, num_cpus=cpus, max_retries=0)(run_task)
        refs = {remote.remote(task): task for task in tasks}
        results = []
        pending = list(refs)
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            try:
                results.append(ray.get(done[0]))
            except Exception as exc:
                for ref in pending:
                    ray.cancel(ref, force=True)
                raise ClusterError(f"{refs[done[0]].run}: the Ray task failed: {_first_line(exc)}; the other "
                                   "tasks were cancelled. Fix it and rerun: runs already pushed are restored, "
                                   "not retrained") from None
        return sorted(results, key=lambda r: r["run"])
    finally:
        if started:
            ray.shutdown()


def _first_line(exc: BaseException) -> str:
    """The task's own error out of the engine's wrapping (a traceback as text): the message of
    its ClusterError, else the last line."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()] or [type(exc).__name__]
    for line in lines:
        if "ClusterError: " in line:
            return line.split("ClusterError: ", 1)[1][:300]
    return lines[-1][:300]


def cluster(root: Path, engine: str, repo: str | None = None, workdir: str | None = None, local: bool = False,
            slurm: dict | None = None, address: str | None = None, gpus: float = 0, cpus: float = 1) -> dict:
    """The three steps with one engine; returns {"runs": the runs the tasks computed, "restored":
    the stages `dvc repro --pull` checked out from the run-cache instead of running}."""
    if engine not in ENGINES:
        raise ClusterError(f"--engine {engine!r}: one of {', '.join(ENGINES)}")
    root = Path(root).resolve()
    tasks, env = prepare(root, repo, workdir)
    log.info("rnngan cluster: %d runs to compute with %s", len(tasks), engine)
    if tasks:
        if engine == "submitit":
            results = submit_submitit(tasks, root / ".dvc" / "tmp" / "submitit", local, slurm or {})
        else:
            results = submit_ray(tasks, address, gpus, cpus)
    else:
        results = []
    restored = collect(root, env)
    return {"runs": [r["run"] for r in results], "restored": restored}
