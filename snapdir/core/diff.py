"""Pure diff of two manifests: added / deleted / modified paths."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import UsageError
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


def diff(old: Manifest, new: Manifest) -> Iterator[PathChange]:
    """Changes from ``old`` to ``new`` (manifests, e.g. ``snapdir.manifest(path)``) in path
    order; anything else is a UsageError here, not an AttributeError once iterated."""
    for arg in (old, new):
        if not isinstance(arg, Manifest):
            raise UsageError(f"diff takes two Manifests (snapdir.manifest(path)), not "
                             f"{type(arg).__name__} {arg!r:.80}")
    return _diff(old, new)


def _diff(old: Manifest, new: Manifest) -> Iterator[PathChange]:
    """Changes from ``old`` to ``new`` in path order. A file is modified when its content
    or mode differs. A directory is reported when it is added or deleted (an empty one
    changes the snapshot as much as a file) or its own mode differs, never for its
    checksum alone (that changes whenever anything below it does): no changes means
    the same id."""
    a = {e.path: e for e in old.entries}
    b = {e.path: e for e in new.entries}
    for path in sorted(a.keys() | b.keys()):
        ea, eb = a.get(path), b.get(path)
        if ea is None and eb is not None:
            yield PathChange(Change.ADDED, path, eb.kind)
        elif eb is None and ea is not None:
            yield PathChange(Change.DELETED, path, ea.kind)
        elif ea is not None and eb is not None and (
                ea.kind != eb.kind or ea.mode != eb.mode
                or (ea.checksum != eb.checksum and not ea.is_dir)):
            yield PathChange(Change.MODIFIED, path, eb.kind)
