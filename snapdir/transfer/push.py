"""push: walk → hash → diff against the store → upload objects → manifest last."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path

from .. import settings
from ..core.manifest import Hasher, Manifest, digest_hex, parse
from ..core.plan import UploadPlan, plan_upload
from ..errors import IntegrityError, ObjectNotFound, StoreError, UsageError, with_path
from ..scan import absolute, compile_excludes
from ..snapshot import HashStats, ManifestOptions, Sources, build_manifest
from ..stores.base import OBJECTS, Store, digest_from_key, manifest_key, object_key
from . import known
from .batch import Batcher
from .cache import LocalCache
from .config import TransferConfig
from .pool import SendGates, for_each
from .progress import ObjectBytes, Progress
from .retry import retrying
from .threads import run_interruptible
from .upload import read_verified, upload_object

#: give up listing the store when it holds more than this many keys per object to check
LIST_KEYS_PER_OBJECT = 50


@dataclass(slots=True)
class PushResult:
    id: str
    files: int = 0
    bytes: int = 0
    objects: int = 0
    objects_sent: int = 0
    bytes_sent: int = 0
    objects_skipped: int = 0
    #: the bytes of the objects not sent (the store had them)
    bytes_skipped: int = 0
    already_present: bool = False
    seconds: float = 0.0
    manifest: Manifest | None = field(default=None, repr=False)


async def _manifest_objects(store: Store, cache: LocalCache, sid: str) -> set[str]:
    """Objects of manifest ``sid`` if the store holds it, else empty."""
    try:
        m = cache.load_manifest(sid)
    except IntegrityError:
        m = None
    if m is None:
        try:
            data = await store.get_bytes(manifest_key(sid))
        except ObjectNotFound:
            return set()
        if digest_hex(data) != sid:
            return set()
        m = parse(data)
    elif await store.head(manifest_key(sid)) is None:
        return set()
    return m.object_digests()


async def _list_objects(store: Store, budget: int) -> set[str] | None:
    """Every object in the store, or None if there are more than ``budget`` keys."""
    found: set[str] = set()
    async for chunk in store.list(OBJECTS + "/"):
        for key in chunk:
            d = digest_from_key(key)
            if d is not None:
                found.add(d)
        if len(found) > budget:
            return None
    return found


def refuse_store_inside(source: str, store: Store, opts: ManifestOptions) -> None:
    """Refuse a push whose local store, or snapdir's own cache or data directory (written
    by every push: manifests, stat cache, history catalog), lies inside the directory
    pushed and is not excluded: each push would take them into the snapshot, a new id
    every time, and a store would grow by a copy of itself with each push."""
    src = os.path.realpath(source)
    root = getattr(store, "root", None)
    places = [("the store", root)] if isinstance(root, Path) else []
    places += [("snapdir's cache (SNAPDIR_CACHE_DIR)", settings.cache_dir()),
               ("snapdir's data directory (SNAPDIR_DATA_DIR)", settings.data_dir())]
    exclude = compile_excludes(opts.exclude)
    walked = absolute(source).rstrip("/")
    inside = []
    for what, place in places:
        real = os.path.realpath(place)
        if real == src:
            raise UsageError(f"{source}: {what} is this directory itself: it cannot be "
                             "pushed; choose another store or directory")
        if not real.startswith(src.rstrip("/") + "/"):
            continue
        parts = os.path.relpath(real, src).split("/")
        if exclude is not None and any(exclude.search(walked + "/" + "/".join(parts[:i + 1]))
                                       for i in range(len(parts))):
            continue  # the walk leaves it out
        inside.append(f"{what} at {real}")
    if inside:
        listed = ", ".join(inside[:-1]) + " and " + inside[-1] if len(inside) > 1 else inside[0]
        raise UsageError(f"{source}: {listed} {'is' if len(inside) == 1 else 'are'}"
                         " inside it: each push would take those files into the snapshot (a "
                         "new id every time); move them out, or leave them out with --exclude")


async def plan_push(store: Store, objects: set[str], known_ids: list[str],
                    cache: LocalCache, config: TransferConfig) -> UploadPlan:
    present: set[str] = set()
    for sid in known_ids:
        try:
            present |= await retrying(partial(_manifest_objects, store, cache, sid), config)
        except StoreError:
            continue
    unknown = objects - present
    listed = None
    # A listing is sequential pages of 1,000 keys; a few objects are answered sooner by
    # HEADs in parallel (a re-push with 1 % changed: ~50 HEADs instead of 3+ pages).
    if len(unknown) > 2 * config.jobs:
        listed = await retrying(
            partial(_list_objects, store, LIST_KEYS_PER_OBJECT * len(unknown)), config)
    return plan_upload(objects, present, listed)


async def push(
    source: str | Path,
    store: Store,
    *,
    options: ManifestOptions | None = None,
    config: TransferConfig | None = None,
    known_manifests: Sequence[str] | Callable[[], Awaitable[Sequence[str]]] | None = None,
    progress: str = "auto",
    force: bool = False,
    trust_manifests: bool = True,
    label: str = "push",
) -> PushResult:
    """Push directory ``source`` to ``store``; returns the snapshot id and counts.

    ``known_manifests``: ids of manifests the store holds (their objects are not asked
    for), or an async function giving them, called only if the snapshot is not there yet.
    ``force`` uploads every object even if the store has it (repairs a damaged store).
    ``trust_manifests=False`` is for a store where a manifest does not mean its objects
    are there (the local cache: pushes and pulls keep manifests in it alone), so every
    object is checked instead. ``label`` starts the progress lines.
    """
    started = time.monotonic()
    cfg = config or TransferConfig()
    opts = options or ManifestOptions()
    hasher = Hasher("b3sum", opts.context)
    cache = LocalCache(settings.object_cache_dir())
    sources = Sources()
    stats = HashStats()

    refuse_store_inside(str(source), store, opts)

    def hashed() -> tuple[int, int, int]:
        return stats.hashed_files + stats.cached_files, stats.files, stats.bytes

    async with Progress("hash", progress, poll=hashed):
        # told to stop between directories (and within a large file) by Ctrl-C or SIGTERM
        manifest = await run_interruptible(lambda stop: build_manifest(
            str(source), opts, sources=sources, stats=stats, stop=stop))
    data = manifest.encode()
    sid = digest_hex(data)
    result = PushResult(id=sid, manifest=manifest, objects=len(sources))
    for e in manifest.files():
        result.files += 1
        result.bytes += e.size
    mkey = manifest_key(sid)
    if (not force and trust_manifests
            and await retrying(partial(store.head, mkey), cfg) is not None):
        result.already_present = True
        result.objects_skipped = len(sources)
        _finish(cache, store, sid, data, result, started, sources.data_bytes())
        return result

    ids: list[str] = []
    if trust_manifests:
        given = (await known_manifests() if callable(known_manifests)
                 else known_manifests or ())
        ids = list(given) + known.known_ids(settings.cache_dir(), store.uri)
    if force:
        plan = UploadPlan(tuple(sorted(sources)), (), 0)
    else:
        plan = await plan_push(store, set(sources), ids, cache, cfg)
    result.objects_skipped = plan.skip
    n_todo = len(plan.check) + len(plan.upload)
    gates = SendGates(cfg)
    reader: Batcher[bytes] = Batcher(read_verified)
    prog = Progress(label, progress, files_total=n_todo,
                    bytes_total=sum(sources[d][1] for d in chain(plan.check, plan.upload)))

    async def one(item: tuple[str, bool]) -> None:
        digest, check = item
        path, size = sources[digest]
        shown = ObjectBytes(prog)  # a large object's parts as they go
        # a copy of another size there (truncated, damaged) is replaced
        if check and await retrying(partial(store.head, object_key(digest)), cfg) == size:
            result.objects_skipped += 1
        else:
            large = size >= cfg.multipart_threshold

            async def attempt() -> None:
                shown.restart()
                await upload_object(store, digest, path, size, hasher, cfg, reader,
                                    on_bytes=shown.add if large else None)

            try:
                async with gates.gate(size):
                    await retrying(attempt, cfg)
            except StoreError as exc:
                raise with_path(exc, path) from exc
            result.objects_sent += 1
            result.bytes_sent += size
        shown.done(size)

    def todo() -> Iterator[tuple[str, bool]]:
        for d in plan.check:
            yield d, True
        for d in plan.upload:
            yield d, False

    async with prog:
        await for_each(todo(), one, min(cfg.jobs, max(1, n_todo)))
    # every object is in the store: now, and only now, the manifest
    await retrying(partial(store.put_bytes, mkey, data), cfg)
    _finish(cache, store, sid, data, result, started, sources.data_bytes())
    return result


def _finish(cache: LocalCache, store: Store, sid: str, data: bytes, result: PushResult,
            started: float, total_bytes: int) -> None:
    try:
        cache.save_manifest(sid, data)
    except OSError:
        pass  # the cache is an optimisation for later pushes
    known.remember(settings.cache_dir(), store.uri, sid)
    result.bytes_skipped = total_bytes - result.bytes_sent
    result.seconds = time.monotonic() - started
