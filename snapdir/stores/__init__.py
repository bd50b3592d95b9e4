"""Stores: where objects and manifests live. ``open_store(uri)`` picks the backend.

The S3 backend is imported only when an ``s3://`` URI is opened (obstore and aiobotocore
are slow to import, and ``snapdir id`` never needs them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..errors import UsageError, redact_userinfo
from .base import Store, file_uri, s3_uri

__all__ = ["Store", "canonical_uri", "check_store", "open_store"]

#: URI schemes a store argument missing its ``//`` most likely meant (``s3:/bucket``).
_SCHEMES = {"s3", "file", "gs", "gcs", "az", "abfs", "abfss", "azure", "r2", "http",
            "https", "ftp", "sftp", "ssh", "hdfs", "webdav", "minio", "swift", "oss"}
#: Bucket names: S3's characters (with the legacy upper case and underscore), 3-255 long.
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")


def _s3_location(uri: str, rest: str) -> tuple[str, str]:
    """(bucket, prefix) of ``s3://rest``, refusing what S3 or the key layout cannot take."""
    bucket, _, prefix = rest.partition("/")
    if prefix.startswith("/"):
        raise UsageError(f"store URI {uri!r}: the prefix has an empty, '.' or '..' segment; "
                         "write it as s3://bucket/a/b")
    if not bucket:
        raise UsageError(f"no bucket in store URI {uri!r}: use s3://bucket/prefix")
    if not _BUCKET.fullmatch(bucket):
        raise UsageError(f"store URI {uri!r}: {bucket!r} is not a valid bucket name (3-255 "
                         "letters, digits, '.', '-' or '_', starting and ending with a letter "
                         "or digit); use s3://bucket/prefix")
    prefix = prefix.strip("/")
    for seg in prefix.split("/") if prefix else ():
        if seg in ("", ".", ".."):
            raise UsageError(f"store URI {uri!r}: the prefix has an empty, '.' or '..' "
                             "segment; write it as s3://bucket/a/b")
        if any(ord(c) < 32 or ord(c) == 127 for c in seg):
            raise UsageError(f"store URI {uri!r}: the prefix has a control character; "
                             "remove it")
    return bucket, prefix


def _refuse_blocked(path: str, uri: str | None = None, flag: str = "--store") -> None:
    """Refuse a file store whose path is or lies under a file (before any hashing)."""
    from ..errors import StoreError
    from .file import blocking_file, not_a_directory

    root = Path(os.path.abspath(path))  # as FileStore takes it
    if (blocker := blocking_file(root)) is not None:
        raise StoreError(not_a_directory(uri or root.as_uri(), blocker, flag))


def _file_store(path: str, uri: str | None = None, flag: str = "--store") -> Store:
    """A file store, refused at once (before any hashing) if its path is or lies under
    a file."""
    from .file import FileStore

    _refuse_blocked(path, uri, flag)
    return FileStore(path, uri=uri, named_by=flag)


def shown_uri(uri: str) -> str:
    """``uri`` as messages and displays may show it: no user name or password, even in
    a URI missing its ``//`` (``s3:/key:secret@bucket``)."""
    head, colon, tail = uri.partition(":")
    if colon and "://" not in uri and head.lower() in _SCHEMES and "@" in tail:
        return f"{head}:***@{tail.rpartition('@')[2]}"
    return redact_userinfo(uri)


def refuse_credentials(uri: str) -> None:
    """Refuse a store URI with a user name or password in it (``s3://key:secret@bucket``),
    without repeating them: they would end up in messages, the history and JSON output."""
    scheme, sep, _ = uri.partition("://")
    if sep and (shown := shown_uri(uri)) != uri:
        how = (", and give credentials through the AWS credential chain (AWS_PROFILE, or "
               "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)" if scheme.lower() == "s3"
               else " (store URIs take no credentials)")
        raise UsageError(f"store URI {shown!r} has a user name or password in it: take it "
                         f"out{how}")


def _locate(uri: str) -> tuple[str, str, str | None]:
    """Where ``uri`` points: ``("s3", bucket, prefix)`` or ``("file", path, uri)`` (the
    URI a file store is shown by, None for a plain path), refusing what no store can be.
    The rules every command stops at, and ``snapdir defaults`` asks (``check_store``)."""
    if not uri.strip():  # "" or blanks: an unset or mistyped variable, not a directory
        raise UsageError("empty store URI: use s3://bucket/prefix or file:///path")
    refuse_credentials(uri)
    scheme, sep, rest = uri.partition("://")
    if not sep:
        head, colon, _ = uri.partition(":")
        if colon and head.lower() in _SCHEMES:
            shown = shown_uri(uri)
            local = f" (or ./{uri} for a local directory)" if shown == uri else ""
            raise UsageError(f"store URI {shown!r} lacks '//' after {head + ':'!r}: write "
                             f"{head.lower()}://...{local}")
        return "file", os.path.abspath(os.path.expanduser(uri)), None
    scheme = scheme.lower()
    if scheme == "s3":
        return ("s3", *_s3_location(uri, rest))
    if scheme == "file":
        if "?" in rest or "#" in rest:  # urlsplit would drop them: another directory
            raise UsageError(f"file store URI {uri!r} has a '?' or '#', which a URI does "
                             "not take as part of the path: write them as %3F and %23, or "
                             "give the store as a plain path")
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"file store URI {uri!r} names host {parts.netloc!r}: "
                             f"use file:///absolute/path")
        path = unquote(parts.path)
        if "\0" in path:  # no file name can hold one: os calls raise ValueError
            raise UsageError(f"file store URI {uri!r} has a NUL byte (%00) in its path: "
                             "remove it")
        if not path.startswith("/"):
            raise UsageError(f"file store URI {uri!r} is not absolute: use file:///absolute/path")
        return "file", path, uri.rstrip("/") if path != "/" else uri
    raise UsageError(f"unknown store scheme {scheme!r} in {uri!r}: "
                     f"use s3://bucket/prefix or file:///path")


def canonical_uri(uri: str) -> str:
    """The URI the store at ``uri`` goes by once opened (``open_store(uri).uri``, what the
    catalog and the history records hold), without opening it: ``s3://b/p/`` and
    ``s3://b/p`` are one store, and so are ``./st`` and ``file:///abs/st``. ``uri`` as it
    is (credentials hidden) if no store can be at it."""
    try:
        kind, where, shown = _locate(uri)
    except UsageError:
        return shown_uri(uri)
    if kind == "file":
        return shown or file_uri(where)
    return s3_uri(where, shown or "")


def check_store(uri: str) -> None:
    """Refuse ``uri`` as ``open_store`` would (a ``UsageError``, or a ``StoreError`` for a
    file store whose path is a file), without opening it: no S3 client, nothing created."""
    kind, where, shown = _locate(uri)
    if kind == "file":
        _refuse_blocked(where, shown)


def open_store(uri: str, *, multipart_threshold: int | None = None,
               part_size: int | None = None, part_concurrency: int | None = None,
               named_by: str = "--store") -> Store:
    """``s3://bucket/prefix``, ``file:///abs/path`` or a plain (possibly relative) path.

    The multipart settings apply to S3 (the transfer layer passes its TransferConfig's).
    ``named_by`` is the option that gave ``uri``, for messages (sync: ``--from``, ``--to``).
    """
    kind, where, shown = _locate(uri)
    if kind == "file":
        return _file_store(where, shown, named_by)
    from .s3 import S3Store

    st = S3Store(where, shown or "")
    if multipart_threshold is not None:
        st.multipart_threshold = multipart_threshold
    if part_size is not None:
        st.part_size = part_size
    if part_concurrency is not None:
        st.max_concurrency = part_concurrency
    return st
