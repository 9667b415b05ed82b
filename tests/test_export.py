"""ONNX export of the EMA generator (rnngan.export, stages/export.py) and `rnngan generate x.onnx`."""
import hashlib
import json
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from typer.testing import CliRunner

from rnngan import export
from rnngan.cli import app
from rnngan.models.networks import Generator, NetConfig
from rnngan.sampling import to_uint8
from rnngan.training import save_generator

from conftest import PROJECT

runner = CliRunner()
SIZE, Z_DIM = 16, 8


def make_generator_file(path, cell="sru", feedback=True):
    """An untrained generator.pt as the train stage writes it, and the eager module."""
    torch.manual_seed(0)
    cfg = NetConfig(cell=cell, image_size=SIZE, hidden=16, z_dim=Z_DIM, nf=8, timesteps=2, feedback=feedback)
    G = Generator(cfg).eval()
    save_generator(path, cfg, G)
    return G


def run_onnx(path, z: np.ndarray) -> np.ndarray:
    """Plain onnxruntime, not rnngan's reader: an independent view of the file."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"z": z})[0]


@pytest.fixture(scope="module")
def export_of(tmp_path_factory):
    """export_of(cell, feedback) -> (generator.pt, model.onnx, summary, G), each exported once
    per module (an export takes seconds)."""
    cache = {}

    def get(cell, feedback):
        if (cell, feedback) not in cache:
            d = tmp_path_factory.mktemp(f"{cell}-{feedback}")
            G = make_generator_file(d / "generator.pt", cell, feedback)
            summary = export.export_onnx(d / "generator.pt", d / "out" / "model.onnx")
            cache[cell, feedback] = d / "generator.pt", d / "out" / "model.onnx", summary, G
        return cache[cell, feedback]
    return get


@pytest.fixture
def exported(export_of):
    return export_of("sru", True)


@pytest.mark.parametrize("feedback", [True, False], ids=["feedback", "no-feedback"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "sru"])
def test_export_reproduces_the_eager_generator_for_every_cell(export_of, cell, feedback):
    _, out, summary, G = export_of(cell, feedback)
    assert summary["cell"] == cell and summary["z_dim"] == Z_DIM and summary["image_size"] == SIZE
    assert summary["opset"] == export.OPSET and 0 <= summary["max_abs_diff"] < 1e-4
    data = out.read_bytes()
    assert summary["bytes"] == len(data) and summary["sha256"] == hashlib.sha256(data).hexdigest()
    # fresh noise, other batch sizes than the traced one (the batch dimension is dynamic)
    for n in (1, 7):
        z = torch.randn(n, Z_DIM, generator=torch.Generator().manual_seed(100 + n))
        with torch.no_grad():
            eager = G(z).numpy()
        got = run_onnx(out, z.numpy())
        assert got.shape == (n, 3, SIZE, SIZE)
        assert np.abs(got - eager).max() < 1e-4
    assert [p.name for p in out.parent.iterdir()] == ["model.onnx"]   # no temp files left


def test_exported_file_carries_the_metadata_a_reader_needs(exported):
    _, path, _, _ = exported
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["rnngan.format"] == export.FORMAT and meta["rnngan.format_version"] == "1"
    assert (meta["rnngan.cell"], meta["rnngan.z_dim"], meta["rnngan.image_size"]) == ("sru", "8", "16")
    assert (meta["rnngan.input"], meta["rnngan.output"]) == ("z", "images")
    assert "[-1, 1]" in meta["rnngan.output_meaning"] and "NCHW" in meta["rnngan.output_meaning"]
    assert json.loads(meta["rnngan.config"])["timesteps"] == 2
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")     # dynamic, not traced 2


def test_exported_file_holds_no_source_paths_of_the_machine_that_exported_it(exported):
    _, path, _, _ = exported
    model = onnx.load(str(path))
    nodes = list(model.graph.node) + [n for f in model.functions for n in f.node]
    assert nodes and not [p.key for n in nodes for p in n.metadata_props if p.key.startswith("pkg.torch.onnx.")]
    data = path.read_bytes()
    assert str(PROJECT).encode() not in data and b"networks.py" not in data


def test_numpy_uint8_matches_the_torch_version():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1.2, 1.2, (4, 3, 5, 5)).astype(np.float32)
    x[0, 0, 0, :3] = [-1.0, 1.0, 0.0]        # the ends, and 0 -> 127.5 exactly (round half to even)
    assert np.array_equal(export.to_uint8_np(x), to_uint8(torch.from_numpy(x)))


def test_generate_from_onnx_runs_with_torch_unimportable(tmp_path, exported):
    _, path, _, G = exported
    script = textwrap.dedent("""
        import sys
        sys.modules["torch"] = None          # any `import torch` now raises ImportError
        from rnngan.cli import app
        app(sys.argv[1:], standalone_mode=False)
        heavy = sorted(m for m, mod in sys.modules.items() if mod is not None and (
                       m.split(".")[0] in ("torch", "torchvision") or
                       m.startswith(("rnngan.models", "rnngan.training", "rnngan.sampling"))))
        assert not heavy, heavy
    """)
    for out in ("grid.png", "a.npy", "b.npy"):
        r = subprocess.run([sys.executable, "-c", script, "generate", str(path), "--out", str(tmp_path / out),
                            "--count", "9", "--seed", "5", "--device", "cpu"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode == 0, r.stderr
    grid = cv2.imread(str(tmp_path / "grid.png"))
    assert grid.shape == (2 * (3 * (SIZE + 2) + 2), 2 * (3 * (SIZE + 2) + 2), 3)    # 3 x 3, doubled
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert a.shape == (9, SIZE, SIZE, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    # the same images the eager generator draws from numpy's noise (rounding may flip one level)
    with torch.no_grad():
        eager = to_uint8(G(torch.from_numpy(export.onnx_noise(9, Z_DIM, 5))))
    assert np.abs(a.astype(int) - eager.astype(int)).max() <= 1


def test_generate_refuses_bad_onnx_files_and_writes_nothing(tmp_path, exported):
    _, good, _, _ = exported
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not a protobuf at all")
    foreign = tmp_path / "foreign.onnx"       # valid ONNX, but not written by rnngan
    io = onnx.helper.make_tensor_value_info("z", onnx.TensorProto.FLOAT, ["n", Z_DIM])
    out = onnx.helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, ["n", Z_DIM])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Identity", ["z"], ["images"])], "g", [io], [out])
    onnx.save(onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20)]), foreign)
    # (generator, --out, --device, what the message must say, what it must name)
    cases = [(tmp_path / "missing.onnx", "x.png", "cpu", "no such generator file", "missing.onnx"),
             (corrupt, "x.png", "cpu", "not an ONNX model", "corrupt.onnx"),
             (foreign, "x.npy", "cpu", "without rnngan's metadata", "foreign.onnx"),
             (good, "x.jpg", "cpu", "must end in .png or .npy", "x.jpg"),
             (good, "x.png", "tpu", "must be one of: auto, cpu, cuda", "'tpu'")]
    for path, name, device, message, named in cases:
        r = runner.invoke(app, ["generate", str(path), "--out", str(tmp_path / name), "--device", device])
        assert r.exit_code == 2, r.output
        assert message in r.output and named in r.output, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corrupt.onnx", "foreign.onnx"]


@pytest.mark.skipif("CUDAExecutionProvider" in ort.get_available_providers(), reason="this onnxruntime has CUDA")
def test_generate_onnx_on_cuda_says_the_provider_is_missing(tmp_path, exported):
    r = runner.invoke(app, ["generate", str(exported[1]), "--out", str(tmp_path / "x.png"), "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDAExecutionProvider" in r.output
    assert not (tmp_path / "x.png").exists()


def test_a_failed_check_writes_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    make_generator_file(tmp_path / "generator.pt", "gru")
    out = tmp_path / "exports" / "generator.onnx"
    out.parent.mkdir()
    out.write_bytes(b"old export")
    real_call = export.OnnxGenerator.__call__
    monkeypatch.setattr(export.OnnxGenerator, "__call__", lambda self, z: real_call(self, z) + 1e-2)
    message = r"differs from the eager generator .* by 0\.01 > tolerance 0\.001 .* nothing was written"
    with pytest.raises(export.ExportCheckError, match=message):
        export.export_onnx(tmp_path / "generator.pt", out)
    assert out.read_bytes() == b"old export" and [p.name for p in out.parent.iterdir()] == ["generator.onnx"]


def stage_args(tmp_path, cell, medians=None):
    """Arguments of stages/export.py as dvc.yaml passes them, with a params file naming `cell`
    and the compare stage's medians file (by default: `cell`'s median run is seed 0)."""
    (tmp_path / "params.yaml").write_text(f"model:\n  cell: {cell}\n")
    (tmp_path / "medians.json").write_text(json.dumps(medians or {cell: f"{cell}-0"}))
    return ["--params", str(tmp_path / "params.yaml"),
            "--models", str(tmp_path / "models"), "--medians", str(tmp_path / "medians.json"),
            "--out", str(tmp_path / "exports" / "generator.onnx"),
            "--summary", str(tmp_path / "exports" / "generator.json")]


def test_export_stage_writes_the_onnx_file_and_its_summary(tmp_path, monkeypatch):
    from rnngan.stage import run_stage

    monkeypatch.syspath_prepend(str(PROJECT))      # stages/ is not installed
    from stages.export import build, work

    (tmp_path / "models" / "sru-1").mkdir(parents=True)
    make_generator_file(tmp_path / "models" / "sru-1" / "generator.pt")
    # in this process (a fresh one spends ~8 s importing torch and warming the exporter up);
    # the refusal test below runs the stage as `python -m stages.export`
    assert run_stage("export", build, work, stage_args(tmp_path, "sru", {"sru": "sru-1", "gru": "gru-0"})) == 0
    summary = json.loads((tmp_path / "exports" / "generator.json").read_text())
    assert summary["run"] == "sru-1"      # the headline variant's median-FID run
    data = (tmp_path / "exports" / "generator.onnx").read_bytes()
    assert summary["cell"] == "sru" and summary["max_abs_diff"] < summary["tolerance"] == export.TOLERANCE
    assert summary["sha256"] == hashlib.sha256(data).hexdigest() and summary["check_count"] == 64
    assert sorted(p.name for p in (tmp_path / "exports").iterdir()) == ["generator.json", "generator.onnx"]


def test_export_stage_refuses_a_generator_of_another_cell_than_model_cell(tmp_path):
    (tmp_path / "models" / "lstm-0").mkdir(parents=True)
    make_generator_file(tmp_path / "models" / "lstm-0" / "generator.pt")   # an sru generator
    r = subprocess.run([sys.executable, "-m", "stages.export", *stage_args(tmp_path, "lstm")],
                       cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 2
    assert "rnngan export: error: model.cell='lstm' but" in r.stderr and "holds a 'sru' generator" in r.stderr
    assert not (tmp_path / "exports").exists()


def test_export_stage_names_a_headline_variant_the_comparison_does_not_have(tmp_path):
    r = subprocess.run([sys.executable, "-m", "stages.export", *stage_args(tmp_path, "lstm", {"gru": "gru-0"})],
                       cwd=PROJECT, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 2
    assert "rnngan export: error: no run of variant 'lstm' was compared; the comparison has gru" in r.stderr
    assert not (tmp_path / "exports").exists()


@pytest.mark.parametrize("cell, knobs", [("lstm+dcgan", dict(modulation=True, z_decoder=True)),
                                         ("dcgan", dict(modulation=True)),
                                         ("gru", dict(g_spectral=True, z_decoder=True))],
                         ids=["pair-modulated", "dcgan-modulated", "gru-spectral"])
def test_export_reproduces_pairs_and_the_generator_knobs(tmp_path, cell, knobs):
    """A pair's generator (its <G> part) and the recipe's generator knobs export like the rest."""
    from rnngan.models.networks import build_generator

    torch.manual_seed(0)
    cfg = NetConfig(cell=cell, image_size=SIZE, hidden=16, z_dim=Z_DIM, nf=8, timesteps=2, **knobs)
    G = build_generator(cfg)
    with torch.no_grad():                      # modulation that is not the identity, as after training
        for m in G.modules():
            if isinstance(m, torch.nn.Linear) and m.out_features % 2 == 0 and m.in_features == 32:
                torch.nn.init.normal_(m.weight, 0, 0.1)
    G.train()
    G(torch.randn(32, Z_DIM))                  # BatchNorm statistics of its own
    G.eval()
    save_generator(tmp_path / "generator.pt", cfg, G)
    summary = export.export_onnx(tmp_path / "generator.pt", tmp_path / "model.onnx")
    assert summary["cell"] == cell and summary["max_abs_diff"] < 1e-4
    z = torch.randn(5, Z_DIM, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        eager = G(z).numpy()
    assert np.abs(run_onnx(tmp_path / "model.onnx", z.numpy()) - eager).max() < 1e-4
