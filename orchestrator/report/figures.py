"""What every chart shares: the figure record, colours, safe labels, compact numbers.

Figures are plain plotly.js JSON (data + layout dicts) built here without plotly's Python
graph objects: validating hundreds of traces through them costs seconds for a big farm, and
the report needs nothing from them but the JSON.
"""
from __future__ import annotations

import dataclasses
import html
import math
from typing import Any, Iterable, Sequence

import numpy as np

#: Colours for variants (fp32 always the neutral dark grey) and boards: colour-blind-safe
#: Okabe-Ito first, then Tableau 10.
PALETTE = (
    "#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442",
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
)
REFERENCE_COLOUR = "#3d4451"

VERDICT_COLOURS = {"improved": "#1a7f37", "unchanged": "#6e7781", "regressed": "#cf222e", "inconclusive": "#bf8700"}


@dataclasses.dataclass
class Figure:
    """One chart: a DOM id, a heading and a caption for the HTML, and the plotly spec."""

    id: str
    title: str
    caption: str
    data: list[dict[str, Any]]
    layout: dict[str, Any]

    def spec(self) -> dict[str, Any]:
        return {"id": self.id, "data": self.data, "layout": self.layout}


def label(text: Any) -> str:
    """A user string (board, model, variant) made safe for plotly, which reads labels as a
    small subset of HTML: `<script>` must arrive as the text "<script>", not as a tag."""
    return html.escape(str(text), quote=False)


def colours(names: Iterable[str], reference: str | None = "fp32") -> dict[str, str]:
    """A stable colour per name (in the given order); `reference` gets the neutral grey."""
    mapping: dict[str, str] = {}
    index = 0
    for name in names:
        if name in mapping:
            continue
        if name == reference:
            mapping[name] = REFERENCE_COLOUR
            continue
        mapping[name] = PALETTE[index % len(PALETTE)]
        index += 1
    return mapping


def base_layout(height_px: int, **extra: Any) -> dict[str, Any]:
    """Layout every chart starts from: fills its container's width, legend below the plot.

    The legend is anchored to the bottom of the whole figure (`yref: container`), not to the
    plot area: plotly then reserves room for it below the x axis title, so on a phone, where
    tick labels wrap and the axis grows, title and legend never overlap."""
    layout: dict[str, Any] = {
        "autosize": True,
        "height": height_px,
        "margin": {"l": 56, "r": 12, "t": 36, "b": 16},
        "font": {"family": "system-ui, -apple-system, 'Segoe UI', sans-serif", "size": 12},
        "legend": {"orientation": "h", "x": 0, "xanchor": "left", "yref": "container", "y": 0, "yanchor": "bottom"},
        "paper_bgcolor": "#ffffff",
        "plot_bgcolor": "#ffffff",
        "hoverlabel": {"namelength": -1},
    }
    layout.update(extra)
    return layout


def axis(title: str, **extra: Any) -> dict[str, Any]:
    spec = {"title": {"text": title}, "gridcolor": "#e6e8eb", "zerolinecolor": "#c9ced4", "automargin": True}
    spec.update(extra)
    return spec


def log_if_wide(values: Sequence[float], ratio: float = 10.0) -> str:
    """"log" when the values span more than `ratio` (a decade: a fast and a slow board, or a
    0.009 ms and a 65 ms variant, on one axis), so the small ones are not flattened to zero."""
    positive = [v for v in values if v is not None and v > 0]
    if positive and max(positive) / min(positive) > ratio:
        return "log"
    return "linear"


#: Tick labels with at most 3 significant digits (`0.0088`, `12.5`, `1.2k`-free): never the
#: 0.008804…0.008812 of an axis zoomed onto a flat line.
TICKS_3_DIGITS = ".3~g"


def padded_range(values: Sequence[float], min_spread: float = 0.1) -> list[float] | None:
    """A linear axis range around values that barely differ (a flat history line): at least
    ±`min_spread`/2 of their middle, so ticks read 0.0084, 0.0088, 0.0092 and a 0.01 % wiggle
    stays flat. None when the values already spread enough (plotly's autorange is fine)."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return None
    low, high = min(finite), max(finite)
    middle = (low + high) / 2.0
    if middle <= 0 or (high - low) >= min_spread * middle:
        return None
    half = middle * min_spread / 2.0
    return [round(max(0.0, middle - half), 12), round(middle + half, 12)]


def spread_labels(points: Sequence[tuple[float, float]], x_log: bool, y_log: bool, *, width: float = 0.14,
                  height: float = 0.09) -> list[str | None]:
    """A text position per point ("top center", "bottom center") or None (hover only), so that
    no two labels overlap: points are placed greedily in order, each label a box of `width` ×
    `height` of the axis spans above or below its point (log axes measured in decades)."""
    def scale(values: Sequence[float], log: bool) -> list[float]:
        mapped = [math.log10(v) if log and v > 0 else v for v in values]
        low, high = min(mapped), max(mapped)
        span = (high - low) or 1.0
        return [(v - low) / span for v in mapped]

    if not points:
        return []
    xs, ys = scale([p[0] for p in points], x_log), scale([p[1] for p in points], y_log)
    taken: list[tuple[float, float, float, float]] = []
    # the point itself is an obstacle too: a label must not sit on another point
    dots = [(x - 0.01, y - 0.01, x + 0.01, y + 0.01) for x, y in zip(xs, ys)]
    chosen: list[str | None] = []
    for i, (x, y) in enumerate(zip(xs, ys)):
        pick = None
        for position, box in (("top center", (x - width / 2, y + 0.02, x + width / 2, y + 0.02 + height)),
                              ("bottom center", (x - width / 2, y - 0.02 - height, x + width / 2, y - 0.02))):
            if not any(_overlap(box, other) for other in taken + dots[:i] + dots[i + 1:]):
                pick = position
                taken.append(box)
                break
        chosen.append(pick)
    return chosen


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def board_picker(boards: Sequence[str], trace_boards: Sequence[str]) -> list[dict[str, Any]]:
    """A dropdown showing one board's traces at a time (plotly updatemenus, no custom JS).

    `trace_boards[i]` is the board of trace i. With one board there is nothing to pick.
    """
    if len(boards) < 2:
        return []
    buttons = [
        {
            "label": label(board),
            "method": "restyle",
            "args": [{"visible": [tb == board for tb in trace_boards]}],
        }
        for board in boards
    ]
    return [{
        "type": "dropdown", "active": 0, "showactive": True, "buttons": buttons,
        "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom", "pad": {"t": 0, "b": 4},
    }]


def sorted_sample(values: Sequence[float], max_points: int) -> np.ndarray:
    """At most `max_points` of the samples, evenly spaced in rank (min and max kept), so a box
    plot drawn from them shows the same quartiles and tails as the full set."""
    array = np.sort(np.asarray(values, dtype=float))
    array = array[np.isfinite(array)]
    if array.size <= max_points:
        return array
    index = np.round(np.linspace(0, array.size - 1, max_points)).astype(int)
    return array[index]


def compact(values: Any, significant: int = 4) -> list[float | None]:
    """Round to `significant` digits at the scale of the values' median (not per value, so a
    sorted sample stays sorted), NaN/inf as None: keeps the embedded JSON small."""
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return []
    finite = array[np.isfinite(array)]
    scale = float(np.median(np.abs(finite))) if finite.size else 0.0
    decimals = significant - 1 - math.floor(math.log10(scale)) if scale > 0 else significant
    rounded = np.round(array, max(0, decimals))
    return [float(v) if math.isfinite(v) else None for v in rounded.tolist()]


def thin(items: Sequence[Any], max_points: int) -> list[Any]:
    """Every k-th item so that at most `max_points` remain (the last one always kept)."""
    if len(items) <= max_points:
        return list(items)
    step = math.ceil(len(items) / max_points)
    kept = list(items[::step])
    if kept[-1] is not items[-1]:
        kept[-1] = items[-1]
    return kept
