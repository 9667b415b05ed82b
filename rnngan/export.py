"""The EMA generator as a standalone ONNX file, and drawing images from one without the training code.

Two halves with different needs:
- `export_onnx` (the export stage) needs torch: it loads models/<cell>/generator.pt, exports it
  with torch.onnx's dynamo exporter, and checks the file against the eager model with onnxruntime.
- `OnnxGenerator` and `sample_onnx` (`rnngan generate model.onnx`) need only numpy and
  onnxruntime, and cv2 for the PNG grid. torch is imported inside `export_onnx` only, so
  importing this module never pulls in torch, rnngan.models or rnngan.training; a test runs
  `rnngan generate` with torch unimportable to keep it that way.

The file format: the graph maps float32 `z` (N x z_dim, standard normal) to float32 `images`
(N x 3 x S x S, NCHW RGB in [-1, 1]), N dynamic. What a reader needs is in the model's
metadata_props under `rnngan.*` keys (FORMAT names the format; a reader refuses a newer version).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnngan.errors import UserError
from rnngan.io import atomic_path, log, progress, sha256_file

FORMAT = "rnngan-generator-onnx"
FORMAT_VERSION = 1
INPUT_NAME = "z"
OUTPUT_NAME = "images"
OPSET = 20              # torch 2.14's dynamo exporter emits 20 natively (no version conversion);
                        # onnxruntime >= 1.17 runs it
# max |onnx - eager| over the check images; outputs are tanh in [-1, 1], so 1e-3 is an eighth of
# a uint8 level. note: a full pipeline run once measured 4.4e-5 on the default LSTM where reruns
# give 7e-7 (thread-count dependent rounding through the 4-step canvas); export bugs show as 1e-1.
TOLERANCE = 1e-3
INPUT_MEANING = "float32 N x z_dim latent noise, standard normal; N is dynamic"
OUTPUT_MEANING = ("float32 N x 3 x image_size x image_size (NCHW) RGB images in [-1, 1]; "
                  "as uint8: round((x + 1) * 127.5)")
ORT_DEVICES = ("auto", "cpu", "cuda")


class OnnxGeneratorError(UserError, ValueError):
    """A .onnx file that is missing, not ONNX, or not a generator exported by rnngan."""


class ExportCheckError(UserError, RuntimeError):
    """The exported graph does not reproduce the eager generator within the tolerance."""


def _key(name: str) -> str:
    return f"rnngan.{name}"


def metadata(cell: str, z_dim: int, image_size: int, config: dict) -> dict[str, str]:
    """The `metadata_props` an exported generator carries (ONNX metadata values are strings)."""
    return {_key("format"): FORMAT, _key("format_version"): str(FORMAT_VERSION),
            _key("cell"): cell, _key("z_dim"): str(z_dim), _key("image_size"): str(image_size),
            _key("input"): INPUT_NAME, _key("output"): OUTPUT_NAME,
            _key("input_meaning"): INPUT_MEANING, _key("output_meaning"): OUTPUT_MEANING,
            _key("config"): json.dumps(config, sort_keys=True)}


# ---------------------------------------------------------------------------------------------
# Reading and running an exported generator: numpy + onnxruntime only.

def ort_providers(device: str) -> list[str]:
    """onnxruntime execution providers for --device: auto takes CUDA when this onnxruntime has it
    (the onnxruntime-gpu wheel), cuda insists on it, cpu never uses it."""
    import onnxruntime as ort

    if device not in ORT_DEVICES:
        raise OnnxGeneratorError(f"device '{device}' must be one of: {', '.join(ORT_DEVICES)}")
    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    if device == "cuda" and not has_cuda:
        raise OnnxGeneratorError("device 'cuda': this onnxruntime has no CUDAExecutionProvider "
                                 "(install onnxruntime-gpu) - use --device cpu")
    if device != "cpu" and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


@dataclass(frozen=True)
class OnnxGenerator:
    """An onnxruntime session on an exported generator, with what its metadata says."""
    path: Path
    session: object          # onnxruntime.InferenceSession
    cell: str
    z_dim: int
    image_size: int

    @classmethod
    def open(cls, path: str | Path, device: str = "cpu") -> OnnxGenerator:
        import onnxruntime as ort

        path = Path(path)
        if not path.is_file():
            raise OnnxGeneratorError(f"{path}: no such generator file; run the export stage first")
        providers = ort_providers(device)
        try:
            session = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # onnxruntime's errors derive from Exception only
            raise OnnxGeneratorError(f"{path}: not an ONNX model ({exc})") from exc
        meta = session.get_modelmeta().custom_metadata_map
        if meta.get(_key("format")) != FORMAT:
            raise OnnxGeneratorError(f"{path}: an ONNX model without rnngan's metadata (no "
                                     f"{_key('format')}={FORMAT}); export it with the export stage")
        try:
            version, z_dim, size = (int(meta[_key(k)]) for k in ("format_version", "z_dim", "image_size"))
            cell, inp, out = meta[_key("cell")], meta[_key("input")], meta[_key("output")]
        except (KeyError, ValueError) as exc:
            raise OnnxGeneratorError(f"{path}: incomplete rnngan metadata ({exc!r})") from exc
        if version > FORMAT_VERSION:
            raise OnnxGeneratorError(f"{path}: format version {version} is newer than this rnngan "
                                     f"reads ({FORMAT_VERSION}); upgrade rnngan")
        names = ([i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()])
        if (inp, out) != (INPUT_NAME, OUTPUT_NAME) or names != ([INPUT_NAME], [OUTPUT_NAME]):
            raise OnnxGeneratorError(f"{path}: graph inputs/outputs {names} are not "
                                     f"[{INPUT_NAME}] -> [{OUTPUT_NAME}]")
        log.info("onnx generator %s: cell %s, z_dim %d, %dx%d, providers %s",
                 path, cell, z_dim, size, size, session.get_providers())
        return cls(path, session, cell, z_dim, size)

    def __call__(self, z: np.ndarray) -> np.ndarray:
        """float32 N x z_dim -> float32 N x 3 x S x S in [-1, 1]."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(z, np.float32)})[0]


def onnx_noise(count: int, z_dim: int, seed: int) -> np.ndarray:
    """The noise `rnngan generate` feeds an ONNX generator: standard normal float32 from numpy's
    default_rng(seed). note: the .pt path draws from torch.Generator, so the same seed gives other
    images there."""
    return np.random.default_rng(seed).standard_normal((count, z_dim), dtype=np.float32)


def to_uint8_np(images: np.ndarray) -> np.ndarray:
    """float N x 3 x H x W in [-1, 1] -> uint8 N x H x W x 3; the numpy twin of
    rnngan.sampling.to_uint8 (same float32 ops, round half to even as torch.round)."""
    x = np.rint((np.clip(images.astype(np.float32), -1, 1) + np.float32(1)) * np.float32(127.5))
    return x.astype(np.uint8).transpose(0, 2, 3, 1)


def sample_onnx(gen: OnnxGenerator, count: int, seed: int, batch_size: int = 500) -> np.ndarray:
    """`count` uint8 images N x H x W x 3; all the noise is drawn first, so batching cannot change it."""
    z = onnx_noise(count, gen.z_dim, seed)
    out = np.empty((count, gen.image_size, gen.image_size, 3), np.uint8)
    for start in progress(range(0, count, batch_size), desc="generate", unit="batch"):
        out[start:start + batch_size] = to_uint8_np(gen(z[start:start + batch_size]))
    return out


# ---------------------------------------------------------------------------------------------
# Exporting: needs torch (imported here only).

@contextlib.contextmanager
def quiet_exporter_logs():
    """The exporter's graph passes log every pass at INFO (dozens of lines per export), which
    the stages' INFO logging would show; keep their warnings."""
    loggers = [logging.getLogger(name) for name in ("onnx_ir", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def strip_exporter_metadata(model) -> int:
    """Drop the exporter's per-node `pkg.torch.onnx.*` metadata (stack traces with the absolute
    paths of the source files, names of the traced Python objects): it leaks the author's paths
    into a shared file and makes the bytes depend on where the project was checked out.
    Returns how many entries were dropped."""
    import onnx_ir as ir

    dropped = 0
    graphs = [model.graph, *model.functions.values()]
    for graph in graphs:
        for node in ir.traversal.RecursiveGraphIterator(graph):
            for key in [k for k in node.metadata_props if k.startswith("pkg.torch.onnx.")]:
                del node.metadata_props[key]
                dropped += 1
    return dropped


def export_onnx(generator_path: str | Path, out_path: str | Path, check_count: int = 64, seed: int = 0,
                batch: int = 2, tolerance: float = TOLERANCE, expect_cell: str | None = None) -> dict:
    """Export the EMA generator in `generator_path` to ONNX at `out_path`, checked; return a summary.

    The graph is traced with a `batch`-image example but its batch dimension is dynamic. Before the
    file is renamed into place, onnxruntime runs it on `check_count` latents from
    torch.Generator().manual_seed(seed) and the largest |onnx - eager| must be <= `tolerance`;
    otherwise ExportCheckError and nothing is written. `expect_cell` (params model.cell) guards
    against exporting another variant than the one the params name.
    """
    import onnxruntime as ort
    import torch

    from rnngan.config import ParamsError
    from rnngan.sampling import load_generator

    generator_path, out_path = Path(generator_path), Path(out_path)
    G = load_generator(generator_path, torch.device("cpu"))    # eval mode: BatchNorm uses running stats
    cfg = G.cfg
    if expect_cell is not None and cfg.cell != expect_cell:
        raise ParamsError(f"model.cell='{expect_cell}' but {generator_path} holds a '{cfg.cell}' "
                          f"generator; pass the generator of model.cell or change model.cell")
    config = dataclasses.asdict(cfg) if dataclasses.is_dataclass(cfg) else {}
    example = torch.randn(batch, cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    log.info("exporting %s (%s, z_dim %d, %dx%d) to ONNX opset %d with the dynamo exporter",
             generator_path, cfg.cell, cfg.z_dim, cfg.image_size, cfg.image_size, OPSET)
    with quiet_exporter_logs():
        program = torch.onnx.export(
            G, (example,), dynamo=True, opset_version=OPSET, verbose=False,   # verbose: no step banners
            input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
            dynamic_shapes=({0: torch.export.Dim("batch")},), external_data=False)
    strip_exporter_metadata(program.model)
    program.model.metadata_props.update(metadata(cfg.cell, cfg.z_dim, cfg.image_size, config))
    opset = program.model.opset_imports[""]

    z = torch.randn(check_count, cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        eager = G(z).numpy()
    with atomic_path(out_path) as tmp:
        program.save(tmp)
        # check the file as `rnngan generate` will read it: metadata included
        exported = OnnxGenerator.open(tmp, device="cpu")
        diff = float(np.abs(exported(z.numpy()).astype(np.float64) - eager).max())
        if not diff <= tolerance:   # NaN fails too
            raise ExportCheckError(f"{out_path}: the ONNX graph differs from the eager generator "
                                   f"{generator_path} by {diff:.3g} > tolerance {tolerance:g} on "
                                   f"{check_count} latents (seed {seed}); nothing was written")
        size, digest = tmp.stat().st_size, sha256_file(tmp)
    log.info("wrote %s: %d bytes, opset %d, max |onnx - eager| = %.3g on %d latents",
             out_path, size, opset, diff, check_count)
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "cell": cfg.cell, "z_dim": cfg.z_dim,
            "image_size": cfg.image_size, "input": INPUT_NAME, "output": OUTPUT_NAME,
            "exporter": "torch.onnx.export(dynamo=True)", "opset": opset,
            "torch": torch.__version__, "onnxruntime": ort.__version__,
            "check_count": check_count, "check_seed": seed, "max_abs_diff": diff, "tolerance": tolerance,
            "bytes": size, "sha256": digest}
