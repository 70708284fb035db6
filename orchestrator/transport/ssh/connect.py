"""Connecting to a board: the socket, the ProxyJump hops, the SSH login.

The first hop is a socket we create (connect timeout, TCP_NODELAY); each later hop is
a `direct-tcpip` channel of the one before; paramiko gets the banner/auth/channel
timeouts (why not fabric's gateway chain: see the package docstring). Host keys are
checked as host_keys.py says.

Connection failures become `TransportError` kinds: refused port, DNS failure,
no route -> "unreachable"; TCP connect, banner, key exchange or auth taking longer
than `board.connect_timeout_s` -> "timeout"; bad key -> "auth"; unknown or changed
host key -> "host-key"; connection lost mid-way -> "disconnected".
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable

import paramiko

from orchestrator.boards import Board
from orchestrator.errors import BadInputError, TransportError
from orchestrator.transport.ssh.config import ResolvedSSH, resolve_ssh_settings
from orchestrator.transport.ssh.failures import describe, is_timeout
from orchestrator.transport.ssh.host_keys import (
    KnownHostsPolicy,
    changed_key_message,
    known_hosts_path,
    load_known_hosts,
    lookup_name,
)

# paramiko logs tracebacks of failed handshakes from its own thread; farm reports the failure
# itself (with a kind), so keep them out of stderr unless the user configures logging.
logging.getLogger("paramiko").addHandler(logging.NullHandler())

KEEPALIVE_INTERVAL_S = 15


def close_clients(clients: list[paramiko.SSHClient]) -> None:
    """Close a board's client and then its jump hosts' (a hop's socket is a channel of the hop
    before it), each one even when closing another failed on a dead link."""
    for client in reversed(clients):
        close_client(client)


def close_client(client: paramiko.SSHClient) -> None:
    """Close one client quietly, and its ssh-agent connection, which SSHClient.close leaves open
    when closing the transport raised."""
    close_quietly(client)
    agent = getattr(client, "_agent", None)
    if agent is not None:
        close_quietly(agent)


class BoardConnection:
    """The SSH connection to one board through its jump hosts: opened on first use, again after a drop.

    `lock` (re-entrant) guards the connection; the command runner and the file stager
    take it too. What they open on the connection and must close with it (the SFTP
    session) they register with `on_drop`.
    """

    def __init__(self, board: Board) -> None:
        self.name = board.name
        self._board = board
        self.lock = threading.RLock()
        self.clients: list[paramiko.SSHClient] = []  # jump hosts first, the board last
        self.connect_timeout_s = float(board.connect_timeout_s)
        self._resolved: ResolvedSSH | None = None
        self._known_hosts = known_hosts_path(board.known_hosts_file)
        self._drop_hooks: list[Callable[[], None]] = []

    def transport(self) -> paramiko.Transport:
        """The live paramiko transport to the board, connecting (again) when needed."""
        with self.lock:
            if self.clients:
                transport = self.clients[-1].get_transport()
                if transport is not None and transport.is_active():
                    return transport
                self.drop()
            self._connect()
            transport = self.clients[-1].get_transport()
            assert transport is not None
            return transport

    def active_transport(self) -> paramiko.Transport | None:
        """The board's transport while it is connected; None otherwise (never connects)."""
        with self.lock:
            transport = self.clients[-1].get_transport() if self.clients else None
        return transport if transport is not None and transport.is_active() else None

    def open_session(self) -> paramiko.Channel:
        """A new exec channel on the board (connecting when needed)."""
        transport = self.transport()
        try:
            return transport.open_session(timeout=self.connect_timeout_s)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            with self.lock:
                self.drop()
            raise TransportError(
                f"{self.name}: the connection broke while opening a channel: {describe(exc)}",
                kind="timeout" if is_timeout(exc) else "disconnected",
            ) from exc

    def on_drop(self, hook: Callable[[], None]) -> None:
        """Call `hook` (under `lock`) before each drop closes the connection."""
        self._drop_hooks.append(hook)

    def drop(self) -> None:
        """Close the connection and the jump hosts'; the next use connects again. Call under `lock`."""
        for hook in self._drop_hooks:
            hook()
        close_clients(self.clients)
        self.clients = []

    # ------------------------------------------------------------------ connecting

    def _connect(self) -> None:
        try:
            resolved = self._resolved or resolve_ssh_settings(self._board)
        except BadInputError as exc:
            # This board's settings (its ssh config, its proxy jump) cannot be used: the board is
            # unreachable, a failure of this board only, never of the whole run.
            raise TransportError(f"{self.name}: cannot tell how to reach it: {exc}", kind="unreachable") from exc
        self._resolved = resolved
        hops = [*resolved.jump_hosts, resolved]
        clients: list[paramiko.SSHClient] = []
        try:
            for index, hop in enumerate(hops):
                is_board = index == len(hops) - 1
                what = "board" if is_board else "jump host"
                sock = self._open_socket(hop, clients[-1] if clients else None, resolved, what)
                identity_files = list(hop.identity_files)
                if not is_board and not identity_files:
                    # A jump host with no IdentityFile of its own: try the board's key too.
                    identity_files = list(resolved.identity_files)
                clients.append(self._login(hop, sock, identity_files, what))
        except BaseException:
            close_clients(clients)
            raise
        board_transport = clients[-1].get_transport()
        if board_transport is not None:
            board_transport.set_keepalive(KEEPALIVE_INTERVAL_S)
        self.clients = clients

    def _open_socket(
        self,
        hop: ResolvedSSH,
        previous: paramiko.SSHClient | None,
        board: ResolvedSSH,
        what: str,
    ):
        """A TCP socket to the first hop, or a direct-tcpip channel through the previous hop."""
        timeout_s = self.connect_timeout_s
        where = f"{hop.hostname}:{hop.port}"
        if previous is not None:
            previous_transport = previous.get_transport()
            assert previous_transport is not None
            try:
                return previous_transport.open_channel(
                    "direct-tcpip", (hop.hostname, hop.port), ("127.0.0.1", 0), timeout=timeout_s
                )
            except paramiko.ChannelException as exc:
                raise TransportError(
                    f"{self.name}: the jump host could not reach {what} {where}: {exc.text or exc}",
                    kind="unreachable",
                ) from exc
            except (paramiko.SSHException, EOFError, OSError) as exc:
                kind = "timeout" if is_timeout(exc) else "disconnected"
                raise TransportError(
                    f"{self.name}: opening a tunnel to {what} {where} through the jump host failed: "
                    f"{describe(exc)}",
                    kind=kind,
                ) from exc
        if hop.proxy_command and not board.jump_hosts:
            try:
                return paramiko.ProxyCommand(hop.proxy_command)
            except (paramiko.SSHException, OSError) as exc:
                raise TransportError(
                    f"{self.name}: ProxyCommand {hop.proxy_command!r} failed: {exc}", kind="unreachable"
                ) from exc
        try:
            sock = socket.create_connection((hop.hostname, hop.port), timeout=timeout_s)
        except socket.gaierror as exc:
            raise TransportError(
                f"{self.name}: cannot resolve {what} host {hop.hostname!r}: {exc.strerror or exc}",
                kind="unreachable",
            ) from exc
        except TimeoutError as exc:
            raise TransportError(
                f"{self.name}: {what} {where} did not answer within {timeout_s:g} s (connect timeout)",
                kind="unreachable",
            ) from exc
        except OSError as exc:
            raise TransportError(
                f"{self.name}: cannot connect to {what} {where}: {exc.strerror or exc}", kind="unreachable"
            ) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def _login(self, hop: ResolvedSSH, sock, identity_files: list[str], what: str) -> paramiko.SSHClient:
        """SSH handshake, host key check and public key login over `sock`."""
        timeout_s = self.connect_timeout_s
        where = f"{hop.user}@{hop.hostname}:{hop.port}"
        client = paramiko.SSHClient()
        try:
            load_known_hosts(client, self.name, self._known_hosts)
        except BadInputError:
            close_client(client)
            close_quietly(sock)
            raise
        client.set_missing_host_key_policy(
            KnownHostsPolicy(self.name, self._known_hosts, self._board.accept_new_host_keys, what)
        )
        usable_keys = [path for path in identity_files if os.path.isfile(os.path.expanduser(path))]
        if identity_files and not usable_keys and self._board.identity_file:
            close_client(client)
            close_quietly(sock)
            raise TransportError(
                f"{self.name}: identity file {self._board.identity_file} not found", kind="auth"
            )

        def transport_factory(sock, **kwargs):  # noqa: ANN001, ANN202 - paramiko's hook
            transport = paramiko.Transport(sock, **kwargs)
            transport.handshake_timeout = timeout_s  # key exchange, not paramiko's default 15 s
            return transport

        login_started = time.monotonic()
        try:
            client.connect(
                hostname=hop.hostname,
                port=hop.port,
                username=hop.user,
                key_filename=[os.path.expanduser(p) for p in usable_keys] or None,
                look_for_keys=not usable_keys,
                allow_agent=True,
                timeout=timeout_s,
                banner_timeout=timeout_s,
                auth_timeout=timeout_s,
                channel_timeout=timeout_s,
                sock=sock,
                transport_factory=transport_factory,
            )
        except BaseException as exc:
            close_client(client)
            close_quietly(sock)
            if isinstance(exc, (TransportError, KeyboardInterrupt, SystemExit)):
                raise
            timed_out = time.monotonic() - login_started >= 0.95 * timeout_s
            raise self._login_error(exc, hop, where, what, timed_out) from exc
        return client

    def _login_error(
        self, exc: BaseException, hop: ResolvedSSH, where: str, what: str, timed_out: bool
    ) -> TransportError:
        timeout_s = self.connect_timeout_s
        if isinstance(exc, paramiko.BadHostKeyException):
            return TransportError(
                changed_key_message(self.name, what, lookup_name(hop.hostname, hop.port), exc.key,
                                    exc.expected_key, self._known_hosts),
                kind="host-key",
            )
        if isinstance(exc, paramiko.AuthenticationException):
            if "timeout" in str(exc).lower():
                return TransportError(
                    f"{self.name}: {what} {where}: login took longer than {timeout_s:g} s", kind="timeout"
                )
            return TransportError(
                f"{self.name}: {what} {where} refused the login: {exc} "
                "(check user and identity_file in the inventory or ~/.ssh/config)",
                kind="auth",
            )
        if is_timeout(exc) or (timed_out and isinstance(exc, (paramiko.SSHException, EOFError))):
            # paramiko gives up a stalled key exchange with "No existing session": the clock tells.
            return TransportError(
                f"{self.name}: {what} {where} accepted the connection but its SSH server did not answer "
                f"within {timeout_s:g} s",
                kind="timeout",
            )
        text = str(exc)
        if isinstance(exc, paramiko.SSHException) and "No authentication methods" in text:
            return TransportError(
                f"{self.name}: {what} {where}: no key to log in with (set identity_file)", kind="auth"
            )
        if isinstance(exc, (paramiko.SSHException, EOFError, OSError)):
            return TransportError(
                f"{self.name}: {what} {where} closed the connection during the SSH handshake: {describe(exc)}",
                kind="disconnected",
            )
        return TransportError(f"{self.name}: {what} {where}: {describe(exc)}", kind="unreachable")


def close_quietly(closable) -> None:  # noqa: ANN001 - a socket, channel, client or ProxyCommand
    """Close it; a link that died already makes closing fail, and that must not hide what the caller reports.

    Closing an SSH channel (or a board's client, whose socket is a channel of its jump host's
    connection) sends a message: over a dead link that raises EOFError or OSError.
    """
    with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
        closable.close()
