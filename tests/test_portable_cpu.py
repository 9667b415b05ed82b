"""The pure helpers of benchmarks/portable_cpu.py: a child's environment, the weights hash and the
reading of MKL_VERBOSE / ONEDNN_VERBOSE output. (The benchmark itself trains; it is not run here.)"""
import pytest
import torch

from conftest import benchmark_module


@pytest.fixture(scope="module")
def pc():
    yield from benchmark_module("portable_cpu")


def test_child_env_clears_inherited_kernel_switches(pc, monkeypatch):
    monkeypatch.setenv("MKL_CBWR", "AUTO")
    monkeypatch.setenv("ONEDNN_VERBOSE", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    env = pc.child_env(pc.MODES["normal"], pc.Platform("native", 2))
    assert "MKL_CBWR" not in env and "ONEDNN_VERBOSE" not in env
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert not {"ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS"} & set(env)


def test_child_env_caps_each_library_at_the_emulated_cpu(pc):
    env = pc.child_env(pc.MODES["normal"], pc.Platform("avx2", 1))
    assert (env["MKL_ENABLE_INSTRUCTIONS"], env["ATEN_CPU_CAPABILITY"], env["ONEDNN_MAX_CPU_ISA"]) == \
        ("AVX2", "avx2", "AVX2")


def test_child_env_takes_the_lower_of_mode_and_cpu(pc):
    # the mode asks for less than the CPU allows: the mode wins
    env = pc.child_env(pc.MODES["all-sse41"], pc.Platform("avx2", 2))
    assert (env["ATEN_CPU_CAPABILITY"], env["ONEDNN_MAX_CPU_ISA"], env["MKL_CBWR"]) == \
        ("default", "SSE41", "COMPATIBLE")
    # the CPU allows less than the mode asks for: the CPU wins
    env = pc.child_env(pc.MODES["onednn-avx2"], pc.Platform("sse42", 2))
    assert env["ONEDNN_MAX_CPU_ISA"] == "SSE41"


def test_every_mode_and_cpu_uses_known_levels(pc):
    for mode in pc.MODES.values():
        for cpu in pc.CPUS:
            env = pc.child_env(mode, pc.Platform(cpu, 1))
            assert env.get("ATEN_CPU_CAPABILITY", "default") in pc.ATEN_LEVELS
            assert env.get("ONEDNN_MAX_CPU_ISA", "sse41").lower() in pc.ONEDNN_LEVELS


def test_weights_hash_sees_one_ulp_and_ignores_key_order(pc):
    a = {"w": torch.ones(3), "b": torch.zeros(2)}
    b = {"b": torch.zeros(2), "w": torch.ones(3)}
    assert pc.weights_hash(a) == pc.weights_hash(b)
    c = {"w": torch.ones(3), "b": torch.zeros(2)}
    c["w"][1] = torch.nextafter(torch.tensor(1.0), torch.tensor(2.0))
    assert pc.weights_hash(a) != pc.weights_hash(c)
    assert pc.max_difference(a, c) == pytest.approx(2.0 ** -23)


VERBOSE = """\
MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture Intel(R) Advanced \
Vector Extensions 2 (Intel(R) AVX2) enabled processors, Lnx 2.10GHz lp64 gnu_thread
MKL_VERBOSE SGEMM(T,N,128,64,64,0x1,0x2,64,0x3,64,0x4,0x5,128) 204.76us CNR:COMPATIBLE Dyn:0 FastMM:1 TID:0  NThr:2
MKL_VERBOSE SGEMM(N,N,128,64,512,0x1,0x2,64,0x3,64,0x4,0x5,128) 104.76us CNR:COMPATIBLE Dyn:0 FastMM:1 TID:0  NThr:2
onednn_verbose,v1,info,oneDNN v3.12.0 (commit 80afa71049cd69a3df32adcccb623b12cd7baa22)
onednn_verbose,v1,info,cpu,isa:Intel 64 with Intel SSE4.1
onednn_verbose,v1,primitive,exec,cpu,convolution,jit:sse41,forward_training,src:f32,,alg:convolution_direct,mb64,0.1
onednn_verbose,v1,primitive,exec,cpu,convolution,jit:sse41,backward_data,src:f32,,alg:convolution_direct,mb64,0.1
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:uni,undef,src:f32,,,2x3,0.01
{"sha256": "abc", "seconds": 1.0}
"""


def test_kernel_summary_reads_mkl_and_onednn_verbose(pc):
    k = pc.kernel_summary(VERBOSE)
    assert k["mkl_isa"] == "AVX2"
    assert k["mkl_cnr"] == ["COMPATIBLE"]
    assert k["mkl_calls"] == {"SGEMM": 2}
    assert k["onednn_isa"] == "Intel 64 with Intel SSE4.1"
    assert k["onednn"] == {"convolution jit:sse41": 2}   # reorders are left out


def test_kernel_summary_names_mkls_generic_path_under_cbwr(pc):
    banner = ("MKL_VERBOSE oneMKL 2024.0 Update 2 Product build 20240605 for Intel(R) 64 architecture "
              "Intel(R) Architecture processors, Lnx 2.10GHz lp64 gnu_thread\n")
    assert pc.kernel_summary(banner)["mkl_isa"] == "Intel(R) Architecture processors"


def test_kernel_summary_of_a_run_without_either_library(pc):
    k = pc.kernel_summary('{"sha256": "abc"}\n')
    assert k == {"mkl_isa": None, "mkl_cnr": [], "mkl_calls": {}, "onednn_isa": None, "onednn": {}}
