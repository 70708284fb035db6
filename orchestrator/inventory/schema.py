"""What an inventory may say: host and group names, the settings a level may set, and the
words for what is wrong.

`HostSettings` is strict on purpose: an inventory is typed by hand, so `port: "22"` or a
misspelt key is an error with a hint (Ansible's names, "did you mean", quoting advice), never
a silent conversion or a setting that is quietly ignored. Runtimes are checked against
`orchestrator.runtimes` here, at load time, so an unknown one is a FILE:LINE error rather
than a failure in the middle of a run. The walk over the file (orchestrator.inventory.loader)
turns each pydantic error into a line with `settings_error_message` and `error_line`.
"""
from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.boards import LOCAL_BOARD_NAME
from orchestrator.errors import BadInputError
from orchestrator.runtimes import KNOWN_ORT_PROVIDERS, resolve_runtime
from orchestrator.transport.ssh.config import parse_proxy_jump
from orchestrator.yaml_lines import describe_value, did_you_mean

__all__ = [
    "ALL_GROUP",
    "CONTROLLER_PATH_KEYS",
    "GROUP_KEYS",
    "SETTING_KEYS",
    "HostSettings",
    "MAX_CONNECT_TIMEOUT_S",
    "name_problem",
    "settings_error_message",
]

ALL_GROUP = "all"
#: The longest `connect_timeout_s`: an hour, far beyond any link that answers at all.
MAX_CONNECT_TIMEOUT_S = 3600.0
# Keys of a group mapping, as in Ansible's YAML inventory.
GROUP_KEYS = ("hosts", "vars", "children")
# Inventory settings that are paths on the controller: `~` expanded, relative to the inventory's folder.
CONTROLLER_PATH_KEYS = ("identity_file", "known_hosts_file", "ssh_config_file")
# Names of hosts and groups: they appear in --limit patterns, so no commas, '!', globs or spaces.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_TAG_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Ansible variable names people will type out of habit, and what farm calls them.
_ANSIBLE_NAMES = {
    "ansible_host": "host",
    "ansible_port": "port",
    "ansible_user": "user",
    "ansible_ssh_user": "user",
    "ansible_ssh_private_key_file": "identity_file",
    "ansible_python_interpreter": "python",
    "ansible_connection": "transport",
}


# --------------------------------------------------------------------------- names


def name_problem(name: Any, kind: str) -> str | None:
    """Why `name` cannot name a `kind` ("host" or "group"), or None when it can."""
    if not isinstance(name, str):
        return f"{kind} name {name!r} must be text (quote it: '{name}')"
    if not _NAME_RE.match(name):
        return f"{kind} name {name!r}: use letters, digits, '_', '.', '-' (names appear in --limit patterns)"
    if kind == "host" and name == ALL_GROUP:
        return f"host name {name!r} is the group of every host; pick another name"
    if name == LOCAL_BOARD_NAME:
        return f"{kind} name {name!r} is reserved for farm's built-in board; pick another name"
    return None


# --------------------------------------------------------------------------- settings


def _no_spaces_or_dash(value: str, what: str) -> str:
    if not value:
        raise ValueError(f"must not be empty ({what})")
    if value.startswith("-") or any(c.isspace() for c in value):
        raise ValueError(f"must not start with '-' or contain spaces, got {value!r}")
    return value


class HostSettings(BaseModel):
    """The settings a host or group may set; None means "not set at this level".

    Field names are the YAML keys. Strict: a value of the wrong type is an error,
    never converted, except numbers in `tags` and `env` values, which become text
    (env values are text by nature; `ram: 8` as a tag reads naturally).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    host: str | None = None
    port: int | None = Field(default=None, ge=1, le=65535)
    user: str | None = None
    identity_file: str | None = None
    python: str | None = None
    workdir: str | None = None
    tags: dict[str, str] | None = None
    providers: list[str] | None = None
    proxy_jump: str | None = None
    transport: Literal["ssh", "local"] | None = None
    accept_new_host_keys: bool | None = None
    known_hosts_file: str | None = None
    ssh_config_file: str | None = None
    connect_timeout_s: float | None = Field(default=None, gt=0, le=MAX_CONNECT_TIMEOUT_S)
    env: dict[str, str] | None = None
    # Not a Board field yet: stored in tags as `runtime`.
    runtime: str | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("is empty (null): give it a value or remove the key")
        return value

    @field_validator("tags", "env", mode="before")
    @classmethod
    def _numbers_as_text(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                for k, v in value.items()
            }
        return value

    @field_validator("host", "user")
    @classmethod
    def _address_like(cls, value: str) -> str:
        return _no_spaces_or_dash(value, "a host name or user")

    @field_validator("identity_file", "python", "workdir", "known_hosts_file", "ssh_config_file", "runtime")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("tags")
    @classmethod
    def _tag_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _TAG_KEY_RE.match(key):
                raise ValueError(
                    f"has a bad key {key!r}: tag keys are letters, digits, '_', '.', '-' (no '=' or ',')"
                )
        if "runtime" in value:  # the board's runtime, as `runtime:` sets it
            value = {**value, "runtime": resolve_runtime(value["runtime"])}
        return value

    @field_validator("runtime")
    @classmethod
    def _known_runtime(cls, value: str) -> str:
        return resolve_runtime(value)

    @field_validator("env")
    @classmethod
    def _env_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_KEY_RE.match(key):
                raise ValueError(f"has a bad variable name {key!r} (letters, digits and '_', not starting with a digit)")
        return value

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.endswith("ExecutionProvider"):
                hint = did_you_mean(name, KNOWN_ORT_PROVIDERS) or " (onnxruntime names end in 'ExecutionProvider')"
                raise ValueError(f"has {name!r}, not an onnxruntime provider name{hint}")
        if len(set(value)) != len(value):
            raise ValueError("lists a provider twice")
        return value

    @field_validator("proxy_jump")
    @classmethod
    def _proxy_jump_syntax(cls, value: str) -> str:
        try:
            parse_proxy_jump(value)
        except BadInputError as exc:
            raise ValueError(f"is not a valid ProxyJump value: {exc}") from None
        return value


SETTING_KEYS = tuple(HostSettings.model_fields)


# --------------------------------------------------------------------------- pydantic errors -> messages

_TYPE_WORDS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping of names to values",
    "list_type": "must be a list",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    text = str(loc[0])
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def settings_error_message(error: Any) -> str:
    """One pydantic error of `HostSettings` in the inventory's words (the line is added by the caller)."""
    loc = tuple(p for p in error["loc"] if p != "[key]")
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(loc[0])
        if key in _ANSIBLE_NAMES:
            hint = f" (farm calls Ansible's {key!r} {_ANSIBLE_NAMES[key]!r})"
        elif key in GROUP_KEYS:
            hint = " (hosts, vars and children belong to groups, not to hosts or vars)"
        else:
            hint = did_you_mean(key, SETTING_KEYS)
        return f"unknown key {key!r}{hint}"
    field = f"{_field_path(loc)!r}"
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        return f"{field} {str(error['msg']).removeprefix('Value error, ')}"
    if kind == "literal_error":
        return f"{field} must be one of {ctx.get('expected', '')}, got {describe_value(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        if loc[0] == "port":
            return f"{field} must be a whole number from 1 to 65535, got {describe_value(value)}"
        if "le" in ctx or "lt" in ctx:
            return f"{field} must be at most {ctx.get('le', ctx.get('lt')):g}, got {describe_value(value)}"
        bound = ctx.get("gt", ctx.get("ge", 0))
        return f"{field} must be greater than {bound:g}, got {describe_value(value)}"
    words = _TYPE_WORDS.get(kind)
    if words is None:
        return f"{field}: {error['msg']} (got {describe_value(value)})"
    hint = ""
    if kind == "string_type" and isinstance(value, bool):
        hint = " (YAML reads yes/no/true/false/on/off as true or false: quote the value)"
    elif kind == "list_type" and isinstance(value, str):
        hint = f" (write [{value}])"
    elif kind == "int_type" and isinstance(value, str) and value.strip().isdigit():
        hint = " (remove the quotes)"
    elif kind == "bool_type" and isinstance(value, str):
        hint = " (write true or false without quotes)"
    return f"{field} {words}, got {describe_value(value)}{hint}"
