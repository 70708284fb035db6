"""YAML input files that remember their line numbers, and the words for their bad values.

Inventories and suites report every problem as `FILE:LINE: ...`, so a user jumps straight
to the line to fix. PyYAML's plain dicts and lists forget where they came from, so the
loader here builds `LineMap` / `LineSeq` instead: ordinary dicts and lists that also carry
their own line and each key's or item's line (1-based, as editors count). It is a
SafeLoader subclass (no Python objects from YAML tags) that also rejects duplicate keys,
since in plain YAML the second one silently wins, and mappings and lists nested deeper than
MAX_YAML_DEPTH (PyYAML builds them recursively: deeper ones would exhaust Python's stack).

`error_line` maps a pydantic error location back to a line of the file; `describe_value`
and `did_you_mean` are the shared wording of messages about a value the file holds.
"""
from __future__ import annotations

import collections.abc
import difflib
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import BadInputError

__all__ = [
    "MAX_YAML_DEPTH", "LineMap", "LineSeq", "describe_value", "did_you_mean", "error_line", "read_yaml_with_lines",
]

#: The deepest nesting of mappings and lists an input file may have; real ones have fewer than 10.
MAX_YAML_DEPTH = 100


class LineMap(dict):
    """A YAML mapping that knows its own line and each key's line (1-based)."""

    line: int = 0
    key_lines: dict[Any, int]


class LineSeq(list):
    """A YAML sequence that knows its own line and each item's line (1-based)."""

    line: int = 0
    item_lines: list[int]


class _LineLoader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences remember where they are, and which rejects duplicate
    keys and nesting deeper than MAX_YAML_DEPTH."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> LineMap:
    own_key_nodes = {id(k) for k, _ in node.value}
    loader.flatten_mapping(node)  # `<<: *anchor` merge keys; merged pairs come first
    result = LineMap()
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


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> LineSeq:
    result = LineSeq(loader.construct_object(child, deep=True) for child in node.value)
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
        return yaml.load(text, Loader=_LineLoader)  # safe: a SafeLoader subclass
    except RecursionError:  # the depth limit keeps this away, unless the stack was deep already
        raise BadInputError(f"{path}: invalid YAML: nested too deeply to read") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = exc.problem or exc.context or "cannot parse"
        if exc.context and exc.problem:
            problem = f"{problem} ({exc.context})"
        raise BadInputError(f"{where}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: invalid YAML: {exc}") from None


def error_line(mapping: LineMap, loc: tuple[Any, ...], default: int) -> int:
    """The line of the deepest key or item of `loc` (a pydantic error location) that the YAML tree knows."""
    line = default
    node: Any = mapping
    for part in loc:
        if isinstance(node, LineMap) and part in node:
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, LineSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return line


def describe_value(value: Any) -> str:
    """A YAML value as a message shows it: `the text 'x'`, `the number 3`, `a list`, `nothing (null)`."""
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


def did_you_mean(word: str, choices: Any) -> str:
    """` (did you mean 'X'?)` for the closest of `choices`, or "" when none is close: a suffix for a message."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
