"""The charts of a report, as plotly.js JSON: latency distributions, trade-off with the
Pareto front, history across runs and the comparison with a baseline run.

Memory/CPU and thermal time series live in `timeseries.py`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from orchestrator.compare import RunComparison
from orchestrator.report.figures import (
    TICKS_3_DIGITS,
    VERDICT_COLOURS,
    Figure,
    axis,
    base_layout,
    board_picker,
    colours,
    compact,
    label,
    log_if_wide,
    padded_range,
    sorted_sample,
    spread_labels,
)
from orchestrator.report.history import HistoryPoint
from orchestrator.report.overview import (
    OverviewRow,
    pareto_objectives,
    variant_sort_key,
)
from orchestrator.report.pareto import pareto_front

#: Box plots draw at most this many points per result, and the whole report at most
#: TOTAL_BOX_POINTS (each result then gets an equal share, never fewer than MIN_BOX_POINTS):
#: raw samples are kept in the store, the file only needs enough to draw the distribution.
MAX_BOX_POINTS = 2000
MIN_BOX_POINTS = 200
TOTAL_BOX_POINTS = 80_000

#: Text labels on scatter points only up to this many points per chart (hover otherwise).
MAX_LABELLED_POINTS = 16

#: The comparison chart shows at most this many cells (the largest changes).
MAX_COMPARISON_CELLS = 60

#: The comparison chart's x axis ends at ±this change (%); a cell beyond is drawn at the edge.
MAX_COMPARISON_PCT = 100.0

#: Category labels longer than this are shortened with "…" (the hover has the full name),
#: so the plot keeps some width on a phone.
MAX_TICK_CHARS = 34


def _ci_arm(high: float | None, low: float | None) -> float:
    """One side of an error bar (high - low), 0 when the interval is unknown."""
    return 0 if high is None or low is None else round(min(high - low, 2 * MAX_COMPARISON_PCT), 3)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclasses.dataclass
class ResultSeries:
    """The raw series of one result: latencies (ms), sampler rows and phase marks."""

    latency_ms: list[float]
    samples: list[dict[str, Any]]
    phase_marks: list[dict[str, Any]]


def models_of(rows: Sequence[OverviewRow]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        if row.model not in seen:
            seen.append(row.model)
    return seen


def boards_of(rows: Sequence[OverviewRow]) -> list[str]:
    seen: list[str] = []
    for row in rows:
        if row.board not in seen:
            seen.append(row.board)
    return seen


def variants_of(rows: Sequence[OverviewRow]) -> list[str]:
    return sorted({r.variant for r in rows}, key=variant_sort_key)


def box_points_per_result(results: int) -> int:
    if results <= 0:
        return MAX_BOX_POINTS
    return max(MIN_BOX_POINTS, min(MAX_BOX_POINTS, TOTAL_BOX_POINTS // results))


def latency_figures(rows: Sequence[OverviewRow], series: Mapping[int, ResultSeries]) -> list[Figure]:
    """Per model: box plots of the raw latencies, boards along x, one box per variant."""
    ok = [r for r in rows if r.ok and series.get(r.result_id) and series[r.result_id].latency_ms]
    per_result = box_points_per_result(len(ok))
    variant_colour = colours(variants_of(ok))
    figures = []
    for index, model in enumerate(models_of(ok)):
        model_rows = [r for r in ok if r.model == model]
        data = []
        shown: set[str] = set()
        for variant in variants_of(model_rows):
            for row in (r for r in model_rows if r.variant == variant):
                samples = sorted_sample(series[row.result_id].latency_ms, per_result)
                data.append({
                    "type": "box",
                    "y": compact(samples),
                    "x0": label(row.board),
                    "name": label(variant),
                    "legendgroup": label(variant),
                    "offsetgroup": label(variant),
                    "showlegend": variant not in shown,
                    "marker": {"color": variant_colour[variant], "size": 3},
                    "line": {"width": 1.2},
                    "boxpoints": "outliers",
                    "hovertemplate": f"{label(row.board)} · {label(variant)}<br>%{{y:.4g}} ms<extra></extra>",
                })
                shown.add(variant)
        # the axis is logarithmic when the boxes span a decade (a 0.009 ms and a 65 ms result):
        # on a linear 0-65 ms axis the small one is a line at zero
        values = [v for r in model_rows for v in (min(series[r.result_id].latency_ms), r.values["p99"])]
        scale = log_if_wide(values)
        yaxis = axis("latency (ms)" + (", log scale" if scale == "log" else ""), type=scale,
                     tickformat=TICKS_3_DIGITS)
        if scale == "linear":
            yaxis["rangemode"] = "tozero"
        layout = base_layout(
            400, boxmode="group", boxgroupgap=0.25,
            xaxis=axis("board", type="category"),
            yaxis=yaxis,
        )
        sampled = " (a rank-even sample of each run's latencies)" if any(
            len(series[r.result_id].latency_ms) > per_result for r in model_rows) else ""
        figures.append(Figure(
            f"fig-latency-{index}", model,
            f"Per-inference latency of every measured run{sampled}; box = quartiles, line = median, "
            "whiskers to 1.5 IQR, dots beyond.", data, layout))
    return figures


def tradeoff_figures(rows: Sequence[OverviewRow]) -> list[Figure]:
    """Per model: size vs p50 (or p50 vs accuracy, marker size = file size) per board, with
    each board's Pareto front highlighted."""
    ok = [r for r in rows if r.ok and r.values["p50"] is not None and r.values["size"] is not None]
    board_colour = colours(boards_of(ok), reference=None)
    figures = []
    for index, model in enumerate(models_of(ok)):
        model_rows = [r for r in ok if r.model == model]
        if len(model_rows) < 2:
            continue  # one point trades nothing off
        with_accuracy = all(r.values["accuracy"] is not None for r in model_rows)
        labelled = len(model_rows) <= MAX_LABELLED_POINTS
        max_size = max(r.values["size"] for r in model_rows) or 1.0
        p50s = [r.values["p50"] for r in model_rows]
        sizes_b = [r.values["size"] for r in model_rows]
        x_scale = log_if_wide(p50s) if with_accuracy else log_if_wide(sizes_b)
        y_scale = "linear" if with_accuracy else log_if_wide(p50s)
        # variant names beside the points where they fit; where two would overlap, hover only
        ordered = sorted(model_rows, key=lambda r: _tradeoff_xy([r], with_accuracy)[0][0])
        if not labelled:  # a crowded chart names only the Pareto-optimal variants
            ordered = [r for r in ordered if r.pareto]
        spots = spread_labels([(xs[0], ys[0]) for xs, ys in (_tradeoff_xy([r], with_accuracy) for r in ordered)],
                              x_scale == "log", y_scale == "log")
        position = {r.result_id: spot for r, spot in zip(ordered, spots, strict=True)}
        data = []
        for board in boards_of(model_rows):
            points = sorted((r for r in model_rows if r.board == board), key=lambda r: variant_sort_key(r.variant))
            keys, senses = pareto_objectives(points)
            front = set(pareto_front([[r.values[k] for k in keys] for r in points], senses)) if len(points) > 1 else set()
            colour = board_colour[board]
            xs, ys = _tradeoff_xy(points, with_accuracy)
            sizes = [8 + 18 * (r.values["size"] / max_size) ** 0.5 for r in points] if with_accuracy else 10
            hover = [
                f"{label(board)} · {label(r.variant)}<br>p50 {r.values['p50']:.4g} ms<br>"
                f"size {r.values['size'] / 1048576:.3g} MiB"
                + (f"<br>accuracy {r.values['accuracy'] * 100:.1f} %" if r.values["accuracy"] is not None else "")
                + ("<br><b>Pareto-optimal</b>" if i in front else "")
                for i, r in enumerate(points)
            ]
            shown = [position.get(r.result_id) for r in points]
            data.append({
                "type": "scatter", "mode": "markers+text" if any(shown) else "markers", "cliponaxis": False,
                "x": xs, "y": ys, "name": label(board), "legendgroup": label(board),
                "text": [label(r.variant) if spot else "" for r, spot in zip(points, shown, strict=True)],
                "textposition": [spot or "top center" for spot in shown],
                "textfont": {"size": 10, "color": "#57606a"},
                "hovertext": hover, "hoverinfo": "text",
                "marker": {"color": colour, "size": sizes, "opacity": 0.85,
                           "line": {"width": [3 if i in front else 0 for i in range(len(points))], "color": "#1b1f24"}},
            })
            if front:
                on_front = sorted((points[i] for i in front), key=lambda r: _tradeoff_xy([r], with_accuracy)[0][0])
                fx, fy = _tradeoff_xy(on_front, with_accuracy)
                data.append({
                    "type": "scatter", "mode": "lines", "x": fx, "y": fy,
                    "name": f"Pareto front · {label(board)}", "legendgroup": label(board), "showlegend": False,
                    "line": {"color": colour, "width": 1.5, "dash": "dot", "shape": "linear" if with_accuracy else "hv"},
                    "hoverinfo": "skip",
                })
        if with_accuracy:
            layout = base_layout(420, xaxis=axis("median latency (ms) — lower is better", type=x_scale,
                                                 tickformat=TICKS_3_DIGITS),
                                 yaxis=axis("accuracy (%) — higher is better"))
            caption = ("Median latency against accuracy; marker area grows with the model file's size. "
                       "Outlined points are Pareto-optimal for their board over size, latency and accuracy.")
        else:
            layout = base_layout(420, xaxis=axis("model file size (MiB) — smaller is better", type=x_scale,
                                                 tickformat=TICKS_3_DIGITS),
                                 yaxis=axis("median latency (ms) — lower is better", type=y_scale,
                                            tickformat=TICKS_3_DIGITS))
            caption = ("Model file size against median latency (accuracy not measured). Outlined points, "
                       "joined by the dotted step line, are each board's Pareto front: no other variant is "
                       "both smaller and faster.")
        figures.append(Figure(f"fig-tradeoff-{index}", model, caption, data, layout))
    return figures


def energy_figures(rows: Sequence[OverviewRow]) -> list[Figure]:
    """Per model measured on a board with power sensors: energy per inference (mJ) against
    accuracy (or, without accuracy, median latency) per board, each board's Pareto front over
    the two outlined and joined."""
    ok = [r for r in rows if r.ok and r.values["energy"] is not None and r.values["p50"] is not None]
    board_colour = colours(boards_of(ok), reference=None)
    figures = []
    for index, model in enumerate(models_of(ok)):
        model_rows = [r for r in ok if r.model == model]
        if len(model_rows) < 2:
            continue
        with_accuracy = all(r.values["accuracy"] is not None for r in model_rows)
        key, sense = ("accuracy", "max") if with_accuracy else ("p50", "min")
        data = []
        for board in boards_of(model_rows):
            points = sorted((r for r in model_rows if r.board == board), key=lambda r: r.values["energy"])
            front = set(pareto_front([[r.values["energy"], r.values[key]] for r in points], ("min", sense)))
            ys = [round(r.values["accuracy"] * 100, 3) if with_accuracy else r.values["p50"] for r in points]
            hover = [f"{label(board)} · {label(r.label)}<br>{r.values['energy']:.4g} mJ per inference<br>"
                     + (f"accuracy {r.values['accuracy'] * 100:.1f} %" if with_accuracy else f"p50 {r.values['p50']:.4g} ms")
                     + ("<br><b>Pareto-optimal</b>" if i in front else "") for i, r in enumerate(points)]
            colour = board_colour[board]
            data.append({
                "type": "scatter", "mode": "markers+text" if len(points) <= MAX_LABELLED_POINTS else "markers",
                "cliponaxis": False, "x": [r.values["energy"] for r in points], "y": ys, "name": label(board),
                "legendgroup": label(board), "text": [label(r.label) for r in points], "textposition": "top center",
                "textfont": {"size": 10, "color": "#57606a"}, "hovertext": hover, "hoverinfo": "text",
                "marker": {"color": colour, "size": 10, "opacity": 0.85,
                           "line": {"width": [3 if i in front else 0 for i in range(len(points))], "color": "#1b1f24"}},
            })
            on_front = [points[i] for i in sorted(front, key=lambda i: points[i].values["energy"])]
            if len(on_front) > 1:
                data.append({
                    "type": "scatter", "mode": "lines", "x": [r.values["energy"] for r in on_front],
                    "y": [ys[points.index(r)] for r in on_front], "name": f"Pareto front · {label(board)}",
                    "legendgroup": label(board), "showlegend": False, "hoverinfo": "skip",
                    "line": {"color": colour, "width": 1.5, "dash": "dot", "shape": "hv"},
                })
        energies = [r.values["energy"] for r in model_rows]
        layout = base_layout(400, xaxis=axis("energy per inference (mJ) — lower is better", type=log_if_wide(energies),
                                             tickformat=TICKS_3_DIGITS),
                             yaxis=axis("accuracy (%) — higher is better" if with_accuracy else
                                        "median latency (ms) — lower is better", tickformat=TICKS_3_DIGITS))
        caption = ("Energy per inference (the board's mean power while measuring × mean latency, from its own "
                   "power sensors) against " + ("accuracy" if with_accuracy else "median latency")
                   + ". Outlined points, joined by the dotted line, are each board's Pareto front over the two.")
        figures.append(Figure(f"fig-energy-{index}", model, caption, data, layout))
    return figures


def _tradeoff_xy(points: Sequence[OverviewRow], with_accuracy: bool) -> tuple[list[float], list[float]]:
    if with_accuracy:
        return [r.values["p50"] for r in points], [round(r.values["accuracy"] * 100, 3) for r in points]
    return [round(r.values["size"] / 1048576, 4) for r in points], [r.values["p50"] for r in points]


def history_figures(
    history: Mapping[tuple[str, str, str], list[HistoryPoint]], current_run_id: str
) -> list[Figure]:
    """Per model: the median latency of each board × variant (× sweep point: the key's label)
    over the runs that measured it."""
    if not history:
        return []

    def order(key: tuple[str, str, str]) -> tuple:
        return (variant_sort_key(history[key][0].variant), key[2])

    keys = sorted(history, key=lambda k: (k[1], k[0], order(k)))
    models = list(dict.fromkeys(k[1] for k in keys))
    labels = {k[2]: order(k) for k in keys}
    variant_colour = colours(sorted(labels, key=labels.__getitem__))
    figures = []
    for index, model in enumerate(models):
        model_keys = [k for k in keys if k[1] == model]
        boards = list(dict.fromkeys(k[0] for k in model_keys))
        data, trace_boards = [], []
        for board, _, variant in model_keys:
            points = history[(board, model, variant)]
            data.append({
                "type": "scatter", "mode": "lines+markers",
                "x": [p.created_at[:23].replace("T", " ") for p in points],  # UTC, to the millisecond
                "y": [round(p.latency_ms_p50, 6) for p in points],
                "name": label(variant) if len(boards) < 2 else f"{label(variant)}",
                "legendgroup": label(variant),
                "visible": board == boards[0],
                "marker": {"color": variant_colour[variant],
                           "size": [11 if p.run_id == current_run_id else 6 for p in points]},
                "line": {"color": variant_colour[variant], "width": 1.5},
                "hovertext": [f"{label(board)} · {label(variant)}<br>run {label(p.run_id)}<br>p50 {p.latency_ms_p50:.4g} ms"
                              for p in points],
                "hoverinfo": "text",
            })
            trace_boards.append(board)
        p50s = [p.latency_ms_p50 for k in model_keys for p in history[k]]
        scale = log_if_wide(p50s)
        yaxis = axis("median latency (ms)", type=scale, tickformat=TICKS_3_DIGITS)
        flat = padded_range(p50s) if scale == "linear" else None
        if flat:  # a line that barely moves: ticks 0.0084…0.0092, not 0.008804…0.008812
            yaxis["range"] = flat
        layout = base_layout(
            360, xaxis=axis("run start (UTC)", type="date"), yaxis=yaxis,
            updatemenus=board_picker(boards, trace_boards),
        )
        if len(boards) > 1:
            layout["margin"]["t"] = 56
        picker = " Pick the board in the menu." if len(boards) > 1 else ""
        figures.append(Figure(
            f"fig-history-{index}", model,
            f"Median latency of each variant in the runs that measured it (big marker: this run).{picker}",
            data, layout))
    return figures


def comparison_figure(comparison: RunComparison) -> Figure | None:
    """The change of the median latency per compared cell with its 95 % CI, coloured by verdict."""
    cells = [c for c in comparison.compared if c.latency is not None]
    if not cells:
        return None
    note = ""
    if len(cells) > MAX_COMPARISON_CELLS:
        cells = sorted(cells, key=lambda c: -abs(c.latency.change_pct))[:MAX_COMPARISON_CELLS]
        note = f" Showing the {MAX_COMPARISON_CELLS} largest changes; the table lists every cell."
    cells = sorted(cells, key=lambda c: c.latency.change_pct)
    names, seen = [], set()
    for c in cells:
        name = label(_shorten(f"{c.board} · {c.model} · {c.variant}", MAX_TICK_CHARS))
        while name in seen:
            name += " "
        seen.add(name)
        names.append(name)
    data = []
    for verdict, colour in VERDICT_COLOURS.items():
        chosen = [i for i, c in enumerate(cells) if c.latency.verdict == verdict]
        if not chosen:
            continue
        lat = [cells[i].latency for i in chosen]
        clipped = [abs(x.change_pct) > MAX_COMPARISON_PCT for x in lat]
        data.append({
            "type": "scatter", "mode": "markers", "orientation": "h", "name": verdict,
            "x": [round(max(-MAX_COMPARISON_PCT, min(MAX_COMPARISON_PCT, x.change_pct)), 3) for x in lat],
            "y": [names[i] for i in chosen],
            "marker": {"color": colour, "size": 9, "symbol": [
                ("triangle-right" if x.change_pct > 0 else "triangle-left") if c else "diamond"
                for x, c in zip(lat, clipped, strict=True)]},
            "error_x": {
                "type": "data", "symmetric": False, "color": colour, "thickness": 1.5, "width": 3,
                "array": [0 if c else _ci_arm(x.change_ci_high_pct, x.change_pct) for x, c in zip(lat, clipped, strict=True)],
                "arrayminus": [0 if c else _ci_arm(x.change_pct, x.change_ci_low_pct)
                               for x, c in zip(lat, clipped, strict=True)],
            },
            "hovertext": [f"{label(cells[i].board)} · {label(cells[i].model)} · {label(cells[i].variant)}<br>"
                          f"{label(cells[i].latency.reason)}" for i in chosen],
            "hoverinfo": "text",
        })
    if any(abs(c.latency.change_pct) > MAX_COMPARISON_PCT for c in cells):
        note += (f" Changes beyond ±{MAX_COMPARISON_PCT:g} % are drawn at the edge as a triangle (the table has "
                 "their figures), so they do not flatten the others.")
    effect = cells[0].latency.min_effect_pct
    shapes = [
        {"type": "line", "xref": "x", "yref": "paper", "x0": x, "x1": x, "y0": 0, "y1": 1,
         "line": {"color": "#8c959f", "width": 1, "dash": "dash" if x else "solid"}}
        for x in (-effect, 0.0, effect)
    ]
    layout = base_layout(
        max(220, 90 + 24 * len(cells)),
        xaxis=axis("median change (%)"),
        yaxis=axis("", type="category", automargin=True),
        shapes=shapes,
    )
    layout["margin"]["l"] = 12
    return Figure(
        "fig-comparison", f"Latency vs {comparison.base_run_id}",
        f"Change of the median latency per cell (negative is faster) with its 95 % confidence interval; "
        f"dashed lines at ±{effect:g} %, the "
        f"smallest change that counts.{note}", data, layout)
