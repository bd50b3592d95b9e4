"""Progress on stderr: a live line on a terminal, nothing otherwise (or periodic plain
lines when asked). stdout is never touched: it carries only ids. Best effort: a progress
line that cannot be written (stderr's reader gone) ends progress, never the command."""

from __future__ import annotations

import math
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

from ..settings import progress_interval

if TYPE_CHECKING:  # anyio is imported where it is used: ``snapdir id`` never needs it
    from anyio import CancelScope
    from anyio.abc import TaskGroup

    from ..snapshot import ManifestOptions


def _duration(seconds: float) -> str:
    """Whole seconds, rounded up (never "0s" while work is left): 9s, 3m05s, 2h07m."""
    n = max(1, math.ceil(seconds))
    if n < 60:
        return f"{n}s"
    if n < 3600:
        return f"{n // 60}m{n % 60:02d}s"
    return f"{n // 3600}h{n % 3600 // 60:02d}m"


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


#: seconds of work before an ETA is shown
ETA_AFTER = 1.0

#: the stderr a progress write failed on (its reader gone: EPIPE; a full disk): no more
#: progress goes to it, from this stage or a later one
_failed_on: list[object] = []


def _show(text: str) -> None:
    """Write ``text`` to stderr, best effort: progress never fails the work it shows. The
    first write that fails stops progress output for that stream."""
    if _stopped():
        return
    err = sys.stderr
    try:
        err.write(text)
        err.flush()
    except (OSError, ValueError):  # ValueError: stderr was closed in this process
        _failed_on.append(err)


def _stopped() -> bool:
    """Whether progress output to the current stderr has stopped (``_show``)."""
    return any(sys.stderr is failed for failed in _failed_on)


@dataclass(slots=True)
class Progress:
    """Counters the pipeline bumps; a background task renders them.

    ``poll``, if given, is asked for (files done, files seen, bytes done) at each render
    instead: for work that counts in a worker thread (hashing), whose total grows as it
    goes. A zero ``bytes_total`` means the total is not known: no ETA.
    """

    label: str
    mode: str = "auto"  # "auto" (terminal only), "plain" (periodic lines), "off"
    files_total: int = 0
    bytes_total: int = 0
    files_done: int = 0
    bytes_done: int = 0
    started: float = field(default_factory=time.monotonic)
    poll: Callable[[], tuple[int, int, int]] | None = None
    _tg: TaskGroup | None = None
    _scope: CancelScope | None = None

    def add(self, files: int = 0, nbytes: int = 0) -> None:
        self.files_done += files
        self.bytes_done += nbytes

    @property
    def enabled(self) -> bool:
        if self.mode == "off":
            return False
        return self.mode == "plain" or sys.stderr.isatty()

    def line(self) -> str:
        if self.poll is not None:
            self.files_done, self.files_total, self.bytes_done = self.poll()
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.bytes_done / elapsed
        # shown as at least the bytes done: objects can be larger than their manifest
        # lines say (the targets of followed links, damaged ones)
        total = max(self.bytes_total, self.bytes_done) if self.bytes_total else 0
        parts = [f"{self.label}: {self.files_done}/{self.files_total} files",
                 f"{_human(self.bytes_done)}" + (f"/{_human(total)}" if total else ""),
                 f"{_human(rate)}/s"]
        # no ETA from the first moments' rate (set-up, the first requests): it is wild
        if rate > 0 and total > self.bytes_done and elapsed >= ETA_AFTER:
            parts.append(f"ETA {_duration((total - self.bytes_done) / rate)}")
        return ", ".join(parts)

    async def _render(self, interval: float) -> None:
        from anyio import sleep

        tty = self.mode != "plain"
        while not _stopped():
            await sleep(interval)
            _show("\r\x1b[2K" + self.line() if tty else self.line() + "\n")

    @contextmanager
    def in_thread(self) -> Iterator[Self]:
        """Render from a thread while blocking work runs in this one (``snapdir id``);
        the last line is written only if the work outlasted one interval."""
        if not self.enabled:
            yield self
            return
        tty = self.mode != "plain"
        interval = progress_interval(0.2 if tty else 5.0)
        stop = threading.Event()
        shown = [False]

        def render() -> None:
            while not stop.wait(interval) and not _stopped():
                _show(("\r\x1b[2K" if tty else "") + self.line() + ("" if tty else "\n"))
                shown[0] = True

        t = threading.Thread(target=render, name="snapdir-progress", daemon=True)
        t.start()
        try:
            yield self
        finally:
            stop.set()
            t.join()
            if shown[0]:
                _show(("\r\x1b[2K" if tty else "") + self.line() + "\n")

    async def __aenter__(self) -> Self:
        if self.enabled:
            from anyio import create_task_group

            # SNAPDIR_PROGRESS_INTERVAL (a bad value is a usage error) refused here, not
            # in the task
            interval = progress_interval(0.2 if self.mode != "plain" else 5.0)
            self._tg = create_task_group()
            await self._tg.__aenter__()
            self._tg.start_soon(self._render, interval)
        return self

    async def __aexit__(self, et: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
            try:
                await self._tg.__aexit__(et, e, tb)
            except BaseExceptionGroup as group:
                # the task group hands the work's own error back wrapped: it goes on as
                # it was raised (typed), the render task raising nothing of its own
                if e is None or list(group.exceptions) != [e]:
                    raise
            finally:
                # the line ended even when the work failed: the error is a line of its own
                _show(("\r\x1b[2K" if self.mode != "plain" else "") + self.line() + "\n")
        return None


def hashed_id(directory: str, options: ManifestOptions | None = None) -> str:
    """The snapshot id of ``directory``, with a live ``hash:`` line on stderr when it is a
    terminal and the hashing outlasts one interval (``snapdir id``)."""
    from ..snapshot import HashStats, build_manifest

    st = HashStats()
    with Progress("hash", "auto", poll=lambda: (st.hashed_files + st.cached_files, st.files,
                                                st.bytes)).in_thread():
        return build_manifest(directory, options, stats=st).id


class ObjectBytes:
    """The bytes of one object a ``Progress`` shows while it moves (a large one's parts or
    ranges as they go): a retried attempt first takes back what the failed one showed, so
    the object counts once however often it is sent or received. ``lock``: held around
    each change, for parts counted from worker threads."""

    __slots__ = ("_lock", "_prog", "shown")

    def __init__(self, prog: Progress, lock: threading.Lock | None = None) -> None:
        self._prog = prog
        self._lock: AbstractContextManager[object] = lock or nullcontext()
        self.shown = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.shown += n
            self._prog.add(0, n)

    def restart(self) -> None:
        """A new attempt: the last one's bytes are taken back."""
        if self.shown:
            with self._lock:
                self._prog.add(0, -self.shown)
                self.shown = 0

    def done(self, size: int) -> None:
        """The object is through: one file, and the bytes not shown yet."""
        with self._lock:
            self._prog.add(1, size - self.shown)
