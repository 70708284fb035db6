"""One function over many boards at once, with a per-board outcome (fabric's GroupResult).

`fan_out(boards, work, forks)` runs `work(board)` in a bounded thread pool and returns a
`GroupResult`: board name -> what `work` returned, or the exception it raised. A board that
fails never stops the others and never raises here; the caller decides what a failure means
(`farm bench` stores it, `inventory check` shows it, `provision` reports it).

Ctrl-C (KeyboardInterrupt in the calling thread) calls `on_interrupt` (which should make the
workers stop: close their connections, set a cancel event), waits a bounded time for them, and
re-raises.
"""
from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Callable, Generic, Sequence, TypeVar

from orchestrator.boards import Board

T = TypeVar("T")


class GroupResult(dict, Generic[T]):
    """Board name -> result or exception, in the order the boards were given."""

    @property
    def succeeded(self) -> dict[str, T]:
        return {name: value for name, value in self.items() if not isinstance(value, BaseException)}

    @property
    def failed(self) -> dict[str, BaseException]:
        return {name: value for name, value in self.items() if isinstance(value, BaseException)}


def fan_out(
    boards: Sequence[Board],
    work: Callable[[Board], T],
    forks: int,
    *,
    thread_name: str = "farm-board",
    on_interrupt: Callable[[], None] = lambda: None,
    interrupt_grace_s: float = 30.0,
) -> GroupResult[T]:
    """`work(board)` for every board, at most `forks` at once; see the module docstring."""
    found: dict[str, T | BaseException] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, min(forks, len(boards))), thread_name_prefix=thread_name)
    futures: dict[Future, Board] = {pool.submit(work, board): board for board in boards}
    try:
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            for future in done:
                found[futures[future].name] = _outcome(future)
    except KeyboardInterrupt:
        on_interrupt()
        for future in futures:
            future.cancel()
        deadline = time.monotonic() + interrupt_grace_s
        wait([f for f in futures if not f.cancelled()], timeout=max(0.0, deadline - time.monotonic()))
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return GroupResult((board.name, found[board.name]) for board in boards)


def _outcome(future: Future) -> object:
    try:
        return future.result()
    except Exception as exc:  # the board's failure, kept for the caller (GroupResult semantics)
        return exc
