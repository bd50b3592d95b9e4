"""Persistent stat cache: (device, inode, size, mtime_ns, ctime_ns) -> checksum.

Re-running ``snapdir id`` on an unchanged tree reads no file contents. Like git's index,
the cache is one file per (tree root, checksum algorithm) in the cache directory, holding
``{dev << 64 | ino: packed (size, mtime_ns, ctime_ns) + raw checksum}`` (one int and one
bytes object per file: ~165 bytes of memory a file instead of ~330 as tuples); it loads
in one read (marshal) and is replaced atomically (write a temp file, rename), so several
processes may use it at once: readers see an old or a new index, never a torn one; the
last writer wins.

Never stale:

* every field must match, and ctime changes on any write, chmod or rename;
* a file whose mtime or ctime is within ``RACY_NS`` of the moment the run started is not
  cached (the "racy git" problem: a write in the same timestamp tick as our read would
  leave mtime unchanged), so it is simply hashed again next time.

``NoStatCache`` is the same interface doing nothing (``--no-stat-cache``).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import struct
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import blake3

from .fileio import running
from .scan import PendingFile

RACY_NS = 2_000_000_000
_VERSION = 2
_STAT = struct.Struct("<qqq")  # size, mtime_ns, ctime_ns
_PACK = _STAT.pack
_N = _STAT.size

Key = int
Row = bytes


class NoStatCache:
    """The stat cache switched off."""

    def get(self, f: PendingFile) -> str | None:
        return None

    def hit(self, f: PendingFile) -> str | None:
        """Like ``get``, and a hit is kept for ``save`` (a cached row is never racy)."""
        return None

    def begin(self, started_ns: int) -> None:
        """The run starts now: files changed less than ``RACY_NS`` before are not kept."""

    def add(self, f: PendingFile, checksum: str) -> None:
        """One file of this run and its checksum (kept unless racy)."""

    def save(self) -> None:
        """Replace the index with exactly the files added in this run."""

    def update(self, rows: Iterable[tuple[PendingFile, str]], started_ns: int) -> None:
        """Replace the index with exactly ``rows`` (the files of this run), minus racy ones."""
        self.begin(started_ns)
        for f, cs in rows:
            self.add(f, cs)
        self.save()


class StatCache(NoStatCache):
    """The index of one tree root for one checksum algorithm."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._rows: dict[Key, Row] = {}
        self._fresh: dict[Key, Row] = {}
        self._limit = 0
        try:
            with open(path, "rb") as fh:
                data = fh.read()
            version, rows = marshal.loads(data)
            if version == _VERSION and isinstance(rows, dict):
                self._rows = rows
        except FileNotFoundError:
            pass
        except (OSError, ValueError, EOFError, TypeError) as exc:
            sys.stderr.write(f"snapdir: warning: ignoring unreadable stat cache {path} ({exc})\n")

    def get(self, f: PendingFile) -> str | None:
        row = self._rows.get(f.dev << 64 | f.ino)
        if row is not None and row.startswith(_PACK(f.data_size, f.mtime_ns, f.ctime_ns)):
            return row[_N:].hex()
        return None

    def hit(self, f: PendingFile) -> str | None:
        key = f.dev << 64 | f.ino
        row = self._rows.get(key)
        if row is not None and row.startswith(_PACK(f.data_size, f.mtime_ns, f.ctime_ns)):
            self._fresh[key] = row  # the same object: save() then compares cheaply
            return row[_N:].hex()
        return None

    def begin(self, started_ns: int) -> None:
        self._limit = started_ns - RACY_NS
        self._fresh = {}

    def add(self, f: PendingFile, checksum: str) -> None:
        if f.mtime_ns < self._limit and f.ctime_ns < self._limit:
            self._fresh[f.dev << 64 | f.ino] = _PACK(f.data_size, f.mtime_ns, f.ctime_ns) + \
                bytes.fromhex(checksum)

    def save(self) -> None:
        fresh, self._fresh = self._fresh, {}
        if fresh == self._rows:
            return
        self._rows = fresh
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.{time.time_ns()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(marshal.dumps((_VERSION, fresh)))
            os.replace(tmp, self.path)
            self._remove_left_temps()
        except OSError as exc:
            with contextlib.suppress(OSError):  # the cache dir may be a file, or unreadable
                tmp.unlink(missing_ok=True)
            sys.stderr.write(
                f"snapdir: warning: stat cache not updated in {self.path.parent} ({exc})\n")


    def _remove_left_temps(self) -> None:
        """Remove this index's temp files whose writer died mid-save (kill -9): nothing
        else ever would, and a large tree's index is tens of MB."""
        head = f"{self.path.name}."
        with contextlib.suppress(OSError):
            for name in os.listdir(self.path.parent):
                pid, _, rest = name.removeprefix(head).partition(".")
                if (name.startswith(head) and rest.endswith(".tmp") and pid.isdigit()
                        and len(pid) <= 7 and int(pid) != os.getpid()
                        and not running(int(pid))):
                    with contextlib.suppress(OSError):
                        os.unlink(self.path.parent / name)


def open_stat_cache(cache_dir: Path, root: str, tag: str, enabled: bool = True) -> NoStatCache:
    """The stat cache of ``root`` (absolute) for checksum ``tag``, or a no-op one."""
    if not enabled:
        return NoStatCache()
    name = blake3.blake3(f"{tag}\0{root}".encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return StatCache(cache_dir / "stat" / f"{name}.idx")


def now_ns() -> int:
    return time.time_ns()
