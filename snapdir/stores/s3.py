"""S3 (and S3-compatible) stores: obstore moves the bytes, aiobotocore finds credentials.

Except for the ranged GETs of large downloads, which write straight into files from plain
sockets (``s3ranges``; ``range_writer``): obstore would gather each range into a buffer
of its own first, one copy of every byte too many.

Credentials and region come from aiobotocore's session (``awsauth``) and are handed to
obstore through a ``credential_provider`` that renews them before they expire. Endpoint:
``AWS_ENDPOINT_URL_S3``, then ``AWS_ENDPOINT_URL``, then ``SNAPDIR_S3_STORE_ENDPOINT_URL``;
a custom endpoint gets path-style requests and may be plain http. Over https, the CA
bundle botocore would use (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``) is trusted
besides the system's, and uploads are signed with ``UNSIGNED-PAYLOAD`` (TLS protects the
bodies).

The transfer layer owns retrying (``SNAPDIR_RETRIES`` attempts per request), so obstore
makes each request once and every failure leaves here as one of our ``StoreError`` classes
(``s3errors.map_error``). Only the parts of a multipart upload are retried inside obstore
(``retries``, default 2): a part that fails after all would restart the whole upload.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import obstore
from obstore.store import S3Store as _ObStore

from ..errors import StoreError, UsageError
from .awsauth import DEFAULT_REGION, AiobotocoreCredentials, resolve_region
from .awsconfig import (
    configured_endpoint,
    configured_region,
    endpoint_problem,
    read_ca_bundle,
    region_problem,
    unsigned_payload,
)
from .base import Chunk
from .s3errors import has_status, map_error, not_s3_server, unsatisfiable

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import ClientConfig, RetryConfig

    from .s3ranges import Connections, RangeWriter, Signer

MiB = 1024 * 1024
#: A bounded range up to this size comes back as one buffer, obstore's own (a zero-copy
#: ``obstore.Bytes``); a stream instead hands over each MiB as a new Python ``bytes``,
#: zero-filled and then copied into. 2 GiB pull in 8 MiB ranges: 0.3-0.5 s less CPU.
WHOLE_RANGE = 16 * MiB
MAX_PARTS = 10_000
MIN_PART = 5 * MiB

def part_size_for(size: int, minimum: int = 8 * MiB) -> int:
    """Smallest whole-MiB part size >= ``minimum`` that keeps ``size`` within 10,000 parts."""
    need = math.ceil(size / MAX_PARTS)
    return max(minimum, MIN_PART, math.ceil(need / MiB) * MiB)


def _setting_name(where: str) -> str:
    """What to change for an endpoint found in ``where`` (see ``configured_endpoint``)."""
    if where.startswith("environment: "):
        return where.removeprefix("environment: ")
    if where.startswith("AWS config: "):
        return f"endpoint_url in the AWS config, {where.removeprefix('AWS config: ')}"
    return "the endpoint argument"


class S3Store:
    """A ``Store`` at ``s3://bucket/prefix``.

    Objects up to ``multipart_threshold`` bytes go up in one PUT; larger ones as a
    multipart upload of ``part_size_for(size, part_size)`` parts, ``max_concurrency`` at a
    time (memory: about ``max_concurrency * part size`` per object in flight). If the
    chunk iterator raises, obstore aborts the multipart upload before re-raising.
    """

    def __init__(self, bucket: str, prefix: str = "", *, endpoint: str | None = None,
                 region: str | None = None, profile: str | None = None,
                 multipart_threshold: int = 64 * MiB, part_size: int = 8 * MiB,
                 max_concurrency: int = 8, retries: int = 2,
                 connect_timeout: timedelta = timedelta(seconds=10),
                 read_timeout: timedelta = timedelta(seconds=60),
                 request_timeout: timedelta = timedelta(minutes=30),
                 list_chunk: int = 1000) -> None:
        if part_size < MIN_PART:
            raise ValueError(f"part_size must be at least {MIN_PART} bytes (S3's minimum)")
        if max_concurrency < 1 or multipart_threshold < 1 or retries < 0:
            raise ValueError("max_concurrency and multipart_threshold must be positive")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        where = "given"
        if not endpoint and (found := configured_endpoint(profile)) is not None:
            endpoint, where = found  # the environment, then the AWS config; None: AWS itself
        #: where the endpoint was set, for advice to change it
        self._endpoint_from = _setting_name(where) if endpoint else "AWS_ENDPOINT_URL"
        if endpoint:
            problem = endpoint_problem(endpoint, where)
            if problem is not None:
                raise UsageError(problem)
            scheme, rest = endpoint.split(":", 1)
            endpoint = scheme.lower() + ":" + rest  # HTTP://... works as http://...
        self.endpoint = endpoint
        #: over TLS: the CA bundle to trust besides the system's (file, PEM text), if set
        self._ca: tuple[str, str] | None = None
        if (endpoint or "https:").startswith("https:"):
            self._ca = read_ca_bundle(profile)
        self.region = region
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.max_concurrency = max_concurrency
        self.list_chunk = list_chunk
        self._retries = retries
        self._client: ClientConfig = {"connect_timeout": connect_timeout,
                                      "read_timeout": read_timeout, "timeout": request_timeout}
        self.credentials = AiobotocoreCredentials(self.uri, profile)
        self._profile = profile
        #: obstore clients by their own retries: 0 for single requests (the caller
        #: retries), ``retries`` for multipart uploads (a failed part would restart all)
        self._stores: dict[int, _ObStore] = {}
        self._region = region or DEFAULT_REGION
        self._resolved: str | None = None
        self._lock = anyio.Lock()
        #: the server has answered at least once (see ``map_error``)
        self._answered = False
        self._ranges: tuple[Connections, Signer] | None = None
        self._timeouts = (connect_timeout.total_seconds(), read_timeout.total_seconds())

    async def _ob(self, parts: bool = False) -> _ObStore:
        """The client for single requests, each made once (the caller retries); with
        ``parts``, the one for multipart uploads, which retries each part."""
        retries = self._retries if parts else 0
        if (store := self._stores.get(retries)) is None:
            async with self._lock:
                if (store := self._stores.get(retries)) is None:
                    store = self._stores[retries] = await self._build(retries)
        return store

    async def _build(self, retries: int) -> _ObStore:
        if self._resolved is None:  # once per store, whichever client is built first
            region = self.region or await resolve_region(
                self._profile, None if self.endpoint else self.bucket,
                self._ca[0] if self._ca is not None else None)
            found = configured_region(self._profile)
            where = (found[1] if found and found[0] == region else "AWS_REGION, "
                     "AWS_DEFAULT_REGION or the profile's region")
            if (problem := region_problem(region, where)) is not None:
                raise UsageError(problem)
            self._resolved = region
        region = self._region = self._resolved
        client: ClientConfig = {**self._client}
        extra: dict[str, Any] = {}
        if self.endpoint:
            extra = {"endpoint": self.endpoint, "virtual_hosted_style_request": False}
            client["allow_http"] = self.endpoint.startswith("http://")
        if self._ca is not None and not client.get("allow_http"):
            client["root_certificate"] = self._ca[1]
        # Over https, TLS already protects each body in transit (botocore signs payloads
        # over plain http only, too): no SHA-256 of every byte uploaded, 0.7-0.9 s of CPU
        # per GiB here. AWS_UNSIGNED_PAYLOAD (obstore's own variable) decides if set.
        said = unsigned_payload()
        extra["unsigned_payload"] = not client.get("allow_http") if said is None else said
        retry: RetryConfig = {
            "max_retries": retries, "retry_timeout": timedelta(seconds=60),
            "backoff": {"init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=2)}}
        try:
            return _ObStore(self.bucket, prefix=self.prefix or None, region=region,
                            client_options=client, retry_config=retry,
                            credential_provider=self.credentials, **extra)
        except Exception as exc:
            if self._ca is None or "certificate" not in str(exc):
                raise
            raise UsageError(f"the CA bundle {self._ca[0]!r} was refused by the TLS library "
                             "(a certificate in it is damaged); fix or remove it") from None

    def _error(self, exc: BaseException, key: str) -> StoreError:
        if isinstance(exc, FileNotFoundError) or has_status(exc):
            self._answered = True  # an HTTP status is an answer
        return map_error(exc, key, self.uri, self.bucket, self.credentials,
                         endpoint=self.endpoint or f"s3.{self._region}.amazonaws.com",
                         answered=self._answered, endpoint_from=self._endpoint_from)

    def _check_reply(self, result: Any, key: str) -> None:
        """Refuse a GET answered with an HTML page and no ETag (S3 always sends one): a
        web server where the S3 service should be, not an object to verify and call
        corrupt."""
        kind = str(result.attributes.get("Content-Type", ""))
        if result.meta.get("e_tag") is None and kind.startswith("text/html"):
            raise not_s3_server(self.endpoint or f"s3.{self._region}.amazonaws.com", key,
                                self.uri, "an HTML page without the ETag S3 always sends",
                                self._endpoint_from)

    async def head(self, key: str) -> int | None:
        store = await self._ob()
        try:
            meta = await obstore.head_async(store, key)
        except FileNotFoundError:
            self._answered = True
            return None
        except Exception as exc:
            raise self._error(exc, key) from exc
        self._answered = True
        return meta["size"]

    async def get(self, key: str, start: int = 0, end: int | None = None) -> AsyncIterator[Chunk]:
        if end is not None and end <= start:
            return
        store = await self._ob()
        options: GetOptions = {}
        if end is not None:
            options["range"] = (start, end)
        elif start:
            options["range"] = {"offset": start}
        try:
            result = await obstore.get_async(store, key, options=options)
            self._answered = True
            self._check_reply(result, key)
            if end is not None and end - start <= WHOLE_RANGE:
                yield memoryview(await result.bytes_async())
                return
            async for chunk in result.stream(min_chunk_size=MiB):
                yield memoryview(chunk)
        except Exception as exc:
            raise self._error(exc, key) from exc

    async def get_bytes(self, key: str) -> bytes:
        store = await self._ob()
        try:
            result = await obstore.get_async(store, key)
            self._answered = True
            self._check_reply(result, key)
            return bytes(await result.bytes_async())
        except Exception as exc:
            raise self._error(exc, key) from exc

    async def get_small(self, key: str, limit: int) -> bytes | None:
        # One awaited request for the whole body: a GET of bytes 0..limit, so one future
        # (one GIL hand-off from obstore's runtime) per object, where a plain GET needs a
        # second one for its body. 5,000 x 64 KiB: client CPU 2.9-3.1 s -> 2.35-2.4 s (a
        # stream instead of one body costs ~20 % more again). The server clamps the range
        # to the object, so more than ``limit`` bytes back means it is larger: None.
        store = await self._ob()
        try:
            data = await obstore.get_range_async(store, key, start=0, end=limit + 1)
        except Exception as exc:
            if unsatisfiable(exc):  # an empty object has no byte 0
                self._answered = True
                return b""
            raise self._error(exc, key) from exc
        self._answered = True
        if len(data) > limit:
            return None
        return bytes(data)

    async def put(self, key: str, chunks: AsyncIterable[Chunk], size: int) -> None:
        if size <= self.multipart_threshold:
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
            self._check_size(key, len(buf), size)
            await self.put_bytes(key, bytes(buf))
            return
        store = await self._ob(parts=True)
        counted = _Counted(chunks, lambda got: self._check_size(key, got, size), size)
        started = datetime.now(UTC)
        try:
            await obstore.put_async(store, key, counted, use_multipart=True,
                                    chunk_size=part_size_for(size, self.part_size),
                                    max_concurrency=self.max_concurrency)
            self._answered = True
        except BaseException as exc:
            if counted.failed:
                raise  # the source's own error: obstore has aborted the upload already
            # Cancelled (obstore just drops the upload) or failed: abort it ourselves.
            with anyio.move_on_after(15, shield=True):
                await self._abort_uploads(key, started)
            if isinstance(exc, Exception):
                raise self._error(exc, key) from exc
            raise

    async def _abort_uploads(self, key: str, since: datetime) -> None:
        """Abort multipart uploads of ``key`` begun since ``since`` (best effort)."""
        from aiobotocore.session import get_session

        full = f"{self.prefix}/{key}" if self.prefix else key
        since -= timedelta(minutes=1)  # clock skew between us and the server
        try:
            cred = await anyio.to_thread.run_sync(self.credentials)
            async with get_session().create_client(
                    "s3", endpoint_url=self.endpoint, region_name=self._region,
                    aws_access_key_id=cred["access_key_id"],
                    aws_secret_access_key=cred["secret_access_key"],
                    aws_session_token=cred.get("token")) as client:
                r = await client.list_multipart_uploads(Bucket=self.bucket, Prefix=full)
                for up in r.get("Uploads", []):
                    if up["Key"] == full and up["Initiated"] >= since:
                        await client.abort_multipart_upload(Bucket=self.bucket, Key=full,
                                                            UploadId=up["UploadId"])
        except Exception:  # noqa: BLE001 - cleanup must not hide the original error
            return

    def _check_size(self, key: str, got: int, size: int) -> None:
        if got != size:
            raise StoreError(f"put of {key} to {self.uri} got {got} bytes, expected {size}: "
                             f"the source changed while it was read", key=key)

    async def put_bytes(self, key: str, data: bytes) -> None:
        store = await self._ob()
        try:
            await obstore.put_async(store, key, data, use_multipart=False)
        except Exception as exc:
            raise self._error(exc, key) from exc
        self._answered = True

    async def list(self, prefix: str) -> AsyncIterator[list[str]]:
        store = await self._ob()
        # obstore lists whole path segments; filter for a plain string prefix.
        base = prefix.rsplit("/", 1)[0] if "/" in prefix else None
        try:
            async for metas in obstore.list(store, base, chunk_size=self.list_chunk):
                self._answered = True
                keys = [m["path"] for m in metas if m["path"].startswith(prefix)]
                if keys:
                    yield keys
        except Exception as exc:
            raise self._error(exc, prefix) from exc

    async def delete(self, key: str) -> None:
        store = await self._ob()
        try:
            await obstore.delete_async(store, key)
            self._answered = True
        except FileNotFoundError:
            self._answered = True
            return
        except Exception as exc:
            raise self._error(exc, key) from exc

    async def range_writer(self) -> RangeWriter | None:
        """Ranged GETs on plain sockets, straight into files (see ``s3ranges``), signed
        with the current credentials; None behind an HTTP proxy or for an endpoint with a
        path of its own, where obstore does the ranged GETs too."""
        from .s3ranges import Connections, RangeWriter, Signer, proxied

        if proxied():
            return None
        await self._ob()  # resolves the region
        if self._ranges is None:
            endpoint = self.endpoint or f"https://s3.{self._region}.amazonaws.com"
            if urlsplit(endpoint).path.strip("/"):
                return None
            cafile = self._ca[0] if self._ca is not None else None
            self._ranges = (Connections(endpoint, *self._timeouts, cafile=cafile),
                            Signer(self._region))
        try:
            creds = await anyio.to_thread.run_sync(self.credentials)
        except Exception as exc:
            raise self._error(exc, "") from exc
        pool, signer = self._ranges
        return RangeWriter(pool, signer, self.bucket, self.prefix, creds, self._range_error)

    def _range_error(self, exc: BaseException, key: str) -> StoreError:
        self._answered = True  # ranged GETs follow a HEAD that was answered
        return self._error(exc, key)

    async def aclose(self) -> None:
        self._stores.clear()
        if self._ranges is not None:
            self._ranges[0].close()
            self._ranges = None


class _Counted:
    """The caller's chunks, checked against ``size``; remembers whether the source failed.

    A short or long source raises from inside the iterator, so obstore aborts the upload
    instead of completing an object of the wrong size.
    """

    def __init__(self, chunks: AsyncIterable[Chunk], check: Callable[[int], None],
                 size: int) -> None:
        self._it = aiter(chunks)
        self._check = check
        self._size = size
        self.total = 0
        self.failed = False

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> Chunk:
        try:
            chunk = await self._it.__anext__()
            self.total += len(chunk)
            if self.total > self._size:
                self._check(self.total)
        except StopAsyncIteration:
            self._mark_failed(self._check, self.total)
            raise
        except BaseException:
            self.failed = True
            raise
        return chunk

    def _mark_failed(self, check: Callable[[int], None], total: int) -> None:
        try:
            check(total)
        except StoreError:
            self.failed = True
            raise
