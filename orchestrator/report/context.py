"""Gather what a report shows from the store, as plain data (no HTML here)."""
from __future__ import annotations

from typing import Any

from orchestrator.store import Store


def build_context(store: Store, run_id: str) -> dict[str, Any]:
    """Everything the template needs for one run: the run, its results, boards' environment."""
    run = store.get_run(run_id)
    results = store.results(run["run_id"])
    boards: dict[str, dict[str, Any]] = {}
    for result in results:
        if result["facts"] and result["board"] not in boards:
            boards[result["board"]] = result["facts"]
    for result in results:
        boards.setdefault(result["board"], {})
    return {
        "run": run,
        "results": results,
        "ok_results": [r for r in results if r["status"] == "ok"],
        "failed_results": [r for r in results if r["status"] != "ok"],
        "boards": boards,
        "settings": run["settings"],
        "controller": run["controller"],
    }
