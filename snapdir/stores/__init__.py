"""Stores: where objects and manifests live. ``open_store(uri)`` picks the backend.

The S3 backend is imported only when an ``s3://`` URI is opened (obstore and aiobotocore
are slow to import, and ``snapdir id`` never needs them).
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

from ..errors import UsageError
from .base import Store

__all__ = ["Store", "open_store"]


def open_store(uri: str, *, multipart_threshold: int | None = None,
               part_size: int | None = None, part_concurrency: int | None = None) -> Store:
    """``s3://bucket/prefix``, ``file:///abs/path`` or a plain (possibly relative) path.

    The multipart settings apply to S3 (the transfer layer passes its TransferConfig's).
    """
    if not uri:
        raise UsageError("empty store URI: use s3://bucket/prefix or file:///path")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        from .file import FileStore

        return FileStore(os.path.abspath(os.path.expanduser(uri)))
    scheme = scheme.lower()
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"no bucket in store URI {uri!r}: use s3://bucket/prefix")
        from .s3 import S3Store

        st = S3Store(bucket, prefix.strip("/"))
        if multipart_threshold is not None:
            st.multipart_threshold = multipart_threshold
        if part_size is not None:
            st.part_size = part_size
        if part_concurrency is not None:
            st.max_concurrency = part_concurrency
        return st
    if scheme == "file":
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"file store URI {uri!r} names host {parts.netloc!r}: "
                             f"use file:///absolute/path")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise UsageError(f"file store URI {uri!r} is not absolute: use file:///absolute/path")
        from .file import FileStore

        return FileStore(path, uri=uri.rstrip("/") if path != "/" else uri)
    raise UsageError(f"unknown store scheme {scheme!r} in {uri!r}: "
                     f"use s3://bucket/prefix or file:///path")
