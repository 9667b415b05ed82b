"""Is there a portable CPU mode, in which training gives bit-identical weights on any x86 CPU, and
what does it cost? Measured on one machine, with the other CPU emulated.

    .venv/bin/python benchmarks/portable_cpu.py                      # every mode, lstm + dcgan
    .venv/bin/python benchmarks/portable_cpu.py --modes normal,all-off --variants lstm --steps 60 --rounds 3

The same commit, params and torch wheel train to different weights on an Intel Xeon and an AMD
EPYC: the CPU kernels differ (MKL picks a code path per instruction set, ATen its vectorised
kernels per CPU capability, oneDNN its convolutions per ISA) and a GAN amplifies the rounding
differences. For this project's networks the split is (MKL_VERBOSE=1 / ONEDNN_VERBOSE=1): the
Linear layers and recurrent cells are MKL SGEMM, every convolution and transposed convolution
(forward and backward) is oneDNN, the rest (BatchNorm, LayerNorm, activations, Adam, EMA) is ATen.
With oneDNN off, conv2d forward goes to NNPACK, or with NNPACK off too to ATen's im2col + MKL SGEMM.

A mode (MODES) is a set of switches, each read once at process start, so every run is a fresh
subprocess with its environment set: MKL_CBWR (MKL's conditional numerical reproducibility),
ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA, and the two that only code can set,
torch.backends.mkldnn.enabled and torch.backends.nnpack.

An emulated CPU (CPUS) caps the instruction sets each library may use on *this* CPU. "avx2" is
what an AMD EPYC Zen 2/3 (no AVX-512) gets: MKL_ENABLE_INSTRUCTIONS=AVX2, ATEN_CPU_CAPABILITY=avx2,
ONEDNN_MAX_CPU_ISA=AVX2. Where a mode asks for less than the CPU allows, the mode's setting wins.
This is an emulation: it changes which ISA each library dispatches to, not the cache sizes, core
counts or vendor checks that a real EPYC would present (MKL has Zen-specific code, oneDNN and
NNPACK size their blocking from the caches), so "identical here" is necessary, not sufficient.

Each run trains one variant (`rnngan.training.train`, the train stage's engine, fp32 on CPU) for
`--steps` steps on random uint8 images and hashes the final (EMA) generator's state_dict. Rounds
are interleaved (every mode on every CPU in each round), so machine noise hits all modes alike
and each (mode, CPU) is also rerun in a fresh process: the determinism check. `--threads-check`
adds a column at another thread count on the native CPU. Prints a markdown table: weight hash,
equal to the same mode's native run, equal across rounds, the largest weight difference from the
native run, the median training time and its ratio to the normal mode on the same CPU.
"""
from __future__ import annotations

import argparse
import collections
import dataclasses
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

# Environment variables that change which kernels run or how many threads they use: cleared in
# every child, so that only the mode and the emulated CPU decide them.
KERNEL_ENV = ("MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS", "MKL_DEBUG_CPU_TYPE", "ATEN_CPU_CAPABILITY",
              "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
              "MKL_VERBOSE", "ONEDNN_VERBOSE", "DNNL_VERBOSE")
# From least to most capable: a mode's request and a CPU's cap meet at the lower of the two.
ATEN_LEVELS = ("default", "avx2", "avx512")
ONEDNN_LEVELS = ("sse41", "avx", "avx2", "avx2_vnni", "avx2_vnni_2", "avx512_core", "avx512_core_vnni",
                 "avx512_core_bf16", "avx10_1_512", "avx512_core_amx", "avx10_1_512_amx_fp16")


@dataclass(frozen=True)
class Mode:
    """A candidate portable mode: environment variables plus the backend switches only code sets."""
    doc: str
    env: dict[str, str] = field(default_factory=dict)
    mkldnn: bool = True      # torch.backends.mkldnn.enabled: oneDNN convolutions
    nnpack: bool = True      # torch.backends.nnpack: conv2d forward when oneDNN is off


@dataclass(frozen=True)
class CPU:
    """An emulated CPU: the most each library may use (None: whatever this machine has)."""
    doc: str
    mkl: str | None = None       # MKL_ENABLE_INSTRUCTIONS
    aten: str | None = None      # ATEN_CPU_CAPABILITY
    onednn: str | None = None    # ONEDNN_MAX_CPU_ISA


CBWR = {"MKL_CBWR": "COMPATIBLE"}
ATEN_DEFAULT = {"ATEN_CPU_CAPABILITY": "default"}
MODES = {
    "normal": Mode("what a run does today"),
    "mkl-cbwr": Mode("MKL_CBWR=COMPATIBLE", CBWR),
    "mkl-cbwr-strict": Mode("MKL_CBWR=COMPATIBLE,STRICT", {"MKL_CBWR": "COMPATIBLE,STRICT"}),
    "aten-default": Mode("ATEN_CPU_CAPABILITY=default", ATEN_DEFAULT),
    "onednn-sse41": Mode("ONEDNN_MAX_CPU_ISA=SSE41", {"ONEDNN_MAX_CPU_ISA": "SSE41"}),
    "onednn-avx2": Mode("ONEDNN_MAX_CPU_ISA=AVX2", {"ONEDNN_MAX_CPU_ISA": "AVX2"}),
    "onednn-off": Mode("torch.backends.mkldnn.enabled=False (conv2d forward: NNPACK)", mkldnn=False),
    "cbwr-sse41": Mode("MKL_CBWR=COMPATIBLE + ONEDNN_MAX_CPU_ISA=SSE41 (ATen as the CPU allows)",
                       {**CBWR, "ONEDNN_MAX_CPU_ISA": "SSE41"}),
    "cbwr-off": Mode("MKL_CBWR=COMPATIBLE + oneDNN and NNPACK off (ATen as the CPU allows)",
                     CBWR, mkldnn=False, nnpack=False),
    "cbwr-aten": Mode("MKL_CBWR=COMPATIBLE + ATEN default (oneDNN as the CPU allows)", {**CBWR, **ATEN_DEFAULT}),
    "aten-sse41": Mode("ATEN default + ONEDNN_MAX_CPU_ISA=SSE41 (MKL as the CPU allows)",
                       {**ATEN_DEFAULT, "ONEDNN_MAX_CPU_ISA": "SSE41"}),
    "all-sse41": Mode("MKL_CBWR=COMPATIBLE + ATEN default + ONEDNN_MAX_CPU_ISA=SSE41",
                      {**CBWR, **ATEN_DEFAULT, "ONEDNN_MAX_CPU_ISA": "SSE41"}),
    "all-off": Mode("MKL_CBWR=COMPATIBLE + ATEN default + oneDNN and NNPACK off (convs: im2col + MKL)",
                    {**CBWR, **ATEN_DEFAULT}, mkldnn=False, nnpack=False),
}
DEFAULT_MODES = ("normal", "mkl-cbwr", "aten-default", "onednn-sse41", "onednn-off", "all-sse41", "all-off")
CPUS = {
    "native": CPU("this machine: every instruction set it has"),
    "avx2": CPU("AVX2 and below, as an AMD EPYC Zen 2/3", mkl="AVX2", aten="avx2", onednn="AVX2"),
    "sse42": CPU("SSE4.2 and below, as a pre-2013 x86 (no AVX): ATen's default kernels",
                 mkl="SSE4_2", aten="default", onednn="SSE41"),
    "avx512": CPU("AVX-512 without AMX, as an Ice Lake Xeon or a Zen 4 (whose MKL path is AVX2)",
                  mkl="AVX2", aten="avx512", onednn="AVX512_CORE_BF16"),
}


@dataclass(frozen=True)
class Platform:
    """Where a run happens: an emulated CPU and a thread count."""
    cpu: str
    threads: int

    @property
    def name(self) -> str:
        return f"{self.cpu}, {self.threads}t"


def _lower(a: str | None, b: str | None, levels: tuple[str, ...]) -> str | None:
    if a is None or b is None:
        return a or b
    return min(a, b, key=lambda v: levels.index(v.lower()))


def child_env(mode: Mode, platform: Platform) -> dict[str, str]:
    """The environment of a fresh process that runs `mode` on the emulated `platform`."""
    cpu = CPUS[platform.cpu]
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_ENV}
    env.update(mode.env)
    aten = _lower(mode.env.get("ATEN_CPU_CAPABILITY"), cpu.aten, ATEN_LEVELS)
    onednn = _lower(mode.env.get("ONEDNN_MAX_CPU_ISA"), cpu.onednn, ONEDNN_LEVELS)
    for key, value in (("ATEN_CPU_CAPABILITY", aten), ("ONEDNN_MAX_CPU_ISA", onednn),
                       ("MKL_ENABLE_INSTRUCTIONS", cpu.mkl)):
        if value is not None:
            env[key] = value
    env.update(OMP_NUM_THREADS=str(platform.threads), MKL_NUM_THREADS=str(platform.threads),
               DVC_NO_ANALYTICS="1", RNNGAN_NO_PROGRESS="1",
               PYTHONPATH=os.pathsep.join(filter(None, (str(ROOT), os.environ.get("PYTHONPATH")))))
    return env


def weights_hash(state: dict) -> str:
    """sha256 over every tensor of a state_dict: name, dtype, shape and bytes, in key order."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].is_floating_point())


# --- one run, in a fresh process ---------------------------------------------------------------

def child(spec: dict) -> None:
    """Train one variant with the backend switches of `spec`; print one JSON line."""
    import torch

    # note: read before the first convolution, like the env vars; set here, never by the parent
    torch.backends.mkldnn.enabled = spec["mkldnn"]
    torch.backends.nnpack.set_flags(spec["nnpack"])
    from rnngan.config import load_params
    from rnngan.training import TrainConfig, train

    # The train stage's config for (variant, seed), shortened, fp32 on the CPU, with no logs,
    # grids or checkpoints in between (the last step still writes one grid).
    cfg = dataclasses.replace(
        TrainConfig.from_params(load_params(spec["params"]), spec["variant"], spec["seed"]),
        steps=spec["steps"], batch_size=spec["batch"], log_every=10**9, grid_every=10**9,
        checkpoint_every=10**9, device="cpu", precision="fp32", compile=False, threads=spec["threads"])
    out = Path(spec["out"])
    summary = train(cfg, Path(spec["data"]), out, out.with_name(out.name + ".work"))
    state = torch.load(out / "generator.pt", map_location="cpu", weights_only=True)["state_dict"]
    print(json.dumps({"sha256": weights_hash(state), "seconds": summary["seconds"],
                      "capability": torch.backends.cpu.get_cpu_capability(),
                      "threads": torch.get_num_threads()}))


VERBOSE = {"MKL_VERBOSE": "1", "ONEDNN_VERBOSE": "1"}


def run_once(args, tmp: Path, variant: str, mode_name: str, platform: Platform, round_: int,
             probe: bool = False) -> dict:
    """Train in a fresh process; with `probe`, one step under MKL_VERBOSE/ONEDNN_VERBOSE, and
    the result says which library ran what (`kernels`)."""
    mode = MODES[mode_name]
    out = tmp / f"{variant}-{mode_name}-{platform.cpu}-{platform.threads}-{'probe' if probe else round_}"
    spec = {"variant": variant, "params": str(args.params), "seed": args.seed,
            "steps": 1 if probe else args.steps, "batch": args.batch, "threads": platform.threads,
            "mkldnn": mode.mkldnn, "nnpack": mode.nnpack, "data": str(tmp / "train.npy"), "out": str(out)}
    env = child_env(mode, platform) | (VERBOSE if probe else {})
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                          text=True, env=env, cwd=ROOT)
    if proc.returncode:
        sys.exit(f"{variant} / {mode_name} / {platform.name} failed:\n{proc.stderr[-3000:]}")
    # note: the verbose libraries print to stdout too; the child's result is its last JSON line
    result = json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])
    result["path"] = out / "generator.pt"
    if probe:
        result["kernels"] = kernel_summary(proc.stdout)
    return result


def kernel_summary(verbose: str) -> dict:
    """What MKL_VERBOSE=1 and ONEDNN_VERBOSE=1 output says ran: MKL's code path (the ISA of its
    banner), its CNR setting and calls per function; oneDNN's ISA and primitive implementations."""
    mkl_banner = re.search(r"^MKL_VERBOSE (?:oneMKL|Intel\(R\) MKL) .*? architecture (.*?), Lnx", verbose, re.M)
    # the banner names each instruction set as "Intel(R) Long Name (Intel(R) SHORT)"
    # (under MKL_CBWR=COMPATIBLE it names none: "Intel(R) Architecture processors", the generic path)
    mkl_isa = ("+".join(re.findall(r"\(Intel\(R\) ([^)]+)\)", mkl_banner.group(1))) or mkl_banner.group(1)) \
        if mkl_banner else None
    calls = collections.Counter(re.findall(r"^MKL_VERBOSE ([A-Z_][A-Z0-9_]*)\(", verbose, re.M))
    cnr = sorted(set(re.findall(r"^MKL_VERBOSE [A-Z_][A-Z0-9_]*\(.* CNR:(\S+)", verbose, re.M)))
    onednn_isa = re.search(r"^onednn_verbose,(?:v\d+,)?info,cpu,isa:(.*)$", verbose, re.M)
    primitives = collections.Counter()
    for line in verbose.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose,") and "exec" in fields[:4]:
            at = fields.index("exec")
            kind, impl = fields[at + 2], fields[at + 3]
            if kind != "reorder":   # layout changes: exact copies, whatever their ISA
                primitives[f"{kind} {impl}"] += 1
    return {"mkl_isa": mkl_isa, "mkl_cnr": cnr, "mkl_calls": dict(calls),
            "onednn_isa": onednn_isa.group(1) if onednn_isa else None, "onednn": dict(primitives)}


# --- the tables ----------------------------------------------------------------------------------

def _counts(counter: dict) -> str:
    return ", ".join(f"{k} ×{v}" for k, v in sorted(counter.items())) or "—"


def report_kernels(args, platforms: list[Platform], probes: dict) -> None:
    print("\nWhich library ran what, one training step (MKL_VERBOSE=1, ONEDNN_VERBOSE=1):\n")
    print("| variant | mode | CPU (emulated) | ATen | MKL path | MKL CNR | MKL calls | oneDNN ISA | oneDNN primitives |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for variant in args.variants:
        for mode in args.modes:
            for p in platforms:
                if (variant, mode, p) not in probes:
                    continue
                r = probes[variant, mode, p]
                k = r["kernels"]
                print(f"| {variant} | {mode} | {p.cpu} | {r['capability']} | {k['mkl_isa'] or '—'} "
                      f"| {', '.join(k['mkl_cnr']) or '—'} | {_counts(k['mkl_calls'])} | {k['onednn_isa'] or '—'} "
                      f"| {_counts(k['onednn'])} |")


def report(args, platforms: list[Platform], runs: dict) -> None:
    import torch

    def state(r):
        return torch.load(r["path"], map_location="cpu", weights_only=True)["state_dict"]

    ref_platform = platforms[0]
    print(f"torch {torch.__version__}, {args.steps} steps, batch {args.batch}, {args.size}x{args.size}, "
          f"seed {args.seed}, {args.rounds} interleaved rounds; times: median training seconds. "
          f"'= ref': the same weights as this mode on {ref_platform.name} (round 1); "
          f"'= normal': as the normal mode on the same CPU and threads\n")
    print("| variant | mode | CPU (emulated), threads | ATen | weights sha256 | = ref | = normal | same every round "
          "| max abs Δ vs ref | train s | × normal |")
    print("| --- | --- | --- | --- | --- | :---: | :---: | :---: | ---: | ---: | ---: |")
    portable: dict[str, list[bool]] = {}
    ratios: dict[str, list[float]] = {}
    for variant in args.variants:
        for mode in args.modes:
            ref = runs[variant, mode, ref_platform]
            ref_state = state(ref[0])
            for p in platforms:
                rs = runs[variant, mode, p]
                same_ref = rs[0]["sha256"] == ref[0]["sha256"]
                same_normal = rs[0]["sha256"] == runs[variant, "normal", p][0]["sha256"]
                stable = len({r["sha256"] for r in rs}) == 1
                portable.setdefault(mode, []).append(same_ref and stable)
                delta = 0.0 if same_ref else max_difference(state(rs[0]), ref_state)
                seconds = statistics.median(r["seconds"] for r in rs)
                ratio = seconds / statistics.median(r["seconds"] for r in runs[variant, "normal", p])
                ratios.setdefault(mode, []).append(ratio)
                print(f"| {variant} | {mode} | {p.name} | {rs[0]['capability']} | `{rs[0]['sha256'][:12]}` "
                      f"| {_yes(same_ref)} | {_yes(same_normal)} | {_yes(stable) if len(rs) > 1 else '—'} "
                      f"| {delta:.3g} | {seconds:.2f} | {ratio:.2f} |")

    print("\n| mode | identical on every CPU, thread count, variant and round | × normal (geometric mean) | switches |")
    print("| --- | :---: | ---: | --- |")
    for mode in args.modes:
        print(f"| {mode} | {_yes(all(portable[mode]))} | {statistics.geometric_mean(ratios[mode]):.2f} "
              f"| {MODES[mode].doc} |")
    print("\nCPUs (emulated by capping each library's instruction sets on this machine):")
    for name in dict.fromkeys(p.cpu for p in platforms):
        print(f"- {name}: {CPUS[name].doc}")


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--variants", default="lstm,dcgan", help="cells or dcgan, comma-separated")
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help=f"of: {', '.join(MODES)}")
    p.add_argument("--cpus", default="native,avx2", help=f"emulated CPUs, the first is the reference; of: "
                                                          f"{', '.join(CPUS)}")
    p.add_argument("--threads", type=int, default=2, help="threads of every run")
    p.add_argument("--threads-check", type=int, default=1,
                   help="also run on the first CPU at this thread count (0: don't)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--params", type=Path, default=ROOT / "params.yaml",
                   help="the networks (model.*, data.image_size) and optimiser (train.*) to train")
    p.add_argument("--images", type=int, default=1024, help="random uint8 training images")
    p.add_argument("--seed", type=int, default=0, help="the training seed (as one of train.seeds)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds (>= 2 checks determinism)")
    p.add_argument("--probe", action="store_true",
                   help="also run one step of each (variant, mode, CPU) under MKL_VERBOSE/ONEDNN_VERBOSE "
                        "and print which library ran what")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return
    sys.path.insert(0, str(ROOT))
    from rnngan.config import load_params
    from rnngan.models.cells import CELLS as RNN_CELLS

    args.variants, args.modes, cpus = (s.split(",") for s in (args.variants, args.modes, args.cpus))
    for value, allowed, what in ((args.variants, [*RNN_CELLS, "dcgan"], "--variants"),
                                 (args.modes, MODES, "--modes"), (cpus, CPUS, "--cpus")):
        unknown = sorted(set(value) - set(allowed))
        if unknown:
            p.error(f"{what}: unknown {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    if "normal" not in args.modes:
        args.modes.insert(0, "normal")   # the baseline of every time ratio
    platforms = [Platform(c, args.threads) for c in cpus]
    if args.threads_check and args.threads_check != args.threads:
        platforms.append(Platform(cpus[0], args.threads_check))

    runs: dict = {}
    with tempfile.TemporaryDirectory(prefix="portable_cpu.") as tmp:
        tmp = Path(tmp)
        # note: every run reads this one copy, so an edit of the params file mid-benchmark
        # cannot pass for a kernel difference
        shutil.copyfile(args.params, tmp / "params.yaml")
        args.params = tmp / "params.yaml"
        args.size = load_params(args.params).data.image_size
        rng = np.random.default_rng(args.seed)
        np.save(tmp / "train.npy", rng.integers(0, 256, (args.images, args.size, args.size, 3), dtype=np.uint8))
        order = [(v, m, pl) for v in args.variants for m in args.modes for pl in platforms]
        for r in range(args.rounds):
            # every other round backwards, so no mode always runs first or last
            for i, (v, m, pl) in enumerate(order if r % 2 == 0 else order[::-1]):
                print(f"round {r + 1}/{args.rounds}, run {i + 1}/{len(order)}: {v} {m} {pl.name}",
                      file=sys.stderr, flush=True)
                runs.setdefault((v, m, pl), []).append(run_once(args, tmp, v, m, pl, r))
        probes = {}
        if args.probe:
            for v, m, pl in order:
                if pl.threads == args.threads:   # the kernels do not depend on the thread count
                    print(f"probe: {v} {m} {pl.name}", file=sys.stderr, flush=True)
                    probes[v, m, pl] = run_once(args, tmp, v, m, pl, 0, probe=True)
        report(args, platforms, runs)
        if probes:
            report_kernels(args, platforms, probes)


if __name__ == "__main__":
    main()
