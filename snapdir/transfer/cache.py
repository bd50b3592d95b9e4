"""The local cache: objects and manifests in the store layout, on local disk.

Writes go to a unique temporary name in the final directory, then ``os.replace``: a file
under its real name is always complete and verified. No locks: two processes writing the
same object race harmlessly (same bytes, atomic rename), and nothing survives a crash but
temp files, which are ignored and cleaned by the next writer of that object.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from collections.abc import Container
from pathlib import Path

from ..core.manifest import Manifest, digest_hex, parse
from ..errors import IntegrityError
from ..fileio import running, write_all
from ..stores.base import manifest_key, object_key

TMP_PREFIX = ".snapdir-tmp-"
#: exactly what ``temp_name`` makes (the pid captured, at most 7 digits as Linux's pid_max
#: allows): a file in a destination that only starts like one (``.snapdir-tmp-notes-2024-01``,
#: or a pid too large for ``os.kill``) is the user's, not a leftover
_TEMP_NAME = re.compile(r"\.snapdir-tmp-.{0,16}-([1-9][0-9]{0,6})-[0-9a-f]{8}\Z", re.DOTALL)


def temp_name(final: Path) -> Path:
    return final.with_name(f"{TMP_PREFIX}{final.name[:16]}-{os.getpid()}-{secrets.token_hex(4)}")


def temp_names(directory: Path | str) -> list[str]:
    """The names in ``directory`` shaped like our temp files' (none if it cannot be read)."""
    try:
        return [n for n in os.listdir(directory) if n.startswith(TMP_PREFIX)]
    except OSError:
        return []


#: on a large object's temp file: ``DIGEST BYTES``, its first BYTES are in and hashed; a
#: later download of DIGEST into the same directory takes the file over from there
RESUME_ATTR = "user.snapdir.resume"


def partial_of(path: Path | str) -> tuple[str, int] | None:
    """(digest, bytes in) of a large object's partial download at ``path``, or None."""
    try:
        digest, _, done = os.getxattr(path, RESUME_ATTR, follow_symlinks=False).partition(b" ")
        return digest.decode("ascii"), int(done)
    except (OSError, ValueError):
        return None


#: directories where ``remove_stale_temps`` left a partial download to take over: only
#: these are listed again by a download (a pull into a directory of 100,000 files would
#: otherwise list it once per large object)
resumable_dirs: set[str] = set()


def remove_stale_temps(directory: Path, keep: Container[str] = (),
                       resumable: Container[str] = ()) -> None:
    """Remove ``.snapdir-tmp-*`` files left in ``directory`` by a process that died (a
    crash or kill -9); those of live processes (a concurrent checkout) are left alone, and
    so are the names in ``keep`` (a snapshot's own files may be named like that) and the
    partial downloads of the objects in ``resumable`` (the download about to start takes
    them over)."""
    for name in temp_names(directory):
        if name in keep or not left_by_dead(name):
            continue
        if resumable and (part := partial_of(directory / name)) and part[0] in resumable:
            resumable_dirs.add(os.fspath(directory))
            continue
        try:
            os.unlink(directory / name)
        except (FileNotFoundError, IsADirectoryError, PermissionError):
            pass


def remove_partials(under: Path, keep: Container[str] = ()) -> None:
    """Remove the partial downloads of dead processes that ``remove_stale_temps`` left in
    the directories at or below ``under`` for a download to take over, and that none did
    (their object came from the cache, was already in place, or was downloaded to another
    of its paths): once the snapshot is in place they are of no use. ``keep``: paths of
    the snapshot's own files named like that."""
    base = os.fspath(under)
    for directory in [d for d in resumable_dirs
                      if d == base or d.startswith(base.rstrip(os.sep) + os.sep)]:
        resumable_dirs.discard(directory)
        for name in temp_names(directory):
            path = os.path.join(directory, name)
            if path not in keep and left_by_dead(name) and partial_of(path) is not None:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def in_use_by_another(name: str) -> bool:
    """Is ``name`` a temp file of another process that is still running (a concurrent
    pull or checkout into the same directory, about to rename it into place)?"""
    pid = _writer(name)
    return pid is not None and pid != os.getpid() and running(pid)


def left_by_dead(name: str) -> bool:
    """Is ``name`` a temp file whose writer has died (a crash or kill -9)?"""
    pid = _writer(name)
    return pid is not None and pid != os.getpid() and not running(pid)


def _writer(name: str) -> int | None:
    """The process id in a temp file's name (see ``temp_name``), or None."""
    m = _TEMP_NAME.match(name)
    return int(m.group(1)) if m is not None else None


def open_cache() -> LocalCache:
    """The local cache, refused with a clear message if its directory cannot be one."""
    from .. import settings
    from ..errors import DestinationError
    from ..stores.file import blocking_file

    root = settings.cache_dir()
    if (blocker := blocking_file(root)) is not None:
        raise DestinationError(f"the snapdir cache {root} cannot be used: {blocker} is a "
                               "file, not a directory; set SNAPDIR_CACHE_DIR to a directory")
    return LocalCache(settings.object_cache_dir())


class LocalCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def object_path(self, digest: str) -> Path:
        return self.root / object_key(digest)

    def manifest_path(self, snapshot_id: str) -> Path:
        return self.root / manifest_key(snapshot_id)

    def clean_temps(self, digest: str, resume: bool = True) -> None:
        """Remove what a killed process left while writing ``digest`` (its temp files),
        but for its partial download if ``resume`` (a fetch into the cache takes it over)."""
        remove_stale_temps(self.object_path(digest).parent,
                           resumable={digest} if resume else ())

    def usable(self, digest: str, size: int | None) -> bool:
        """Is ``digest`` cached as a regular file of ``size`` bytes (any size if None: see
        ``Entry.object_size``)? Whatever else sits in
        its place (a truncated copy, a directory, a link) is removed, with the temp files
        of killed writers, so the next fetch writes it afresh. A stat, not a hash: pull
        and checkout hash what they take from the cache."""
        path = self.object_path(digest)
        try:
            st = os.lstat(path)
        except OSError:
            self.clean_temps(digest)
            return False
        if stat.S_ISREG(st.st_mode) and size in (None, st.st_size):
            return True
        try:
            if stat.S_ISDIR(st.st_mode):
                shutil.rmtree(path)
            else:
                path.unlink()
        except OSError:
            pass
        self.clean_temps(digest)
        return False

    def has_object(self, digest: str) -> bool:
        return os.path.isfile(self.object_path(digest))

    def load_manifest(self, snapshot_id: str) -> Manifest | None:
        """The cached manifest of ``snapshot_id`` (checked against the id), or None."""
        try:
            data = self.manifest_path(snapshot_id).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None  # not cached (or no usable cache directory)
        except IsADirectoryError:
            shutil.rmtree(self.manifest_path(snapshot_id), ignore_errors=True)
            return None
        if digest_hex(data) != snapshot_id:
            raise IntegrityError(
                f"cached manifest {snapshot_id} is corrupt (its bytes hash to "
                f"{digest_hex(data)}); delete {self.manifest_path(snapshot_id)} and fetch again",
                key=manifest_key(snapshot_id), expected=snapshot_id, actual=digest_hex(data))
        return parse(data)

    def save_bytes(self, final: Path, data: bytes) -> None:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_name(final)
        try:
            with open(tmp, "wb", buffering=0) as fh:
                write_all(fh.fileno(), data)
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def save_manifest(self, snapshot_id: str, data: bytes) -> None:
        self.save_bytes(self.manifest_path(snapshot_id), data)
