"""Pure planning: what to send or fetch, given what is known. No I/O here."""

from __future__ import annotations

import fnmatch
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from .manifest import Manifest, from_entries


@dataclass(frozen=True, slots=True)
class UploadPlan:
    """``upload``: certainly missing; ``check``: unknown, ask the store (HEAD) first;
    ``skip``: known present (a manifest in the store references it, or a listing showed it)."""

    upload: tuple[str, ...]
    check: tuple[str, ...]
    skip: int


def plan_upload(objects: Iterable[str], known_present: Collection[str],
                listed: Collection[str] | None) -> UploadPlan:
    """Decide per distinct object.

    ``listed`` is the complete set of objects in the store when a listing was cheap enough
    to finish, else None (then every object not known present is checked).
    """
    upload: list[str] = []
    check: list[str] = []
    skip = 0
    for d in sorted(set(objects)):
        if d in known_present or (listed is not None and d in listed):
            skip += 1
        elif listed is not None:
            upload.append(d)
        else:
            check.append(d)
    return UploadPlan(tuple(upload), tuple(check), skip)


def plan_fetch(objects: Iterable[str], cached: Collection[str]) -> tuple[str, ...]:
    """Distinct objects not in the local cache, each once."""
    return tuple(sorted({d for d in objects if d not in cached}))


def select(manifest: Manifest, patterns: Sequence[str]) -> Manifest:
    """The part of ``manifest`` whose file paths match any glob in ``patterns``.

    A pattern matches a file's path relative to the snapshot root (``shard-0[0-3]/*``,
    ``*.json``), or a directory's, whose whole subtree is then selected (``shard-01``,
    ``shard-0[01]``, an empty directory too). The directories above selected entries are
    kept (with their manifest lines) so the checkout has the same shape; nothing else is.
    A pattern that selects nothing of a snapshot that has entries is refused
    (UsageError), alone or beside others: a typo must not pass for a pull.
    """
    pats = [p.removeprefix("./") for p in patterns]
    roots = [p.rstrip("/") for p in pats]
    used = [False] * len(pats)
    # directories a pattern names or matches: their subtrees are selected
    chosen: set[str] = set()
    for e in manifest.dirs():
        rel = e.path[2:].rstrip("/")
        if rel:
            for i, r in enumerate(roots):
                if fnmatch.fnmatchcase(rel, r):
                    used[i] = True
                    chosen.add(rel)

    def under_chosen(rel: str) -> bool:
        cut = rel.rfind("/")
        while cut > 0:
            if rel[:cut] in chosen:
                return True
            cut = rel.rfind("/", 0, cut)
        return False

    keep_files = []
    for e in manifest.files():
        rel = e.path[2:]
        hit = False
        for i, (p, r) in enumerate(zip(pats, roots, strict=True)):
            if fnmatch.fnmatchcase(rel, p) or rel.startswith(r + "/"):
                used[i] = hit = True
        if hit or (chosen and under_chosen(rel)):
            keep_files.append(e)
    parents = {"./"}
    for rel in [e.path[2:] for e in keep_files] + [c + "/" for c in chosen]:
        parts = rel.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            parents.add("./" + "/".join(parts[:i]) + "/")
    kept = [e for e in manifest.entries
            if e.is_dir and (e.path in parents or (chosen and under_chosen(e.path[2:].rstrip("/"))))]
    unused = [q for q, u in zip(patterns, used, strict=True) if not u]
    if unused and any(e.path != "./" for e in manifest.entries):
        from ..errors import UsageError

        shown = " ".join(f"--include {q!r}" for q in unused)
        raise UsageError(f"{shown} matches no file or directory of the snapshot; a pattern "
                         "is a glob on paths relative to its root, where * also matches "
                         "'/' ('shard-0[0-3]/*', '*.json'), or a directory's path")
    return from_entries([*kept, *keep_files])
