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
