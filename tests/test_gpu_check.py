"""The prepared GPU check runs its own code path on a CPU, tiny: what a GPU machine would run
is not first tried there."""
import os
import subprocess
import sys

from conftest import PROJECT


def test_gpu_check_prints_one_row_per_variant_and_precision_on_cpu():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, str(PROJECT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick"],
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    rows = [line for line in out.stdout.splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert [r.split(" | ")[0][2:] for r in rows] == ["rnn", "lstm", "lstm", "lstm", "gru", "sru", "dcgan"]
    dcgan = next(r for r in rows if r.startswith("| dcgan |"))
    assert dcgan.rstrip(" |").endswith("1.00")
    assert "| lstm | fp32 | R1/R2 every step |" in out.stdout and "| lstm | fp32 | no R1/R2 |" in out.stdout
    assert "Inception features (64 px upsampled to 299, batch 250): skipped (CPU)" in out.stdout


def test_gpu_check_script_runs_the_cuda_tests_then_the_table():
    text = (PROJECT / "benchmarks" / "gpu_check.sh").read_text()
    commands = [line for line in text.splitlines() if line.startswith("timeout ")]
    assert "pytest" in commands[0] and "tests/test_cuda.py" in commands[0]
    assert "benchmarks/gpu_check.py" in commands[1] and len(commands) == 2
    assert os.access(PROJECT / "benchmarks" / "gpu_check.sh", os.X_OK)
