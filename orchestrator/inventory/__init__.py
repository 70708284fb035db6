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

Where each part lives: `schema` (what a host or group may set, names, the words of
every settings error), `loader` (reading the file, groups, flattening into Boards),
`selection` (`--limit`). The YAML reader with line numbers is orchestrator.yaml_lines,
shared with suite files.
"""
from __future__ import annotations

from orchestrator.inventory.loader import INVENTORY_ENV_VAR, Inventory, load_inventory, resolve_inventory_path
from orchestrator.inventory.schema import HostSettings
from orchestrator.inventory.selection import select_boards

# Re-exported: they were importable from here before the ssh config helpers moved.
from orchestrator.transport.ssh.config import JumpHop, ResolvedSSH, parse_proxy_jump, resolve_ssh_settings

__all__ = [
    "INVENTORY_ENV_VAR",
    "HostSettings",
    "Inventory",
    "JumpHop",
    "ResolvedSSH",
    "load_inventory",
    "parse_proxy_jump",
    "resolve_inventory_path",
    "resolve_ssh_settings",
    "select_boards",
]
