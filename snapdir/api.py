"""The Python API (sync functions and their async twins)."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.to_thread

from .core.manifest import Manifest
from .errors import SnapdirError, UsageError, nonempty_path
from .snapshot import ManifestOptions, build_manifest

PathLike = str | os.PathLike[str]
T = TypeVar("T")


def manifest(
    path: PathLike,
    *,
    follow: bool = True,
    exclude: Sequence[str] | str = (),
    checksum_bin: str = "b3sum",
    absolute: bool = False,
    stat_cache: bool | None = None,
) -> Manifest:
    """The manifest of the directory ``path``."""
    excludes = tuple(_items(exclude, "exclude"))  # one regex as a str is one, not its letters
    opts = ManifestOptions(follow=follow, exclude=excludes, checksum_bin=checksum_bin,
                           absolute=absolute)
    if stat_cache is not None:
        opts = ManifestOptions(follow=follow, exclude=excludes,
                               checksum_bin=checksum_bin, absolute=absolute,
                               stat_cache=stat_cache)
    return build_manifest(Path(nonempty_path(path, "the directory to snapshot")), opts)


def snapshot_id(path: PathLike, *, follow: bool = True,
                exclude: Sequence[str] | str = (),
                stat_cache: bool | None = None) -> str:
    """The snapshot id of the directory ``path`` (64 lowercase hex)."""
    return manifest(path, follow=follow, exclude=exclude, stat_cache=stat_cache).id


id = snapshot_id


async def amanifest(path: PathLike, *, follow: bool = True,
                    exclude: Sequence[str] | str = (), checksum_bin: str = "b3sum",
                    absolute: bool = False, stat_cache: bool | None = None) -> Manifest:
    """Async twin of :func:`manifest` (hashing runs in worker threads)."""
    def run() -> Manifest:
        return manifest(path, follow=follow, exclude=exclude, checksum_bin=checksum_bin,
                        absolute=absolute, stat_cache=stat_cache)
    return await anyio.to_thread.run_sync(run)


async def asnapshot_id(path: PathLike, *, follow: bool = True,
                       exclude: Sequence[str] | str = (),
                       stat_cache: bool | None = None) -> str:
    """Async twin of :func:`snapshot_id`."""
    return (await amanifest(path, follow=follow, exclude=exclude, stat_cache=stat_cache)).id


aid = asnapshot_id


# --- transfers ----------------------------------------------------------------------------

if TYPE_CHECKING:
    from .history import Ancestor, Location
    from .stores.base import Store
    from .transfer.checkout import CheckoutResult
    from .transfer.config import TransferConfig
    from .transfer.fetch import FetchResult
    from .transfer.pull import PullResult
    from .transfer.push import PushResult
    from .transfer.verify import VerifyResult


def _run(fn: Callable[[], Awaitable[T]]) -> T:
    try:
        import uvloop  # noqa: F401

        opts: dict[str, Any] = {"use_uvloop": True}
    except ImportError:
        opts = {}
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:  # the usual case: no event loop in this thread
        in_loop = False
    else:
        in_loop = True
    if in_loop:
        # called from inside a running loop (a notebook, an async script): this thread's
        # loop cannot run another, so the call gets its own in a worker thread and this
        # one waits for it, as any blocking call would
        return _run_in_thread(fn, opts)
    return anyio.run(fn, backend="asyncio", backend_options=opts)


def _run_in_thread(fn: Callable[[], Awaitable[T]], opts: dict[str, Any]) -> T:
    """``anyio.run(fn)`` in a new thread, waited for; Ctrl-C while waiting cancels it (as
    it cancels ``anyio.run`` in this thread: uploads aborted, temp files removed)."""
    import asyncio
    import threading

    box: dict[str, Any] = {}
    ready = threading.Event()

    async def main() -> T:
        with anyio.CancelScope() as scope:
            box["cancel"] = (asyncio.get_running_loop(), scope)
            ready.set()
            return await fn()
        raise KeyboardInterrupt  # cancelled from the waiting thread

    def work() -> None:
        try:
            box["result"] = anyio.run(main, backend="asyncio", backend_options=opts)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc
        finally:
            ready.set()

    worker = threading.Thread(target=work, name="snapdir-sync", daemon=True)
    worker.start()
    try:
        worker.join()
    except KeyboardInterrupt:
        ready.wait()
        if "cancel" in box:
            loop, scope = box["cancel"]
            loop.call_soon_threadsafe(scope.cancel)
        worker.join()
        raise
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def store_uri(store: PathLike | None) -> str:
    from . import settings

    if store is not None and not isinstance(store, str):
        # a pathlib.Path to a local store is that path; anything else is refused
        text = os.fspath(store) if isinstance(store, os.PathLike) else None
        if not isinstance(text, str):
            raise UsageError(f"store is {store!r}: give a URI as a str (s3://bucket/prefix, "
                             "file:///path or a path)")
        store = text

    # "" is not None: open_store refuses it, instead of it meaning the default store
    return settings.store_to_use(store)


def _open(uri: str, config: TransferConfig | None = None) -> Store:
    from .stores import open_store
    from .transfer.config import TransferConfig

    cfg = config or TransferConfig()
    return open_store(uri, multipart_threshold=cfg.multipart_threshold,
                      part_size=cfg.part_size, part_concurrency=cfg.part_concurrency)


def _items(value: Sequence[str] | str | None, what: str) -> list[str]:
    """``value`` as a list: one str is one item (a str is a Sequence of 1-character
    strings), ``None`` none; anything else that is not a sequence is a usage error."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        items = list(value)
    except TypeError:
        items = [value]  # type: ignore[list-item]  # refused below
    if not all(isinstance(v, str) for v in items):
        raise UsageError(f"{what} is {value!r}: give a list of str, or one str")
    return items


async def apush(path: PathLike, store: PathLike | None = None, *, name: str | None = None,
                parents: Sequence[str] | str | None = (), options: ManifestOptions | None = None,
                config: TransferConfig | None = None, progress: str = "off",
                record: bool = True, force: bool = False) -> PushResult:
    """Push directory ``path``; record a revision named ``name`` (default: the directory's
    base name) whose parents are the previous revision of that name plus ``parents`` (ids;
    one id may be given as a str)."""
    from . import history
    from .transfer.fetch import check_id
    from .transfer.push import push as _push

    path = nonempty_path(path, "the directory to snapshot")
    parent_ids = [check_id(p) for p in _items(parents, "parents")]
    uri = store_uri(store)
    if name == "":
        raise UsageError("the revision name is empty: give a name, or None for the "
                         "directory's base name")
    if name is not None and not isinstance(name, str):
        raise UsageError(f"the revision name is {name!r}: give a str, or None for the "
                         "directory's base name")
    rev_name = name or os.path.basename(os.path.abspath(os.fspath(path))) or "root"
    if not _utf8(rev_name):
        raise UsageError(f"the revision name {rev_name!r} is not valid UTF-8: give --name"
                         if name is None else
                         f"the revision name {rev_name!r} is not valid UTF-8: give another")
    st = _open(uri, config)
    try:
        previous: list[str] | None = None

        async def latest() -> list[str]:
            """The name's latest revision in the store (its objects need no checking)."""
            nonlocal previous
            previous = (await history.revisions_in_store(st, rev_name))[:1]
            return previous

        result = await _push(os.fspath(path), st, options=options, config=config,
                             known_manifests=latest if record else None, progress=progress,
                             force=force)
        if record:
            if previous is None:  # the snapshot was there already: the store was not listed
                if (not parent_ids and history.catalog().latest_revision(rev_name, st.uri)
                        == result.id):
                    previous = [result.id]  # a re-push of this machine's last revision: 1 request
                else:
                    await latest()
            await history.record_push(st, result.id, rev_name, previous or [], parent_ids,
                                      os.fspath(path), result.files, result.bytes)
        return result
    finally:
        await st.aclose()


def push(path: PathLike, store: PathLike | None = None, *, name: str | None = None,
         parents: Sequence[str] | str | None = (), options: ManifestOptions | None = None,
         config: TransferConfig | None = None) -> PushResult:
    """Sync twin of :func:`apush`."""
    return _run(lambda: apush(path, store, name=name, parents=parents, options=options,
                              config=config))


async def apull(snapshot_id: str, dest: PathLike, store: PathLike | None = None, *,
                no_cache: bool = False, delete: bool = False,
                config: TransferConfig | None = None, progress: str = "off",
                include: Sequence[str] | str | None = ()) -> PullResult:
    """Fetch ``snapshot_id`` from ``store`` and check it out into ``dest``, verified;
    only the paths matching ``include`` (globs, or one glob as a str) if given."""
    from . import history
    from .transfer.pull import pull as _pull

    dest = nonempty_path(dest, "the destination")
    patterns = _items(include, "include")
    uri = store_uri(store)
    st = _open(uri, config)
    try:
        r = await _pull(snapshot_id, st, os.fspath(dest), config=config, no_cache=no_cache,
                        delete=delete, progress=progress, include=patterns)
    finally:
        await st.aclose()
    history.safe_event(r.id, "pull", os.path.abspath(os.fspath(dest)), st.uri)
    return r


def pull(snapshot_id: str, dest: PathLike, store: PathLike | None = None, *,
         no_cache: bool = False, delete: bool = False,
         config: TransferConfig | None = None, include: Sequence[str] | str | None = ()
         ) -> PullResult:
    """Sync twin of :func:`apull`."""
    return _run(lambda: apull(snapshot_id, dest, store, no_cache=no_cache, delete=delete,
                              config=config, include=include))


async def afetch(snapshot_id: str, store: PathLike | None = None, *,
                 config: TransferConfig | None = None, progress: str = "off") -> FetchResult:
    from . import history, settings
    from .transfer.fetch import fetch as _fetch

    uri = store_uri(store)
    st = _open(uri, config)
    try:
        r = await _fetch(snapshot_id, st, config=config, progress=progress)
    finally:
        await st.aclose()
    history.safe_event(r.id, "fetch", str(settings.object_cache_dir()), st.uri)
    return r


def fetch(snapshot_id: str, store: PathLike | None = None, *,
          config: TransferConfig | None = None) -> FetchResult:
    return _run(lambda: afetch(snapshot_id, store, config=config))


async def acheckout(snapshot_id: str, dest: PathLike, *, delete: bool = False
                    ) -> CheckoutResult:
    from . import history
    from .transfer.fetch import check_id
    from .transfer.pull import checkout as _checkout

    sid = check_id(snapshot_id)  # recorded as the id, whatever case it was given in
    dest = nonempty_path(dest, "the destination")
    r = await _checkout(sid, os.fspath(dest), delete=delete)
    history.safe_event(sid, "checkout", os.path.abspath(os.fspath(dest)), None)
    return r


def checkout(snapshot_id: str, dest: PathLike, *, delete: bool = False) -> CheckoutResult:
    return _run(lambda: acheckout(snapshot_id, dest, delete=delete))


async def astage(path: PathLike, *, options: ManifestOptions | None = None,
                 config: TransferConfig | None = None, progress: str = "off") -> PushResult:
    """Copy ``path``'s objects and manifest into the local cache."""
    from . import history, settings
    from .stores.file import FileStore
    from .transfer.cache import open_cache
    from .transfer.push import push as _push

    path = nonempty_path(path, "the directory to snapshot")
    open_cache()  # a cache directory that cannot be one is refused before any hashing
    st = FileStore(settings.object_cache_dir())
    # the cache holds manifests without their objects (push and pull keep them there):
    # a manifest in it does not mean the objects are, so each is checked (a stat)
    r = await _push(os.fspath(path), st, options=options, config=config, progress=progress,
                    trust_manifests=False, label="stage")
    history.safe_event(r.id, "stage", os.path.abspath(os.fspath(path)), None)
    return r


def stage(path: PathLike, *, options: ManifestOptions | None = None) -> PushResult:
    return _run(lambda: astage(path, options=options))


async def averify(snapshot_id: str, store: PathLike | None = None, *,
                  config: TransferConfig | None = None, progress: str = "off"
                  ) -> VerifyResult:
    from .transfer.verify import verify as _verify

    st = _open(store_uri(store), config)
    try:
        return await _verify(snapshot_id, st, config=config, progress=progress)
    finally:
        await st.aclose()


def verify(snapshot_id: str, store: PathLike | None = None, *,
           config: TransferConfig | None = None) -> VerifyResult:
    return _run(lambda: averify(snapshot_id, store, config=config))


async def aancestors(snapshot_id: str, store: PathLike | None = None) -> list[Ancestor]:
    """Ancestors of ``snapshot_id``, nearest first, across stores."""
    from . import history
    from .transfer.fetch import check_id

    uri = store_uri(store)
    sid = check_id(snapshot_id)
    st = _open(uri)
    try:
        _require_store(st, f"the history of {sid}")
    finally:
        await st.aclose()
    return await history.ancestors(sid, uri, _open)


def ancestors(snapshot_id: str, store: PathLike | None = None) -> list[Ancestor]:
    return _run(lambda: aancestors(snapshot_id, store))


def _utf8(name: str) -> bool:
    """Whether ``name`` is text (a name from bytes that are not UTF-8 holds surrogates: it
    can be neither a store key nor a history record)."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return True


def _require_store(st: Store, looking_for: str) -> None:
    """Reading from a file store that is not there is an error, not an empty answer."""
    from .stores.file import FileStore

    if isinstance(st, FileStore) and (gone := st.missing(looking_for)) is not None:
        raise gone


async def arevisions(name: str, store: PathLike | None = None) -> list[str]:
    """Ids pushed under ``name`` to ``store``, newest first."""
    from . import history

    if name == "" or not isinstance(name, str):
        raise UsageError(f"the revision name is {'empty' if name == '' else repr(name)}: "
                         "give the name it was pushed under")
    if not _utf8(name):
        raise UsageError(f"the revision name {name!r} is not valid UTF-8 (a push records "
                         "none such): give the name it was pushed under")
    st = _open(store_uri(store))
    try:
        _require_store(st, f"the revisions named {name!r}")
        return await history.revisions_in_store(st, name)
    finally:
        await st.aclose()


def revisions(name: str, store: PathLike | None = None) -> list[str]:
    return _run(lambda: arevisions(name, store))


def locations(snapshot_id: str) -> list[Location]:
    """Where this machine pushed, pulled, fetched, staged or checked out ``snapshot_id``
    (64 hex characters, any case)."""
    import sqlite3

    from . import history, settings
    from .transfer.fetch import check_id

    sid = check_id(snapshot_id)
    settings.checked_data_dir()  # the catalog's home: a file there is a bad setting
    cat = history.catalog()
    try:
        return cat.locations(sid)
    except sqlite3.DatabaseError as exc:  # not a database, corrupt, unreadable
        raise SnapdirError(f"cannot read the local catalog {cat.path} ({exc}): move it "
                           "aside (a new one is started on the next transfer)") from None


def _dest_id(dest: str) -> str | None:
    from .errors import SourceError

    if not os.path.isdir(dest):
        return None
    try:
        return snapshot_id(dest)
    except SourceError:
        return None


def _ensure_args(snapshot_id_: str, dest: PathLike) -> tuple[str, str]:
    from .transfer.fetch import check_id

    return check_id(snapshot_id_), os.path.abspath(nonempty_path(dest, "the destination"))


def _lock_fd(target: str) -> int:
    """An open file descriptor of ``target``'s lock file (closing it releases a flock):
    one per real directory, however a rank spells its path (a symlink on the way)."""
    from . import settings
    from .core.manifest import digest_hex

    locks = settings.cache_dir() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    name = digest_hex(os.fsencode(os.path.realpath(target)))[:32] + ".lock"
    return os.open(locks / name, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)


def _try_lock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _pulled(target: str, sid: str, dest_id: str | None) -> None:
    if dest_id != sid:
        from .errors import IntegrityError

        raise IntegrityError(
            f"{target} does not hash to {sid} after the pull (the snapshot holds "
            "symlinks, which check out as files?); use `snapdir pull` instead")


def ensure(snapshot_id_: str, *, dest: PathLike, store: PathLike | None = None,
           config: TransferConfig | None = None) -> Path:
    """Make ``dest`` hold exactly ``snapshot_id_`` and return it, for training scripts.

    Returns at once when ``dest`` already matches (the stat cache makes that check cheap);
    pulls otherwise, as ``pull --delete`` does: files of another version that this one
    lacks are removed (and ``dest`` is refused where ``--delete`` would be: ``$HOME``,
    ``/``, a store or the cache). Safe when several ranks on one node call it at once: one pulls while
    the others wait on an OS file lock (released by the kernel if the holder dies), then
    find the tree in place.
    """
    import fcntl

    sid, target = _ensure_args(snapshot_id_, dest)
    if _dest_id(target) == sid:
        return Path(target)
    fd = _lock_fd(target)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if _dest_id(target) != sid:
            # exactly: what an older version left that this one lacks goes
            pull(sid, target, store, config=config, delete=True)
            _pulled(target, sid, _dest_id(target))
    finally:
        os.close(fd)  # releases the lock
    return Path(target)


async def aensure(snapshot_id_: str, *, dest: PathLike, store: PathLike | None = None,
                  config: TransferConfig | None = None) -> Path:
    """Async twin of :func:`ensure`. Cancelling it (a timeout) cancels the pull, as for
    :func:`apull`, and lets the lock go; a rank waiting for another's pull waits without
    holding a thread."""
    sid, target = _ensure_args(snapshot_id_, dest)

    async def dest_id() -> str | None:
        # hashing only reads: a cancelled call need not wait for it
        return await anyio.to_thread.run_sync(_dest_id, target, abandon_on_cancel=True)

    if await dest_id() == sid:
        return Path(target)
    fd = _lock_fd(target)
    try:
        while not _try_lock(fd):  # noqa: ASYNC110 - another process holds it: no Event
            await anyio.sleep(0.05)
        if await dest_id() != sid:
            await apull(sid, target, store, config=config, delete=True)
            _pulled(target, sid, await dest_id())
    finally:
        os.close(fd)  # releases the lock
    return Path(target)
