"""Command-line options derived from orchestrator.settings: one default, bound and help text.

`setting_option("min_runs", "-n")` is a typer option whose flag, default and help come from the
BenchSettings field; `settings_from_options` builds BenchSettings from the parsed values and
turns a value the model refuses into a usage error naming the flag (exit 2).
"""
from __future__ import annotations

from typing import Any

import typer
from pydantic import ValidationError

from orchestrator.settings import MAX_THRESHOLD_PCT, MIN_THRESHOLD_PCT, BenchSettings, field_meta, flag_of


#: Help panels of `farm bench` (typer's rich_help_panel), in the order people look for them.
WHAT_PANEL = "What to run"
WHERE_PANEL = "Where"
MEASURE_PANEL = "How to measure"
VARIANTS_PANEL = "Variants and accuracy"
RESULTS_PANEL = "Results and gating"

#: The most a count option asks for (--last, --history, --top): far more than a screen or a chart
#: shows, and a number SQLite's LIMIT takes (a larger one is a usage error, not an overflow).
MAX_COUNT = 1_000_000

#: Where each BenchSettings field's option is listed (default: how to measure).
SETTING_PANELS = {"shapes": WHAT_PANEL, "lease_wait_s": WHERE_PANEL, "lease_ttl_s": WHERE_PANEL}


def metavar_of(field: str) -> str | None:
    """The value placeholder of a setting's option (`N`, `SECONDS`, `NAME=1x3x224x224`), so help
    never shows python type labels such as `<float>` or `<list[str]>`."""
    info = BenchSettings.model_fields[field]
    if info.annotation is bool:
        return None
    named = {"shapes": "NAME=DIMS", "runtime": "NAME", "providers": "LIST", "provider_options": "JSON",
             "cooldown_below_c": "°C"}
    if field in named:
        return named[field]
    if field.endswith("_s") or "seconds" in field:
        return "SECONDS"
    return "N" if info.annotation is int else "X"


def setting_option(field: str, *short: str, **overrides: Any) -> Any:
    """A typer option for BenchSettings.`field`: its flag (plus `short` names), default, help,
    value placeholder and help panel."""
    info = BenchSettings.model_fields[field]
    flag = flag_of(field)
    if info.annotation is bool and not overrides.pop("flag_only", False):
        flag = f"{flag}/--no-{flag.removeprefix('--')}" if info.default else flag
    default = info.default
    if isinstance(default, tuple):
        default = None  # repeatable or comma-separated: None is "not given"
    overrides.setdefault("metavar", metavar_of(field))
    overrides.setdefault("rich_help_panel", SETTING_PANELS.get(field, MEASURE_PANEL))
    return typer.Option(default, flag, *short, help=info.description, **overrides)


def setting_of_parameter() -> dict[str, str]:
    """A command's parameter name -> the BenchSettings field its option sets, for every field with
    a command-line flag: the parameter is named after the flag (`--sample-interval` ->
    `sample_interval` sets sample_interval_s), as `farm bench` names them."""
    return {flag_of(name).removeprefix("--").replace("-", "_"): name
            for name, info in BenchSettings.model_fields.items() if field_meta(info).get("cli")}


#: What a list given to a sweepable option does (orchestrator.sweep).
SWEEP_HELP = {
    "threads": " A comma-separated list (1,2,4) measures each value as its own cell.",
    "batch": " A comma-separated list (1,4,8) measures each value as its own cell.",
    "runtime": " A comma-separated list (onnxruntime,openvino) measures each as its own cell.",
    "providers": " Given more than once, each list is its own cell (--providers CUDA,CPU --providers CPU).",
    "shapes": " Several values for one input (NAME=1x3x320x320,1x3x640x640, or the option repeated) measure "
              "each as its own cell.",
}
SWEEP_METAVAR = {"threads": "N[,N…]", "batch": "N[,N…]", "runtime": "NAME[,NAME…]"}


def sweep_option(field: str, *short: str, **overrides: Any) -> Any:
    """A typer option for a BenchSettings field that also takes a list of values (a sweep): text
    the command parses (orchestrator.sweep), its help saying what a list does."""
    info = BenchSettings.model_fields[field]
    overrides.setdefault("metavar", SWEEP_METAVAR.get(field, metavar_of(field)))
    overrides.setdefault("rich_help_panel", SETTING_PANELS.get(field, MEASURE_PANEL))
    return typer.Option(None, flag_of(field), *short, help=(info.description or "") + SWEEP_HELP[field], **overrides)


def threshold_option(*flags: str, help: str, **overrides: Any) -> Any:
    """A percentage-threshold option (`--fail-on-regression PCT`, `--min-effect PCT`; None when not
    given), bounded by MIN_THRESHOLD_PCT and MAX_THRESHOLD_PCT as a suite's thresholds are."""
    overrides.setdefault("metavar", "PCT")
    return typer.Option(None, *flags, min=MIN_THRESHOLD_PCT, max=MAX_THRESHOLD_PCT, help=help, **overrides)


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


def _placeholder(param: Any) -> str:
    """A plain value placeholder from the option's type: N, X, PATH, TEXT or the choices."""
    import pathlib

    desc = getattr(param, "type_descriptor", None)
    if desc is None:
        return "TEXT"
    if desc.is_choice and desc.choices:
        return "|".join(str(getattr(c, "value", c)) for c in desc.choices)
    annotation = desc.annotation
    if annotation is int:
        return "N"
    if annotation is float:
        return "X"
    if isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath):
        return "PATH"
    return "TEXT"


def _label_free(command: Any) -> None:
    """Help without python type labels (`<bool>`, `<str>`, `<int range>`): flags show no
    value, arguments their name only, options a plain placeholder when none was given."""
    for param in command.params:
        if getattr(param, "is_flag", False):
            param.metavar = param.metavar or ""
        elif getattr(param, "param_type_name", "") == "argument":
            param.display_type_rich = lambda ctx: None
        elif param.metavar is None:
            param.metavar = _placeholder(param)


class _LabelFreeHelp:
    """Help without python type labels for flags or --help (mixed into typer's command classes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _label_free(self)  # type: ignore[arg-type]

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)  # type: ignore[misc]
        if option is not None:
            option.metavar = ""
        return option


class FarmCommand(_LabelFreeHelp, typer.core.TyperCommand):
    """A typer command whose help shows no python type labels for flags or --help."""


class FarmGroup(_LabelFreeHelp, typer.core.TyperGroup):
    """A typer group (farm, farm runs, ...) with the same label-free help as FarmCommand."""
