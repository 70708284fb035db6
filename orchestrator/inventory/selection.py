"""`--limit`: which boards of an inventory a run uses.

Patterns follow Ansible's `--limit` (names, groups, globs, `!` exclusions) plus farm's
`tag:KEY=VALUE` and `runtime:NAME`. Unlike Ansible, a pattern that matches nothing is an
error: on a shared lab a typo must not silently run on more, or fewer, boards than meant.
"""
from __future__ import annotations

import fnmatch

from orchestrator.boards import Board
from orchestrator.errors import BadInputError
from orchestrator.inventory.loader import Inventory
from orchestrator.yaml_lines import did_you_mean

__all__ = ["select_boards"]

# A pattern with one of these is an fnmatch glob; without, it must name a host or group exactly.
_GLOB_CHARS = set("*?[")


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
    hint = did_you_mean(pattern, [*inventory.board_names(), *inventory.groups])
    return f"pattern {pattern!r} matches no host or group{hint}"


def _known_names(inventory: Inventory, most: int = 50) -> str:
    def listing(names: list[str]) -> str:
        shown = ", ".join(names[:most])
        return shown + (f", ... ({len(names) - most} more)" if len(names) > most else "")

    return f". Hosts: {listing(inventory.board_names())}. Groups: {listing(list(inventory.groups))}"
