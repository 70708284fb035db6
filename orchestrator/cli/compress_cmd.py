"""`farm compress MODEL --variants LIST`: make compressed variants and show what each one is."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich import box
from rich.table import Table

from orchestrator.cli import state
from orchestrator.cli.render import escape, human_bytes
from orchestrator.errors import ExitStatus


def compress(
    model: Path = typer.Argument(..., metavar="MODEL", help="ONNX model file."),
    variants: str = typer.Option("fp32,optimized,fp16,int8-dynamic", "--variants", "-V", metavar="LIST", help="Comma-separated variants (see farm bench --help)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", metavar="DIR", help="Copy each variant (and its .manifest.json; an OpenVINO IR's .xml and .bin) into this folder."),
    calibration: Optional[Path] = typer.Option(None, "--calibration", metavar="PATH", help="Calibration inputs (.npz with `inputs`) for int8-static."),
    shape: Optional[List[str]] = typer.Option(None, "--shape", metavar="NAME=DIMS", help="Input size fidelity is measured at, NAME=1x3x640x640 (repeatable; needed for symbolic dims other than the batch)."),
) -> int:
    """Build compressed variants of a model (cached by content) and print their manifests."""
    from orchestrator.compress import compress_model

    results = compress_model(model, [v for v in variants.split(",") if v.strip()], output, calibration,
                             shape_args=list(shape or []))
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    for name in ("variant", "size", "gzip", "params", "sparsity", "cosine", "cached", "file"):
        table.add_column(name, justify="left" if name in ("variant", "file") else "right", overflow="fold", no_wrap=name != "file")
    for result in results:
        if result.record is None:
            table.add_row(escape(result.variant), "[red]failed[/red]")
            continue
        r = result.record
        cosine = (r.fidelity or {}).get("cosine")
        table.add_row(
            escape(r.variant), human_bytes(r.size_bytes), human_bytes(r.gzip_bytes), f"{r.parameters:,}",
            f"{r.sparsity:.1%}", "—" if cosine is None else f"{cosine:.4f}", "yes" if r.cached else "no",
            escape(result.output_path.name if result.output_path else str(r.path)),
        )
    state.out.print(table)
    if output is not None:
        pairs = "; an OpenVINO IR is its .xml and the .bin beside it" if any(
            r.record is not None and r.record.weights_path for r in results) else ""
        state.out.print(f"written to {escape(str(output))} (each with a .manifest.json{pairs})")
    for result in results:
        if result.record is None:
            state.err.print(f"[red]{escape(result.variant)}[/red]: {escape(result.error or '')}", highlight=False)
    return ExitStatus.OK if all(r.record is not None for r in results) else ExitStatus.BAD_INPUT
