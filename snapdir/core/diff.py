"""Pure diff of two manifests: added / deleted / modified paths."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from .manifest import Manifest


class Change(enum.Enum):
    ADDED = "A"
    DELETED = "D"
    MODIFIED = "M"


@dataclass(frozen=True, slots=True)
class PathChange:
    change: Change
    path: str
    kind: str  # "F" or "D"

    def to_json(self) -> dict[str, str]:
        return {"change": self.change.name.lower(), "path": self.path, "type": self.kind}


def diff(old: Manifest, new: Manifest, *, dirs: bool = False) -> Iterator[PathChange]:
    """Changes from ``old`` to ``new`` in path order. A file is modified when its content
    or mode differs; directories are reported only with ``dirs`` (their checksums change
    whenever anything below them does)."""
    a = {e.path: e for e in old.entries if dirs or not e.is_dir}
    b = {e.path: e for e in new.entries if dirs or not e.is_dir}
    for path in sorted(a.keys() | b.keys()):
        ea, eb = a.get(path), b.get(path)
        if ea is None and eb is not None:
            yield PathChange(Change.ADDED, path, eb.kind)
        elif eb is None and ea is not None:
            yield PathChange(Change.DELETED, path, ea.kind)
        elif ea is not None and eb is not None and (
                ea.kind != eb.kind or ea.checksum != eb.checksum or ea.mode != eb.mode):
            yield PathChange(Change.MODIFIED, path, eb.kind)
