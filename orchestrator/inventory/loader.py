"""Reading an inventory file: walk its groups and hosts, collect every problem, flatten into Boards.

The file format and its precedence rules are described in orchestrator.inventory. The walk
reports problems instead of raising at the first one, so a user fixes the whole file in one
go; each is `FILE:LINE: host 'NAME': ...` or `FILE:LINE: group 'NAME': ...`, sorted by line.
Only when the file is clean are the levels merged into one `Board` per host. Nothing here
connects: ssh config aliases are completed later by `resolve_ssh_settings`
(orchestrator.transport.ssh.config).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.boards import Board
from orchestrator.errors import BadInputError
from orchestrator.inventory.schema import (
    ALL_GROUP,
    CONTROLLER_PATH_KEYS,
    GROUP_KEYS,
    SETTING_KEYS,
    HostSettings,
    name_problem,
    settings_error_message,
)
from orchestrator.yaml_lines import LineMap, describe_value, did_you_mean, error_line, read_yaml_with_lines

__all__ = ["INVENTORY_ENV_VAR", "Inventory", "load_inventory", "resolve_inventory_path"]

INVENTORY_ENV_VAR = "FARM_INVENTORY"
DEFAULT_TRANSPORT = "ssh"
# Problems listed in one error before the rest are only counted.
MAX_PROBLEMS_SHOWN = 20


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
        if not isinstance(data, LineMap):
            line = getattr(data, "line", 1)
            self.problem(line, "", f"the inventory must be a mapping of group names (such as 'all:'), got {describe_value(data)}")
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
        problem = name_problem(name, kind)
        if problem is not None:
            self.problem(line, "", problem)
        return problem is None

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
        if not isinstance(value, LineMap):
            self.problem(line, where, f"must be a mapping with 'hosts', 'vars' or 'children', got {describe_value(value)}")
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
                hint = did_you_mean(str(key), GROUP_KEYS)
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
        if not isinstance(value, LineMap):
            hint = " (write each host as 'NAME:' on its own line, not as a '- NAME' list item)" if isinstance(value, list) else ""
            self.problem(line, f"group {group.name!r}", f"'hosts' must be a mapping of host names to settings, got {describe_value(value)}{hint}")
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
        if not isinstance(value, LineMap):
            self.problem(line, f"group {group.name!r}", f"'children' must be a mapping of group names to groups, got {describe_value(value)}")
            return
        for name, child in value.items():
            self._group(name, child, value.key_lines[name], parent=group.name)

    def _settings(self, value: Any, line: int, where: str) -> _Level | None:
        """Validate one level of settings; report each bad key at its own line."""
        if not isinstance(value, LineMap):
            hint = " (to give its address, write 'host: ADDRESS' under it)" if isinstance(value, str) else ""
            self.problem(line, where, f"settings must be a mapping of keys to values, got {describe_value(value)}{hint}")
            return None
        bad_keys = [k for k in value if not isinstance(k, str)]
        for key in bad_keys:
            self.problem(value.key_lines[key], where, f"unknown key {key!r} (keys are names such as 'port')")
        try:
            settings = HostSettings.model_validate({k: v for k, v in value.items() if isinstance(k, str)})
        except ValidationError as exc:
            for error in exc.errors():
                self.problem(error_line(value, error["loc"], line), where, settings_error_message(error))
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
