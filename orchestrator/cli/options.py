"""Command-line options derived from orchestrator.settings: one default, bound and help text.

`setting_option("min_runs", "-n")` is a typer option whose flag, default and help come from the
BenchSettings field; `settings_from_options` builds BenchSettings from the parsed values and
turns a value the model refuses into a usage error naming the flag (exit 2).
"""
from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError

from orchestrator.settings import BenchSettings, flag_of


def setting_option(field: str, *short: str, **overrides: Any) -> Any:
    """A typer option for BenchSettings.`field`: its flag (plus `short` names), default and help."""
    info = BenchSettings.model_fields[field]
    flag = flag_of(field)
    if info.annotation is bool and not overrides.pop("flag_only", False):
        flag = f"{flag}/--no-{flag.removeprefix('--')}" if info.default else flag
    default = info.default
    if isinstance(default, tuple):
        default = None  # repeatable or comma-separated: None is "not given"
    return typer.Option(default, flag, *short, help=info.description, **overrides)


def settings_from_options(**values: Any) -> BenchSettings:
    """BenchSettings from option values (field names); a refused value is a typer.BadParameter."""
    try:
        return BenchSettings(**{k: v for k, v in values.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = [str(part) for part in error["loc"]]
        field = next((name for name, info in BenchSettings.model_fields.items()
                      if loc and loc[0] in (name, info.alias)), None)
        message = str(error["msg"]).removeprefix("Value error, ")
        if field is None:  # a check that joins fields (min_seconds <= max_seconds)
            message = message.replace("min_seconds", "--min-seconds").replace("max_seconds", "--max-seconds")
            raise typer.BadParameter(message) from None
        raise typer.BadParameter(message, param_hint=flag_of(field)) from None
