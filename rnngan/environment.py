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


def cpuinfo() -> dict[str, str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    first = text.split("\n\n", 1)[0]
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in first.splitlines()) if v}


def cpu_model() -> str:
    return cpuinfo().get("model name") or platform.processor() or platform.machine()


def cpu_id() -> str | None:
    """Vendor, family, model and stepping: what names the CPU where a virtual machine's model
    name is generic ("Intel(R) Xeon(R) Processor")."""
    info = cpuinfo()
    if "vendor_id" not in info:
        return None
    return (f"{info['vendor_id']} family {info.get('cpu family', '?')} model {info.get('model', '?')} "
            f"stepping {info.get('stepping', '?')}")


def libraries(config: str) -> dict[str, str | None]:
    """BLAS and oneDNN as `torch.__config__.show()` names them."""
    def line(pattern: str) -> str | None:
        m = re.search(pattern, config)
        return m.group(1).strip() if m else None

    return {"blas": line(r"BLAS_INFO=(\w+)"),
            "mkl": line(r"Math Kernel Library Version ([^\n]+?) for"),
            "onednn": line(r"MKL-DNN (v[\d.]+)")}


def gpu_driver() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


def run_environment(device, threads: int) -> dict:
    """Everything that decides a run's rounding: recorded in train.json."""
    import torch

    flags = set(cpuinfo().get("flags", "").split())
    env = {"device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
           "cpu_model": cpu_model(), "cpu_id": cpu_id(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
           "cpu_flags": [f for f in SIMD_FLAGS if f in flags], **libraries(torch.__config__.show()),
           "threads": threads, "torch": torch.__version__, "cuda": torch.version.cuda,
           "cudnn": torch.backends.cudnn.version() if device.type == "cuda" else None,
           "gpu_driver": gpu_driver() if device.type == "cuda" else None,
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
