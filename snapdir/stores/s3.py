"""S3 (and S3-compatible) stores: obstore moves the bytes, aiobotocore finds credentials.

Except for the ranged GETs of large downloads, which write straight into files from plain
sockets (``s3ranges``; ``range_writer``): obstore would gather each range into a buffer
of its own first, one copy of every byte too many.

Credentials and region come from aiobotocore's session (``awsauth``) and are handed to
obstore through a ``credential_provider`` that renews them before they expire. Endpoint:
``SNAPDIR_S3_STORE_ENDPOINT_URL`` (1.x's, first as in 1.x), then ``AWS_ENDPOINT_URL_S3``,
then ``AWS_ENDPOINT_URL``;
a custom endpoint gets path-style requests and may be plain http. Over https, the CA
bundle botocore would use (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``) is trusted
besides the system's, and uploads are signed with ``UNSIGNED-PAYLOAD`` (TLS protects the
bodies).

The transfer layer owns retrying (``SNAPDIR_RETRIES`` attempts per request), so obstore
makes each request once and every failure leaves here as one of our ``StoreError`` classes
(``s3errors.map_error``). Only the parts of a multipart upload are retried inside obstore
(``retries``, default 2): a part that fails after all would restart the whole upload.
An upload that could not even be aborted (the server went away) is resumed by the next
put of that object (``S3Store.put``), through aiobotocore: obstore cannot resume one.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import AsyncIterable, AsyncIterator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import obstore
from obstore.store import S3Store as _ObStore

from ..errors import StoreError, StoreUnavailable, UsageError
from .awsauth import DEFAULT_REGION, AiobotocoreCredentials, resolve_region
from .awsconfig import (
    configured_endpoint,
    configured_region,
    endpoint_problem,
    read_ca_bundle,
    region_problem,
    unsigned_payload,
)
from .base import Chunk, s3_uri
from .s3errors import boto_error, has_status, map_error, not_s3_server, unsatisfiable

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
#: an incomplete multipart upload of an object that a put does not resume is aborted once
#: this old (a younger one may be another process's, uploading that object right now)
STALE_UPLOAD = timedelta(hours=1)


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
    chunk iterator raises, obstore aborts the multipart upload before re-raising. An
    incomplete multipart upload of the same key left by an earlier attempt is resumed,
    and stale ones are aborted (see ``put``).
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
        self.uri = s3_uri(bucket, self.prefix)
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
        #: whether an empty listing has been checked for a server that is not S3
        self._probed = False
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
            raise self._foreign(key, "an HTML page without the ETag S3 always sends")

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
        if meta.get("e_tag") is None:
            raise self._foreign(key, "no ETag header, which S3 always sends")
        return meta["size"]

    def _foreign(self, key: str, answer: str) -> StoreError:
        return not_s3_server(self.endpoint or f"s3.{self._region}.amazonaws.com", key,
                             self.uri, answer, self._endpoint_from)

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
        """Write ``size`` bytes from ``chunks`` to ``key``: one PUT up to
        ``multipart_threshold``, else a multipart upload of ``part_size_for(size,
        part_size)`` parts, ``max_concurrency`` at a time.

        A large object first looks for incomplete multipart uploads of ``key`` left by an
        earlier attempt (a server or network that went away mid-upload, so it could not be
        aborted either). One whose parts fit this plan (the same part size) is resumed:
        every byte is still read from ``chunks`` (and so checked by the caller's hash), each
        part it holds is kept only if its ETag is the MD5 of our bytes for it, the others
        are uploaded, and the upload is completed. Uploads of ``key`` not resumed (another
        part size, or a second one) are aborted once older than ``STALE_UPLOAD``; a younger
        one may be another process's, uploading right now. If the uploads cannot be listed
        (access denied, any failure), a fresh upload starts, as it would without them.

        A fresh upload that fails or is cancelled is aborted (best effort); a resumed one
        is left for the next attempt to resume, unless ``chunks`` itself raised (the source
        changed): then it is aborted, and nothing appears at ``key``.
        """
        if size <= self.multipart_threshold:
            buf = bytearray()
            async for chunk in chunks:
                buf += chunk
            self._check_size(key, len(buf), size)
            await self.put_bytes(key, bytes(buf))
            return
        store = await self._ob(parts=True)
        counted = _Counted(chunks, lambda got: self._check_size(key, got, size), size)
        part = part_size_for(size, self.part_size)
        async with AsyncExitStack() as stack:
            boto = _Boto(self, stack)
            found = await self._resumable(boto, key, size, part)
            if found is not None:
                await self._put_resumed(boto, key, counted, size, part, found)
                return
        started = datetime.now(UTC)
        try:
            await obstore.put_async(store, key, counted, use_multipart=True,
                                    chunk_size=part, max_concurrency=self.max_concurrency)
            self._answered = True
        except BaseException as exc:
            if counted.failed:
                raise  # the source's own error: obstore has aborted the upload already
            if isinstance(exc, Exception) and "<Code>NoSuchUpload</Code>" in str(exc):
                # another process resumed our upload and completed it (or aborted it)
                # meanwhile: nothing of ours is left to abort, and aborting the uploads
                # begun since we started would take that process's own
                await self._taken_over(key, size, exc)
                return
            # Cancelled (obstore just drops the upload) or failed: abort it ourselves.
            with anyio.move_on_after(15, shield=True):
                await self._abort_uploads(key, started)
            if isinstance(exc, Exception):
                raise self._error(exc, key) from exc
            raise

    def _full(self, key: str) -> str:
        """``key`` as the bucket knows it (with the store's prefix)."""
        return f"{self.prefix}/{key}" if self.prefix else key

    async def _resumable(self, boto: _Boto, key: str, size: int, part: int
                         ) -> _Resumable | None:
        """The incomplete multipart upload of ``key`` to resume, if one fits the plan
        (``part`` bytes per part for ``size``); aborts the others older than
        ``STALE_UPLOAD``. None, silently, if the uploads cannot be listed."""
        full = self._full(key)
        count = max(1, -(-size // part))
        last = size - (count - 1) * part
        try:  # most often there is none: one plain signed GET says so (see uploads_of)
            writer = await self.range_writer()
            if writer is not None:
                # abandoned on cancel: a server that stopped answering must not hold
                # Ctrl-C up for the read timeout (the thread ends with it, then closes)
                seen = await anyio.to_thread.run_sync(writer.uploads_of, key,
                                                      abandon_on_cancel=True)
                if seen is False:
                    self._answered = True
                    return None
        except Exception:  # noqa: BLE001, S110 - then aiobotocore lists them, or cannot
            pass
        try:
            client = await boto.client()
            uploads = await _list_uploads(client, self.bucket, full)
        except Exception:  # noqa: BLE001 - not allowed, or failing: a fresh upload
            return None
        self._answered = True
        best: _Resumable | None = None
        others: list[dict[str, Any]] = []
        for up in uploads:
            try:
                parts = await _list_parts(client, self.bucket, full, up["UploadId"])
            except Exception:  # noqa: BLE001, S112 - gone meanwhile, or not ours to read
                continue
            fits = all(1 <= n <= count and got == (part if n < count else last)
                       for n, (got, _) in parts.items())
            if not fits:
                others.append(up)
                continue
            here = _Resumable(up["UploadId"], {n: tag for n, (_, tag) in parts.items()},
                              sum(got for got, _ in parts.values()), up["Initiated"])
            if best is None or (here.done, here.initiated) > (best.done, best.initiated):
                if best is not None:
                    others.append({"UploadId": best.upload_id, "Initiated": best.initiated})
                best = here
            else:
                others.append(up)
        old = datetime.now(UTC) - STALE_UPLOAD
        for up in others:
            if up["Initiated"] < old:
                try:
                    await client.abort_multipart_upload(Bucket=self.bucket, Key=full,
                                                        UploadId=up["UploadId"])
                except Exception:  # noqa: BLE001, S112 - cleanup is best effort
                    continue
        return best

    async def _put_resumed(self, boto: _Boto, key: str, counted: _Counted, size: int,
                           part: int, found: _Resumable) -> None:
        """Finish upload ``found``: read every part from ``counted``, keep those the server
        holds with the same MD5, upload the others (``max_concurrency`` at a time), then
        complete it with all of them."""
        full = self._full(key)
        etags: dict[int, str] = {}
        slots = anyio.Semaphore(self.max_concurrency)

        async def send(n: int, data: bytes, md5: bytes) -> None:
            try:
                client = await boto.client()
                r = await client.upload_part(
                    Bucket=self.bucket, Key=full, UploadId=found.upload_id, PartNumber=n,
                    Body=data, ContentMD5=base64.b64encode(md5).decode())
                etags[n] = r["ETag"]
            finally:
                slots.release()

        try:
            try:
                async with anyio.create_task_group() as tg:
                    n = 0
                    async for data in _parts(counted, part):
                        n += 1
                        md5 = await anyio.to_thread.run_sync(_md5, data)
                        held = found.parts.get(n)
                        if held is not None and held.strip('"').lower() == md5.hex():
                            etags[n] = held  # already there, with these very bytes
                            continue
                        await slots.acquire()
                        tg.start_soon(send, n, data, md5)
            except BaseExceptionGroup as group:
                raise _first_error(group) from None
            client = await boto.client()
            await client.complete_multipart_upload(
                Bucket=self.bucket, Key=full, UploadId=found.upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]}
                                           for n in sorted(etags)]})
            self._answered = True
        except BaseException as exc:
            if counted.failed:  # the source changed: its parts are no use to anyone
                with anyio.move_on_after(15, shield=True):
                    try:
                        client = await boto.client()
                        await client.abort_multipart_upload(
                            Bucket=self.bucket, Key=full, UploadId=found.upload_id)
                    except Exception:  # noqa: BLE001, S110 - must not hide the source's error
                        pass
                raise
            if not isinstance(exc, Exception):
                raise  # cancelled: the upload stays, for the next attempt to resume
            if _code(exc) == "NoSuchUpload":
                # another process completed (or aborted) it meanwhile
                await self._taken_over(key, size, exc)
                return
            raise self._error(boto_error(exc), key) from exc

    async def _taken_over(self, key: str, size: int, exc: Exception) -> None:
        """After S3 said our multipart upload of ``key`` no longer exists: another process
        completed (or aborted) it meanwhile. Done if the object is there whole; else an
        error that is retried."""
        if await self.head(key) == size:
            return
        err = StoreUnavailable(f"the multipart upload of {key} to {self.uri} was "
                               "completed or aborted by another process meanwhile", key=key)
        raise err from exc

    async def _abort_uploads(self, key: str, since: datetime) -> None:
        """Abort multipart uploads of ``key`` begun since ``since`` (best effort)."""
        full = self._full(key)
        since -= timedelta(minutes=1)  # clock skew between us and the server
        try:
            async with AsyncExitStack() as stack:
                client = await _Boto(self, stack).client()
                for up in await _list_uploads(client, self.bucket, full):
                    if up["Initiated"] >= since:
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
        listed = False
        try:
            async for metas in obstore.list(store, base, chunk_size=self.list_chunk):
                self._answered = True
                listed = listed or bool(metas)
                keys = [m["path"] for m in metas if m["path"].startswith(prefix)]
                if keys:
                    yield keys
        except Exception as exc:
            raise self._error(exc, prefix) from exc
        if not listed and not self._probed:
            await self._probe(prefix, base)

    async def _probe(self, prefix: str, base: str | None) -> None:
        """After an empty listing: ask for a key that does not exist. A web server or
        proxy answering every request with 200 and a page of its own parses as an empty
        listing; S3 answers this with 404 (or 403), never with an object without an ETag.
        Any other failure is left to the requests that follow."""
        self._probed = True
        key = f"{base}/.snapdir-probe" if base else ".snapdir-probe"
        try:
            meta = await obstore.head_async(await self._ob(), key)
        except Exception:  # noqa: BLE001 - 404, 403, unreachable: for what follows to say
            return
        if meta.get("e_tag") is None:
            raise self._foreign(prefix, "200 OK for a key that does not exist, and no ETag")

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


@dataclass(slots=True)
class _Resumable:
    """An incomplete multipart upload whose parts fit the plan of a put."""

    upload_id: str
    #: part number -> ETag (quoted hex MD5 of the part's bytes, without SSE-KMS)
    parts: dict[int, str]
    #: bytes its parts hold
    done: int
    initiated: datetime


class _Boto:
    """An aiobotocore S3 client for the listing, cleanup and resumed multipart uploads of
    one put (obstore cannot resume an upload), with our credentials, endpoint, region,
    CA bundle and timeouts; a new one when the credentials are about to expire. Each
    client is closed with ``stack``."""

    def __init__(self, store: S3Store, stack: AsyncExitStack) -> None:
        self._store = store
        self._stack = stack
        self._client: Any = None
        self._expires: datetime | None = None
        self._lock = anyio.Lock()

    def _stale(self) -> bool:
        return self._client is None or (
            self._expires is not None
            and datetime.now(UTC) >= self._expires - timedelta(minutes=5))

    async def client(self) -> Any:
        if self._stale():
            async with self._lock:
                if self._stale():
                    self._client = await self._new()
        return self._client

    async def _new(self) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        st = self._store
        await st._ob()  # resolves the region
        cred = await anyio.to_thread.run_sync(st.credentials)
        self._expires = cred.get("expires_at")
        config = AioConfig(
            connect_timeout=st._timeouts[0], read_timeout=st._timeouts[1],
            retries={"mode": "standard", "total_max_attempts": st._retries + 1},
            # parts carry Content-MD5 instead: no CRC trailers some S3 servers refuse
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path"} if st.endpoint else None)
        return await self._stack.enter_async_context(get_session().create_client(
            "s3", endpoint_url=st.endpoint, region_name=st._region,
            aws_access_key_id=cred["access_key_id"],
            aws_secret_access_key=cred["secret_access_key"],
            aws_session_token=cred.get("token"),
            verify=st._ca[0] if st._ca is not None else None, config=config))


async def _list_uploads(client: Any, bucket: str, full: str) -> list[dict[str, Any]]:
    """The incomplete multipart uploads of exactly ``full`` (every page)."""
    found: list[dict[str, Any]] = []
    more: dict[str, str] = {}
    while True:
        r = await client.list_multipart_uploads(Bucket=bucket, Prefix=full, **more)
        found += [up for up in r.get("Uploads", []) if up.get("Key") == full]
        after = {"KeyMarker": r.get("NextKeyMarker"),
                 "UploadIdMarker": r.get("NextUploadIdMarker")}
        if not r.get("IsTruncated") or not after["KeyMarker"] or after == more:
            return found
        more = {k: v for k, v in after.items() if v}


async def _list_parts(client: Any, bucket: str, full: str, upload_id: str
                      ) -> dict[int, tuple[int, str]]:
    """Part number -> (size, ETag) of the parts of upload ``upload_id`` (every page)."""
    found: dict[int, tuple[int, str]] = {}
    more: dict[str, int] = {}
    while True:
        r = await client.list_parts(Bucket=bucket, Key=full, UploadId=upload_id, **more)
        for p in r.get("Parts", []):
            found[int(p["PartNumber"])] = (int(p["Size"]), str(p["ETag"]))
        after = int(r.get("NextPartNumberMarker") or 0)
        if not r.get("IsTruncated") or after <= more.get("PartNumberMarker", 0):
            return found
        more = {"PartNumberMarker": after}


async def _parts(chunks: AsyncIterable[Chunk], part: int) -> AsyncIterator[bytes]:
    """``chunks`` regrouped into parts of ``part`` bytes (the last one shorter)."""
    buf = bytearray()
    async for chunk in chunks:
        if not buf and len(chunk) == part:
            yield chunk if isinstance(chunk, bytes) else bytes(chunk)
            continue
        buf += chunk
        while len(buf) >= part:
            yield bytes(buf[:part])
            del buf[:part]
    if buf:
        yield bytes(buf)


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def _code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """A task group's first ``Exception`` (depth first), else the group itself."""
    for exc in group.exceptions:
        inner = _first_error(exc) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(inner, Exception) and not isinstance(inner, BaseExceptionGroup):
            return inner
    return group
