"""S3 (and S3-compatible) stores: obstore moves the bytes, aiobotocore finds credentials.

Except for the ranged GETs of large downloads, which write straight into files from plain
sockets (``s3ranges``; ``range_writer``): obstore would gather each range into a buffer
of its own first, one copy of every byte too many.

Credentials and region come from aiobotocore's session (env, profiles, SSO, assume-role,
instance metadata) and are handed to obstore through a ``credential_provider`` that
re-reads them before they expire. Endpoint: ``AWS_ENDPOINT_URL_S3``, then
``AWS_ENDPOINT_URL``, then ``SNAPDIR_S3_STORE_ENDPOINT_URL``; a custom endpoint gets
path-style requests and may be plain http. Over https, the CA bundle botocore would use
(``AWS_CA_BUNDLE``, the profile's ``ca_bundle``) is trusted besides the system's, and
uploads are signed with ``UNSIGNED-PAYLOAD`` (TLS protects the bodies).

The transfer layer owns retrying (``SNAPDIR_RETRIES`` attempts per request), so obstore
makes each request once and every failure leaves here as one of our ``StoreError`` classes
(see ``map_error``). Only the parts of a multipart upload are retried inside obstore
(``retries``, default 2): a part that fails after all would restart the whole upload.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import AsyncIterable, AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
import obstore
from obstore.exceptions import PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store as _ObStore

from ..errors import (
    AccessDenied,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
    Throttled,
    UsageError,
    redact_userinfo,
)
from .awsconfig import configured_endpoint, endpoint_problem, profile_exists, read_ca_bundle
from .base import Chunk

if TYPE_CHECKING:
    from obstore import GetOptions
    from obstore.store import ClientConfig, RetryConfig, S3Credential

    from .s3ranges import Connections, RangeWriter, Signer

MiB = 1024 * 1024
#: A bounded range up to this size comes back as one buffer, obstore's own (a zero-copy
#: ``obstore.Bytes``); a stream instead hands over each MiB as a new Python ``bytes``,
#: zero-filled and then copied into. 2 GiB pull in 8 MiB ranges: 0.3-0.5 s less CPU.
WHOLE_RANGE = 16 * MiB
MAX_PARTS = 10_000
MIN_PART = 5 * MiB
DEFAULT_REGION = "us-east-1"
#: expiring credentials are renewed this long before they expire (botocore's mandatory
#: refresh window; obstore itself asks again 5 minutes before the expiry it is given)
_RENEW_BEFORE = timedelta(minutes=10)
#: the lifetime assumed for refreshable credentials that do not say when they expire
_UNKNOWN_LIFETIME = timedelta(minutes=15)

_STATUS = re.compile(r"\bstatus(?: code)?: (\d{3})\b")
_TOOK = re.compile(r" in ([\d.]+)(ms|s)\b")
_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
#: AuthorizationHeaderMalformed's message names the bucket's region
_EXPECTING = re.compile(r"expecting '([a-z0-9-]+)'")
_THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests",
                             "RequestLimitExceeded", "RequestThrottled"})
_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                           "ExpiredToken", "InvalidToken", "TokenRefreshRequired"})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "InternalError", "ServiceUnavailable"})


def part_size_for(size: int, minimum: int = 8 * MiB) -> int:
    """Smallest whole-MiB part size >= ``minimum`` that keeps ``size`` within 10,000 parts."""
    need = math.ceil(size / MAX_PARTS)
    return max(minimum, MIN_PART, math.ceil(need / MiB) * MiB)


class AiobotocoreCredentials:
    """An obstore ``credential_provider`` backed by aiobotocore's credential chain.

    Synchronous on purpose: obstore asks for credentials from whichever thread of its own
    runtime needs them, and the parts of a multipart upload run where no Python event loop
    is: an async provider called there is never awaited, and with expiring credentials
    (SSO, assume-role, credential_process, instance roles) every large upload failed as
    "access denied". The chain runs on a private event loop in a short-lived thread; its
    answer is kept until ``_RENEW_BEFORE`` its expiry, and obstore is given that expiry.

    Static keys in the environment are botocore's first choice too (unless a profile was
    given explicitly); they are used directly, which saves importing aiobotocore (aiohttp,
    two SSL contexts: 0.3-0.6 s of every command's start-up).
    """

    def __init__(self, uri: str, profile: str | None = None) -> None:
        self.uri = uri
        self.profile = profile
        self._lock = threading.Lock()
        self._held: S3Credential | None = None
        self._renew_at: datetime | None = None
        #: the last failure, so ``map_error`` can report it instead of obstore's wrapper
        self.error: StoreError | None = None

    def _from_env(self) -> S3Credential | None:
        if self.profile or os.environ.get("AWS_CREDENTIAL_EXPIRATION"):
            return None
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        named = os.environ.get("AWS_PROFILE", "").strip()
        if named and not profile_exists(named):
            # botocore (and so aws-cli) refuses it too, whatever keys the environment has
            self.error = AccessDenied(
                f"AWS_PROFILE={named!r} names no profile in the AWS config or credentials "
                f"file (for {self.uri}): fix or unset AWS_PROFILE")
            raise self.error
        token = os.environ.get("AWS_SESSION_TOKEN") or os.environ.get("AWS_SECURITY_TOKEN")
        return {"access_key_id": key, "secret_access_key": secret, "token": token,
                "expires_at": None}

    def __call__(self) -> S3Credential:
        static = self._from_env()
        if static is not None:
            return static
        with self._lock:
            if self._held is None or (self._renew_at is not None
                                      and datetime.now(UTC) >= self._renew_at):
                self._held = self._resolve()
                expires = self._held["expires_at"]
                if expires is not None:
                    left = expires - datetime.now(UTC)
                    self._renew_at = expires - min(_RENEW_BEFORE, left / 2)
            return self._held

    def _resolve(self) -> S3Credential:
        """Run the chain on an event loop of its own, in a thread of its own (the caller
        may be on one of obstore's threads, or on our event loop's)."""
        import asyncio

        box: list[S3Credential | BaseException] = []

        def run() -> None:
            try:
                box.append(asyncio.run(self._fetch()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                box.append(exc)

        worker = threading.Thread(target=run, name="snapdir-aws-credentials", daemon=True)
        worker.start()
        worker.join()
        got = box[0]
        if isinstance(got, BaseException):
            raise got
        return got

    async def _fetch(self) -> S3Credential:
        from aiobotocore.session import get_session

        _quiet_botocore()
        session = get_session()
        if self.profile:
            session.set_config_variable("profile", self.profile)
        try:
            creds = await session.get_credentials()
            # a deferred source (SSO, assume-role) only runs here
            frozen = await creds.get_frozen_credentials() if creds is not None else None
        except Exception as exc:
            self.error = AccessDenied(f"cannot load AWS credentials for {self.uri}: "
                                      f"{_credentials_failure(exc)}")
            raise self.error from exc
        if creds is None or frozen is None:
            profile = self.profile or os.environ.get("AWS_PROFILE", "").strip()
            which = f" (profile {profile!r} has none)" if profile else ""
            self.error = AccessDenied(
                f"no AWS credentials found for {self.uri}{which}: set AWS_PROFILE or "
                f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or log in (aws sso login)")
            raise self.error
        expires: datetime | None = None
        if getattr(creds, "refresh_needed", None) is not None:  # refreshable
            expires = getattr(creds, "_expiry_time", None)
            if isinstance(expires, datetime) and expires.tzinfo is not None:
                expires = expires.astimezone(UTC)  # botocore's is dateutil's tzlocal()
            else:
                expires = datetime.now(UTC) + _UNKNOWN_LIFETIME
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
                "token": frozen.token, "expires_at": expires}


def _credentials_failure(exc: BaseException) -> str:
    """Why botocore's chain failed, and what to do, without quoting the config or a
    credential process's output (either may hold a secret)."""
    from botocore.exceptions import (
        CredentialRetrievalError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )

    if isinstance(exc, ProfileNotFound):
        return f"{exc}; check AWS_PROFILE and your AWS config"
    if isinstance(exc, SSOError | TokenRetrievalError):
        return "the SSO session has no valid token; run `aws sso login` (with that profile)"
    if isinstance(exc, CredentialRetrievalError):
        source = getattr(exc, "kwargs", {}).get("provider") or ""
        if source == "custom-process":
            return "the profile's credential_process failed; run it by hand to see why"
        return f"the {source or 'credential'} source failed; check AWS_PROFILE and your AWS config"
    if isinstance(exc, ValueError) and type(exc).__name__ == "JSONDecodeError":
        return ("a credential source answered with something that is not JSON (the "
                "profile's credential_process?); run it by hand to see what it prints")
    return f"{type(exc).__name__}; check AWS_PROFILE and your AWS config"


def _quiet_botocore() -> None:
    """botocore logs failed refreshes with a traceback; with no logging set up, Python
    prints that on stderr. The failure reaches the user as one line instead."""
    import logging

    for name in ("botocore", "aiobotocore"):
        log = logging.getLogger(name)
        if not log.handlers:
            log.addHandler(logging.NullHandler())
            log.propagate = False


#: where a bucket's region is asked for when none is configured (AWS only)
REGION_PROBE = "https://s3.amazonaws.com"
_REGION_NAME = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


async def resolve_region(profile: str | None = None, bucket: str | None = None,
                         cafile: str | None = None) -> str:
    """``AWS_REGION``, else the session's region (env or profile config); else, for a
    ``bucket`` on AWS itself, the region AWS says the bucket is in; else us-east-1."""
    # the environment beats the config file in botocore too; skip importing aiobotocore
    region = (os.environ.get("AWS_REGION", "").strip()
              or os.environ.get("AWS_DEFAULT_REGION", "").strip())
    if region:
        return region

    def from_session() -> str | None:
        from aiobotocore.session import get_session

        session = get_session()
        if profile:
            session.set_config_variable("profile", profile)
        try:
            value = session.get_config_variable("region")
        except Exception:  # noqa: BLE001 - a broken profile should not stop a default
            return None
        return str(value) if value else None

    found = await anyio.to_thread.run_sync(from_session)
    if not found and bucket:
        found = await anyio.to_thread.run_sync(bucket_region, bucket, cafile)
    return found or DEFAULT_REGION


def bucket_region(bucket: str, cafile: str | None = None, timeout: float = 5) -> str | None:
    """The region AWS says ``bucket`` is in, or None. An anonymous HEAD of the bucket
    answers with ``x-amz-bucket-region`` whether or not the caller may read it (200, 301 or
    403), which is how botocore and the AWS SDKs follow a bucket to its region."""
    import http.client
    import ssl
    from urllib.parse import quote

    url = urlsplit(REGION_PROBE)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        ctx = ssl.create_default_context()
        if cafile:
            ctx.load_verify_locations(cafile=cafile)
        conn = http.client.HTTPSConnection(url.netloc, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(url.netloc, timeout=timeout)
    try:
        conn.request("HEAD", "/" + quote(bucket))
        said = (conn.getresponse().getheader("x-amz-bucket-region") or "").strip()
    except (OSError, http.client.HTTPException):
        return None  # no answer: the default, and the requests themselves will say more
    finally:
        conn.close()
    return said if _REGION_NAME.fullmatch(said) else None


def map_error(exc: BaseException, key: str, uri: str, bucket: str,
              creds: AiobotocoreCredentials | None = None, *, endpoint: str | None = None,
              answered: bool = True) -> StoreError:
    """Translate an obstore failure into the most specific ``StoreError``.

    ``answered``: whether the server has ever answered this store. A connection failure or
    timeout before it ever has is a wrong endpoint or a server that is down, not a passing
    fault: it is not retried (a black hole would otherwise take 5 x 60 s to give up).
    """
    if isinstance(exc, StoreError):
        return exc
    if creds is not None and creds.error is not None:
        return type(creds.error)(str(creds.error), key=key)  # not about any one object
    # an endpoint (AWS_ENDPOINT_URL) may carry user:password@, and obstore quotes URLs
    text = redact_userinfo(str(exc))
    endpoint = redact_userinfo(endpoint) if endpoint else endpoint
    m = _STATUS.search(text)
    status = int(m.group(1)) if m else None
    c = _CODE.search(text)
    code = c.group(1) if c else None
    where = f"{key} in {uri}"
    detail = " ".join(str(x) for x in (f"HTTP {status}" if status else None, code) if x)
    if code == "NoSuchBucket":
        return StoreError(f"bucket {bucket!r} does not exist (for {where}): create it or fix "
                          f"the store URI", key=key)
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFound(f"{where} does not exist", key=key)
    if (isinstance(exc, PermissionDeniedError | UnauthenticatedError)
            or status in (401, 403) or code in _DENIED_CODES):
        return AccessDenied(f"access denied to {where} ({detail or 'forbidden'}): check the "
                            f"AWS credentials/profile and the bucket policy", key=key)
    if status in (429, 503) or code in _THROTTLE_CODES:
        return Throttled(f"{uri} is throttling requests ({detail}) for {key}", key=key)
    if (status is not None and status >= 500) or code in _TRANSIENT_CODES:
        return StoreUnavailable(f"{uri} failed ({detail}) for {key}", key=key)
    if status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
        said = _EXPECTING.search(text)
        region = f" ({said.group(1)})" if said else ""
        return StoreError(f"bucket {bucket!r} is in another region{region} than "
                          f"{endpoint or 'the endpoint'} (for {where}): set AWS_REGION to "
                          "the bucket's region", key=key)
    tls = _tls_problem(exc, text, endpoint or "the S3 endpoint")
    if tls is not None:
        err = StoreUnavailable(f"{tls} (for {where})", key=key)
        err.retryable = False  # a handshake fails the same way every time
        return err
    if status is None:
        # connection refused/reset, timeouts, truncated bodies: no HTTP status to go by
        if not answered:
            took = _TOOK.search(text)
            secs = (float(took.group(1)) / (1000 if took.group(2) == "ms" else 1)
                    if took else 0.0)
            why = (f"no answer in {secs:.0f} s" if secs >= 5
                   else "the connection failed")
            err = StoreUnavailable(
                f"cannot reach {endpoint or 'S3'} for {where}: {why}; check AWS_ENDPOINT_URL "
                "(or the network) and that the server is up", key=key)
            err.retryable = False
            return err
        first = text.strip().splitlines()[0][:300] if text.strip() else type(exc).__name__
        return StoreUnavailable(f"cannot reach {uri} for {key}: {first}", key=key)
    hint = ""
    if status == 400 and code is None and (endpoint or "").startswith("http://"):
        # what a plain-http request to an https port gets (a HEAD has no body to say so)
        hint = "; if that server speaks https, write its URL with https:// (AWS_ENDPOINT_URL)"
    return StoreError(f"{uri} refused the request for {key} ({detail}){hint}", key=key)


#: rustls' (obstore's) and OpenSSL's words for a certificate that is not trusted
_CERT_WHY = {"UnknownIssuer": "signed by a CA this machine does not trust",
             "NotValidForName": "not issued for this host name",
             "Expired": "expired", "NotValidYet": "not valid yet",
             "unable to get local issuer certificate": "signed by a CA this machine does not "
                                                       "trust",
             "self-signed certificate": "self-signed",
             "Hostname mismatch": "not issued for this host name",
             "certificate has expired": "expired"}
_RUSTLS_CERT = re.compile(r"InvalidCertificate\(\s*(\w+)")


def _tls_problem(exc: BaseException, text: str, endpoint: str) -> str | None:
    """What went wrong setting up TLS with the endpoint, in words, or None."""
    import ssl

    m = _RUSTLS_CERT.search(text)
    if m is not None or isinstance(exc, ssl.SSLCertVerificationError):
        said = m.group(1) if m is not None else str(getattr(exc, "verify_message", ""))
        why = next((v for k, v in _CERT_WHY.items() if said.startswith(k)),
                   said or "not trusted")
        return (f"the TLS certificate of {endpoint} is {why}: if it is signed by your "
                "own CA, set AWS_CA_BUNDLE (or ca_bundle in the AWS profile) to that CA's "
                "PEM file")
    if ("InvalidMessage(" in text or "InvalidContentType" in text
            or (isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in text)):
        return (f"{endpoint} does not speak TLS: if it is a plain-http server, write its "
                "URL with http:// (AWS_ENDPOINT_URL)")
    if "HTTP request to an HTTPS server" in text:
        return (f"{endpoint} is an https server: write its URL with https:// "
                "(AWS_ENDPOINT_URL)")
    return None


def _unsatisfiable(exc: BaseException) -> bool:
    """Whether ``exc`` is S3's answer to a range that starts past the end of the object."""
    text = str(exc)
    status = _STATUS.search(text)
    return (status is not None and status.group(1) == "416") or "<Code>InvalidRange<" in text


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
            self._resolved = self.region or await resolve_region(
                self._profile, None if self.endpoint else self.bucket,
                self._ca[0] if self._ca is not None else None)
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
        said = os.environ.get("AWS_UNSIGNED_PAYLOAD", "").strip().lower()
        extra["unsigned_payload"] = (said in ("true", "1", "yes", "on") if said
                                     else not client.get("allow_http"))
        retry: RetryConfig = {
            "max_retries": retries, "retry_timeout": timedelta(seconds=60),
            "backoff": {"init_backoff": timedelta(milliseconds=100),
                        "max_backoff": timedelta(seconds=2)}}
        return _ObStore(self.bucket, prefix=self.prefix or None, region=region,
                        client_options=client, retry_config=retry,
                        credential_provider=self.credentials, **extra)

    def _error(self, exc: BaseException, key: str) -> StoreError:
        if isinstance(exc, FileNotFoundError) or _STATUS.search(str(exc)):
            self._answered = True  # an HTTP status is an answer
        return map_error(exc, key, self.uri, self.bucket, self.credentials,
                         endpoint=self.endpoint or f"s3.{self._region}.amazonaws.com",
                         answered=self._answered)

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
            if _unsatisfiable(exc):  # an empty object has no byte 0
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
