"""Time-series charts from the sampler rows: memory and CPU with the job's phase marks, and
the board's temperature and clock with throttling flagged.

One chart per model, one line per variant; with several boards a menu picks the board
(a chart per board × model would put hundreds of charts in a big farm's report).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from orchestrator.report.charts import ResultSeries, boards_of, models_of, variants_of
from orchestrator.report.figures import (
    Figure,
    axis,
    base_layout,
    board_picker,
    colours,
    label,
    thin,
)
from orchestrator.report.overview import OverviewRow, export_of, variant_sort_key

#: Sampler rows drawn per result at most (every k-th row beyond that).
MAX_TIMESERIES_POINTS = 1000

MIB = 1048576.0


@dataclasses.dataclass(frozen=True)
class ThermalFlag:
    """A result whose board got hot, throttled or dropped its clock while measuring."""

    board: str
    model: str
    variant: str
    temp_c_max: float | None
    throttled: bool
    freq_drop: bool


def _phase_marks(series: ResultSeries) -> list[tuple[float, str]]:
    """(t_s, phase) where each phase began: the agent's marks, else the samples' phase changes."""
    marks = [(float(m["t_s"]), str(m.get("phase", "")))
             for m in series.phase_marks if isinstance(m, dict) and m.get("t_s") is not None]
    if marks:
        return marks
    derived, last = [], None
    for sample in series.samples:
        phase = sample.get("phase")
        if phase != last and sample.get("t_s") is not None:
            derived.append((float(sample["t_s"]), str(phase)))
            last = phase
    return derived


#: Phase labels closer than this fraction of the time axis to the previous label are left out
#: (the dotted line stays; the hover and the caption name the phases).
MIN_LABEL_GAP = 0.07


def _mark_lines(marks: list[tuple[float, str]], top: float, name: str, colour: str, yaxis: str,
                label_span_s: float | None) -> dict[str, Any]:
    """Vertical dotted lines at each phase start, as one trace (None separates the lines).

    With `label_span_s` (the time axis' length) the phases are also named at the top of their
    line, staggered, and a label that would sit on the previous one is left out; one variant
    per board is labelled, so the labels of several variants never pile up."""
    xs: list[float | None] = []
    ys: list[float | None] = []
    labels: list[str] = []
    last_labelled: float | None = None
    for t, phase in marks:
        t = round(t, 3)
        xs += [t, t, None]
        text = ""
        if label_span_s and (last_labelled is None or t - last_labelled >= MIN_LABEL_GAP * label_span_s):
            text, last_labelled = label(phase), t
        ys += [0.0, round(top * (1.0 - 0.08 * (sum(1 for x in labels if x) % 2)), 2) if text else round(top, 2), None]
        labels += ["", text, ""]
    trace: dict[str, Any] = {
        "type": "scatter", "mode": "lines", "x": xs, "y": ys, "yaxis": yaxis,
        "line": {"color": colour, "width": 1, "dash": "dot"}, "opacity": 0.7,
        "name": f"{name} phases", "legendgroup": name, "showlegend": False, "hoverinfo": "skip",
    }
    if label_span_s and any(labels):
        trace.update(mode="lines+text", text=labels, textposition="top right", textfont={"size": 9, "color": colour})
    return trace


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


#: Trace defaults of the time-series charts (plotly template): said once, not on every trace.
_TEMPLATE = {"data": {"scatter": [{"mode": "lines", "line": {"width": 1.6}}]}}


def _picker_layout(layout: dict[str, Any], boards: list[str], trace_boards: list[str]) -> dict[str, Any]:
    """The board menu, hover showing every line at the pointer's time, the trace defaults."""
    layout.update(hovermode="x unified", template=_TEMPLATE)
    layout["updatemenus"] = board_picker(boards, trace_boards)
    if layout["updatemenus"]:
        layout["margin"]["t"] = 56
    return layout


def memory_cpu_figures(rows: Sequence[OverviewRow], series: Mapping[int, ResultSeries]) -> list[Figure]:
    """Per model: RSS (MiB) above, CPU (%) below, over the job's time, phase starts marked."""
    ok = [r for r in rows if r.ok and series.get(r.result_id) and series[r.result_id].samples]
    variant_colour = colours(variants_of(ok))
    figures = []
    for index, model in enumerate(models_of(ok)):
        model_rows = [r for r in ok if r.model == model]
        boards = boards_of(model_rows)
        data, trace_boards = [], []
        for board in boards:
            board_rows = sorted((r for r in model_rows if r.board == board), key=lambda r: variant_sort_key(r.variant))
            span_s = max((float(x.get("t_s") or 0.0) for r in board_rows for x in series[r.result_id].samples),
                         default=0.0)
            for position, row in enumerate(board_rows):
                s = series[row.result_id]
                samples = thin(s.samples, MAX_TIMESERIES_POINTS)
                t = [round(float(x.get("t_s") or 0.0), 2) for x in samples]
                rss = [None if _number(x.get("rss_bytes")) is None else round(_number(x["rss_bytes"]) / MIB, 1) for x in samples]
                cpu = [_rounded(x.get("cpu_percent"), 0) for x in samples]
                name, colour = label(row.variant), variant_colour[row.variant]
                visible = board == boards[0]
                common = {"type": "scatter", "legendgroup": name, "visible": visible, "line": {"color": colour}}
                data.append({**common, "x": t, "y": rss, "name": name, "hovertemplate": "%{y:.1f} MiB"})
                data.append({**common, "x": t, "y": cpu, "name": name, "yaxis": "y2", "showlegend": False,
                             "hovertemplate": "%{y:.0f} % CPU"})
                trace_boards += [board, board]
                marks = _phase_marks(s)
                if marks:
                    top_rss = max((v for v in rss if v is not None), default=1.0)
                    top_cpu = max((v for v in cpu if v is not None), default=100.0)
                    labelled = span_s if position == 0 else None
                    for trace in (_mark_lines(marks, top_rss, name, colour, "y", labelled),
                                  _mark_lines(marks, top_cpu, name, colour, "y2", None)):
                        trace["visible"] = visible
                        data.append(trace)
                        trace_boards.append(board)
        layout = base_layout(
            460,
            xaxis=axis("time since the worker started (s)", anchor="y2"),
            yaxis=axis("RSS (MiB)", domain=[0.56, 1.0], rangemode="tozero"),
            yaxis2=axis("CPU (%)", domain=[0.0, 0.42], anchor="x", rangemode="tozero"),
        )
        picker = " Pick the board in the menu." if len(boards) > 1 else ""
        figures.append(Figure(
            f"fig-memory-{index}", model,
            "Resident memory and CPU use of the worker process, sampled at the run's interval; dotted lines "
            f"mark where each phase (load, first inference, warm-up, measure) began.{picker}",
            data, _picker_layout(layout, boards, trace_boards)))
    return figures


def has_thermal_data(series: Mapping[int, ResultSeries]) -> bool:
    return any(s.get("temps_c") or s.get("freq_khz") for rs in series.values() for s in rs.samples)


def thermal_figures(rows: Sequence[OverviewRow], series: Mapping[int, ResultSeries]) -> list[Figure]:
    """Per model: hottest thermal zone (°C) and slowest core clock (MHz) over each job;
    samples where the board reported throttling are marked with a red ×."""
    ok = [r for r in rows if r.ok and series.get(r.result_id)
          and any(s.get("temps_c") or s.get("freq_khz") for s in series[r.result_id].samples)]
    variant_colour = colours(variants_of(ok))
    figures = []
    for index, model in enumerate(models_of(ok)):
        model_rows = [r for r in ok if r.model == model]
        boards = boards_of(model_rows)
        data, trace_boards = [], []
        any_temp = any_freq = False
        for board in boards:
            for row in sorted((r for r in model_rows if r.board == board), key=lambda r: variant_sort_key(r.variant)):
                samples = thin(series[row.result_id].samples, MAX_TIMESERIES_POINTS)
                t = [round(float(x.get("t_s") or 0.0), 2) for x in samples]
                temp = [_hottest(x.get("temps_c")) for x in samples]
                freq = [_slowest_mhz(x.get("freq_khz")) for x in samples]
                any_temp |= any(v is not None for v in temp)
                any_freq |= any(v is not None for v in freq)
                name, colour = label(row.variant), variant_colour[row.variant]
                flagged = [f for f in row.flags if f.text in ("throttled", "clock drop")]
                if flagged:
                    name += " ⚠ " + ", ".join(f.text for f in flagged)
                visible = board == boards[0]
                common = {"type": "scatter", "legendgroup": label(row.variant), "visible": visible, "line": {"color": colour}}
                data.append({**common, "x": t, "y": temp, "name": name, "hovertemplate": "%{y:.1f} °C"})
                data.append({**common, "x": t, "y": freq, "name": name, "yaxis": "y2", "showlegend": False,
                             "hovertemplate": "%{y:.0f} MHz"})
                trace_boards += [board, board]
                hot = [(ti, te) for ti, te, x in zip(t, temp, samples, strict=True) if x.get("throttled")]
                if hot:
                    data.append({"type": "scatter", "mode": "markers", "x": [h[0] for h in hot],
                                 "y": [h[1] for h in hot], "name": "throttled", "legendgroup": "throttled",
                                 "showlegend": False, "visible": visible,
                                 "marker": {"symbol": "x", "color": "#cf222e", "size": 9},
                                 "hovertemplate": "throttled"})
                    trace_boards.append(board)
        layout = base_layout(
            420,
            xaxis=axis("time since the worker started (s)", anchor="y2"),
            yaxis=axis("hottest zone (°C)" if any_temp else "no temperature reported", domain=[0.56, 1.0]),
            yaxis2=axis("slowest core (MHz)" if any_freq else "no clock reported", domain=[0.0, 0.42], anchor="x"),
        )
        picker = " Pick the board in the menu." if len(boards) > 1 else ""
        figures.append(Figure(
            f"fig-thermal-{index}", model,
            "Hottest thermal zone and slowest core clock during each job; a red × marks samples where "
            f"the board reported throttling.{picker}", data, _picker_layout(layout, boards, trace_boards)))
    return figures


def thermal_flags(rows: Sequence[OverviewRow], results_by_id: Mapping[int, Mapping[str, Any]]) -> list[ThermalFlag]:
    """Results measured while the board throttled or dropped its clock."""
    flags = []
    for row in rows:
        if not row.ok:
            continue
        export = export_of(results_by_id.get(row.result_id, {}))
        if export.get("throttled") or export.get("freq_drop"):
            flags.append(ThermalFlag(row.board, row.model, row.variant, _number(export.get("temp_c_max")),
                                     bool(export.get("throttled")), bool(export.get("freq_drop"))))
    return flags


def _rounded(value: Any, digits: int) -> float | None:
    number = _number(value)
    return None if number is None else round(number, digits)


def _hottest(temps: Any) -> float | None:
    values = [v for v in (_number(x) for x in (temps or {}).values())] if isinstance(temps, dict) else []
    values = [v for v in values if v is not None]
    return round(max(values), 1) if values else None


def _slowest_mhz(freqs: Any) -> float | None:
    values = [v for v in (_number(x) for x in (freqs or {}).values())] if isinstance(freqs, dict) else []
    values = [v for v in values if v is not None]
    return round(min(values) / 1000.0) if values else None
