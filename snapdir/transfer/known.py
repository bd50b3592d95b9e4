"""What this machine knows a store holds: the ids it pushed there or pulled from there.

One small text file per store in the cache directory, one id per line, appended. The
objects of those manifests are known to be in the store (a manifest there means its
objects are there), so a re-push does not ask for them again.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..core.manifest import digest_hex

KEEP = 8  # the most recent ids per store that are used


def _path(cache_dir: Path, store_uri: str) -> Path:
    return cache_dir / "known" / digest_hex(store_uri.encode())[:32]


def known_ids(cache_dir: Path, store_uri: str) -> list[str]:
    try:
        lines = _path(cache_dir, store_uri).read_text().split()
    except (OSError, UnicodeDecodeError):
        return []  # none yet, or an unusable cache directory: an optimisation only
    out: list[str] = []
    for line in reversed(lines):
        if len(line) == 64 and line not in out:
            out.append(line)
        if len(out) >= KEEP:
            break
    return out


def remember(cache_dir: Path, store_uri: str, snapshot_id: str) -> None:
    path = _path(cache_dir, store_uri)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND writes of one short line are atomic: concurrent pushers interleave lines
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, (snapshot_id + "\n").encode())
        finally:
            os.close(fd)
    except OSError:
        pass  # an optimisation only
