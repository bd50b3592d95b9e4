"""History: revision records in the store itself, and a local catalog.

Every push writes one immutable record (JSON) into the store, under a prefix snapdir 1.x
ignores, so a second machine sharing only the bucket sees the same history, and two
machines pushing at once lose nothing (no shared index is rewritten)::

    .snapdir-history/v1/ids/<id>/<time_ns>-<rand>.json     the record
    .snapdir-history/v1/names/<quoted name>/<time_ns>-<id>  an empty marker, for `revisions`

(a quoted name longer than 255 bytes is cut to its start, ``~`` and 32 hex digits of its
BLAKE3, so that a file store can make it a directory).

A record: ``{"format": 1, "id", "name", "parents": [{"id", "store"}], "store", "source":
{"host", "path"}, "user", "time", "tool", "files", "bytes"}``. Records of a newer format
or that do not parse are skipped with a warning.

The local catalog (SQLite in the data directory) keeps the same records plus where this
machine pushed, pulled, fetched or staged each id (``locations``).
"""

from __future__ import annotations

import getpass
import json
import os
import secrets
import socket
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from . import __version__, settings
from .errors import ObjectNotFound, StoreError, UsageError
from .stores.base import HISTORY, Store, manifest_key

FORMAT = 1
PREFIX = f"{HISTORY}/v1"


@dataclass(frozen=True, slots=True)
class Parent:
    id: str
    store: str | None = None


@dataclass(frozen=True, slots=True)
class Revision:
    id: str
    name: str
    store: str
    parents: tuple[Parent, ...] = ()
    host: str = ""
    path: str = ""
    user: str = ""
    time: float = 0.0
    tool: str = ""
    files: int = 0
    bytes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "id": self.id, "name": self.name, "store": self.store,
                "parents": [asdict(p) for p in self.parents],
                "source": {"host": self.host, "path": self.path}, "user": self.user,
                "time": self.time, "tool": self.tool, "files": self.files, "bytes": self.bytes}

    @staticmethod
    def from_json(obj: Any) -> Revision:
        """Parse a record; ValueError for anything malformed or of a newer format."""
        if not isinstance(obj, dict):
            raise ValueError("not a JSON object")
        if obj.get("format") != FORMAT:
            raise ValueError(f"record format {obj.get('format')!r} is not {FORMAT} (written "
                             "by a newer snapdir?)")
        parents = []
        for p in obj.get("parents") or []:
            if not isinstance(p, dict) or not _is_id(p.get("id")):
                raise ValueError("bad parent")
            store = p.get("store")
            parents.append(Parent(p["id"], store if isinstance(store, str) else None))
        src = obj.get("source") or {}
        if not _is_id(obj.get("id")) or not isinstance(obj.get("name"), str):
            raise ValueError("bad id or name")
        if not isinstance(src, dict):
            raise ValueError("bad source")
        try:
            when = float(obj.get("time", 0.0))
            files, nbytes = int(obj.get("files", 0)), int(obj.get("bytes", 0))
        except (TypeError, OverflowError) as exc:  # null, a list, inf, ...
            raise ValueError(f"bad time, files or bytes ({exc})") from None
        if not _MIN_TIME <= when <= _MAX_TIME:  # NaN, 1e300: no date to show
            raise ValueError(f"bad time {when!r}")
        return Revision(
            id=obj["id"], name=obj["name"], store=str(obj.get("store", "")),
            parents=tuple(parents), host=str(src.get("host", "")),
            path=str(src.get("path", "")), user=str(obj.get("user", "")),
            time=when, tool=str(obj.get("tool", "")), files=files, bytes=nbytes)


#: the times a record may carry: 1970 to the year 9999 (what a date can be shown for)
_MIN_TIME, _MAX_TIME = 0.0, 253402300799.0


def _is_id(v: Any) -> bool:
    return isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v)


def warn(msg: str) -> None:
    sys.stderr.write(f"snapdir: warning: {msg}\n")


def new_revision(snapshot_id: str, name: str, store: str, parents: list[Parent],
                 source: str, files: int, nbytes: int) -> Revision:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Revision(id=snapshot_id, name=name, store=store, parents=tuple(parents),
                    host=socket.gethostname(), path=os.path.abspath(source), user=user,
                    time=time.time(), tool=f"snapdir {__version__}", files=files, bytes=nbytes)


# --- in the store -------------------------------------------------------------------------


#: longest quoted name kept whole as one key segment: a file store makes it a directory,
#: and filesystems take names of at most 255 bytes (ext4, XFS, btrfs, APFS, NTFS)
NAME_SEGMENT_MAX = 255
#: hex digits of the name's BLAKE3 that end a shortened segment
_NAME_DIGEST = 32


def _name_prefix(name: str) -> str:
    quoted = quote(name, safe="")
    if quoted in (".", ".."):  # not a key segment S3 clients accept (nor a directory)
        quoted = quoted.replace(".", "%2E")
    if len(quoted) > NAME_SEGMENT_MAX:
        # (29 CJK characters quote to 261 bytes) keep the start readable, and tell long
        # names apart by their hash
        from .hashing import hash_bytes

        head = quoted[:NAME_SEGMENT_MAX - 1 - _NAME_DIGEST]
        cut = head.rfind("%", len(head) - 2)  # never split a %XX escape
        if cut >= 0:
            head = head[:cut]
        quoted = f"{head}~{hash_bytes(name.encode())[:_NAME_DIGEST]}"
    return f"{PREFIX}/names/{quoted}/"


_T = TypeVar("_T")


async def _retried(request: Callable[[], Awaitable[_T]]) -> _T:
    """``request`` retried as every transfer request is (``SNAPDIR_RETRIES`` attempts,
    full-jitter backoff): the store's client makes each request once. One request: jobs
    is not read (``SNAPDIR_JOBS`` is not this command's if ``-j`` was given)."""
    from .transfer.config import TransferConfig
    from .transfer.retry import retrying

    return await retrying(request, TransferConfig(jobs=1))


async def _keys(store: Store, prefix: str) -> list[str]:
    async def listing() -> list[str]:
        keys: list[str] = []
        async for chunk in store.list(prefix):
            keys.extend(chunk)
        return keys

    return await _retried(listing)


async def record_in_store(store: Store, rev: Revision) -> None:
    stamp = f"{time.time_ns():020d}"
    body = json.dumps(rev.to_json(), sort_keys=True).encode()
    record = f"{PREFIX}/ids/{rev.id}/{stamp}-{secrets.token_hex(4)}.json"
    await _retried(partial(store.put_bytes, record, body))
    await _retried(partial(store.put_bytes, f"{_name_prefix(rev.name)}{stamp}-{rev.id}", b""))


async def revisions_in_store(store: Store, name: str) -> list[str]:
    """Ids pushed under ``name``, newest first, each once."""
    keys = await _keys(store, _name_prefix(name))
    out: list[str] = []
    for key in sorted(keys, reverse=True):
        tail = key.rsplit("/", 1)[-1]
        stamp, _, sid = tail.partition("-")
        if not stamp.isdigit() or not _is_id(sid):
            warn(f"skipping unrecognised history entry {key} in {store.uri}")
            continue
        if sid not in out:
            out.append(sid)
    return out


async def _read_record(store: Store, key: str, snapshot_id: str, skipping: str
                       ) -> tuple[bytes, Revision] | None:
    """The bytes and revision of the record of ``snapshot_id`` at ``key``, or None with a
    warning (``skipping``, then why) if it cannot be read or is not that id's record."""
    try:
        data = await _retried(partial(store.get_bytes, key))
        rev = Revision.from_json(json.loads(data))
        if rev.id != snapshot_id:
            raise ValueError(f"it is the record of {rev.id}")
    except (ValueError, UnicodeDecodeError, StoreError) as exc:
        warn(f"{skipping}: {exc}")
        return None
    return data, rev


async def records_in_store(store: Store, snapshot_id: str) -> list[Revision]:
    keys = await _keys(store, f"{PREFIX}/ids/{snapshot_id}/")
    out: list[Revision] = []
    for key in sorted(keys):
        got = await _read_record(store, key, snapshot_id,
                                 f"skipping history record {key} in {store.uri}")
        if got is not None:
            out.append(got[1])
    return out


async def copy_records(src: Store, dst: Store, snapshot_id: str) -> int:
    """Copy the revision records of ``snapshot_id`` (and their name markers) that ``dst``
    lacks from ``src`` (``sync``: its history travels with it, so ``revisions`` and
    ``ancestors`` answer at the destination too); returns how many. A record that cannot
    be read is skipped with a warning, as ``ancestors`` skips it."""
    prefix = f"{PREFIX}/ids/{snapshot_id}/"
    have = {k.rsplit("/", 1)[-1] for k in await _keys(dst, prefix)}
    copied = 0
    for key in sorted(await _keys(src, prefix)):
        tail = key.rsplit("/", 1)[-1]
        stamp = tail.partition("-")[0]
        if tail in have or not stamp.isdigit():
            continue
        got = await _read_record(src, key, snapshot_id,
                                 f"not copying history record {key} of {src.uri}")
        if got is None:
            continue
        data, rev = got
        await _retried(partial(dst.put_bytes, prefix + tail, data))
        await _retried(partial(dst.put_bytes, f"{_name_prefix(rev.name)}{stamp}-{rev.id}", b""))
        copied += 1
    return copied


async def record_push(store: Store, snapshot_id: str, name: str, previous: list[str],
                      parent_ids: list[str], source: str, files: int, nbytes: int) -> Revision:
    """Write the revision record of a push (store + catalog); returns it."""
    cat = catalog()
    parents: list[Parent] = []
    prev = next((p for p in previous if p != snapshot_id), None)
    if prev is not None:
        parents.append(Parent(prev, store.uri))
    for pid in parent_ids:
        if pid == snapshot_id or any(p.id == pid for p in parents):
            continue
        try:
            known = cat.stores_of(pid)
        except (sqlite3.Error, OSError):  # no catalog to ask (the data directory is a file)
            known = []
        parents.append(Parent(pid, known[0] if known else None))
    rev = new_revision(snapshot_id, name, store.uri, parents, source, files, nbytes)
    if not (previous and previous[0] == snapshot_id and not parent_ids):
        await record_in_store(store, rev)
    try:
        cat.add_revision(rev)
        cat.add_event(snapshot_id, "push", os.path.abspath(source), store.uri)
    except (sqlite3.Error, OSError) as exc:
        catalog_not_updated(exc)
    return rev


# --- ancestors ----------------------------------------------------------------------------


@dataclass(slots=True)
class Ancestor:
    id: str
    store: str | None
    depth: int
    revisions: list[Revision] = field(default_factory=list)


async def ancestors(snapshot_id: str, store_uri: str,
                    open_store: Callable[[str], Store]) -> list[Ancestor]:
    """Every ancestor of ``snapshot_id``, nearest first, following parents across stores.

    ``snapshot_id`` itself must be readable in ``store_uri``: a store that cannot be read
    raises, and so does an id that neither the store nor the local catalog knows (an empty
    answer would read as "no ancestors"). Ancestors elsewhere that cannot be read are
    warned about and skipped."""
    from .stores import canonical_uri

    stores: dict[str, Store] = {}  # by canonical URI: ./st and file:///abs/st are one store

    def get_store(uri: str) -> Store:
        key = canonical_uri(uri)
        if key not in stores:
            stores[key] = open_store(uri)
        return stores[key]

    seen = {snapshot_id}
    parents: dict[str, set[str]] = {}  # the links walked, to tell a cycle from a diamond
    out: list[Ancestor] = []
    frontier: list[tuple[str, str | None, int]] = [(snapshot_id, store_uri, 0)]
    try:
        while frontier:
            sid, uri, depth = frontier.pop(0)
            recs: list[Revision] = []
            # the record's store, then the one asked (once if they are one store, however
            # each was written)
            candidates = [c for c in (uri, store_uri) if c is not None]
            if len(candidates) == 2 and canonical_uri(uri or "") == canonical_uri(store_uri):
                candidates.pop()
            for candidate in candidates:
                try:
                    recs = await records_in_store(get_store(candidate), sid)
                except (StoreError, UsageError) as exc:
                    # (a usage error: a record naming a store URI that cannot be one)
                    if depth == 0:
                        raise
                    warn(f"cannot read history of {sid} in {candidate}: {exc}")
                    recs = []
                if recs:
                    break
            if not recs:
                recs = catalog().revisions_of(sid)
            if depth == 0 and not recs:
                main = get_store(store_uri)
                if await _retried(partial(main.head, manifest_key(sid))) is None:
                    raise ObjectNotFound(f"snapshot {sid} is not in {main.uri} (no "
                                         f"{manifest_key(sid)}); check the id and --store",
                                         manifest_key(sid))
            if depth > 0:
                out.append(Ancestor(sid, uri, depth, recs))
            if not recs:
                warn(f"no history record for {sid}" + (f" in {uri}" if uri else "") +
                     "; its ancestors (if any) are unknown")
                continue
            for rec in recs:
                for p in rec.parents:
                    if p.id == rec.id:
                        warn(f"history record of {p.id} names itself as its parent; ignored")
                        continue
                    parents.setdefault(sid, set()).add(p.id)
                    if p.id in seen:
                        continue
                    seen.add(p.id)
                    frontier.append((p.id, p.store or rec.store or uri, depth + 1))
    finally:
        for st in stores.values():
            await st.aclose()
    if (looped := _in_a_cycle(snapshot_id, parents)) is not None:
        # a revert (v1, v2, then v1 again) makes v1 an ancestor of itself: ordinary, and
        # each id is listed once, but the walk says where it turned back (a note, once)
        sys.stderr.write(f"snapdir: note: {looped} is its own ancestor (pushed again after "
                         "a later revision, e.g. a revert); the walk lists each id once\n")
    return out


def _in_a_cycle(start: str, parents: dict[str, set[str]]) -> str | None:
    """The first id found on a cycle of the parent links walked from ``start``, or None."""
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done
    stack: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(parents.get(start, ()))))]
    state[start] = 1
    while stack:
        node, rest = stack[-1]
        nxt = next(rest, None)
        if nxt is None:
            state[node] = 2
            stack.pop()
        elif state.get(nxt) == 1:
            return nxt
        elif nxt not in state:
            state[nxt] = 1
            stack.append((nxt, iter(sorted(parents.get(nxt, ())))))
    return None


# --- the local catalog --------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS revisions (
    id TEXT NOT NULL, name TEXT NOT NULL, store TEXT NOT NULL, record TEXT NOT NULL,
    time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS revisions_id ON revisions(id);
CREATE TABLE IF NOT EXISTS events (
    id TEXT NOT NULL, kind TEXT NOT NULL, location TEXT NOT NULL, store TEXT,
    time REAL NOT NULL);
CREATE INDEX IF NOT EXISTS events_id ON events(id);
"""


@dataclass(frozen=True, slots=True)
class Location:
    id: str
    kind: str  # push, pull, fetch, stage, checkout
    location: str
    store: str | None
    time: float


class Catalog:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
            with db:
                yield db
        finally:
            db.close()

    def add_revision(self, rev: Revision) -> None:
        with self._db() as db:
            db.execute("INSERT INTO revisions VALUES (?,?,?,?,?)",
                       (rev.id, _text(rev.name), _text(rev.store), json.dumps(rev.to_json()),
                        rev.time))

    def add_event(self, snapshot_id: str, kind: str, location: str,
                  store: str | None) -> None:
        with self._db() as db:
            db.execute("INSERT INTO events VALUES (?,?,?,?,?)",
                       (snapshot_id, kind, _text(location),
                        None if store is None else _text(store), time.time()))

    def revisions_of(self, snapshot_id: str) -> list[Revision]:
        try:
            with self._db() as db:
                rows = db.execute("SELECT record FROM revisions WHERE id=? ORDER BY time",
                                  (snapshot_id,)).fetchall()
        except (sqlite3.Error, OSError):
            return []
        out = []
        for (rec,) in rows:
            try:
                out.append(Revision.from_json(json.loads(rec)))
            except ValueError:
                continue
        return out

    def latest_revision(self, name: str, store: str) -> str | None:
        """The id this machine last recorded under ``name`` in ``store``, if any."""
        try:
            with self._db() as db:
                row = db.execute("SELECT id FROM revisions WHERE name=? AND store=? "
                                 "ORDER BY time DESC LIMIT 1", (name, store)).fetchone()
        except (sqlite3.Error, OSError):
            return None
        return str(row[0]) if row else None

    def locations(self, snapshot_id: str) -> list[Location]:
        with self._db() as db:
            rows = db.execute("SELECT id, kind, location, store, time FROM events WHERE id=? "
                              "ORDER BY time DESC", (snapshot_id,)).fetchall()
        return [Location(*r) for r in rows]

    def stores(self) -> list[str]:
        """Every store this machine recorded (pushed to, pulled or fetched from)."""
        with self._db() as db:
            rows = db.execute("SELECT store FROM events WHERE store IS NOT NULL UNION "
                              "SELECT store FROM revisions").fetchall()
        return [r[0] for r in rows]

    def stores_of(self, snapshot_id: str) -> list[str]:
        """Stores this machine pushed ``snapshot_id`` to or got it from, most recent first."""
        with self._db() as db:
            rows = db.execute("SELECT store FROM events WHERE id=? AND store IS NOT NULL "
                              "ORDER BY time DESC", (snapshot_id,)).fetchall()
        return list(dict.fromkeys(r[0] for r in rows))


def _text(s: str) -> str:
    """``s`` as SQLite text can hold it: the bytes of a path that are not UTF-8 (surrogates
    in Python) shown as ``\\xff`` escapes."""
    return s.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def catalog() -> Catalog:
    return Catalog(settings.data_dir() / "catalog.sqlite")


def local_store_roots() -> list[Path]:
    """The directories of the local stores in this machine's catalog (whether or not they
    still exist); [] without a readable catalog (none is created just to ask)."""
    cat = catalog()
    if not cat.path.is_file():
        return []
    try:
        uris = cat.stores()
    except (sqlite3.Error, OSError):
        return []
    out: list[Path] = []
    for uri in uris:
        if uri.startswith("file://"):
            parts = urlsplit(uri)
            if parts.netloc in ("", "localhost") and parts.path.startswith("/"):
                out.append(Path(unquote(parts.path)))
        elif "://" not in uri and os.path.isabs(uri):
            out.append(Path(uri))
    return out


def catalog_not_updated(exc: BaseException) -> None:
    """Warn that the catalog could not be written (naming the setting to fix if the data
    directory cannot be one)."""
    warn(f"local catalog not updated ({settings.data_dir_problem() or exc})")


def safe_event(snapshot_id: str, kind: str, location: str, store: str | None) -> None:
    """Record an event; the catalog never makes a transfer fail."""
    try:
        catalog().add_event(snapshot_id, kind, location, store)
    except (sqlite3.Error, OSError) as exc:
        catalog_not_updated(exc)
