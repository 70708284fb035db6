"""HTML reports: stored results → a plain data context → one self-contained HTML file.

The names below load on first use (PEP 562): `farm bench` sorts its terminal table with
`report.overview` and must not pay for jinja2 and the chart code unless it writes a report.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.report.context import build_context
    from orchestrator.report.render import render_html, write_html, write_report

_HOME = {"build_context": "context", "render_html": "render", "write_html": "render", "write_report": "render"}

__all__ = ["build_context", "render_html", "write_html", "write_report"]


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
