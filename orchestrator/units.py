"""How numbers with units read to a person, the same in the terminal and in the HTML report."""
from __future__ import annotations

NONE_TEXT = "—"


def human_bytes(value: float | None) -> str:
    """1.2 KiB / 3.4 MiB / 1.1 GiB: sizes from bytes to GiB read at a glance."""
    if value is None:
        return NONE_TEXT
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:,.{2 if abs(size) < 10 else 1}f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def fps_text(value: float | None) -> str:
    """Whole frames per second from 100 up, one decimal below."""
    if value is None:
        return NONE_TEXT
    return f"{value:,.0f}" if value >= 100 else f"{value:,.1f}"


def mib_text(value: float | None, unit: bool = True) -> str:
    """Bytes as MiB with one decimal (`51.2 MiB`), or `n/a`: the figure verdicts quote."""
    if value is None:
        return "n/a"
    return f"{value / 1048576:.1f}" + (" MiB" if unit else "")


def ms_text(value: float | None) -> str:
    """Milliseconds with 3-4 significant digits, the same in the terminal and the report:
    1,234 / 123.4 / 12.34 / 1.234 / 0.0088 — a 9 µs model reads 0.0088, not 0.009 or 0.00."""
    if value is None:
        return NONE_TEXT
    size = abs(value)
    if size >= 1000:
        return f"{value:,.0f}"
    for limit, digits in ((100, 1), (10, 2), (1, 3)):
        if size >= limit:
            return f"{value:.{digits}f}"
    if value == 0:
        return "0"
    text = f"{value:.2g}"
    return text if "e" not in text else f"{value:.1e}"
