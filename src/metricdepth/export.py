"""Exporting the Depth Pro network: ONNX or a ``torch.export`` program, with a parity check.

What is exported is ``DepthPro.forward``: the network on its fixed square input, batch dynamic:

=================== ====================================================================
input ``image``     (B, 3, S, S) float32 RGB normalised to [-1, 1] (mean = std = 0.5), S = img_size
output 1            ``canonical_inverse_depth`` (B, 1, S, S)
output 2            ``fov_deg`` (B,), horizontal field of view in degrees (models with a FOV head)
=================== ====================================================================

Pre- and post-processing stay outside (resize to S², then metric inverse depth = canonical · W / f_px
with f_px = 0.5·W / tan(FOV / 2), resized back: :mod:`metricdepth.inference`). The ONNX file records
the input size, normalisation and outputs in its metadata. Every export is checked against PyTorch
on a random batch (ONNX Runtime for ONNX, when installed) unless ``check=False``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["EXPORT_FORMATS", "ExportCheck", "export_model"]

EXPORT_FORMATS = ("onnx", "exported-program")
TOLERANCE = 1e-3
"""Largest accepted |exported − PyTorch| as a fraction of the largest |PyTorch output| (fp32)."""


class _Network(nn.Module):
    """``forward`` with only tensor outputs (no ``None`` for a model without FOV head)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: Tensor) -> tuple[Tensor, ...]:
        # The whole-image graph: the bounded-memory chunking of CPU inference splits the batch, which a
        # graph with a dynamic batch cannot; runtimes plan their own memory.
        from .models.depth_pro.chunking import Chunking

        chunking = getattr(self.model, "chunking", None)
        if chunking is not None:
            self.model.chunking = Chunking()
        try:
            canonical, fov = self.model(image)
        finally:
            if chunking is not None:
                self.model.chunking = chunking
        return (canonical,) if fov is None else (canonical, fov)


@dataclass
class ExportCheck:
    """How the exported model compares with PyTorch on a random batch."""

    batch: int
    max_abs_error: list[float]
    max_abs_value: list[float]
    runtime: str

    @property
    def relative_error(self) -> float:
        return max(e / max(v, 1e-12) for e, v in zip(self.max_abs_error, self.max_abs_value, strict=True))

    @property
    def ok(self) -> bool:
        return self.relative_error <= TOLERANCE


def export_model(
    model: nn.Module,
    path: str | os.PathLike,
    format: str = "onnx",
    *,
    check: bool = True,
    check_batch: int = 2,
    metadata: dict[str, str] | None = None,
) -> ExportCheck | None:
    """Export ``model`` (a :class:`~metricdepth.DepthPro`, fp32) to ``path``; returns the parity check.

    The file appears only when the export (and the check) succeeded; an existing file is replaced
    (the caller decides whether it may be). ONNX models over 2 GB store their weights beside the file
    (``FILE.data``), as ONNX requires.

    Raises:
        ValueError: unknown format, or the exported model does not match PyTorch (the message gives
            the error).
        ImportError: ONNX export needs ``onnx`` and ``onnxscript`` (``pip install "metricdepth[export]"``).
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {format!r}; choose {', '.join(EXPORT_FORMATS)}")
    path = Path(path)
    network = _Network(model).eval()
    size = int(model.img_size)
    device = next(model.parameters()).device
    example = torch.zeros(2, 3, size, size, device=device)
    batch = torch.export.Dim("batch", min=1, max=1024)
    names = ["canonical_inverse_depth"] + (["fov_deg"] if getattr(model, "fov", None) is not None else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        staged = staging / path.name
        with torch.no_grad():
            if format == "onnx":
                _export_onnx(network, example, batch, names, staged, size, metadata or {})
            else:
                program = torch.export.export(network, (example,), dynamic_shapes={"image": {0: batch}})
                torch.export.save(program, staged)
        result = _check(network, staged, format, size, check_batch, device) if check else None
        if result is not None and not result.ok:
            raise ValueError(
                f"the exported model differs from PyTorch by {result.relative_error:.2e} of the output "
                f"range (tolerance {TOLERANCE:g}); nothing was written"
            )
        for file in sorted(staging.iterdir()):  # the model, then (large ONNX) its weights beside it
            os.replace(file, path.parent / file.name)
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _export_onnx(
    network: nn.Module,
    example: Tensor,
    batch: Any,
    names: list[str],
    path: Path,
    size: int,
    metadata: dict[str, str],
) -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as err:
        raise ImportError(f"ONNX export needs {err.name}: pip install 'metricdepth[export]'") from None
    program = torch.onnx.export(
        network,
        (example,),
        dynamo=True,
        dynamic_shapes={"image": {0: batch}},
        input_names=["image"],
        output_names=names,
        verbose=False,
    )
    info = {
        "metricdepth.input": f"image: (B, 3, {size}, {size}) float32 RGB in [-1, 1] (mean = std = 0.5)",
        "metricdepth.outputs": ", ".join(names),
        "metricdepth.img_size": str(size),
        **metadata,
    }
    for key, value in info.items():
        entry = program.model.metadata_props  # onnx_ir model: a dict of strings
        entry[key] = value
    weights = sum(p.numel() * p.element_size() for p in network.parameters())
    program.save(str(path), external_data=weights > 1.8 * 2**30)


def _check(
    network: nn.Module, path: Path, format: str, size: int, batch: int, device: torch.device
) -> ExportCheck:
    generator = torch.Generator().manual_seed(0)
    x = (torch.rand(batch, 3, size, size, generator=generator) * 2 - 1).to(device)
    with torch.no_grad():
        reference = [t.float().cpu() for t in network(x)]
    if format == "onnx":
        try:
            import onnxruntime
        except ImportError:
            return None  # nothing to run it with: the export stands unchecked
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outputs = [torch.from_numpy(o) for o in session.run(None, {"image": x.cpu().numpy()})]
        runtime = f"onnxruntime {onnxruntime.__version__}"
    else:
        program = torch.export.load(str(path))
        with torch.no_grad():
            outputs = [t.float().cpu() for t in program.module()(x)]
        runtime = "torch.export"
    if len(outputs) != len(reference):
        raise ValueError(f"the exported model gives {len(outputs)} outputs, PyTorch {len(reference)}")
    return ExportCheck(
        batch=batch,
        max_abs_error=[float((o - r).abs().max()) for o, r in zip(outputs, reference, strict=True)],
        max_abs_value=[float(r.abs().max()) for r in reference],
        runtime=runtime,
    )
