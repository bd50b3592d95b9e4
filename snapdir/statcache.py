"""Persistent stat cache: (device, inode, size, mtime_ns, ctime_ns) -> checksum.

Re-running ``snapdir id`` on an unchanged tree reads no file contents. SQLite in WAL mode,
so several processes may use it at once. Never stale:

* every field of the key must match, and ctime changes on any write, chmod or rename;
* a file whose mtime or ctime is within ``RACY_NS`` of the moment it was hashed is not
  cached at all (the "racy git" problem: a write in the same timestamp tick as our read
  would leave mtime unchanged), so it is simply hashed again next time.

``NoStatCache`` is the same interface doing nothing (``--no-stat-cache``).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

from .scan import PendingFile

RACY_NS = 2_000_000_000
_CHUNK = 500
_SCHEMA = """
CREATE TABLE IF NOT EXISTS stat (
    dev INTEGER NOT NULL, ino INTEGER NOT NULL, algo TEXT NOT NULL,
    size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (dev, ino, algo)
) WITHOUT ROWID
"""


class NoStatCache:
    """The stat cache switched off."""

    def lookup(self, files: Sequence[PendingFile], algo: str) -> list[str | None]:
        return [None] * len(files)

    def store(self, rows: Iterable[tuple[PendingFile, str]], algo: str, started_ns: int) -> None:
        return None

    def close(self) -> None:
        return None


class StatCache(NoStatCache):
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def lookup(self, files: Sequence[PendingFile], algo: str) -> list[str | None]:
        found: dict[tuple[int, int], tuple[int, int, int, str]] = {}
        for i in range(0, len(files), _CHUNK):
            chunk = files[i:i + _CHUNK]
            inos = sorted({f.ino for f in chunk})
            q = ("SELECT dev, ino, size, mtime_ns, ctime_ns, checksum FROM stat "
                 f"WHERE algo=? AND ino IN ({','.join('?' * len(inos))})")
            for dev, ino, size, mt, ct, cs in self._db.execute(q, (algo, *inos)):
                found[(dev, ino)] = (size, mt, ct, cs)
        out: list[str | None] = []
        for f in files:
            hit = found.get((f.dev, f.ino))
            if hit and hit[0] == f.data_size and hit[1] == f.mtime_ns and hit[2] == f.ctime_ns:
                out.append(hit[3])
            else:
                out.append(None)
        return out

    def store(self, rows: Iterable[tuple[PendingFile, str]], algo: str, started_ns: int) -> None:
        limit = started_ns - RACY_NS
        data = [(f.dev, f.ino, algo, f.data_size, f.mtime_ns, f.ctime_ns, cs)
                for f, cs in rows if f.mtime_ns < limit and f.ctime_ns < limit]
        if not data:
            return
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("INSERT OR REPLACE INTO stat VALUES (?,?,?,?,?,?,?)", data)
        except sqlite3.Error as exc:
            print(f"snapdir: warning: stat cache not updated ({exc})", file=sys.stderr)

    def close(self) -> None:
        self._db.close()


def open_stat_cache(cache_dir: Path, enabled: bool = True) -> NoStatCache:
    """The stat cache in ``cache_dir``, or a no-op one if disabled or unusable."""
    if not enabled:
        return NoStatCache()
    try:
        return StatCache(cache_dir / "statcache-v1.sqlite")
    except (sqlite3.Error, OSError) as exc:
        print(f"snapdir: warning: stat cache unavailable in {cache_dir} ({exc}); hashing "
              "everything", file=sys.stderr)
        return NoStatCache()


def now_ns() -> int:
    return time.time_ns()


__all__ = ["NoStatCache", "StatCache", "now_ns", "open_stat_cache"]
