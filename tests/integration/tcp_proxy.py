"""A small loopback TCP proxy for fault tests (LAB.md: no tc netem here).

Listens on 127.0.0.1 only and forwards only to loopback targets. Modes:
- forward: relay bytes both ways, optionally `delay_s` before each chunk and
  `cut_after_bytes` (both directions together) after which both sides are closed;
- silent: accept connections and never answer (a hung board: banner timeout).

`stall()` makes every connection open at that moment a half-open link: nothing is forwarded
either way any more, but both sockets stay open (no FIN, no RST), as when a router between
the two ends dies. Connections made later are forwarded normally.

Every loop is bounded: at most `max_connections` connections, and nothing lives
longer than `lifetime_s`; `stop()` ends everything and joins the threads.
"""
from __future__ import annotations

import contextlib
import ipaddress
import select
import socket
import threading
import time

POLL_S = 0.05
CHUNK_BYTES = 65536
SEND_TIMEOUT_S = 5.0


class TcpProxy:
    def __init__(
        self,
        target: tuple[str, int] | None = None,
        *,
        mode: str = "forward",
        delay_s: float = 0.0,
        cut_after_bytes: int | None = None,
        cut_once: bool = False,
        max_connections: int = 16,
        lifetime_s: float = 60.0,
    ) -> None:
        if mode not in ("forward", "silent"):
            raise ValueError(f"mode must be forward or silent, got {mode!r}")
        if mode == "forward":
            if target is None:
                raise ValueError("forward mode needs a target")
            if not ipaddress.ip_address(target[0]).is_loopback:
                raise ValueError(f"the proxy forwards to loopback only, not {target[0]}")
        self.target = target
        self.mode = mode
        self.delay_s = delay_s
        self.cut_after_bytes = cut_after_bytes
        self.cut_once = cut_once  # after the first cut, relay normally (a link that drops once)
        self.max_connections = max_connections
        self.lifetime_s = lifetime_s
        self.connections = 0
        self.bytes_to_target = 0
        self.bytes_to_client = 0
        self.cut = threading.Event()
        self.stalled_connections = 0  # connections 1..N are stalled (see stall())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._deadline = 0.0
        self._listener: socket.socket | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._listener is not None, "start() the proxy first"
        return self._listener.getsockname()

    @property
    def port(self) -> int:
        return self.address[1]

    def start(self) -> TcpProxy:
        self._deadline = time.monotonic() + self.lifetime_s
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(self.max_connections)
        self._listener = listener
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2.0)
        with self._lock:
            for sock in self._sockets:
                _close(sock)
            self._sockets.clear()
        if self._listener is not None:
            _close(self._listener)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- internals

    def stall(self) -> None:
        """Stop forwarding on every open connection, keeping its sockets open (a half-open link)."""
        with self._lock:
            self.stalled_connections = self.connections

    def cut_all(self) -> None:
        """Drop every open connection now (a link failure), keep accepting new ones."""
        with self._lock:
            sockets = list(self._sockets)
            self._sockets.clear()
        for sock in sockets:
            _close(sock)
        self.cut.set()

    def _running(self) -> bool:
        return not self._stop.is_set() and time.monotonic() < self._deadline

    def _spawn(self, target, *args) -> None:  # noqa: ANN001
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while self._running() and self.connections < self.max_connections:
            ready, _, _ = select.select([self._listener], [], [], POLL_S)
            if not ready:
                continue
            client, _ = self._listener.accept()
            self.connections += 1
            self._track(client)
            if self.mode == "silent":
                continue  # held open, never read, never answered, closed by stop()
            assert self.target is not None
            try:
                upstream = socket.create_connection(self.target, timeout=5.0)
            except OSError:
                _close(client)
                continue
            self._track(upstream)
            self._spawn(self._pump, client, upstream, "to_target", self.connections)
            self._spawn(self._pump, upstream, client, "to_client", self.connections)

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str, number: int = 0) -> None:
        # Blocking sockets with a timeout: recv only after select says ready, and a peer that
        # stops reading makes sendall fail after SEND_TIMEOUT_S instead of hanging.
        source.settimeout(SEND_TIMEOUT_S)
        while self._running():
            if number <= self.stalled_connections:
                self._stop.wait(POLL_S)  # stalled: read nothing, forward nothing, close nothing
                continue
            try:
                ready, _, _ = select.select([source], [], [], POLL_S)
            except (OSError, ValueError):
                break
            if not ready:
                continue
            try:
                data = source.recv(CHUNK_BYTES)
            except OSError:
                break
            if not data:
                break
            if self.delay_s:
                time.sleep(self.delay_s)
            cut_now = False
            with self._lock:
                if self.cut_after_bytes is not None:
                    room = self.cut_after_bytes - self.bytes_to_target - self.bytes_to_client
                    if len(data) >= room:
                        data, cut_now = data[: max(room, 0)], True
                if direction == "to_target":
                    self.bytes_to_target += len(data)
                else:
                    self.bytes_to_client += len(data)
            try:
                if data:
                    sink.sendall(data)
            except OSError:
                break
            if cut_now:
                self.cut.set()
                if self.cut_once:
                    with self._lock:
                        self.cut_after_bytes = None
                break
        # One side ended (or the connection was cut): end both, like a dropped link.
        _close(source)
        _close(sink)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()
