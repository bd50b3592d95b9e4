"""fetch: manifest (checked against its id) → what the cache lacks → download + verify."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio

from .. import settings
from ..core.manifest import Hasher, Manifest, digest_hex, parse, root_adds_up
from ..core.plan import plan_fetch, select
from ..errors import (
    DestinationError,
    IntegrityError,
    ObjectNotFound,
    SnapdirError,
    StoreError,
    StoreMissing,
    check_stop,
    with_path,
)
from ..stores.base import Store, manifest_key, named_by
from .batch import Batcher
from .cache import TMP_PREFIX, LocalCache, open_cache
from .config import TransferConfig
from .download import RangeBuffers, download_object, write_small
from .pool import for_each
from .progress import ObjectBytes, Progress
from .retry import retrying
from .threads import run_interruptible, run_sync


@dataclass(slots=True)
class FetchResult:
    id: str
    files: int = 0
    objects: int = 0
    objects_fetched: int = 0
    bytes_fetched: int = 0
    #: bytes of the objects that were already local (not downloaded)
    bytes_skipped: int = 0
    seconds: float = 0.0


def check_id(snapshot_id: str) -> str:
    from ..errors import UsageError

    # not a str (None from an unset os.environ.get, bytes, a number): the same usage error
    sid = snapshot_id.strip().lower() if isinstance(snapshot_id, str) else ""
    if len(sid) != 64 or any(c not in "0123456789abcdef" for c in sid):
        raise UsageError(f"{snapshot_id!r} is not a snapshot id (64 hex characters); "
                         "copy it from `snapdir push` or `snapdir id`")
    return sid


async def get_manifest(store: Store, snapshot_id: str, config: TransferConfig,
                       cache: LocalCache | None = None) -> Manifest:
    """The manifest of ``snapshot_id``: from the cache, else from the store (verified).

    A cached copy that no longer hashes to its id is dropped and fetched again. A file
    store that is not there is refused even when the cache could answer (a typo in
    --store must not pass, nor be recorded as where the snapshot came from)."""
    from ..stores.file import FileStore

    if isinstance(store, FileStore) and (gone := store.missing(
            manifest_key(snapshot_id))) is not None:
        raise gone
    if cache is not None:
        try:
            m = cache.load_manifest(snapshot_id)
        except IntegrityError:
            m = None
            path = cache.manifest_path(snapshot_id)
            with contextlib.suppress(OSError):
                path.unlink()
                sys.stderr.write(f"snapdir: warning: removed corrupt manifest {snapshot_id} "
                                 f"from the local cache ({path})\n")
        if m is not None:
            return m
    key = manifest_key(snapshot_id)

    async def get() -> bytes:
        try:
            data = await store.get_bytes(key)
        except StoreMissing:
            raise
        except ObjectNotFound:
            raise ObjectNotFound(f"snapshot {snapshot_id} is not in {store.uri} (no {key}); "
                                 f"check the id and {named_by(store)}", key) from None
        actual = digest_hex(data)
        if actual != snapshot_id:
            raise IntegrityError(f"manifest {key} in {store.uri} does not hash to its id "
                                 f"(got {actual}); the store is corrupt, refusing it",
                                 key=key, expected=snapshot_id, actual=actual)
        return data

    data = await retrying(get, config)
    manifest = parse(data)  # strict: untrusted input
    if cache is not None:
        try:
            await run_sync(cache.save_manifest, snapshot_id, data)
        except OSError:
            pass  # a cache that cannot take it: fetch and pull refuse such a cache up front
    return manifest


def object_labels(manifest: Manifest) -> dict[str, tuple[str, int]]:
    """digest -> (first path using it, largest manifest size seen: a size hint)."""
    out: dict[str, tuple[str, int]] = {}
    for e in manifest.files():
        prev = out.get(e.checksum)
        if prev is None:
            out[e.checksum] = (e.path, e.size)
        elif e.size > prev[1]:
            out[e.checksum] = (prev[0], e.size)
    return out


def object_sizes(manifest: Manifest) -> dict[str, int | None]:
    """digest -> its object's size where a line of the manifest says it, else None (only
    followed symlinks' lines name it: see ``Entry.object_size``)."""
    out: dict[str, int | None] = {}
    for e in manifest.files():
        size = e.object_size
        if size is not None or e.checksum not in out:
            out[e.checksum] = size
    return out


def context_mismatch(manifest: Manifest, hasher: Hasher, sid: str,
                     exc: IntegrityError) -> IntegrityError | None:
    """After object ``exc`` failed its hash: when the snapshot's directory checksums do not
    add up under ``hasher`` either, the likelier story is that it was pushed with another
    ``SNAPDIR_MANIFEST_CONTEXT`` (or none): an error saying so first, else None."""
    if root_adds_up(manifest, hasher):
        return None
    now = ("plain BLAKE3 (SNAPDIR_MANIFEST_CONTEXT is not set)" if hasher.context is None
           else f"BLAKE3 with SNAPDIR_MANIFEST_CONTEXT={hasher.context!r}")
    return IntegrityError(
        f"snapshot {sid}: object {exc.expected or exc.key} does not hash to its name, and "
        f"the snapshot's directory checksums do not add up as {now} either: it was most "
        "likely pushed with another SNAPDIR_MANIFEST_CONTEXT (set that one and run the "
        "command again); if not, the store is corrupt (repair it from a good copy with "
        "`snapdir push --force`)", key=exc.key, expected=exc.expected, actual=exc.actual)


async def explain_failure(exc: BaseException, store: Store, manifest: Manifest, sid: str,
                          config: TransferConfig) -> SnapdirError | None:
    """A truer account of a download that failed with ``exc``, or None. An object the
    store lacks, when the store lacks the snapshot's manifest too (the manifest came from
    the cache): the wrong store, not one to repair. Objects that fail their hash while
    the directory checksums do not add up either: another ``SNAPDIR_MANIFEST_CONTEXT``."""
    if isinstance(exc, IntegrityError):
        return context_mismatch(manifest, Hasher("b3sum", settings.manifest_context()), sid,
                                exc)
    if isinstance(exc, ObjectNotFound) and not isinstance(exc, StoreMissing):
        key = manifest_key(sid)
        try:
            if await retrying(partial(store.head, key), config) is not None:
                return None
        except StoreError:
            return None
        return ObjectNotFound(f"snapshot {sid} is not in {store.uri} (no {key}, nor "
                              f"{exc.key or 'its objects'}); check the id and "
                              f"{named_by(store)}",
                              exc.key)
    return None


#: (digest, final path, label for messages, size hint, mode or None)
Item = tuple[str, "str | Path", str, int, "int | None"]


async def download_all(store: Store, items: Iterable[Item] | AsyncIterable[Item],
                       config: TransferConfig, prog: Progress, *,
                       after: Callable[[str, Path], Awaitable[None]] | None = None
                       ) -> tuple[int, int]:
    """Download every item through ``config.jobs`` workers (``items`` is consumed as they
    free up: a lazy source stays lazy); ``after(digest, final)`` runs once each object is
    in place. Returns (objects, bytes) downloaded."""
    hasher = Hasher("b3sum", settings.manifest_context())
    totals = [0, 0]
    writer: Batcher[str] = Batcher(write_small)
    large = anyio.CapacityLimiter(config.large_jobs)  # ranged downloads at once
    buffers = RangeBuffers.for_config(config)
    counting = threading.Lock()

    async def one(item: Item) -> None:
        digest, final_s, label, hint, mode = item
        final = Path(final_s)
        # a large object's ranges are counted by the threads receiving them
        shown = ObjectBytes(prog, counting)

        async def attempt() -> int:
            shown.restart()
            return await download_object(store, digest, final, hasher, config,
                                         size_hint=hint, label=label, mode=mode,
                                         writer=writer, large=large, buffers=buffers,
                                         on_bytes=shown.add)

        try:
            size = await retrying(attempt, config)
        except StoreMissing as exc:  # the store itself is gone: nothing to repair
            raise with_path(exc, label) from exc
        except ObjectNotFound as exc:
            raise ObjectNotFound(
                f"{with_path(exc, label)}; the store lacks an object of this snapshot: push "
                "it again from a good copy with `snapdir push --force`", exc.key) from exc
        except StoreError as exc:
            raise with_path(exc, label) from exc
        except OSError as exc:  # writing locally: a full disk, permissions, a directory
            # (renaming our temp file into place: the file in the way is the one to name)
            where = exc.filename2 if exc.filename2 is not None else exc.filename or final
            if Path(where).name.startswith(TMP_PREFIX):  # creating or writing our temp
                where = Path(where).parent               # file: the directory refused it
            raise DestinationError(f"{where}: cannot write {label} there "
                                   f"({exc.strerror or exc}); check free space and "
                                   "permissions") from None
        if after is not None:
            await after(digest, final)
        totals[0] += 1
        totals[1] += size
        shown.done(size)

    try:
        await for_each(items, one, config.jobs)
    finally:
        buffers.close()
    return totals[0], totals[1]


async def fetch(snapshot_id: str, store: Store, *, config: TransferConfig | None = None,
                progress: str = "auto", include: Sequence[str] = ()) -> FetchResult:
    """Bring snapshot ``snapshot_id`` and its objects (those of the paths matching
    ``include``, if given) into the local cache."""
    started = time.monotonic()
    cfg = config or TransferConfig()
    sid = check_id(snapshot_id)
    cache = open_cache()
    manifest = full = await get_manifest(store, sid, cfg, cache)
    if include:
        manifest = select(manifest, include)
    labels = object_labels(manifest)
    result = FetchResult(id=sid, files=sum(1 for _ in manifest.files()), objects=len(labels))
    sizes = object_sizes(manifest)

    def usable(stop: threading.Event) -> set[str]:  # a stat each: told to stop between
        found = set()
        for d in labels:
            check_stop(stop)
            if cache.usable(d, sizes[d]):
                found.add(d)
        return found

    cached = await run_interruptible(usable)
    todo = plan_fetch(labels, cached)
    result.bytes_skipped = sum(labels[d][1] for d in cached)
    items: list[Item] = [
        (d, cache.object_path(d), labels[d][0], labels[d][1], None) for d in todo]
    async with Progress("fetch", progress, files_total=len(items),
                        bytes_total=sum(labels[d][1] for d in todo)) as prog:
        try:
            result.objects_fetched, result.bytes_fetched = await download_all(store, items,
                                                                              cfg, prog)
        except (IntegrityError, ObjectNotFound) as exc:
            if (better := await explain_failure(exc, store, full, sid, cfg)) is not None:
                raise better from None
            raise
    from . import known
    known.remember(settings.cache_dir(), store.uri, sid)
    result.seconds = time.monotonic() - started
    return result
