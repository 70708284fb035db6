"""How to reach an SSH board: inventory settings completed from the user's ssh config.

A board can be nothing more than an alias of ~/.ssh/config (HostName, Port, User,
IdentityFile, ProxyJump); values written in the inventory win over the ssh config,
and the ssh config wins over the last-resort defaults (port 22, the current user).
The SSH transport calls `resolve_ssh_settings` and connects through
`ResolvedSSH.jump_hosts` in order, then to the board itself.
"""
from __future__ import annotations

import dataclasses
import getpass
import os
from pathlib import Path
from typing import NamedTuple

import paramiko
from paramiko.ssh_exception import ConfigParseError

from orchestrator.boards import Board
from orchestrator.errors import BadInputError

DEFAULT_SSH_PORT = 22
DEFAULT_SSH_CONFIG = "~/.ssh/config"
# A chain of jump hosts longer than this is almost surely a loop in the ssh config.
MAX_JUMP_HOPS = 8


class JumpHop(NamedTuple):
    """One hop of a ProxyJump value: `[user@]host[:port]`; None where the hop does not say."""

    user: str | None
    host: str
    port: int | None


@dataclasses.dataclass(frozen=True)
class ResolvedSSH:
    """Everything needed to open the SSH connection to one board (or one jump host).

    `alias` is the name looked up in the ssh config (the inventory's `host`, else the
    board name); `hostname` is where to connect. `jump_hosts` are the hosts to go
    through first, already resolved, in connection order (the first is reached
    directly); `proxy_jump` is the raw value they came from. `proxy_command` is the
    ssh config's ProxyCommand, used only when no ProxyJump applies.
    """

    alias: str
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    proxy_jump: str | None = None
    proxy_command: str | None = None
    jump_hosts: tuple["ResolvedSSH", ...] = ()


def parse_proxy_jump(value: str) -> list[JumpHop]:
    """Split an OpenSSH ProxyJump value into hops, first hop first.

    Accepts comma-separated `[user@]host[:port]`, `[user@][ipv6]:port` and
    `ssh://[user@]host[:port]` hops; `none` (any case) means no jump host and gives [].
    Raises BadInputError naming the value for anything else.
    """
    text = value.strip()
    if text.lower() == "none":
        return []
    hops = []
    for raw in text.split(","):
        hops.append(_parse_hop(raw.strip(), value))
    return hops


def _parse_hop(hop: str, whole: str) -> JumpHop:
    def bad(reason: str) -> BadInputError:
        return BadInputError(f"proxy jump {whole!r}: {reason}")

    if not hop:
        raise bad("empty hop (two commas in a row, or a comma at an end?)")
    if hop.startswith("ssh://"):
        hop = hop[len("ssh://"):].rstrip("/")
    user: str | None = None
    if "@" in hop:
        user, _, hop = hop.rpartition("@")
        if not user:
            raise bad(f"hop {hop!r} has an empty user before '@'")
    port_text: str | None = None
    if hop.startswith("["):
        end = hop.find("]")
        if end < 0:
            raise bad(f"hop {hop!r} opens '[' without closing it")
        host, rest = hop[1:end], hop[end + 1:]
        if rest:
            if not rest.startswith(":"):
                raise bad(f"unexpected {rest!r} after ']' in hop {hop!r}")
            port_text = rest[1:]
    elif hop.count(":") == 1:
        host, port_text = hop.split(":")
    elif ":" in hop:
        raise bad(f"hop {hop!r}: put an IPv6 address in brackets, e.g. [2001:db8::1]:22")
    else:
        host = hop
    if not host:
        raise bad(f"hop {hop!r} has no host")
    if host.startswith("-") or any(c.isspace() for c in host):
        raise bad(f"host {host!r} must not start with '-' or contain spaces")
    if user is not None and (user.startswith("-") or any(c.isspace() for c in user)):
        raise bad(f"user {user!r} must not start with '-' or contain spaces")
    port: int | None = None
    if port_text is not None:
        if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
            raise bad(f"port {port_text!r} must be a number from 1 to 65535")
        port = int(port_text)
    return JumpHop(user, host, port)


def load_ssh_config(path: str | None) -> tuple[paramiko.SSHConfig, str]:
    """Parse the ssh config at `path` (None: ~/.ssh/config). Returns (config, path as shown).

    A missing default file is an empty config; a missing file that the inventory named
    is a mistake and raises BadInputError, as does a file paramiko cannot parse.
    """
    shown = path or DEFAULT_SSH_CONFIG
    file = Path(os.path.expanduser(shown))
    if path is None and not file.exists():
        return paramiko.SSHConfig(), shown
    try:
        return paramiko.SSHConfig.from_path(str(file)), shown
    except FileNotFoundError:
        raise BadInputError(f"{shown}: ssh config file not found (named by 'ssh_config_file')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"{shown}: cannot read the ssh config: {exc}") from exc
    except ConfigParseError as exc:
        raise BadInputError(f"{shown}: cannot parse the ssh config: {exc}") from exc


def resolve_ssh_settings(board: Board) -> ResolvedSSH:
    """Complete `board`'s connection settings from its ssh config (see the module docstring).

    `board.host` (else the board name) is looked up like `ssh <host>` would: a
    `HostName` given for it in the ssh config applies. `identity_file` from the
    inventory replaces the ssh config's IdentityFile list; a `proxy_jump` of `none`
    in the inventory turns off a ProxyJump/ProxyCommand from the ssh config.
    Raises BadInputError for an unusable ssh config or jump chain.
    """
    config, shown = load_ssh_config(board.ssh_config_file)
    alias = board.host or board.name
    return _resolve(
        config,
        shown,
        alias=alias,
        port=board.port,
        user=board.user,
        identity_file=board.identity_file,
        proxy_jump=board.proxy_jump,
        seen=(),
    )


def _resolve(
    config: paramiko.SSHConfig,
    shown: str,
    *,
    alias: str,
    port: int | None,
    user: str | None,
    identity_file: str | None,
    proxy_jump: str | None,
    seen: tuple[tuple[str, str, int, str], ...],
) -> ResolvedSSH:
    found = config.lookup(alias)
    hostname = found.get("hostname") or alias
    if port is None:
        port = _config_port(found.get("port"), shown, alias)
    if user is None:
        user = found.get("user") or _current_user(alias)
    # A loop is the same (host, port, user) twice; the same host on another port is another server.
    here = (alias, hostname, port, user)
    if here[1:] in [hop[1:] for hop in seen] or len(seen) >= MAX_JUMP_HOPS:
        chain = " -> ".join(hop[0] for hop in (*seen, here))
        where = f"{shown}: " if config.get_hostnames() - {"*"} else ""
        raise BadInputError(f"{where}the ProxyJump chain loops or is too long: {chain} "
                            f"({user}@{hostname}:{port} {'again' if len(seen) < MAX_JUMP_HOPS else 'is too far'})")
    if identity_file is not None:
        identity_files: tuple[str, ...] = (identity_file,)
    else:
        identity_files = tuple(dict.fromkeys(os.path.expanduser(p) for p in found.get("identityfile", [])))
    proxy_command = None
    if proxy_jump is None:
        proxy_jump = found.get("proxyjump")
        if proxy_jump is None:
            command = found.get("proxycommand")
            proxy_command = None if command is None or command.lower() == "none" else command
    jump_hosts: list[ResolvedSSH] = []
    if proxy_jump is not None:
        if proxy_jump.strip().lower() == "none":
            proxy_jump = None
        else:
            for hop in parse_proxy_jump(proxy_jump):
                resolved = _resolve(
                    config,
                    shown,
                    alias=hop.host,
                    port=hop.port,
                    user=hop.user,
                    identity_file=None,
                    proxy_jump=None,
                    seen=(*seen, here),
                )
                # A hop's own ProxyJump comes before it (as `ssh -J` does), flattened.
                jump_hosts.extend(resolved.jump_hosts)
                jump_hosts.append(dataclasses.replace(resolved, jump_hosts=()))
    return ResolvedSSH(
        alias=alias,
        hostname=hostname,
        port=port,
        user=user,
        identity_files=identity_files,
        proxy_jump=proxy_jump,
        proxy_command=proxy_command,
        jump_hosts=tuple(jump_hosts),
    )


def _config_port(value: str | None, shown: str, alias: str) -> int:
    if value is None:
        return DEFAULT_SSH_PORT
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise BadInputError(f"{shown}: Host {alias}: Port {value!r} must be a number from 1 to 65535")
    return int(value)


def _current_user(alias: str) -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        raise BadInputError(
            f"cannot tell which user to log in to {alias!r} as: set 'user' in the inventory or ssh config"
        ) from None
