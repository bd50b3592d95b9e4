"""checkout: place a manifest's files under a destination from verified objects.

* Paths come from a strictly parsed manifest (no ``..``, no absolute paths, parents are
  directories), and every directory on the way is made a real directory: a symlink found
  in the destination is replaced, never followed out of it.
* Files whose bytes already match are left alone; others are written to a temp name in the
  same directory (reflink where the filesystem can, else a kernel copy) and renamed in.
* Directory modes are applied after their contents, deepest first.
* ``delete=True`` makes the destination an exact mirror (refusing dangerous roots, and any
  mirror that would delete a snapdir store or a file of one).
* ``stop`` (see ``threads.run_interruptible``) is checked between files and directories:
  a Ctrl-C stops a checkout of many files at once, each file placed so far complete, the
  directories given back their modes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import sys
import threading
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import settings
from ..core.manifest import Hasher, Manifest
from ..errors import DestinationError, IntegrityError, SnapdirError, check_stop
from ..fileio import write_all
from ..hashing import hash_file
from ..stores.base import HISTORY, MANIFESTS, OBJECTS
from .cache import TMP_PREFIX, in_use_by_another, remove_stale_temps, temp_name

FICLONE = 0x40049409


@dataclass(slots=True)
class CheckoutResult:
    files: int = 0
    written: int = 0
    unchanged: int = 0
    deleted: int = 0
    bytes_written: int = 0


class _Copier:
    def __init__(self) -> None:
        self.reflink = True

    def copy(self, src: Path, dst: Path, mode: int) -> None:
        with open(src, "rb") as fi, open(dst, "wb") as fo:
            if self.reflink:
                try:
                    fcntl.ioctl(fo.fileno(), FICLONE, fi.fileno())
                    os.fchmod(fo.fileno(), mode)
                    return
                except OSError as exc:
                    if exc.errno not in (errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL,
                                         errno.ENOTTY, errno.EBADF, errno.ENOSYS):
                        raise
                    self.reflink = False
            _kernel_copy(fi, fo)
            os.fchmod(fo.fileno(), mode)


def reflink_into(src: Path, final: Path) -> bool:
    """Share ``src``'s blocks under ``final`` (temp name, then rename); False, leaving
    nothing behind, where the filesystem cannot (or ``src`` is gone)."""
    tmp = temp_name(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        with open(src, "rb") as fi, open(tmp, "wb") as fo:
            fcntl.ioctl(fo.fileno(), FICLONE, fi.fileno())
            os.fchmod(fo.fileno(), 0o644)
        os.replace(tmp, final)
        return True
    except OSError:
        tmp.unlink(missing_ok=True)
        return False


def _kernel_copy(fi: object, fo: object) -> None:
    src = fi.fileno()  # type: ignore[attr-defined]
    dst = fo.fileno()  # type: ignore[attr-defined]
    size = os.fstat(src).st_size
    offset = 0
    try:
        while offset < size:
            n = os.copy_file_range(src, dst, size - offset, offset, offset)
            if n == 0:
                break
            offset += n
    except OSError:
        os.lseek(src, offset, 0)
        os.lseek(dst, offset, 0)
        while block := os.read(src, 8 * 1024 * 1024):
            write_all(dst, block)


def resolve_destination(dest: Path) -> Path:
    """``dest`` itself when it is a symbolic link to a directory (a user's
    ``train -> /mnt/nvme/train``: the snapshot goes where the link points, the link stays);
    links further down are replaced, never followed. A link to nothing or to a file is
    refused."""
    if not os.path.islink(dest):
        return dest
    real = Path(os.path.realpath(dest))
    if not real.exists():
        raise DestinationError(f"{dest}: is a symbolic link to {real}, which does not exist; "
                               "create that directory or remove the link")
    if not real.is_dir():
        raise DestinationError(f"{dest}: is a symbolic link to {real}, which is not a "
                               "directory; choose a directory")
    return real


def check_destination(dest: Path, delete: bool, stores: Sequence[Path] = (),
                      own: Collection[str] | None = ()) -> Path:
    """Refuse destinations that are files, or (with --delete) too dangerous to mirror:
    ``/`` and ``$HOME`` and any directory above them, and the cache, the data directory,
    the default store and ``stores`` (local stores in use), and anything inside or above
    those (mirroring a snapshot there would delete objects); and any other snapdir store
    (``is_store``, or in this machine's catalog) and anything inside one. Stores further
    down are ``guard_stores``'s. ``own``: the store markers the snapshot itself has at its
    top (a snapshot may hold a ``.objects`` folder), which do not make ``dest`` a store;
    None when the manifest is not known yet: then ``dest`` itself is left to the check
    ``prepare_dirs`` makes with it, before anything is written."""
    if dest.exists() and not dest.is_dir():
        raise DestinationError(f"{dest}: exists and is not a directory; choose a directory")
    real = Path(os.path.realpath(dest))
    if delete:
        def real_of(p: Path | str) -> Path:
            return Path(os.path.realpath(p))

        above_only = {"/": real_of("/"), "$HOME": real_of(Path.home())}
        trees = {"the snapdir cache": real_of(settings.cache_dir()),
                 "the snapdir data directory": real_of(settings.data_dir())}
        store = settings.default_store()
        if "://" not in store or store.startswith("file://"):
            trees["the default store"] = real_of(store.removeprefix("file://"))
        for st in stores:
            trees["the store"] = real_of(st)
        for what, p in above_only.items():
            if real == p or real in p.parents:
                raise DestinationError(f"{dest}: refusing --delete on {what} or a directory "
                                       "above it; choose a directory of its own")
        for what, p in trees.items():
            if real == p or real in p.parents or p in real.parents:
                raise DestinationError(f"{dest}: refusing --delete in or above {what} ({p}): "
                                       "it would delete its files; choose a directory "
                                       "outside it")
        def in_store(where: str, p: Path) -> DestinationError:
            return DestinationError(f"{dest}: refusing --delete: {where} the snapdir store "
                                    f"{p} (it has {' or '.join(STORE_MARKERS)}); choose a "
                                    "directory outside it")

        if own is not None and is_store(real, own):
            raise in_store("it is", real)
        for p in real.parents:
            if is_store(p):
                raise in_store("it is inside", p)
        for p in catalog_store_roots():
            if real == p or p in real.parents:
                raise DestinationError(f"{dest}: refusing --delete in the snapdir store {p} "
                                       "(this machine pushed to or pulled from it): it would "
                                       "delete its files; choose a directory outside it")
    return real


#: A directory holding either is a snapdir store (a file store makes both on its first
#: write; the local cache and snapdir 1.x stores have the same layout).
STORE_MARKERS = (MANIFESTS, OBJECTS)
#: Where a store keeps its own files: deleting anything under these damages it.
STORE_DATA = (MANIFESTS, OBJECTS, HISTORY)


def is_store(path: Path | str, own: Collection[str] = ()) -> bool:
    """Whether ``path`` holds a store's ``.manifests`` or ``.objects`` (not counting the
    names in ``own``)."""
    return any(os.path.isdir(os.path.join(path, m)) for m in STORE_MARKERS if m not in own)


def catalog_store_roots() -> list[Path]:
    """The local stores this machine's catalog knows (``snapdir locations``) that are
    still directories, resolved."""
    from ..history import local_store_roots

    return [Path(os.path.realpath(p)) for p in local_store_roots() if os.path.isdir(p)]


def guard_stores(manifest: Manifest, dest: Path,
                 stop: threading.Event | None = None) -> None:
    """Refuse, before anything is removed, a ``--delete`` mirror of ``manifest`` onto
    ``dest`` that would delete a snapdir store inside ``dest`` (a directory with
    ``.manifests`` or ``.objects``, or a local store in this machine's catalog), or any
    file of one. What the snapshot itself has is not removed, so a snapshot holding such
    directories is no reason to refuse; what it lacks is: a directory not in it (or where
    it has a file), a file not in it (or where it has a directory), any link in the way."""
    real = os.path.realpath(dest)
    if not os.path.isdir(real):
        return
    shown = os.path.abspath(dest)
    inner = {os.path.relpath(p, real) for p in catalog_store_roots()
             if Path(real) in p.parents}
    dirs = {e.path[2:].rstrip("/") for e in manifest.dirs()}
    files = {e.path[2:] for e in manifest.files()}
    data: dict[str, str] = {}  # directory kept -> the store whose files it holds

    def refuse(store: str, lost: str | None = None) -> DestinationError:
        st = os.path.normpath(os.path.join(shown, store))
        what = (f"the snapdir store {st}" if lost is None else
                f"{os.path.join(shown, lost)} (not in the snapshot) in the snapdir store {st}")
        return DestinationError(f"{dest}: refusing --delete: it would delete {what}; move the "
                                "store out or choose another directory")

    for dirpath, dirnames, filenames in walk(real):
        check_stop(stop)
        here = os.path.relpath(dirpath, real)
        here = "" if here == "." else here
        prefix = here + "/" if here else ""
        root = here in inner or any(m in dirnames for m in STORE_MARKERS)
        in_store = data.get(here)
        for name in list(dirnames):
            rel = prefix + name
            full = os.path.join(dirpath, name)
            store = here if root and name in STORE_DATA else in_store
            if os.path.islink(full):  # unlinked by the mirror, never followed
                if store is not None:
                    raise refuse(store, rel)
                dirnames.remove(name)
            elif rel not in dirs or rel in files:  # removed with all it holds
                if store is not None:
                    raise refuse(store, rel)
                if (found := _store_under(real, rel, inner, stop)) is not None:
                    raise refuse(found)
                dirnames.remove(name)
            elif store is not None:
                data[rel] = store
        for name in filenames:
            rel = prefix + name
            store = here if root and name in STORE_DATA else in_store
            if store is not None and rel not in files and not name.startswith(TMP_PREFIX):
                raise refuse(store, rel)


def walk(top: str) -> Iterator[tuple[str, list[str], list[str]]]:
    """``os.walk(top, followlinks=False)``, top-down (a caller may prune ``dirnames``),
    without recursion: Python 3.11's ``os.walk`` recurses once per level, and a
    snapshot deeper than the recursion limit (about 1,000 levels) failed a ``--delete``."""
    stack = [top]
    while stack:
        dirpath = stack.pop()
        try:
            with os.scandir(dirpath) as it:
                entries = list(it)
        except OSError:  # as os.walk: gone or unreadable, skipped
            continue
        dirnames: list[str] = []
        filenames: list[str] = []
        for entry in entries:
            try:
                is_dir = entry.is_dir()  # a link to a directory is listed as os.walk does
            except OSError:
                is_dir = False
            (dirnames if is_dir else filenames).append(entry.name)
        yield dirpath, dirnames, filenames
        for name in reversed(dirnames):
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                stack.append(path)


def remove_tree(path: Path | str) -> None:
    """``shutil.rmtree(path)``, failing with one line that names the whole path of what
    could not be removed (rmtree's own error names it relative to its directory) or says
    the tree is too deep for it. A directory in it that its owner may not write to (a
    snapshot's read-only ``555`` directory, checked out before) is made writable first."""
    try:
        _remove_tree(path)
    except DestinationError as exc:
        if not isinstance(exc.__cause__, PermissionError) or not _open_up(path):
            raise
        _remove_tree(path)


def _open_up(top: Path | str) -> bool:
    """Give the directories of the tree at ``top`` (links not followed) the owner's
    ``rwx``, so that it can be emptied; whether any was changed. Each is opened up before
    ``walk`` lists it."""
    changed = _owner_rwx(os.fspath(top))
    for dirpath, dirnames, _ in walk(os.fspath(top)):
        for name in dirnames:
            changed = _owner_rwx(os.path.join(dirpath, name)) or changed
    return changed


def _owner_rwx(path: str) -> bool:
    """Give directory ``path`` (not a link) the owner's ``rwx``; whether it was changed."""
    try:
        mode = os.lstat(path).st_mode
        if not stat.S_ISDIR(mode) or mode & 0o700 == 0o700:
            return False
        os.chmod(path, stat.S_IMODE(mode) | 0o700)
    except OSError:
        return False
    return True


def _remove_tree(path: Path | str) -> None:
    def failed(func: object, name: str, info: tuple[object, BaseException, object]) -> None:
        err = info[1]
        if isinstance(err, FileNotFoundError):
            return  # removed meanwhile (a concurrent --delete into the same destination)
        why = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise DestinationError(f"{name}: cannot remove it ({why}); fix its permissions or "
                               "remove it yourself") from err

    try:
        shutil.rmtree(path, onerror=failed)
    except RecursionError:
        raise DestinationError(f"{path}: too deeply nested to remove (over "
                               f"{sys.getrecursionlimit():,} levels); remove it yourself"
                               ) from None


def _store_under(base: str, rel: str, inner: set[str],
                 stop: threading.Event | None = None) -> str | None:
    """A store at or below directory ``rel`` of ``base`` (its path relative to ``base``),
    or None."""
    for p in inner:
        if p == rel or p.startswith(rel + "/"):
            return p
    for dirpath, dirnames, _ in walk(os.path.join(base, rel)):
        check_stop(stop)
        if any(m in dirnames for m in STORE_MARKERS):
            return os.path.relpath(dirpath, base)
    return None


def _ensure_dir(path: Path, delete: bool) -> None:
    for _ in range(3):  # a concurrent pull or checkout into dest may make it meanwhile
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            try:
                os.mkdir(path, 0o700)
                return
            except FileExistsError:
                continue
        if stat.S_ISDIR(st.st_mode):
            if not st.st_mode & stat.S_IWUSR or not st.st_mode & stat.S_IXUSR:
                os.chmod(path, stat.S_IMODE(st.st_mode) | 0o700)
            return
        if not stat.S_ISLNK(st.st_mode) and not delete:
            break
        try:
            os.unlink(path)  # a link is replaced, never followed
            os.mkdir(path, 0o700)
            return
        except (FileNotFoundError, FileExistsError, IsADirectoryError):
            continue
    raise DestinationError(f"{path}: exists and is not a directory; move it away or use "
                           "--delete")


def _check_mode_settable(path: Path, mode: int) -> None:
    """Refuse, before anything is written, a directory whose mode is not the snapshot's
    and cannot be made so (it belongs to another user: a shared, writable ``/data``); the
    pull or checkout would otherwise fail only at its very end."""
    st = os.lstat(path)
    have = stat.S_IMODE(st.st_mode)
    if have == mode or st.st_uid == os.geteuid():
        return
    try:
        os.chmod(path, have)  # a no-op, allowed only to its owner (or root)
    except PermissionError:
        raise DestinationError(
            f"{path}: cannot give it the snapshot's mode {mode:o} (it has {have:o} and "
            "belongs to another user); choose a directory of your own, e.g. a new one "
            "inside it") from None


#: files at least this large may have a partial download to resume (a ranged download:
#: ``TransferConfig.multipart_threshold``, 64 MiB by default)
RESUMABLE_SIZE = 1024 * 1024


def prepare_dirs(manifest: Manifest, dest: Path, delete: bool,
                 stores: Sequence[Path] = (), *,
                 stop: threading.Event | None = None,
                 resume: bool = False) -> list[tuple[Path, int]]:
    """Make every directory of ``manifest`` a real directory under ``dest``; with
    ``delete``, first refuse a mirror that would delete a store (``guard_stores``). Failed
    or stopped, the directories made so far get their modes back. With ``resume`` (a pull
    is about to download), a dead process's partial download of a large object of the
    snapshot is left where it is, for the download of that object to take over."""
    tops = {e.path[2:].rstrip("/") for e in manifest.dirs()}
    check_destination(dest, delete, stores, own=[m for m in STORE_MARKERS if m in tops])
    if delete:
        guard_stores(manifest, dest, stop)
    dest.mkdir(parents=True, exist_ok=True)
    # a snapshot's own files named like our temps (rare) are not a dead process's leftovers
    own_temps: dict[str, set[str]] = {}
    #: directory -> its large files' objects (only large objects come in resumable ranges)
    large: dict[str, set[str]] = {}
    for e in manifest.files():
        parent, _, name = e.path[2:].rpartition("/")
        if name.startswith(TMP_PREFIX):
            own_temps.setdefault(parent, set()).add(name)
        if resume and (e.object_size is None or e.size >= RESUMABLE_SIZE):
            large.setdefault(parent, set()).add(e.checksum)
    dirs: list[tuple[Path, int]] = []
    try:
        for e in manifest.dirs():
            check_stop(stop)
            rel = e.path[2:]
            target = dest / rel if rel else dest
            _ensure_dir(target, delete)
            _check_mode_settable(target, e.mode)
            remove_stale_temps(target, own_temps.get(rel.rstrip("/"), ()),
                               large.get(rel.rstrip("/"), ()))
            dirs.append((target, e.mode))
    except BaseException:
        apply_dir_modes(dirs, best_effort=True)
        raise
    return dirs


def _matches(path: Path, st: os.stat_result, digest: str, size: int | None,
             hasher: Hasher) -> bool:
    return _problem(path, st, digest, size, hasher) is None


def in_place(path: Path, st: os.stat_result, digest: str, size: int | None, mode: int,
             hasher: Hasher) -> bool:
    """Does the file at ``path`` (``st`` its lstat) hold ``digest``, with ``mode`` (given
    to it here if it has the bytes but another mode)? A file with other hard links and
    another mode is not in place: a chmod would change those links too (a file outside the
    destination), so it is replaced instead; so is one of another user, whose mode only
    its owner may change."""
    if stat.S_IMODE(st.st_mode) != mode and st.st_nlink > 1:
        return False
    if not _matches(path, st, digest, size, hasher):
        return False
    if stat.S_IMODE(st.st_mode) != mode:
        try:
            os.chmod(path, mode)
        except PermissionError:
            return False
    return True


def _problem(path: Path, st: os.stat_result, digest: str, size: int | None,
             hasher: Hasher) -> str | None:
    """What keeps the file at ``path`` (``st`` its lstat) from holding ``digest``, if
    anything."""
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if size is not None and st.st_size != size:
        return f"the wrong size ({st.st_size:,} bytes, not {size:,})"
    try:
        got = hash_file(str(path), st.st_size, st.st_mtime_ns, hasher)
    except SnapdirError as exc:
        cause = exc.__cause__ or exc.__context__
        why = cause.strerror if isinstance(cause, OSError) and cause.strerror else str(exc)
        return f"unreadable ({why})"
    return None if got == digest else "corrupt"


def drop_bad_cached(path: Path, digest: str, size: int | None,
                    hasher: Hasher) -> str | None:
    """What is wrong with the cached object at ``path`` (None: it holds ``digest``). One
    that is wrong (a disk fault, a stray write, lost permissions) is removed, so the next
    fetch or pull downloads it again."""
    try:
        problem = _problem(path, os.lstat(path), digest, size, hasher)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        problem = f"unreadable ({exc.strerror})"
    if problem is not None and os.path.isfile(path):
        with contextlib.suppress(OSError):
            os.unlink(path)
    return problem


def cached_object_ok(path: Path, digest: str, size: int | None, hasher: Hasher) -> bool:
    """Does the cached object at ``path`` still hold ``digest``? One that does not is
    removed (see ``drop_bad_cached``), with a warning saying what was wrong once it is."""
    problem = drop_bad_cached(path, digest, size, hasher)
    if problem not in (None, "missing") and not os.path.lexists(path):
        sys.stderr.write(f"snapdir: warning: object {digest} in the local cache was "
                         f"{problem}; removed it ({path})\n")
    return problem is None


def checkout_manifest(
    manifest: Manifest,
    dest: Path,
    object_path: Callable[[str], Path],
    *,
    delete: bool = False,
    hasher: Hasher | None = None,
    progress: Callable[[int, int], None] | None = None,
    placed: set[str] | None = None,
    kept: set[str] | None = None,
    verify_sources: bool = False,
    refetch: Callable[[], str] = lambda: "snapdir fetch",
    prepared: list[tuple[Path, int]] | None = None,
    stop: threading.Event | None = None,
) -> CheckoutResult:
    """Materialise ``manifest`` under ``dest`` from files given by ``object_path(digest)``.

    ``placed``: manifest paths already written and verified by the caller (pull);
    ``kept``: paths the caller found already matching (mode fixed), left alone.
    ``verify_sources``: hash each source object (once) before its bytes are placed, and
    fail naming it if it does not hold its digest (objects from the local cache), with
    ``refetch()``, the command that gets it again, as the advice.
    ``prepared``: what the caller's own ``prepare_dirs`` on ``dest`` returned (its checks
    and store guard run, the directories made): not done a second time.
    ``stop``: once set, ``Stopped`` is raised before the next file (see ``run_interruptible``);
    failed or stopped, the directories get their modes back (best effort).
    """
    h = hasher or Hasher()
    dirs = prepared if prepared is not None else prepare_dirs(manifest, dest, delete,
                                                              stop=stop)
    result = CheckoutResult()
    copier = _Copier()
    verified: set[str] = set()
    try:
        for e in manifest.files():
            check_stop(stop)
            result.files += 1
            target = dest / e.path[2:]
            if placed is not None and e.path in placed:
                result.written += 1
                continue
            if kept is not None and e.path in kept:
                result.unchanged += 1
                continue
            src = object_path(e.checksum)
            size = src.stat().st_size
            try:
                st: os.stat_result | None = os.lstat(target)
            except FileNotFoundError:
                st = None
            if st is not None and in_place(target, st, e.checksum, size, e.mode, h):
                result.unchanged += 1
            else:
                if st is not None and stat.S_ISDIR(st.st_mode):
                    if not delete:
                        raise DestinationError(f"{target}: is a directory where the snapshot "
                                               "has a file; move it away or use --delete")
                    remove_tree(target)
                if verify_sources and e.checksum not in verified:
                    problem = drop_bad_cached(src, e.checksum, e.object_size, h)
                    if problem is not None:
                        gone = "" if os.path.lexists(src) else " and was removed"
                        raise IntegrityError(
                            f"object {e.checksum} (for {e.path[2:]}) in the local cache is "
                            f"{problem}{gone}; run `{refetch()}` again to restore it",
                            key=e.checksum, expected=e.checksum)
                    verified.add(e.checksum)
                tmp = temp_name(target)
                try:
                    copier.copy(src, tmp, e.mode)
                    os.replace(tmp, target)
                except BaseException as exc:
                    tmp.unlink(missing_ok=True)
                    if isinstance(exc, OSError) and exc.filename is None:
                        # a write or copy (a full disk): the error names no file
                        raise DestinationError(f"{target}: cannot write {e.path} there "
                                               f"({exc.strerror or exc}); check free space "
                                               "and permissions") from None
                    raise
                result.written += 1
                result.bytes_written += size
            if progress is not None:
                progress(1, size)
        if delete:
            result.deleted = _mirror(dest, manifest, stop)
    except BaseException:
        apply_dir_modes(dirs, best_effort=True)
        raise
    apply_dir_modes(dirs)
    return result


def apply_dir_modes(dirs: list[tuple[Path, int]], *, best_effort: bool = False) -> None:
    """Give ``dirs`` (made by ``prepare_dirs``) their modes, deepest first (a directory's
    own mode may forbid writing into it). ``best_effort``: skip those that fail (putting
    modes back after a failed or stopped transfer, whose error is the one to report)."""
    for path, mode in reversed(dirs):
        try:
            if stat.S_IMODE(os.stat(path).st_mode) != mode:  # a chmod needs its owner
                os.chmod(path, mode)
        except OSError:
            if not best_effort:
                raise


def _mirror(dest: Path, manifest: Manifest, stop: threading.Event | None = None) -> int:
    keep = {e.path[2:].rstrip("/") for e in manifest.entries}
    removed = 0
    for dirpath, dirnames, filenames in walk(os.fspath(dest)):
        check_stop(stop)
        rel_dir = os.path.relpath(dirpath, dest)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        for name in list(dirnames):
            rel = rel_dir + name
            full = os.path.join(dirpath, name)
            if rel not in keep or os.path.islink(full):
                check_stop(stop)
                if os.path.islink(full):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(full)
                else:
                    remove_tree(full)
                dirnames.remove(name)
                removed += 1
        for name in filenames:
            rel = rel_dir + name
            if rel not in keep and not in_use_by_another(name):
                # (another pull or checkout into ``dest``, at work: it renames it into place)
                check_stop(stop)
                with contextlib.suppress(FileNotFoundError):  # or by another --delete
                    os.unlink(os.path.join(dirpath, name))
                removed += 1
    return removed
