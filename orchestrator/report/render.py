"""Render a report context with jinja2 (autoescape always on) into one HTML file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.errors import BadInputError
from orchestrator.store import Store

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.report", "templates"),
    autoescape=True,  # every board, model and tag name is user data
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.3f}"


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / (1024 * 1024):,.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


_ENV.filters.update(ms=_ms, mib=_mib, num=_num)


def render_html(context: dict[str, Any]) -> str:
    return _ENV.get_template("report.html.j2").render(**context)


def write_report(store: Store, run_id: str, path: Path) -> Path:
    """Render the report of `run_id` to `path` atomically; BadInputError when it cannot be written."""
    from orchestrator.report.context import build_context

    html = render_html(build_context(store, run_id))
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True) if tmp.parent.exists() else None
        raise BadInputError(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
    return path
