"""Persistent stat cache: (device, inode, size, mtime_ns, ctime_ns) -> checksum.

Re-running ``snapdir id`` on an unchanged tree reads no file contents. Like git's index,
the cache is one file per (tree root, checksum algorithm) in the cache directory, holding
``{(dev, ino): (size, mtime_ns, ctime_ns, checksum)}``; it loads in one read (marshal) and
is replaced atomically (write a temp file, rename), so several processes may use it at
once: readers see an old or a new index, never a torn one; the last writer wins.

Never stale:

* every field must match, and ctime changes on any write, chmod or rename;
* a file whose mtime or ctime is within ``RACY_NS`` of the moment the run started is not
  cached (the "racy git" problem: a write in the same timestamp tick as our read would
  leave mtime unchanged), so it is simply hashed again next time.

``NoStatCache`` is the same interface doing nothing (``--no-stat-cache``).
"""

from __future__ import annotations

import marshal
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import blake3

from .scan import PendingFile

RACY_NS = 2_000_000_000
_VERSION = 1

Key = tuple[int, int]
Row = tuple[int, int, int, str]


class NoStatCache:
    """The stat cache switched off."""

    def get(self, f: PendingFile) -> str | None:
        return None

    def update(self, rows: Iterable[tuple[PendingFile, str]], started_ns: int) -> None:
        return None


class StatCache(NoStatCache):
    """The index of one tree root for one checksum algorithm."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: dict[Key, Row] = {}
        try:
            data = path.read_bytes()
            version, rows = marshal.loads(data)
            if version == _VERSION and isinstance(rows, dict):
                self._rows = rows
        except FileNotFoundError:
            pass
        except (OSError, ValueError, EOFError, TypeError) as exc:
            sys.stderr.write(f"snapdir: warning: ignoring unreadable stat cache {path} ({exc})\n")

    def get(self, f: PendingFile) -> str | None:
        row = self._rows.get((f.dev, f.ino))
        if row is not None and row[0] == f.data_size and row[1] == f.mtime_ns \
                and row[2] == f.ctime_ns:
            return row[3]
        return None

    def update(self, rows: Iterable[tuple[PendingFile, str]], started_ns: int) -> None:
        """Replace the index with exactly ``rows`` (the files of this run), minus racy ones."""
        limit = started_ns - RACY_NS
        fresh: dict[Key, Row] = {
            (f.dev, f.ino): (f.data_size, f.mtime_ns, f.ctime_ns, cs)
            for f, cs in rows if f.mtime_ns < limit and f.ctime_ns < limit
        }
        if fresh == self._rows:
            return
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{time.time_ns()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(marshal.dumps((_VERSION, fresh)))
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            sys.stderr.write(
                f"snapdir: warning: stat cache not updated in {self.path.parent} ({exc})\n")


def open_stat_cache(cache_dir: Path, root: str, tag: str, enabled: bool = True) -> NoStatCache:
    """The stat cache of ``root`` (absolute) for checksum ``tag``, or a no-op one."""
    if not enabled:
        return NoStatCache()
    name = blake3.blake3(f"{tag}\0{root}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return StatCache(cache_dir / "stat" / f"{name}.idx")


def now_ns() -> int:
    return time.time_ns()
