"""`farm ops RUN [--vs VARIANT|RUN]`: where each result's time went, per operator type.

Reads the profiling pass `farm bench --profile` stored with each result (orchestrator.profiles
does the work; this module only prints). Without --vs: per board × model × variant the
operator types by time with their share, the nodes per provider, and what the runtime made of
the file's graph. With --vs: which operator types got slower or faster against a variant of
the same run (`--vs fp32`) or the same cell of another run (`--vs tag:release-1.2`).
"""
from __future__ import annotations

import json
from typing import Any, Optional

import typer

from orchestrator.cli import render, state
from orchestrator.cli.layout import Column, fitted_table
from orchestrator.cli.options import MAX_COUNT
from orchestrator.profiles import provider_name, signed_ms_text
from orchestrator.units import ms_text

DB_HELP = "Results database URL or SQLite path."


def ops(
    run_id: str = typer.Argument("latest", metavar="RUN", help="A run id, a unique prefix of one, `latest`, or `tag:NAME`."),
    vs: Optional[str] = typer.Option(
        None, "--vs", metavar="VARIANT|RUN",
        help="Attribute each result's latency change to operator types: against this variant on the same board "
             "(e.g. fp32), or against the same cell of another run (an id, latest, tag:NAME)."),
    board: Optional[str] = typer.Option(None, "--board", "-b", metavar="NAME", help="Only this board."),
    model: Optional[str] = typer.Option(None, "--model", "-m", metavar="NAME", help="Only this model (name)."),
    variant: Optional[str] = typer.Option(None, "--variant", metavar="NAME", help="Only this variant."),
    top: int = typer.Option(8, "--top", min=1, max=MAX_COUNT, metavar="N", help="Operator types shown per result (the rest as one line)."),
    as_json: bool = typer.Option(False, "--json", help="Print every profile (or every diff, with --vs) as JSON."),
    db: Optional[str] = typer.Option(None, "--db", envvar="FARM_DB", metavar="URL", help=DB_HELP),
) -> int:
    """Where a run's time went per operator type (farm bench --profile); --vs: what changed, by type."""
    from orchestrator.errors import BadInputError
    from orchestrator.profiles import cell_profiles, diff_profiles, pair_across_runs, pair_with_variant
    from orchestrator.store import open_store

    with open_store(db, read_only=True) as store:
        run = store.resolve_run_id(run_id)
        results = store.results(run)
        everything = cell_profiles(results, board=board, model=model)
        profiles = [p for p in everything if variant is None or p.variant == variant]
        if not everything:
            ok = [r for r in results if r["status"] == "ok"]
            why = "no result matches" if ok and (board or model) else "it was measured without --profile"
            raise BadInputError(f"run {run} has no operator profile ({why}): measure with "
                                "`farm bench --profile` to record one")
        pairs = None
        against = None
        if vs is not None:
            variants = {p.variant for p in everything}
            if vs in variants:
                against = f"variant {vs}"
                pairs = [(b, n) for b, n in pair_with_variant(everything, vs) if variant is None or n.variant == variant]
            else:
                base_run = store.resolve_run_id(vs)
                if base_run == run:
                    raise BadInputError(f"--vs {vs} is run {run} itself: name a variant or another run")
                against = f"run {base_run}"
                bases = cell_profiles(store.results(base_run), board=board, model=model)
                pairs = pair_across_runs(bases, profiles)
            if not pairs:
                raise BadInputError(f"nothing to compare: no result of run {run} has a profiled counterpart in {against} "
                                    f"(variants profiled here: {', '.join(sorted(variants))})")
    if pairs is None:
        if as_json:
            typer.echo(json.dumps({"run_id": run, "profiles": [p.as_dict() for p in profiles]}, indent=2))
            return 0
        state.out.print(f"run [bold]{run}[/bold]: operator profiles (per inference; a profiling pass after the "
                        "timed runs)")
        for profile in profiles:
            _print_profile(profile, top)
        return 0
    diffs = [diff_profiles(base, new) for base, new in pairs]
    if as_json:
        typer.echo(json.dumps({"run_id": run, "vs": vs, "against": against, "diffs": [d.as_dict() for d in diffs]},
                              indent=2))
        return 0
    state.out.print(f"run [bold]{run}[/bold] vs {render.escape(against or '')}: operator types that moved "
                    "(per inference)")
    for diff in diffs:
        _print_diff(diff, top)
    return 0


def _others(count: int) -> str:
    return f"{count} other type{'s' if count != 1 else ''}"


def _pct(share: float) -> str:
    return f"{share * 100:.1f} %"


def _print_profile(profile: Any, top: int) -> None:
    esc = render.escape
    runtime = profile.runtime or "?"
    state.out.print()
    state.out.print(f"[bold]{esc(profile.label)}[/bold]  {esc(runtime)}, {profile.runs} profiled "
                    f"run{'s' if profile.runs != 1 else ''}" + (" (time bound hit)" if profile.truncated else ""))
    timed = ms_text(profile.latency_ms_p50)
    coverage = f" ({profile.coverage * 100:.0f} % of it)" if profile.coverage is not None else ""
    state.out.print(f"  timed median {timed} ms; operators {ms_text(profile.op_ms)} ms{coverage}; profiled "
                    f"inference {ms_text(profile.run_ms_p50)} ms")
    cost = f" = {profile.cost_ratio:.2g}× the measured phase" if profile.cost_ratio is not None else ""
    state.out.print(f"  pass {profile.wall_s:.2f} s{cost}", style="dim")
    state.out.print(f"  providers: {esc(profile.fallback_text())}")
    changed = profile.variant_changes()
    if changed and profile.variant != "fp32":
        state.out.print("  the variant's graph vs the original: " + esc(", ".join(
            f"{op} {before}→{after}" for op, (before, after) in list(changed.items())[:5])), style="dim")
    rewrites = profile.rewrites()
    if rewrites is not None and rewrites.text():
        state.out.print(f"  onnxruntime {esc(rewrites.text(4))}", style="dim")
    if profile.top_nodes:
        state.out.print("  slowest nodes: " + esc(", ".join(
            f"{n.name} ({n.op_type}) {ms_text(n.ms)} ms" for n in profile.top_nodes[:3])), style="dim")
    if profile.nodes_not_run:
        state.out.print(f"  OpenVINO ran {profile.nodes_executed} layers; {profile.nodes_not_run} fused away or "
                        "not run", style="dim")
    columns = [Column("op type"), Column("provider", priority=2), Column("nodes", "right", 1), Column("ms", "right"),
               Column("share", "right"), Column("kernel", priority=3)]
    rows = [[esc(op.op_type), esc(provider_name(op.provider)), str(op.nodes), ms_text(op.ms), _pct(op.share),
             esc(op.kernels[0]) if op.kernels else ""] for op in profile.ops[:top]]
    rest = profile.ops[top:]
    if rest:
        rows.append([_others(len(rest)), "", str(sum(o.nodes for o in rest)), ms_text(sum(o.ms for o in rest)),
                     _pct(sum(o.share for o in rest)), ""])
    # one provider: the line above names it; no kernel named: nothing to show
    keep = [i for i, column in enumerate(columns) if not (
        column.header == "provider" and len(profile.providers) < 2
        or column.header == "kernel" and not any(op.kernels for op in profile.ops[:top]))]
    state.out.print(fitted_table(state.out, [columns[i] for i in keep], [[row[i] for i in keep] for row in rows]))


def _print_diff(diff: Any, top: int) -> None:
    esc = render.escape
    base, new = diff.base, diff.new
    base_name = base.variant if base.run_id == new.run_id else f"{base.run_id}"
    state.out.print()
    state.out.print(f"[bold]{esc(new.label)}[/bold] vs {esc(base_name)}")
    change = diff.latency_change_ms
    timed = "" if change is None else (f"timed median {ms_text(base.latency_ms_p50)} → {ms_text(new.latency_ms_p50)} ms "
                                       f"({signed_ms_text(change)}); ")
    state.out.print(f"  {timed}operators {ms_text(base.op_ms)} → {ms_text(new.op_ms)} ms "
                    f"({signed_ms_text(diff.op_change_ms)})")
    if not diff.same_profiler:
        state.out.print("  different runtimes: their operator names differ (onnxruntime's vs OpenVINO's layers)",
                        style="yellow")
    explanation = diff.explanation()
    if explanation:
        state.out.print(f"  most of it: {esc(explanation)}")
    columns = [Column("op type"), Column("nodes", "right", 2), Column("base ms", "right"), Column("new ms", "right"),
               Column("Δ ms", "right"), Column("note", priority=1, wrap=True, wrap_width=24)]
    rows = []
    for c in diff.top(top):
        note = "; ".join(part for part in (f"replaces {'/'.join(c.replaces)}" if c.replaces else "", c.note,
                                           c.kernels_text()) if part)
        colour = "red" if c.delta_ms > 0 else "green"
        rows.append([esc(c.op_type), f"{c.base_nodes}→{c.new_nodes}", ms_text(c.base_ms), ms_text(c.new_ms),
                     f"[{colour}]{signed_ms_text(c.delta_ms)}[/{colour}]", esc(note)])
    rest = diff.changes[top:]
    if rest:
        delta = sum(c.delta_ms for c in rest)
        rows.append([_others(len(rest)), "", "", "", signed_ms_text(delta), ""])
    state.out.print(fitted_table(state.out, columns, rows))


