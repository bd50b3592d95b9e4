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

from .core.manifest import DirNode
from .errors import SourceError, SymlinkCycle, UnsupportedName

_POSIX_CLASSES = {
    "alnum": "a-zA-Z0-9", "alpha": "a-zA-Z", "digit": "0-9", "lower": "a-z", "upper": "A-Z",
    "space": r" \t\r\n\v\f", "xdigit": "0-9A-Fa-f", "punct": r"!-/:-@\[-`{-~", "blank": r" \t",
    "word": r"\w", "cntrl": r"\x00-\x1f\x7f", "print": r"\x20-\x7e", "graph": r"\x21-\x7e",
}


def compile_excludes(patterns: Sequence[str]) -> re.Pattern[str] | None:
    """Compile extended regexes (POSIX bracket classes such as [[:digit:]] accepted)."""
    if not patterns:
        return None
    parts = []
    for p in patterns:
        q = re.sub(r"\[:(\w+):\]", lambda m: _POSIX_CLASSES.get(m.group(1), m.group(0)), p)
        try:
            re.compile(q)
        except re.error as exc:
            from .errors import UsageError

            raise UsageError(f"--exclude {p!r} is not a valid regular expression: {exc}") from None
        parts.append(f"(?:{q})")
    return re.compile("|".join(parts))


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


def _check_name(name: str, where: str) -> None:
    if "\n" in name:
        raise UnsupportedName(
            f"{where!r}: a name holding a newline cannot be written in a manifest; rename it "
            "or --exclude it", where)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        shown = where.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        raise UnsupportedName(
            f"{shown!r}: the name is not valid UTF-8 and cannot be written in a manifest; "
            "rename it or --exclude it", shown) from None


def walk(
    root: str,
    *,
    follow: bool = True,
    exclude: re.Pattern[str] | None = None,
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
