"""The board inventory: a YAML file shaped like an Ansible YAML inventory.

    all:                      # top-level keys are groups
      vars: {user: farm}      # group vars: inherited by the group's hosts and child groups
      hosts:
        rpi4-01.lab.example:  # host name -> host vars (or nothing)
          port: 2222
      children:
        jetson:               # child group, same shape
          hosts: {jetson-orin-01: null}

As in Ansible, `all` is the group of every host: a top-level group other than
`all` is a child of `all`, so `all: vars:` apply everywhere, and `--limit all`
always works even when the file does not write `all:`.

Precedence, most specific wins: host vars > child group vars > parent group vars.
Between two groups that both hold a host and are equally deep, the one that appears
later in the file wins (deeper = longest chain of parents). `tags` and `env` merge
key by key across levels; every other setting is replaced whole (a host's
`providers` list replaces its group's). A host listed several times has its vars
merged in file order and belongs to every group it is listed in, and to their parents.

Every problem is reported as `FILE:LINE: host 'NAME': ...` or
`FILE:LINE: group 'NAME': ...`, all problems of a file at once, so a user fixes
the inventory in one go. The loader never connects to anything; ssh config aliases
are completed later by `resolve_ssh_settings` (see orchestrator.transport.ssh.config).
"""
from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import fnmatch
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.boards import LOCAL_BOARD_NAME, Board
from orchestrator.errors import BadInputError
from orchestrator.runtimes import KNOWN_ORT_PROVIDERS, resolve_runtime
from orchestrator.transport.ssh.config import JumpHop, ResolvedSSH, parse_proxy_jump, resolve_ssh_settings

__all__ = [
    "INVENTORY_ENV_VAR",
    "Inventory",
    "HostSettings",
    "JumpHop",
    "ResolvedSSH",
    "load_inventory",
    "parse_proxy_jump",
    "resolve_inventory_path",
    "resolve_ssh_settings",
    "select_boards",
]

INVENTORY_ENV_VAR = "FARM_INVENTORY"
ALL_GROUP = "all"
DEFAULT_TRANSPORT = "ssh"
# Keys of a group mapping, as in Ansible's YAML inventory.
GROUP_KEYS = ("hosts", "vars", "children")
# Inventory settings that are paths on the controller: `~` expanded, relative to the inventory's folder.
CONTROLLER_PATH_KEYS = ("identity_file", "known_hosts_file", "ssh_config_file")
# Problems listed in one error before the rest are only counted.
MAX_PROBLEMS_SHOWN = 20
# Names of hosts and groups: they appear in --limit patterns, so no commas, '!', globs or spaces.
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_TAG_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_GLOB_CHARS = set("*?[")
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

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

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
    connect_timeout_s: float | None = Field(default=None, gt=0)
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
                hint = _did_you_mean(name, KNOWN_ORT_PROVIDERS) or " (onnxruntime names end in 'ExecutionProvider')"
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


# --------------------------------------------------------------------------- YAML with line numbers


class _Map(dict):
    """A YAML mapping that knows its own line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class _Seq(list):
    """A YAML sequence that knows its own line and each item's line (1-based)."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences remember where they are, and which rejects duplicate keys."""


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    own_key_nodes = {id(k) for k, _ in node.value}
    loader.flatten_mapping(node)  # `<<: *anchor` merge keys; merged pairs come first
    result = _Map()
    result.line = node.start_mark.line + 1
    result.key_lines = {}
    own_keys: set[Any] = set()
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, collections.abc.Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value, not a list or mapping", key_node.start_mark
            )
        if id(key_node) in own_key_nodes:
            if key in own_keys:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (the second one would silently win)", key_node.start_mark
                )
            own_keys.add(key)
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = key_node.start_mark.line + 1
    return result


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.item_lines = [child.start_mark.line + 1 for child in node.value]
    return result


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_seq)


def read_yaml_with_lines(path: Path, what: str) -> Any:
    """Parse a YAML file whose mappings remember their line numbers (for FILE:LINE errors).

    `what` names the file in messages ("inventory", "suite").
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: {what} file not found") from None
    except IsADirectoryError:
        article = "an" if what[:1] in "aeiou" else "a"
        raise BadInputError(f"{path}: is a folder, not {article} {what} file") from None
    except UnicodeDecodeError as exc:
        raise BadInputError(f"{path}: the {what} is not UTF-8 text (bad byte at offset {exc.start})") from None
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        raise BadInputError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: invalid YAML: {exc}") from None


# --------------------------------------------------------------------------- the inventory


@dataclasses.dataclass(frozen=True)
class Inventory:
    """A loaded inventory. `boards` are in file order (first appearance);
    `groups` maps every group of the file to its boards' names (direct members and
    members of its child groups, in board order), empty groups included."""

    path: Path
    boards: list[Board]
    groups: dict[str, list[str]]

    def board_names(self) -> list[str]:
        return [b.name for b in self.boards]


def resolve_inventory_path(cli_value: str | None) -> Path | None:
    """The inventory to use: `-i/--inventory` if given, else $FARM_INVENTORY, else None.

    `~` is expanded; whether the file exists is `load_inventory`'s concern.
    """
    value = cli_value if cli_value else os.environ.get(INVENTORY_ENV_VAR, "").strip()
    if not value:
        return None
    return Path(os.path.expanduser(value))


def load_inventory(path: Path) -> Inventory:
    """Read, validate and flatten the inventory at `path` into boards.

    Raises BadInputError with every problem found, one per line, each as
    `PATH:LINE: host 'NAME': ...` / `PATH:LINE: group 'NAME': ...`.
    """
    path = Path(path)
    data = read_yaml_with_lines(path, "inventory")
    parser = _Parser(path)
    parser.parse(data)
    return parser.build()


@dataclasses.dataclass
class _Level:
    """One `vars` mapping (of a group) or one host's settings, as validated."""

    settings: HostSettings
    line: int


@dataclasses.dataclass
class _GroupDef:
    name: str
    line: int
    order: int
    levels: list[_Level] = dataclasses.field(default_factory=list)
    hosts: list[str] = dataclasses.field(default_factory=list)
    # parent name -> line of this group's key under the parent's `children`
    parents: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _HostDef:
    name: str
    line: int
    order: int
    levels: list[_Level] = dataclasses.field(default_factory=list)
    groups: list[str] = dataclasses.field(default_factory=list)


class _Parser:
    """Walks the YAML tree once, collecting groups, hosts and every problem with its line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base_dir = path.expanduser().absolute().parent
        self.problems: list[tuple[int, str]] = []
        self.groups: dict[str, _GroupDef] = {}
        self.hosts: dict[str, _HostDef] = {}

    # -- problems

    def problem(self, line: int, where: str, message: str) -> None:
        prefix = f"{self.path}:{line}: "
        self.problems.append((line, prefix + (f"{where}: {message}" if where else message)))

    def fail_if_problems(self) -> None:
        if not self.problems:
            return
        ordered = [msg for _, msg in sorted(self.problems, key=lambda p: p[0])]
        unique = list(dict.fromkeys(ordered))
        shown = unique[:MAX_PROBLEMS_SHOWN]
        if len(unique) > len(shown):
            shown.append(f"... and {len(unique) - len(shown)} more problems")
        raise BadInputError("\n".join(shown))

    # -- walking

    def parse(self, data: Any) -> None:
        if data is None:
            raise BadInputError(f"{self.path}: the inventory is empty (expected groups such as 'all:' with 'hosts:')")
        if not isinstance(data, _Map):
            line = getattr(data, "line", 1)
            self.problem(line, "", f"the inventory must be a mapping of group names (such as 'all:'), got {_describe(data)}")
            self.fail_if_problems()
        if not data:
            raise BadInputError(f"{self.path}: the inventory is empty (expected groups such as 'all:' with 'hosts:')")
        for name, value in data.items():
            line = data.key_lines[name]
            if name in GROUP_KEYS or name in SETTING_KEYS:
                self.problem(
                    line, "", f"top-level key {name!r}: top-level keys are groups; did you forget a group such as 'all:' above it?"
                )
                continue
            self._group(name, value, line, parent=None)

    def _check_name(self, name: Any, kind: str, line: int) -> bool:
        if not isinstance(name, str):
            self.problem(line, "", f"{kind} name {name!r} must be text (quote it: '{name}')")
            return False
        if not _NAME_RE.match(name):
            self.problem(
                line,
                "",
                f"{kind} name {name!r}: use letters, digits, '_', '.', '-' (names appear in --limit patterns)",
            )
            return False
        if kind == "host" and name == ALL_GROUP:
            self.problem(line, "", f"host name {name!r} is the group of every host; pick another name")
            return False
        if name == LOCAL_BOARD_NAME:
            self.problem(line, "", f"{kind} name {name!r} is reserved for farm's built-in board; pick another name")
            return False
        return True

    def _group(self, name: Any, value: Any, line: int, parent: str | None) -> None:
        if not self._check_name(name, "group", line):
            return
        group = self.groups.get(name)
        if group is None:
            group = self.groups[name] = _GroupDef(name=name, line=line, order=len(self.groups))
        if parent is not None:
            if name == ALL_GROUP:
                self.problem(line, f"group {parent!r}", f"'{ALL_GROUP}' holds every group and cannot be a child group")
                return
            group.parents.setdefault(parent, line)
        where = f"group {name!r}"
        if value is None:
            return
        if not isinstance(value, _Map):
            self.problem(line, where, f"must be a mapping with 'hosts', 'vars' or 'children', got {_describe(value)}")
            return
        for key, item in value.items():
            key_line = value.key_lines[key]
            if key == "hosts":
                self._hosts(group, item, key_line)
            elif key == "vars":
                self._group_vars(group, item, key_line)
            elif key == "children":
                self._children(group, item, key_line)
            else:
                hint = _did_you_mean(str(key), GROUP_KEYS)
                if not hint:
                    hint = (
                        " (host settings go under the group's 'vars:')"
                        if key in SETTING_KEYS
                        else " (a group has 'hosts', 'vars' and 'children')"
                    )
                self.problem(key_line, where, f"unknown key {key!r}{hint}")

    def _hosts(self, group: _GroupDef, value: Any, line: int) -> None:
        if value is None:
            return
        if not isinstance(value, _Map):
            hint = " (write each host as 'NAME:' on its own line, not as a '- NAME' list item)" if isinstance(value, list) else ""
            self.problem(line, f"group {group.name!r}", f"'hosts' must be a mapping of host names to settings, got {_describe(value)}{hint}")
            return
        for name, settings in value.items():
            host_line = value.key_lines[name]
            if not self._check_name(name, "host", host_line):
                continue
            host = self.hosts.get(name)
            if host is None:
                host = self.hosts[name] = _HostDef(name=name, line=host_line, order=len(self.hosts))
            if group.name not in host.groups:
                host.groups.append(group.name)
            if name not in group.hosts:
                group.hosts.append(name)
            if settings is None:
                continue
            level = self._settings(settings, host_line, f"host {name!r}")
            if level is not None:
                host.levels.append(level)

    def _group_vars(self, group: _GroupDef, value: Any, line: int) -> None:
        if value is None:
            return
        level = self._settings(value, line, f"group {group.name!r} vars")
        if level is not None:
            group.levels.append(level)

    def _children(self, group: _GroupDef, value: Any, line: int) -> None:
        if value is None:
            return
        if not isinstance(value, _Map):
            self.problem(line, f"group {group.name!r}", f"'children' must be a mapping of group names to groups, got {_describe(value)}")
            return
        for name, child in value.items():
            self._group(name, child, value.key_lines[name], parent=group.name)

    def _settings(self, value: Any, line: int, where: str) -> _Level | None:
        """Validate one level of settings; report each bad key at its own line."""
        if not isinstance(value, _Map):
            hint = " (to give its address, write 'host: ADDRESS' under it)" if isinstance(value, str) else ""
            self.problem(line, where, f"settings must be a mapping of keys to values, got {_describe(value)}{hint}")
            return None
        bad_keys = [k for k in value if not isinstance(k, str)]
        for key in bad_keys:
            self.problem(value.key_lines[key], where, f"unknown key {key!r} (keys are names such as 'port')")
        try:
            settings = HostSettings.model_validate({k: v for k, v in value.items() if isinstance(k, str)})
        except ValidationError as exc:
            for error in exc.errors():
                self.problem(_error_line(value, error["loc"], line), where, _error_message(error))
            return None
        if bad_keys:
            return None
        if settings.runtime is not None and settings.tags and settings.tags.get("runtime", settings.runtime) != settings.runtime:
            self.problem(
                value.key_lines["runtime"],
                where,
                f"'runtime' is {settings.runtime!r} but 'tags' says runtime {settings.tags['runtime']!r}; keep one",
            )
            return None
        return _Level(settings=settings, line=value.line)

    # -- flattening

    def _depths(self) -> dict[str, int]:
        """Longest chain of parents above each group; reports loops among groups."""
        depths: dict[str, int] = {}
        visiting: list[str] = []

        def depth(name: str) -> int:
            if name in depths:
                return depths[name]
            if name in visiting:
                loop = visiting[visiting.index(name):] + [name]
                group = self.groups[name]
                self.problem(group.line, f"group {name!r}", "is its own ancestor: " + " -> ".join(reversed(loop)))
                return 0
            visiting.append(name)
            parents = self.groups[name].parents
            result = 1 + max((depth(p) for p in parents), default=-1)
            visiting.pop()
            depths[name] = result
            return result

        for name in self.groups:
            depth(name)
        return depths

    def _ancestors(self, names: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(self.groups[name].parents)
        return seen

    def _add_implicit_all(self) -> None:
        """Make `all` exist and be the parent of every other top-level group (Ansible's rule)."""
        if ALL_GROUP not in self.groups:
            self.groups[ALL_GROUP] = _GroupDef(name=ALL_GROUP, line=1, order=-1)
        for group in self.groups.values():
            if group.name != ALL_GROUP and not group.parents:
                group.parents[ALL_GROUP] = group.line

    def build(self) -> Inventory:
        self._add_implicit_all()
        for name, host in self.hosts.items():
            group = self.groups.get(name)
            if group is not None:
                self.problem(
                    host.line,
                    "",
                    f"{name!r} is used both as a group (line {group.line}) and as a host (line {host.line}); "
                    "give them different names",
                )
        depths = self._depths()
        self.fail_if_problems()
        if not self.hosts:
            first = min((g.line for g in self.groups.values()), default=1)
            raise BadInputError(f"{self.path}:{first}: the inventory defines no hosts (list them under a group's 'hosts:')")

        boards = []
        for host in self.hosts.values():
            member_of = self._ancestors(host.groups)
            ordered_groups = sorted(member_of, key=lambda g: self.groups[g].order)
            by_precedence = sorted(member_of, key=lambda g: (depths[g], self.groups[g].order))
            levels = [lvl for g in by_precedence for lvl in self.groups[g].levels] + host.levels
            boards.append(self._board(host.name, levels, tuple(ordered_groups)))
        groups = {
            name: [b.name for b in boards if name in b.groups]
            for name in sorted(self.groups, key=lambda g: self.groups[g].order)
        }
        return Inventory(path=self.path, boards=boards, groups=groups)

    def _board(self, name: str, levels: list[_Level], groups: tuple[str, ...]) -> Board:
        merged: dict[str, Any] = {}
        tags: dict[str, str] = {}
        env: dict[str, str] = {}
        for level in levels:
            values = level.settings.model_dump(exclude_unset=True)
            tags.update(values.pop("tags", {}))
            if "runtime" in values:
                tags["runtime"] = values.pop("runtime")
            env.update(values.pop("env", {}))
            merged.update(values)
        for key in CONTROLLER_PATH_KEYS:
            if key in merged:
                merged[key] = self._controller_path(merged[key])
        board_fields: dict[str, Any] = {"transport": DEFAULT_TRANSPORT, **merged}
        if "providers" in board_fields:
            board_fields["providers"] = tuple(board_fields["providers"])
        if "connect_timeout_s" in board_fields:
            board_fields["connect_timeout_s"] = float(board_fields["connect_timeout_s"])
        return Board(name=name, tags=tags, env=env, groups=groups, **board_fields)

    def _controller_path(self, value: str) -> str:
        path = Path(os.path.expanduser(value))
        return str(path if path.is_absolute() else self.base_dir / path)


# --------------------------------------------------------------------------- pydantic errors -> messages

_TYPE_WORDS = {
    "string_type": "must be text",
    "int_type": "must be a whole number",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
    "dict_type": "must be a mapping of names to values",
    "list_type": "must be a list",
}


def _field_path(loc: tuple[Any, ...]) -> str:
    text = str(loc[0])
    for part in loc[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _error_line(mapping: _Map, loc: tuple[Any, ...], default: int) -> int:
    """The line of the deepest key or item of `loc` that the YAML tree knows."""
    line = default
    node: Any = mapping
    for part in loc:
        if isinstance(node, _Map) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, _Seq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def _error_message(error: Any) -> str:
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
            hint = _did_you_mean(key, SETTING_KEYS)
        return f"unknown key {key!r}{hint}"
    field = f"{_field_path(loc)!r}"
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        return f"{field} {str(error['msg']).removeprefix('Value error, ')}"
    if kind == "literal_error":
        return f"{field} must be one of {ctx.get('expected', '')}, got {_describe(value)}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        if loc[0] == "port":
            return f"{field} must be a whole number from 1 to 65535, got {_describe(value)}"
        bound = ctx.get("gt", ctx.get("ge", 0))
        return f"{field} must be greater than {bound:g}, got {_describe(value)}"
    words = _TYPE_WORDS.get(kind)
    if words is None:
        return f"{field}: {error['msg']} (got {_describe(value)})"
    hint = ""
    if kind == "string_type" and isinstance(value, bool):
        hint = " (YAML reads yes/no/true/false/on/off as true or false: quote the value)"
    elif kind == "list_type" and isinstance(value, str):
        hint = f" (write [{value}])"
    elif kind == "int_type" and isinstance(value, str) and value.strip().isdigit():
        hint = " (remove the quotes)"
    elif kind == "bool_type" and isinstance(value, str):
        hint = " (write true or false without quotes)"
    return f"{field} {words}, got {_describe(value)}{hint}"


def _describe(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------- --limit


def select_boards(inventory: Inventory, limit: str | None) -> list[Board]:
    """The boards a `--limit` value picks, in inventory order, each once.

    `limit` is comma-separated patterns; each is a host name, a group name (its
    boards, child groups included), an fnmatch glob on host and group names
    (`rpi4-*`, `jet*`), or `tag:KEY=VALUE` (VALUE may be a glob; `tag:KEY` alone
    means "has that tag"); `runtime:NAME` is `tag:runtime=NAME` (the inventory's `runtime:`
    host variable). A pattern starting with `!` removes what it matches;
    if every pattern is a `!` pattern, they are removed from all boards.
    None or a blank string selects every board.

    A pattern that matches nothing is an error (a typo must not silently widen or
    narrow a run), and so is a selection left empty; the message lists the known
    hosts and groups.
    """
    if limit is None or not limit.strip():
        return list(inventory.boards)
    patterns = [p.strip() for p in limit.split(",") if p.strip()]
    included: set[str] | None = None
    excluded: set[str] = set()
    unmatched: list[str] = []
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:].strip() if negate else pattern
        matched = _match_pattern(inventory, body)
        if matched is None:
            unmatched.append(_unmatched_message(inventory, body))
            continue
        if negate:
            excluded |= matched
        else:
            included = (included or set()) | matched
    if unmatched:
        raise BadInputError(f"limit {limit!r}: " + "; ".join(unmatched) + _known_names(inventory))
    if included is None:
        included = {b.name for b in inventory.boards}
    chosen = [b for b in inventory.boards if b.name in included and b.name not in excluded]
    if not chosen:
        raise BadInputError(f"limit {limit!r} selects no boards (everything it matched is excluded)")
    return chosen


def _match_pattern(inventory: Inventory, pattern: str) -> set[str] | None:
    """Board names matched by one pattern; None when it names no host, group or tag."""
    if not pattern:
        return None
    pattern = _runtime_as_tag(pattern)
    if pattern.startswith("tag:"):
        key, has_value, value = pattern[len("tag:"):].partition("=")
        found = {
            b.name
            for b in inventory.boards
            if key in b.tags and (not has_value or fnmatch.fnmatchcase(b.tags[key], value))
        }
        return found or None
    names = {b.name for b in inventory.boards}
    if pattern in names:
        return {pattern}
    if pattern in inventory.groups:
        return set(inventory.groups[pattern])
    if not _GLOB_CHARS & set(pattern):
        return None
    hosts = {n for n in names if fnmatch.fnmatchcase(n, pattern)}
    groups = [g for g in inventory.groups if fnmatch.fnmatchcase(g, pattern)]
    if not hosts and not groups:
        return None
    for group in groups:
        hosts.update(inventory.groups[group])
    return hosts


def _runtime_as_tag(pattern: str) -> str:
    """`runtime:openvino` -> `tag:runtime=openvino`; other patterns as they are."""
    return "tag:runtime=" + pattern[len("runtime:"):] if pattern.startswith("runtime:") else pattern


def _unmatched_message(inventory: Inventory, pattern: str) -> str:
    if not pattern:
        return "'!' must be followed by a pattern"
    pattern = _runtime_as_tag(pattern)
    if pattern.startswith("tag:"):
        tags = sorted({f"{k}={v}" for b in inventory.boards for k, v in b.tags.items()})
        return f"no board has tag {pattern[len('tag:'):]!r} (tags in use: {', '.join(tags) or 'none'})"
    hint = _did_you_mean(pattern, [*inventory.board_names(), *inventory.groups])
    return f"pattern {pattern!r} matches no host or group{hint}"


def _known_names(inventory: Inventory, most: int = 50) -> str:
    def listing(names: list[str]) -> str:
        shown = ", ".join(names[:most])
        return shown + (f", ... ({len(names) - most} more)" if len(names) > most else "")

    return f". Hosts: {listing(inventory.board_names())}. Groups: {listing(list(inventory.groups))}"
