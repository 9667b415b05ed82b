"""The `rnngan` command: check, generate and synthfaces, with clear errors."""
import numpy as np
import pytest
from typer.testing import CliRunner

from rnngan.cli import app
from rnngan.models.networks import Generator, NetConfig
from rnngan.training import save_generator

from conftest import PROJECT

runner = CliRunner()


@pytest.fixture
def generator_file(tmp_path):
    cfg = NetConfig(cell="sru", image_size=16, hidden=16, z_dim=8, nf=8, timesteps=2)
    path = tmp_path / "generator.pt"
    save_generator(path, cfg, Generator(cfg).eval())
    return path


def test_check_accepts_the_committed_params():
    result = runner.invoke(app, ["check", "--params", str(PROJECT / "params.yaml")])
    assert result.exit_code == 0, result.output
    assert "valid; headline cell 'lstm'" in result.output


def test_check_names_the_bad_key(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("model:\n  cell: transformer\n")
    result = runner.invoke(app, ["check", "--params", str(bad)])
    assert result.exit_code == 2
    assert "model.cell='transformer' must be one of: rnn, lstm, gru, sru" in result.output


def test_generate_writes_a_grid_and_an_array_deterministically(tmp_path, generator_file):
    for name in ("a.npy", "b.npy"):
        r = runner.invoke(app, ["generate", str(generator_file), "--out", str(tmp_path / name),
                                "--count", "10", "--seed", "3", "--device", "cpu"])
        assert r.exit_code == 0, r.output
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (10, 16, 16, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    r = runner.invoke(app, ["generate", str(generator_file), "--out", str(tmp_path / "g.png"),
                            "--count", "4", "--device", "cpu"])
    assert r.exit_code == 0 and (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"


def test_generate_refuses_a_file_that_is_not_a_generator(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    r = runner.invoke(app, ["generate", str(junk), "--out", str(tmp_path / "x.png")])
    assert r.exit_code == 2 and "not an rnngan generator file" in r.output
    r = runner.invoke(app, ["generate", str(tmp_path / "missing.pt")])
    assert r.exit_code == 2 and "no such generator file" in r.output
    assert not (tmp_path / "x.png").exists()
