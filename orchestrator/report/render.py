"""Render a report context with jinja2 (autoescape always on) into one self-contained HTML file.

Self-contained: the stylesheet, the small sorting script, the chart data and plotly.js itself
are inlined once, so the file opens offline, from a mail attachment or a CI artifact, and
makes no network request.

Small: plotly.js is its official cartesian partial bundle (orchestrator/report/vendor, the
only trace types the report draws are scatter and box), and it and the chart data travel
gzip-compressed as base64 text, unpacked by the browser's own DecompressionStream
(`report.js`). A 360-result farm's report went from 7.5 MB to well under 2 MB this way
(bench/report_size.py has the figures).
"""
from __future__ import annotations

import base64
import functools
import gzip
import json
import math
import re
import os
import shlex
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.units import fps_text, human_bytes
from markupsafe import Markup

from orchestrator.analysis import DEFAULT_MIN_EFFECT_PCT
from orchestrator.errors import BadInputError
from orchestrator.report.comparison import not_compared_text
from orchestrator.report.history import DEFAULT_HISTORY_RUNS
from orchestrator.store import Store

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.report", "templates"),
    autoescape=True,  # every board, model, variant, tag and error message is user data
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)

# JSON inside <script> must not be able to end the element or open a comment: the characters
# HTML cares about become JSON \u escapes (the same JSON for JSON.parse). ensure_ascii also
# escapes U+2028/2029, which older JavaScript engines read as line ends.
def script_json(value: Any) -> Markup:
    """`value` as JSON that is safe to put between <script> tags (NaN/inf become null)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    except ValueError:  # a NaN or inf somewhere: the slow walk that replaces them
        text = json.dumps(_json_safe(value), separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _json_safe(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def inline_script(source: str) -> Markup:
    """JavaScript source safe to inline: `</script` cannot occur in it (it would end the element)."""
    return Markup(source.replace("</script", "<\\/script").replace("<!--", "<\\!--"))


VENDOR_DIR = Path(__file__).with_name("vendor")
PLOTLY_BUNDLE = VENDOR_DIR / "plotly-cartesian.min.js.gz"


@functools.lru_cache(maxsize=1)
def plotly_packed() -> str:
    """plotly.js (cartesian bundle, gzip) as base64 text, to inline once per report (no CDN)."""
    try:
        return base64.b64encode(PLOTLY_BUNDLE.read_bytes()).decode("ascii")
    except OSError as exc:  # a broken install: say which file
        raise FileNotFoundError(f"the report's plotly.js bundle is missing: {PLOTLY_BUNDLE} ({exc})") from exc


def plotly_js() -> str:
    """The plotly.js source the report embeds (for tests and benchmarks)."""
    return gzip.decompress(PLOTLY_BUNDLE.read_bytes()).decode("utf-8")


def pack_json(value: Any) -> str:
    """`value` as JSON, gzip-compressed and base64-encoded: the text of the report's figure block.
    Base64 has no character HTML reads (`<`, `&`), so it is safe between <script> tags as is."""
    text = str(script_json(value))
    return base64.b64encode(gzip.compress(text.encode("utf-8"), compresslevel=6, mtime=0)).decode("ascii")


def figure_specs(html: str) -> list[dict[str, Any]]:
    """The figure specs a rendered report carries (decoded from its packed block): for tests."""
    match = re.search(r'<script type="application/octet-stream" id="farm-figures"[^>]*>([^<]*)</script>', html)
    if match is None:
        return []
    return json.loads(gzip.decompress(base64.b64decode(match.group(1))))


@functools.lru_cache(maxsize=4)
def _asset(name: str) -> str:
    source, _, _ = _ENV.loader.get_source(_ENV, name)
    return source


# --- number formatting (units in the column headers) ----------------------------------------

def _ms(value: float | None) -> str:
    """Milliseconds with 3-4 significant digits: 123.4, 12.34, 1.234, 0.0088 (never 0.009)."""
    from orchestrator.units import ms_text

    return ms_text(value)


def _mib(value: float | None) -> str:
    return "—" if value is None else f"{value / (1024 * 1024):,.1f}"


def _num(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _percent(fraction: float | None, digits: int = 1) -> str:
    return "—" if fraction is None else f"{fraction * 100:.{digits}f}"


def _sortable(value: Any) -> str:
    """The data-sort attribute of a cell: the raw number ('' sorts last)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if isinstance(value, (int, float)):
        return f"{float(value):.7g}"  # enough to order any two values the table shows apart
    return str(value)


def _fact(value: Any, key: str = "") -> str:
    """A board fact as one readable line."""
    if value in (None, {}, [], ""):
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)) and key.endswith("_bytes"):
        return f"{human_bytes(value)} ({value:,} bytes)" if isinstance(value, int) else human_bytes(value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fact(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fact(v) for v in value)
    return str(value)


def _fmt_value(value: Any, key: str = "") -> str:
    """A setting or controller value: a command line as the shell would read it, lists
    comma-separated, None as —."""
    if isinstance(value, (list, tuple)):
        if not value:
            return "—"
        if key == "argv":
            return shlex.join(str(v) for v in value)
        return ", ".join(str(v) for v in value)
    return _fact(value)


_ENV.filters.update(ms=_ms, mib=_mib, bytes=human_bytes, fps=fps_text, num=_num, percent=_percent,
                    sortable=_sortable, fact=_fact, value=_fmt_value, script_json=script_json)
_ENV.globals.update(not_compared_text=not_compared_text)


def render_html(context: dict[str, Any]) -> str:
    """The report page. Charts (and plotly.js) are included only when there is something to draw."""
    specs = context.get("figure_specs") or []
    assets = {
        "css": Markup(_asset("report.css")),
        "js": inline_script(_asset("report.js")),
        "plotly": plotly_packed() if specs else None,
        "figures": pack_json(specs) if specs else None,
    }
    context = {
        "figures": {}, "figure_specs": [], "rows": [], "comparison": None, "base_run": None, "settings_changes": [],
        "accuracy_measured": False, "energy_measured": False, "thermal_reported": False, "thermal_flags": [], "environments": [],
        "failures": [], "variants": [], "board_fact_columns": (), "highlights": [], "history_runs": 0, "metrics": (),
        "counts": None, "generated_at": "", "matrices": [], "min_effect_pct": DEFAULT_MIN_EFFECT_PCT, **context,
        "assets": assets,
    }
    return _ENV.get_template("report.html.j2").render(**context)


def write_report(
    store: Store,
    run_id: str,
    path: Path,
    compare_run_id: str | None = None,
    history: int = DEFAULT_HISTORY_RUNS,
    thresholds: dict[str, float] | None = None,
) -> Path:
    """Render the report of `run_id` (vs `compare_run_id` when given, judged with `thresholds`,
    see build_context) to `path` atomically; BadInputError when it cannot be written."""
    from orchestrator.report.context import build_context

    html = render_html(build_context(store, run_id, compare_run_id=compare_run_id, history=history,
                                     thresholds=thresholds))
    return write_html(html, path)


def write_html(html: str, path: Path) -> Path:
    """Write a rendered report atomically (a reader never sees half a file)."""
    path = Path(path).expanduser()
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(html, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        if tmp.parent.exists():
            tmp.unlink(missing_ok=True)
        raise BadInputError(f"cannot write the report to {path}: {exc.strerror or exc}") from exc
    return path
