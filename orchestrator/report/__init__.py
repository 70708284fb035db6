"""HTML reports: stored results → a plain data context → one self-contained HTML file."""
from orchestrator.report.context import build_context
from orchestrator.report.render import render_html, write_html, write_report

__all__ = ["build_context", "render_html", "write_html", "write_report"]
