"""`farm compare RUN_A RUN_B`: every board × model × variant of two runs, side by side."""
from __future__ import annotations

import json
from typing import Optional

import typer
from rich import box
from rich.table import Table

from orchestrator.cli import render, state
from orchestrator.cli.options import threshold_option
from orchestrator.errors import ExitStatus
from orchestrator.settings import DEFAULT_ALPHA, DEFAULT_MIN_EFFECT_PCT


def compare(
    run_a: str = typer.Argument(..., metavar="BASELINE", help="The baseline run: an id, a unique prefix, `latest` or `tag:NAME`."),
    run_b: str = typer.Argument("latest", metavar="RUN", help="The run compared with it (default: the newest run)."),
    min_effect: Optional[float] = threshold_option("--min-effect", help=f"Smallest latency change (%) that counts (default {DEFAULT_MIN_EFFECT_PCT:g}; --fail-on-regression sets it too)."),
    memory_min_effect: Optional[float] = threshold_option("--memory-min-effect", "--fail-on-memory-regression", help="Smallest peak-memory change (%) that counts (default: the latency threshold)."),
    alpha: float = typer.Option(DEFAULT_ALPHA, "--alpha", min=1e-9, max=0.5, metavar="P", help="Significance level of the latency test."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON instead of a table."),
    fail_on_regression: Optional[float] = threshold_option("--fail-on-regression", help="Exit 5 when a cell regressed by at least this percentage (the same meaning as in farm bench); otherwise compare exits 0."),
    fail_on_inconclusive: bool = typer.Option(False, "--fail-on-inconclusive", help="With --fail-on-regression: an inconclusive cell fails too."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", metavar="URL", help="Results database URL or SQLite path."),
) -> int:
    """Compare two runs cell by cell: median latency (statistical test + minimum effect) and peak memory."""
    from orchestrator.compare import compare_runs
    from orchestrator.errors import BadInputError
    from orchestrator.store import open_store

    if min_effect is not None and fail_on_regression is not None and min_effect != fail_on_regression:
        raise typer.BadParameter("give one threshold: --fail-on-regression sets --min-effect", param_hint="--min-effect")
    threshold = fail_on_regression or min_effect or DEFAULT_MIN_EFFECT_PCT
    with open_store(db, read_only=True) as store:
        result = compare_runs(store, run_a, run_b, threshold, alpha, memory_min_effect_pct=memory_min_effect)
        if not [c for c in result.cells if c.base_status is not None and c.new_status is not None]:
            raise BadInputError(f"runs {result.base_run_id} and {result.new_run_id} in {store.safe_url} have no cell "
                                "(board × model × variant) in common: nothing to compare")
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2, default=str))
    else:
        state.out.print(f"A [bold]{result.base_run_id}[/bold] → B [bold]{result.new_run_id}[/bold]")
        state.out.print(f"counts as a change: latency ≥ {result.min_effect_pct:g}% (α={result.alpha:g}), "
                        f"peak memory ≥ {result.memory_min_effect_pct:g}%"
                        + (f", energy ≥ {result.min_effect_pct:g}%" if any(
                            cell.energy_verdict for cell in result.cells) else ""), style="dim")
        state.out.print(_table(result))
        counts = {k: v for k, v in result.counts().items() if v}
        state.out.print(", ".join(f"{v} {k}" for k, v in counts.items()) or "no cells")
        for cell in result.cells:
            if cell.verdict in ("regressed", "inconclusive", "failed") or cell.model_changed:
                state.out.print(f"[dim]{render.escape(cell.board)}/{render.escape(cell.model)}/"
                                f"{render.escape(cell.label)}: {render.escape(cell.reason)}[/dim]")
    if fail_on_regression is not None and (result.regressed or (fail_on_inconclusive and result.with_verdict("inconclusive"))):
        return int(ExitStatus.REGRESSION)
    return int(ExitStatus.OK)


def _table(result) -> Table:
    """Fits 80 columns: names fold, numbers never do. p50 is run B's median; Δ and CI vs A. A cell's
    sweep point (else what it ran on) follows its variant where one board × model × variant has
    several cells; Δ energy is a column only when some cell measured energy in both runs."""
    keys = [cell.key for cell in result.cells]
    swept = {key for key in keys if keys.count(key) > 1}
    with_energy = any(cell.energy_change_pct is not None for cell in result.cells)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    columns = [("board", "left"), ("model", "left"), ("variant", "left"), ("p50 ms", "right"), ("Δ p50", "right"),
               ("95% CI", "right"), ("Δ mem", "right"), *([("Δ energy", "right")] if with_energy else []),
               ("verdict", "left")]
    for name, justify in columns:
        names = justify == "left" and name != "verdict"
        table.add_column(name, justify=justify, overflow="fold", no_wrap=not names)
    marked = False
    for cell in result.cells:
        lat = cell.latency
        p50 = f"{lat.new_p50_ms:.4g}" if lat else "—"
        change = f"{lat.change_pct:+.1f}%" if lat else "—"
        ci = (f"{lat.change_ci_low_pct:+.0f}..{lat.change_ci_high_pct:+.0f}"
              if lat and lat.change_ci_low_pct is not None else "—")
        mem = f"{cell.memory_change_pct:+.1f}%" if cell.memory_change_pct is not None else "—"
        energy = [f"{cell.energy_change_pct:+.1f}%" if cell.energy_change_pct is not None else "—"] if with_energy else []
        verdict = render.verdict_markup(cell.verdict)
        if cell.model_changed:
            verdict += " [magenta]†[/magenta]"
            marked = True
        variant = render.escape(cell.variant)
        point = cell.sweep or cell.identity
        if cell.key in swept and point:
            variant += f" [dim]· {render.escape(point)}[/dim]"
        table.add_row(render.escape(cell.board), render.escape(cell.model), variant, p50, change, ci, mem, *energy,
                      verdict)
    if marked:
        table.caption = "† new weights under the same model name"
    return table
