"""The `rnngan` command: helpers around the DVC pipeline (the pipeline itself is `dvc repro`).

A user error (a bad option, a file that is not what it should be, a machine without what the
params ask for) is one line on stderr, `rnngan <command>: error: <problem>; <fix>`, and exit code
2, as the stages report theirs; a traceback means a bug in rnngan.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from typer.core import TyperGroup

# note: typer 0.2x carries its own copy of click (typer._click), whose exceptions differ from click's
try:
    from typer._click import exceptions as _click_errors
    from typer._click.globals import get_current_context
except ImportError:  # pragma: no cover - an older typer, on click itself
    from click import exceptions as _click_errors
    from click.globals import get_current_context
# click >= 8.2 raises it for a group called without a command (no_args_is_help): the help is the answer
_NO_ARGS_IS_HELP = getattr(_click_errors, "NoArgsIsHelpError", ())

from rnngan.stage import cuda_absence, machine_problems  # noqa: E402  (after the click shim)

DEVICES = ("auto", "cpu", "cuda")
GENERATOR_FILES = "models/<variant>-<seed>/generator.pt"    # what the train stage writes (dvc.yaml)
EXPORTED_FILE = "exports/generator.onnx"                    # what the export stage writes (dvc.yaml)
EXIT_USER_ERROR = 2


def _command_name(ctx) -> str:
    """`rnngan generate`, whatever the program was started as (`python -m rnngan.cli`, a test)."""
    names = []
    while ctx is not None and ctx.parent is not None:
        names.append(ctx.info_name)
        ctx = ctx.parent
    return " ".join(["rnngan", *reversed(names)])


class OneLineUsageError(_click_errors.UsageError):
    """Click's usage errors (unknown option, missing argument, bad value) in the form of the
    others: one line, with where to look for the fix."""

    def show(self, file=None) -> None:
        name = _command_name(self.ctx)
        message = self.format_message().rstrip(".")
        typer.echo(f"{name}: error: {message}; see `{name} --help`", err=True)


@contextlib.contextmanager
def _one_line_usage_errors():
    try:
        yield
    except (_NO_ARGS_IS_HELP, OneLineUsageError):
        raise
    except _click_errors.UsageError as exc:
        raise OneLineUsageError(exc.format_message(), exc.ctx) from None


class Commands(TyperGroup):
    """rnngan's command group: usage errors of the group and of every command as one line."""

    def make_context(self, info_name, args, parent=None, **extra):
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        with _one_line_usage_errors():
            return super().invoke(ctx)


# note: typer's rich help prints `<bool>` beside every flag (--help included) and boxes every
# error; click's plain help shows `--variants / --no-variants`, and errors stay one line
app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True, rich_markup_mode=None,
                  pretty_exceptions_enable=False,
                  help="rnngan: recurrent GANs (RNN, LSTM, GRU, SRU) as a DVC pipeline. "
                       "Run the study with `dvc repro`; these commands help around it.")


def _fail(message: str) -> None:
    """Stop the current command with a user error: one line on stderr, exit code 2."""
    name = _command_name(get_current_context(silent=True))
    typer.echo(f"{name}: error: {message}", err=True)
    raise typer.Exit(EXIT_USER_ERROR)


# ---------------------------------------------------------------------------------------------
# `rnngan info`: what a bug report needs.

def bug_report(params_path: str | Path = "params.yaml") -> list[tuple[str, str]]:
    """(label, value) lines: versions, the CPU and its vector instructions, threads, CUDA devices,
    the params file's validity on this machine, and the code's commit. Reads, never fails."""
    import os
    import platform

    import torch

    from rnngan.config import ParamsError, load_params
    from rnngan.environment import (KERNEL_ENV, SIMD_FLAGS, cpuinfo, gpu_driver, libraries, cpu_id, cpu_model,
                                    packages)
    from rnngan.report.stage import code_version

    found = packages()["packages"]
    versions = ", ".join(f"{k} {found[k]}" for k in ("python", "torch", "torchvision", "numpy", "scipy", "dvc",
                                                       "dvclive", "opencv-python", "onnxruntime", "torch-fidelity")
                         if k in found)
    from importlib.metadata import PackageNotFoundError, version

    try:
        rnngan_version = version("rnngan")
    except PackageNotFoundError:
        rnngan_version = "not installed (run from a checkout)"
    code = code_version()
    commit = (code["commit"][:12] + (f" + changes to {len(code['changed'])} code file(s)" if code["changed"] else "")
              if code["commit"] else f"not recorded ({code['reason']})")
    flags = set(cpuinfo().get("flags", "").split())
    simd = [f for f in SIMD_FLAGS if f in flags]
    lines = [("rnngan", f"{rnngan_version}, commit {commit}"),
             ("versions", versions),
             ("platform", platform.platform()),
             ("cpu", f"{cpu_model()}" + (f" ({cpu_id()})" if cpu_id() else "")),
             ("cpu vector instructions", f"avx2 {'yes' if 'avx2' in flags else 'no'}, avx512 "
                                         f"{'yes' if 'avx512f' in flags else 'no'}; flags: {' '.join(simd) or 'none'}; "
                                         f"torch kernels: {torch.backends.cpu.get_cpu_capability()}"),
             ("threads", f"torch {torch.get_num_threads()}, cores available {len(os.sched_getaffinity(0))} "
                         f"of {os.cpu_count()}"),
             ("kernel environment", " ".join(f"{k}={os.environ[k]}" for k in KERNEL_ENV if k in os.environ) or "none")]
    blas = libraries(torch.__config__.show())
    lines.append(("blas", ", ".join(f"{k} {v}" for k, v in blas.items() if v) or "not reported"))
    if torch.cuda.is_available():
        devices = []
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            memory = torch.cuda.get_device_properties(i).total_memory / 2 ** 30
            devices.append(f"{i}: {torch.cuda.get_device_name(i)} (compute {major}.{minor}, {memory:.0f} GiB)")
        devices = "; ".join(devices)
        lines.append(("cuda", f"CUDA {torch.version.cuda}, driver {gpu_driver() or '?'}; {devices}"))
    else:
        lines.append(("cuda", f"none: {cuda_absence()}"))
    path = Path(params_path)
    try:
        params = load_params(path)
    except ParamsError as exc:
        lines.append((str(path), f"not valid: {exc}" if path.is_file() else "absent (not in a project folder)"))
    else:
        problems = machine_problems(params)
        lines.append((str(path), "valid" + ("" if not problems else "; but on this machine: " + " | ".join(problems))))
    return lines


@app.command()
def check(params: Path = typer.Option(Path("params.yaml"), help="params file to validate")) -> None:
    """Validate params.yaml against the code and this machine, and print the resolved values
    (what every stage checks first): a bad key or value, `train.device: cuda` without CUDA, or
    `metrics.features: inception` without the weights file is refused before any work."""
    import yaml

    from rnngan.config import ParamsError, load_params

    if not params.is_file():
        _fail(f"{params}: no such params file; run in the project folder (beside dvc.yaml) or pass --params PATH")
    try:
        p = load_params(params)
    except ParamsError as exc:
        _fail(str(exc))
    missing = params_dvc_lacks(params)
    if missing:
        _fail(f"{params} lacks {', '.join(missing[:4])}{f' and {len(missing) - 4} more' if len(missing) > 4 else ''}, "
              f"which the stages in {params.parent / 'dvc.yaml'} read: `dvc repro` would stop on them (\"Missing "
              "params\"), though the code has defaults; add them (the project's params.yaml has every key)")
    problems = machine_problems(p)
    if problems:
        name = _command_name(get_current_context())
        for problem in problems:
            typer.echo(f"{name}: error: {problem}", err=True)
        raise typer.Exit(EXIT_USER_ERROR)
    typer.echo(yaml.safe_dump(p.to_dict(), sort_keys=False).rstrip())
    typer.echo(f"# {params}: valid; headline cell '{p.model.cell}' of {p.model.variants}")


@app.command("params-schema")
def params_schema_command(out: Path = typer.Option(None, "--out", help="write the schema to this file (atomically) "
                                                   "instead of stdout")) -> None:
    """Print the JSON Schema of params.yaml: every key, its type, range or allowed values, its
    default. The committed copy (params.schema.json) is what the first line of params.yaml points
    editors at (yaml-language-server); regenerate it with `rnngan params-schema --out params.schema.json`."""
    import json

    from rnngan.config import params_schema
    from rnngan.io import atomic_path

    text = json.dumps(params_schema(), indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
        return
    if not out.parent.is_dir():
        _fail(f"--out: no such folder {out.parent} (for {out})")
    with atomic_path(out) as tmp:
        tmp.write_text(text)
    typer.echo(f"wrote {out}")


def params_dvc_lacks(params: Path) -> list[str]:
    """The params that the stages of the dvc.yaml beside `params` read and the file lacks, dotted.
    The code fills a missing key with its default, but DVC reads each stage's params from the
    file itself and stops on a missing one. Empty without a dvc.yaml there."""
    import yaml

    dvc_yaml = params.parent / "dvc.yaml"
    if not dvc_yaml.is_file():
        return []
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages") or {}
    wanted: list[str] = []

    def collect(node) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "params" and isinstance(value, list):
                    wanted.extend(v for v in value if isinstance(v, str) and "${" not in v)
                else:
                    collect(value)

    collect(stages)
    raw = yaml.safe_load(params.read_text()) or {}

    def present(dotted: str) -> bool:
        node = raw
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    return sorted({w for w in wanted if not present(w)})


@app.command()
def synthfaces(out: Path = typer.Argument(..., help="folder to write the CelebA-layout files into (a new "
                                                    "folder, or one synthfaces wrote before: it is replaced)"),
               count: int = typer.Option(1000, min=1, help="number of faces"),
               seed: int = typer.Option(0, help="faces are deterministic by seed"),
               workers: int = typer.Option(0, min=0, help="processes; 0 = one per core")) -> None:
    """Draw procedural faces in CelebA's published aligned layout (zip + annotation files)."""
    from rnngan.data.celeba_format import ATTR_FILE, IMAGE_ZIP, LANDMARK_FILE, PARTITION_FILE
    from rnngan.data.synthfaces import write_synthfaces

    if out.exists() and not out.is_dir():
        _fail(f"{out} is a file; pass a folder to write the faces into (a new one)")
    # note: the folder is replaced whole, so only one that synthfaces wrote (its four files and
    # nothing else) may be there; anything else in it would be lost
    foreign = sorted(p.name for p in out.iterdir()
                     if p.name not in {IMAGE_ZIP, ATTR_FILE, LANDMARK_FILE, PARTITION_FILE}) if out.is_dir() else []
    if foreign:
        _fail(f"{out} holds other files ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}), and "
              "synthfaces replaces the whole folder; pass a new or empty folder")
    try:
        summary = write_synthfaces(out, count=count, seed=seed, workers=workers)
    except OSError as exc:
        _fail(f"{out}: cannot write there ({exc.strerror or exc}); pass a folder you can write to")
    typer.echo(f"wrote {count} faces to {out} ({summary.get('images_per_s', 0):.0f} images/s)")


@app.command()
def generate(generator: Path = typer.Argument(..., help="a generator.pt written by the train stage "
                                                        "(models/<variant>-<seed>/generator.pt), or a .onnx written "
                                                        "by the export stage (exports/generator.onnx; needs only "
                                                        "numpy and onnxruntime, no torch)"),
             out: Path = typer.Option(Path("grid.png"), help="a .png grid, or .npy for the raw uint8 array"),
             count: int = typer.Option(64, min=1, help="images to draw"),
             seed: int = typer.Option(0, help="noise seed; a .onnx draws numpy's default_rng(seed) noise and a "
                                              ".pt torch's, so the two files of one generator draw other images"),
             device: str = typer.Option("auto", help="auto | cpu | cuda (.onnx: cuda needs onnxruntime-gpu)"),
             ) -> None:
    """Draw images from a trained generator into a PNG grid or a .npy array (uint8 N x H x W x 3)."""
    from rnngan.grids import save_grid
    from rnngan.io import save_npy

    onnx = generator.suffix.lower() == ".onnx"
    if device not in DEVICES:
        _fail(f"--device '{device}' must be one of: {', '.join(DEVICES)}")
    if out.suffix not in (".png", ".npy"):
        _fail(f"--out {out}: must end in .png or .npy")
    if not generator.is_file():
        what = (f"write one with `dvc repro export` ({EXPORTED_FILE}, the headline variant's median seed)" if onnx
                else f"train one with `dvc repro` (the train stage writes {GENERATOR_FILES})")
        _fail(f"{generator}: no such generator file; {what}, or pass an existing file")
    if onnx:
        images = _generate_onnx(generator, count, seed, device)
    else:
        images = _generate_torch(generator, count, seed, device)
    try:
        if out.suffix == ".npy":
            save_npy(out, images)
        else:
            save_grid(images, out, scale=2)
    except OSError as exc:
        _fail(f"--out {out}: cannot write there ({exc.strerror or exc}); pass a path in a folder you can write to")
    typer.echo(f"wrote {count} images to {out}")


def _generate_onnx(path: Path, count: int, seed: int, device: str):
    """numpy + onnxruntime only: importing torch here would defeat the exported file."""
    from rnngan.export import OnnxGenerator, OnnxGeneratorError, sample_onnx

    try:
        G = OnnxGenerator.open(path, device)
    except OnnxGeneratorError as exc:
        _fail(_one_line(str(exc)))
    return sample_onnx(G, count, seed)


def _generate_torch(path: Path, count: int, seed: int, device: str):
    from rnngan.sampling import sample_images

    return sample_images(_load_torch_generator(path, device), count, seed)


def _load_torch_generator(path: Path, device: str):
    """A generator.pt on `device`, or a one-line user error naming what is wrong with the file."""
    import pickle

    import torch

    from rnngan.io import pick_device
    from rnngan.sampling import GeneratorFileError, load_generator

    if device == "cuda" and not torch.cuda.is_available():
        _fail(f"--device cuda: {cuda_absence()}; use --device cpu (or auto: CUDA where there is one)")
    try:
        G = load_generator(path, pick_device(device))
    except GeneratorFileError as exc:
        cause = exc.__cause__
        if isinstance(cause, pickle.UnpicklingError):
            # note: torch's own text here is a paragraph advising weights_only=False, which would run the file
            reason = "not a PyTorch file of tensors and plain data; read with weights_only=True, nothing in it ran"
        elif isinstance(cause, KeyError):
            reason = f"no {cause.args[0]!r} entry"
        else:
            reason = _one_line(str(cause or exc))
        _fail(f"{path}: not an rnngan generator file ({reason}); pass {GENERATOR_FILES}, or an exported .onnx")
    return G


@app.command()
def probe(generator: Path = typer.Argument(..., help="a generator.pt written by the train stage "
                                                    "(models/<variant>-<seed>/generator.pt)"),
          real: Path = typer.Option(None, help="real images (.npy, uint8 N x H x W x 3) to rank alike, e.g. "
                                               "data/prepared/synthfaces/train.npy"),
          count: int = typer.Option(2000, min=2, help="samples (and real images) to rank"),
          seed: int = typer.Option(0, help="noise seed"),
          device: str = typer.Option("cpu", help="auto | cpu | cuda"),
          ) -> None:
    """How many directions a generator's samples span (effective rank), beside the real images';
    for a recurrent G also its cell state after each canvas step, and the share of saturated units."""
    from rnngan.io import ImageArrayError, load_images
    from rnngan.probe import SATURATED, images_rank, probe_generator

    if device not in DEVICES:
        _fail(f"--device '{device}' must be one of: {', '.join(DEVICES)}")
    if not generator.is_file():
        _fail(f"{generator}: no such generator file; train one with `dvc repro` (the train stage writes "
              f"{GENERATOR_FILES}), or pass an existing file")
    if real is not None:
        if real.suffix != ".npy" or not real.is_file():
            _fail(f"--real {real}: not an .npy file; pass an image array such as data/prepared/<dataset>/train.npy")
        try:
            real_images = load_images(real)
        except (ImageArrayError, OSError, ValueError) as exc:
            _fail(f"--real {real}: {_one_line(str(exc))}; pass an image array such as data/prepared/<dataset>/train.npy")
    result = probe_generator(_load_torch_generator(generator, device), count, seed)
    typer.echo(f"samples: effective rank {result.samples_rank:.2f} of {count} images (pixels)")
    if real is not None:
        typer.echo(f"real: effective rank {images_rank(real_images, count):.2f} of {min(count, len(real_images))} "
                   f"images ({real})")
    for t, (rank, share) in enumerate(zip(result.state_ranks, result.state_saturated), start=1):
        typer.echo(f"cell state, step {t}: effective rank {rank:.2f}, {share:.1%} of units beyond |h| = {SATURATED}")


def _one_line(text: str, limit: int = 300) -> str:
    """A library's message on one line, cut at `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


@app.command()
def compare(
    json_file: Path | None = typer.Option(None, "--json", help="a saved `dvc exp show --json` output "
                                          "('-' = stdin) instead of running it here"),
    all_commits: bool = typer.Option(False, "--all-commits/--no-all-commits", "-A",
                                     help="all experiments in the repository (dvc exp show -A; overrides --rev "
                                          "and -n)"),
    rev: list[str] | None = typer.Option(None, "--rev", help="experiments derived from this commit "
                                         "(HEAD by default); repeatable, as in dvc exp show"),
    num: int = typer.Option(1, "--num", "-n", help="experiments from the last N commits from --rev "
                            "(negative: all first-parent commits), as in dvc exp show"),
    variants: bool = typer.Option(False, "--variants/--no-variants", help="one row per variant (`cells.*`) of each "
                                  "experiment, not the headline (`model.cell`) only"),
    fmt: str = typer.Option("md", "--format", help="md (GitHub markdown) | html (a standalone page) | csv | json"),
    out: Path | None = typer.Option(None, "--out", help="write here (atomically) instead of to stdout"),
    metrics_file: str = typer.Option("reports/metrics.json", "--metrics-file",
                                     help="the metrics file to read, as dvc exp show names it"),
) -> None:
    """Compare DVC experiments and revisions (e.g. a queued sweep) in the report's table, sorted by FID."""
    import sys

    from rnngan import experiments as cmp

    if fmt not in cmp.FORMATS:
        _fail(f"--format {fmt!r} must be one of: {', '.join(cmp.FORMATS)}")
    try:
        if json_file is not None:
            if all_commits or rev or num != 1:
                _fail("--all-commits/--rev/-n select what `dvc exp show` reads; with --json pass them "
                      "to the `dvc exp show --json` that wrote the file")
            if str(json_file) == "-":
                data = cmp.load_exp_show(sys.stdin.read(), "stdin")
            elif not json_file.is_file():
                _fail(f"--json {json_file}: no such file; save one with `dvc exp show --json > {json_file}`, "
                      "or leave --json out to run it here")
            else:
                data = cmp.load_exp_show(json_file.read_text(), str(json_file))
        else:
            data = cmp.exp_show(all_commits=all_commits, revs=rev, num=num)
        rows, notes = cmp.parse_exp_show(data, metrics_file, variants=variants)
        text = cmp.render(cmp.compare(rows, notes, metrics_file=metrics_file, variants=variants), fmt)
    except cmp.CompareError as exc:
        _fail(str(exc))
    if out is None:
        typer.echo(text, nl=False)
        return
    from rnngan.io import atomic_path

    try:
        with atomic_path(out) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as exc:
        _fail(f"--out {out}: cannot write there ({exc.strerror or exc}); pass a path in a folder you can write to")
    typer.echo(f"wrote {out}", err=True)


@app.command()
def screen(plan: Path = typer.Argument(..., help="a plan file (YAML): named configurations with g, d, seeds, "
                                                 "steps and params overrides; see docs/recipe/plans/"),
           commit: str = typer.Option(None, help="the commit every run of this call uses (its own git worktree "
                                                 "under .screen/); default: the plan's `commit`, else HEAD"),
           runs: Path = typer.Option(Path("docs/recipe/runs.csv"), help="the table a row is appended to the "
                                                                         "moment its run finishes"),
           recipe: Path = typer.Option(Path("docs/recipe.md"), help="the page whose run tables are re-rendered "
                                                                    "after every row"),
           only: list[str] = typer.Option([], help="run only these configurations (repeatable)"),
           dry_run: bool = typer.Option(False, "--dry-run", help="list the runs still to do and stop"),
           ) -> None:
    """Run a recipe screen: each configuration and seed of PLAN through `dvc repro` in a worktree at one
    commit, one row in runs.csv per finished run; rows already there are skipped."""
    from rnngan.screen import ScreenError, pending, run_plan

    try:
        if dry_run:
            _, sha, jobs = pending(plan, Path.cwd(), runs, commit, only or None)
            for cfg, seed in jobs:
                typer.echo(f"{cfg.name}\tseed {seed}\t{cfg.variant}\t{cfg.steps} steps\t{cfg.overrides}")
            typer.echo(f"{len(jobs)} runs to do at {sha[:12]}")
            return
        rows = run_plan(plan, Path.cwd(), runs, recipe, commit, only or None)
    except ScreenError as exc:
        _fail(str(exc))
    typer.echo(f"{len(rows)} new rows in {runs}")


@app.command("repro")
def repro_command(jobs: int = typer.Option(1, "--jobs", "-j", help="runs (variant, seed) at once; on CPU the cores "
                                                                 "are split between them"),
                  gpus: str = typer.Option(None, help="comma-separated CUDA device ids, one per concurrent run "
                                                     "(e.g. 0,1,2,3); --jobs defaults to their number"),
                  ) -> None:
    """`dvc repro` with the independent runs N at a time: the shared stages once, then each run's
    train, sample and analyze stages as `dvc repro --single-item` (N chains at once, each on its own
    cores or GPU), then `dvc repro` for the rest. The same dvc.lock as a serial `dvc repro` with the
    same threads per run; a failed stage stops the others, and rerunning resumes."""
    from rnngan.parallel import ReproError, repro

    devices = None
    if gpus is not None:
        devices = [g.strip() for g in gpus.split(",") if g.strip()]
        if jobs == 1:
            jobs = len(devices) or 1
    try:
        done = repro(Path.cwd(), jobs, devices)
    except ReproError as exc:
        _fail(str(exc))
    typer.echo(f"rnngan repro: {len(done['runs'])} runs trained and scored, {jobs} at a time; dvc.lock is up to date")


@app.command("cluster")
def cluster_command(
        engine: str = typer.Option(..., help="submitit (SLURM job array; --local: subprocesses here) or ray"),
        local: bool = typer.Option(False, "--local", help="submitit's local executor instead of SLURM"),
        slurm: list[str] = typer.Option([], help="a submitit SLURM parameter as KEY=VALUE, repeatable "
                                                 "(e.g. slurm_partition=gpu, gpus_per_node=1, timeout_min=600)"),
        address: str = typer.Option(None, help="the Ray cluster to join (e.g. auto); default: a local Ray"),
        gpus_per_task: float = typer.Option(0, help="Ray: GPUs per task (1 on a GPU cluster)"),
        cpus_per_task: float = typer.Option(1, help="Ray: CPUs per task"),
        repo: str = typer.Option(None, help="the git repository the tasks clone (default: this one, fine "
                                            "on a shared filesystem)"),
        workdir: str = typer.Option(None, help="where tasks make their clones (default: the system's temp folder)"),
) -> None:
    """The independent runs as cluster tasks through an existing engine, DVC keeping the books: the
    shared stages here and `dvc push`; each task clones this commit, pulls its inputs, runs its
    run's train, sample and analyze with `dvc repro --single-item` and pushes with
    `--run-cache`; then here `dvc repro --pull` restores every run from the run-cache without
    retraining. Needs a default DVC remote both sides reach, and params and code committed."""
    from rnngan.cluster import ClusterError, cluster

    params: dict = {}
    for item in slurm:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--slurm {item!r}: expected KEY=VALUE, e.g. --slurm slurm_partition=gpu")
        params[key.strip()] = int(value) if value.strip().isdigit() else value.strip()
    try:
        done = cluster(Path.cwd(), engine, repo=repo, workdir=workdir, local=local, slurm=params,
                       address=address, gpus=gpus_per_task, cpus=cpus_per_task)
    except ClusterError as exc:
        _fail(str(exc))
    except ImportError as exc:
        _fail(f"--engine {engine}: {exc.name} is not installed (pip install {exc.name})")
    typer.echo(f"rnngan cluster: {len(done['runs'])} runs computed by {engine} tasks and restored from the "
               "run-cache; dvc.lock is up to date")


@app.command()
def info(params: Path = typer.Option(Path("params.yaml"), help="params file to check")) -> None:
    """Print what a bug report needs: versions (python, torch, dvc, numpy, ...), the CPU and its
    vector instructions, threads, CUDA devices, and whether the params file is valid here."""
    for key, value in bug_report(params):
        typer.echo(f"{key}: {value}")


if __name__ == "__main__":  # pragma: no cover
    app()
