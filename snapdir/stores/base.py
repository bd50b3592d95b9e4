"""The store interface: a few async verbs over keys in a prefix.

Keys are relative to the store's prefix, e.g. ``.objects/49d/c87/0df/1de7...`` (see
FORMAT.md for the layout; ``object_key``/``manifest_key`` build them). Stores translate
their own failures into the ``StoreError`` tree (``ObjectNotFound``, ``AccessDenied``,
``Throttled``, ``StoreUnavailable``) with the key attached; retrying is the transfer
layer's job (``transfer/retry.py``), not the store's.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from .s3ranges import RangeWriter

OBJECTS = ".objects"
MANIFESTS = ".manifests"
HISTORY = ".snapdir-history"  # revision records; snapdir 1.x ignores this prefix

#: what ``Store.get`` yields and ``Store.put`` takes: bytes, or a view of a buffer already
#: held (S3 bodies are handed over without a copy); hashers and writes take either.
Chunk: TypeAlias = bytes | memoryview


def s3_uri(bucket: str, prefix: str) -> str:
    """The URI an S3 store goes by (``S3Store.uri``): no slashes around the prefix."""
    prefix = prefix.strip("/")
    return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"


def file_uri(root: str | os.PathLike[str]) -> str:
    """The URI a file store at ``root`` goes by unless given one (``FileStore.uri``)."""
    return Path(os.path.abspath(os.fspath(root))).as_uri()


def named_by(store: object) -> str:
    """The option that named ``store``, for messages: ``--store`` unless the command set
    the store's ``named_by`` (sync: ``--from``, ``--to``)."""
    flag = getattr(store, "named_by", None)
    return flag if isinstance(flag, str) and flag else "--store"


def check_flag(store: object) -> str:
    """``--store (or SNAPDIR_STORE)``, or the option that named ``store`` if another."""
    flag = named_by(store)
    return "--store (or SNAPDIR_STORE)" if flag == "--store" else flag


def shard(digest: str) -> str:
    return f"{digest[0:3]}/{digest[3:6]}/{digest[6:9]}/{digest[9:]}"


def object_key(digest: str) -> str:
    return f"{OBJECTS}/{shard(digest)}"


def manifest_key(snapshot_id: str) -> str:
    return f"{MANIFESTS}/{shard(snapshot_id)}"


def digest_from_key(key: str) -> str | None:
    """``.objects/abc/def/ghi/rest`` -> ``abcdefghirest`` (None if not that shape)."""
    parts = key.split("/")
    if len(parts) != 5 or parts[0] not in (OBJECTS, MANIFESTS):
        return None
    return "".join(parts[1:])


@runtime_checkable
class Store(Protocol):
    """What the transfer engine needs from a store."""

    #: the URI users gave (``s3://bucket/prefix``, ``file:///abs``); never holds secrets
    uri: str

    async def head(self, key: str) -> int | None:
        """Size of the object at ``key``, or None if it does not exist."""
        ...

    def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[Chunk]:
        """Stream the bytes of ``key`` (``[start, end)`` when given). ObjectNotFound if absent.

        An async generator: errors surface on the first ``__anext__``.
        """
        ...

    async def get_bytes(self, key: str) -> bytes:
        """The whole object (for manifests and small records)."""
        ...

    async def get_small(self, key: str, limit: int) -> bytes | None:
        """The whole object in one request if it is at most ``limit`` bytes, else None
        (without reading its body: stream it with ``get``). ObjectNotFound if absent."""
        ...

    async def put(self, key: str, chunks: AsyncIterable[Chunk], size: int) -> None:
        """Write ``size`` bytes from ``chunks`` to ``key``, all or nothing.

        Large objects go multipart with parts uploaded in parallel; if ``chunks`` raises
        (e.g. the source changed) the upload is aborted and nothing appears at ``key``.
        """
        ...

    async def put_bytes(self, key: str, data: bytes) -> None:
        ...

    def list(self, prefix: str) -> AsyncIterator[list[str]]:
        """Keys under ``prefix`` (relative to the store), in chunks."""
        ...

    async def delete(self, key: str) -> None:
        ...

    async def aclose(self) -> None:
        ...


@runtime_checkable
class WritesRanges(Protocol):
    """A store that can write byte ranges of its objects straight into files (S3)."""

    async def range_writer(self) -> RangeWriter | None:
        """Something that fetches ranges into a file descriptor (one per attempt: it
        carries the credentials of the moment), or None to use ``Store.get``."""
        ...
