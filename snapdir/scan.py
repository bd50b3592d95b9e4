"""Walk a directory tree into manifest-shaped nodes (sync; runs in a worker thread).

Follows snapdir 1.x: symlinks are followed by default (the link's own mode and size, the
target's content), dangling links, FIFOs, sockets and devices are left out, ``--exclude``
regexes are searched in the absolute entry path. Better than 1.x: names that cannot be
written in a manifest (newline, not UTF-8) are refused, and a symlink cycle is reported at
once.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from .core.manifest import DirNode
from .errors import SourceError, SymlinkCycle, UnsupportedName, UsageError

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "lower": "a-z", "upper": "A-Z",
    "space": r" \t\r\n\v\f", "xdigit": "0-9A-Fa-f", "punct": r"!-/:-@\[-`{-~", "blank": r" \t",
    "word": "0-9A-Za-z_", "ascii": r"\x00-\x7f", "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e",
    "graph": r"\x21-\x7e",
}


class Excludes(Protocol):
    """What the walk asks of ``--exclude``: a search in an entry's absolute path."""

    def search(self, string: str, /) -> object: ...


class _AnyOf:
    """Several ``--exclude`` patterns, each compiled on its own: joined into one
    alternation, a pattern's leading inline flags (``(?i)``) would no longer lead."""

    __slots__ = ("_patterns",)

    def __init__(self, patterns: list[re.Pattern[str]]) -> None:
        self._patterns = patterns

    def search(self, string: str, /) -> re.Match[str] | None:
        for p in self._patterns:
            if m := p.search(string):
                return m
        return None


def _refuse(pattern: str, why: str) -> UsageError:
    return UsageError(f"--exclude {pattern!r} {why}")


def _to_python(p: str) -> str:
    """Rust-regex syntax (what snapdir 1.x takes) to Python's ``re`` where they differ.

    POSIX classes (``[[:digit:]]``, ``[[:^digit:]]``) are expanded only inside a bracket
    expression (``[:digit:]`` alone is the set of ``:digit`` in both dialects); ``\\<``,
    ``\\>`` and ``\\z`` become their Python spellings. Nested classes and set operations
    (``&&``, ``--``, ``~~``) are refused by the caller (Python reads them differently).
    """
    out: list[str] = []
    i, n = 0, len(p)
    in_class = False
    while i < n:
        c = p[i]
        if c == "\\" and i + 1 < n:
            nxt = p[i + 1]
            if not in_class and nxt in "<>z":
                out.append({"<": r"\b(?=\w)", ">": r"\b(?<=\w)", "z": r"\Z"}[nxt])
            else:
                out.append(p[i:i + 2])
            i += 2
            continue
        if not in_class:
            if c == "[":
                in_class = True
                j = i + 1 + (p[i + 1:i + 2] == "^")
                if p[j:j + 1] == "]":  # a leading ']' is a member
                    j += 1
                if m := re.match(r"\[:\^(\w+):\]\]", p[j:]):
                    # [[:^name:]] alone: the negated class
                    if j == i + 1 and m.group(1) in _POSIX_CLASSES:
                        out.append(f"[^{_POSIX_CLASSES[m.group(1)]}]")
                        i = j + m.end()
                        in_class = False
                        continue
                    raise _refuse(p, "negates a POSIX class inside a larger bracket "
                                  "expression, which snapdir cannot translate; rewrite it")
                out.append(p[i:j])
                i = j
                continue
            out.append(c)
            i += 1
            continue
        if c == "]":
            in_class = False
        elif c == "[" and (m := re.match(r"\[:(\^?)(\w+):\]", p[i:])):
            if m.group(1) or m.group(2) not in _POSIX_CLASSES:
                raise _refuse(p, f"uses the POSIX class {m.group(0)!r}, which snapdir cannot "
                              "translate; rewrite it")
            out.append(_POSIX_CLASSES[m.group(2)])
            i += m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out)


def compile_excludes(patterns: Sequence[str]) -> Excludes | None:
    """Compile extended regexes as snapdir 1.x (Rust regex) reads them, or refuse them."""
    if not patterns:
        return None
    import warnings

    compiled = []
    for p in patterns:
        q = _to_python(p)
        try:
            with warnings.catch_warnings():
                # Python warns where it reads a Rust construct differently: a nested class
                # or a set operation in a bracket expression
                warnings.simplefilter("error", FutureWarning)
                compiled.append(re.compile(q))
        except FutureWarning as exc:
            raise _refuse(p, f"uses a nested character class or a set operation ({exc}), "
                          "which snapdir cannot read as snapdir 1.x does; rewrite it") from None
        except re.error as exc:
            raise _refuse(p, f"is not a valid regular expression: {exc}") from None
    return compiled[0] if len(compiled) == 1 else _AnyOf(compiled)


def absolute(path: str) -> str:
    """Like Rust's std::path::absolute: join with the cwd, drop '.' parts, keep '..'."""
    if not path.startswith("/"):
        path = os.getcwd() + "/" + path
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


@dataclass(slots=True)
class PendingFile:
    """A file seen by the walk, waiting for its checksum."""

    parent: DirNode
    path: str  # manifest path
    mode: int  # manifest mode (the link's own for a followed link)
    size: int  # manifest size (the link's own for a followed link)
    source: str  # what to read
    dev: int
    ino: int
    data_size: int
    mtime_ns: int
    ctime_ns: int


def _check_name(name: str, where: str, advice: str = "rename it or --exclude it") -> None:
    if "\n" in name:
        raise UnsupportedName(
            f"{where!r}: a name holding a newline cannot be written in a manifest; {advice}",
            where)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = where.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise UnsupportedName(
            f"{shown!r}: the name is not valid UTF-8 and cannot be written in a manifest; "
            f"{advice}", shown) from None


def walk(
    root: str,
    *,
    follow: bool = True,
    exclude: Excludes | None = None,
    absolute_paths: bool = False,
    batch: int = 256,
) -> Iterator[list[PendingFile] | DirNode]:
    """Yield batches of files to hash as they are found, then the root DirNode last."""
    abs_root = absolute(root)
    try:
        st = os.lstat(root.rstrip("/") or "/")
        target = os.stat(root) if stat.S_ISLNK(st.st_mode) else st
    except FileNotFoundError:
        raise SourceError(f"{root}: no such directory; check the path", root) from None
    except PermissionError:
        raise SourceError(f"{root}: permission denied; check its permissions", root) from None
    except OSError as exc:
        raise SourceError(f"{root}: cannot read it ({exc.strerror})", root) from None
    if not stat.S_ISDIR(target.st_mode):
        raise SourceError(f"{root}: not a directory; give a directory to snapshot", root)
    prefix = abs_root.rstrip("/") + "/" if absolute_paths else "./"
    if absolute_paths and ("\n" in prefix or not prefix.isascii()):
        # every manifest path starts with it: no --exclude helps
        _check_name(prefix, prefix, "rename it or leave out --absolute")
    top = DirNode(prefix, stat.S_IMODE(st.st_mode), [], [])
    pending: list[PendingFile] = []
    # stack of (fs path, manifest path, node, ancestors' (dev, ino))
    stack: list[tuple[str, str, DirNode, frozenset[tuple[int, int]]]] = [
        (root.rstrip("/") or "/", "", top, frozenset({(target.st_dev, target.st_ino)}))
    ]
    S_ISLNK, S_ISREG, S_ISDIR, S_IMODE = stat.S_ISLNK, stat.S_ISREG, stat.S_ISDIR, stat.S_IMODE
    dir_flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    while stack:
        fs_dir, rel_dir, node, ancestors = stack.pop()
        # scandir on a directory fd: DirEntry.stat is then fstatat(fd, name), no path walk
        try:
            dfd = os.open(fs_dir, dir_flags)
            try:
                with os.scandir(dfd) as it:
                    entries = list(it)
            except BaseException:
                os.close(dfd)
                raise
        except PermissionError:
            raise SourceError(
                f"{fs_dir}: permission denied reading the directory; fix its permissions or "
                "--exclude it", fs_dir) from None
        except OSError as exc:
            raise SourceError(f"{fs_dir}: cannot read the directory ({exc.strerror})",
                              fs_dir) from None
        try:
            fs_base = fs_dir + "/" if fs_dir != "/" else "/"
            # one check for the whole directory; per name only if something looks wrong
            names_ok = "\n" not in (joined := "/".join(de.name for de in entries)) and \
                joined.isascii()
            rel_base = prefix + rel_dir
            for de in entries:
                name = de.name
                rel = rel_dir + name
                if exclude is not None and exclude.search(abs_root + "/" + rel):
                    continue
                try:
                    lst = de.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue  # vanished between readdir and stat
                mode = lst.st_mode
                if S_ISLNK(mode):
                    if not follow:
                        continue
                    try:
                        tst = os.stat(fs_base + name)
                    except OSError:
                        continue  # dangling (or unreadable) link: left out, like 1.x
                    tmode = tst.st_mode
                else:
                    tst = lst
                    tmode = mode
                if S_ISREG(tmode):
                    if not names_ok:
                        _check_name(name, fs_base + name)
                    pending.append(PendingFile(
                        node, rel_base + name, S_IMODE(mode), lst.st_size, fs_base + name,
                        tst.st_dev, tst.st_ino, tst.st_size, tst.st_mtime_ns, tst.st_ctime_ns))
                    if len(pending) >= batch:
                        yield pending
                        pending = []
                elif S_ISDIR(tmode):
                    fs_path = fs_base + name
                    if not names_ok:
                        _check_name(name, fs_path)
                    key = (tst.st_dev, tst.st_ino)
                    if key in ancestors:
                        raise SymlinkCycle(
                            f"{fs_path}: symlink cycle (it leads back to one of its own parent "
                            "directories); use --no-follow or --exclude it", fs_path)
                    child = DirNode(rel_base + name + "/", S_IMODE(mode), [], [])
                    node.dirs.append(child)
                    stack.append((fs_path, rel + "/", child, ancestors | {key}))
                # FIFOs, sockets, devices: left out, like 1.x
        finally:
            os.close(dfd)
    if pending:
        yield pending
    yield top
