"""Ranged GETs of S3 objects written straight into a file, over plain sockets.

The data plane of large downloads. obstore hands a range over as one buffer it has
gathered (a copy of every byte) and leaves it to be copied into the page cache from
memory long gone cold; here a worker thread receives each range into a small buffer with
``recv_into`` and writes it out while it is still in the CPU's cache. 2 GiB through the
local SeaweedFS, same host (wall / client CPU / server CPU): obstore's ranged GETs
5.1-5.3 s / 5.4-5.9 s / 3.9-4.4 s; these 4.1-4.3 s / 4.1-4.5 s / 3.4-3.6 s; s5cmd
2.6-2.9 s / 2.3-2.5 s / 2.7-3.1 s.

Only what ranged GETs need: HTTP/1.1 with keep-alive, AWS Signature Version 4 (the
credentials come from the store's provider, per range), TLS for https endpoints
(``AWS_CA_BUNDLE`` honoured), path-style addressing like the store's obstore client.
Stores behind an HTTP proxy keep obstore for everything (see ``S3Store.range_writer``).
Errors leave as the store's own ``StoreError`` classes, through the same mapping as
obstore's.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit

from ..errors import AGAIN, StoreError, StoreUnavailable
from ..fileio import pwrite_all

if TYPE_CHECKING:
    from obstore.store import S3Credential

#: bytes asked of the socket at a time: a few of the kernel's socket-buffer reads, small
#: enough to stay in the CPU's cache until written
RECV_SIZE = 256 * 1024
#: longest response head (status line and headers) accepted
_MAX_HEAD = 64 * 1024
#: largest ListMultipartUploads reply read (1,000 uploads at most, ~0.5 KiB each)
_MAX_LISTING = 4 * 1024 * 1024
_UNSIGNED = "UNSIGNED-PAYLOAD"
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
               "all_proxy")


def proxied() -> bool:
    """Whether the environment routes HTTP through a proxy (then obstore, which knows
    proxies, does all the talking)."""
    return any(os.environ.get(name) for name in _PROXY_VARS)


def proxy_variable(endpoint: str | None) -> str | None:
    """The variable naming the proxy requests to ``endpoint`` (None: AWS, over https) go
    through, if one is set (for messages: a dead proxy looks like a dead endpoint)."""
    scheme = "http" if (endpoint or "").lower().startswith("http://") else "https"
    return next((name for name in _PROXY_VARS
                 if name.lower() in (f"{scheme}_proxy", "all_proxy") and os.environ.get(name)),
                None)


class Signer:
    """AWS Signature Version 4 for one region's S3 (header-signed, unsigned payload)."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._keys: dict[tuple[str, str], bytes] = {}

    def _key(self, secret: str, day: str) -> bytes:
        found = self._keys.get((secret, day))
        if found is None:
            k = hmac.digest(("AWS4" + secret).encode(), day.encode(), "sha256")
            for part in (self.region, "s3", "aws4_request"):
                k = hmac.digest(k, part.encode(), "sha256")
            self._keys = {(secret, day): k}  # one day, one secret at a time
            found = k
        return found

    def sign(self, method: str, host: str, path: str, headers: dict[str, str],
             creds: S3Credential, now: datetime | None = None,
             payload: str = _UNSIGNED, query: str = "") -> dict[str, str]:
        """``headers`` plus the date, payload and token headers and ``Authorization``.
        ``path`` is already URI-encoded; header names are lower case; ``payload`` is the
        body's SHA-256 (hex), or S3's ``UNSIGNED-PAYLOAD``; ``query`` is the request's
        query string in canonical form (``canonical_query``)."""
        now = now or datetime.now(UTC)
        stamp = now.strftime("%Y%m%dT%H%M%SZ")
        day = stamp[:8]
        out = {"host": host, **headers, "x-amz-content-sha256": payload,
               "x-amz-date": stamp}
        token = creds.get("token")
        if token:
            out["x-amz-security-token"] = token
        names = sorted(out)
        canonical = "\n".join([
            method, path, query,
            *(f"{n}:{' '.join(out[n].split())}" for n in names), "",
            ";".join(names), payload])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self._key(creds["secret_access_key"], day), to_sign.encode(),
                             "sha256").hexdigest()
        out["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={creds['access_key_id']}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}")
        return out


def canonical_query(params: dict[str, str]) -> str:
    """A query string in SigV4's canonical form (names sorted, both sides encoded, ``=``
    even without a value), which is also a valid query string to send."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                    for k, v in sorted(params.items()))


class Connections:
    """Keep-alive connections to one endpoint, shared by the threads of a transfer."""

    def __init__(self, endpoint: str, connect_timeout: float, read_timeout: float, *,
                 cafile: str | None = None) -> None:
        url = urlsplit(endpoint)
        #: a CA bundle trusted besides the system's (``AWS_CA_BUNDLE``), as obstore does
        self.cafile = cafile
        self.tls = url.scheme == "https"
        self.hostname = url.hostname or ""
        self.port = url.port or (443 if self.tls else 80)
        default = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        self.host = self.hostname if default else f"{self.hostname}:{self.port}"
        if ":" in self.hostname:  # an IPv6 literal
            self.host = f"[{self.hostname}]" + ("" if default else f":{self.port}")
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._tls_lock = threading.Lock()

    def take(self) -> tuple[socket.socket, bool]:
        """A connection, and whether it was used before (it may have been closed by the
        server since)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        sock = socket.create_connection((self.hostname, self.port), self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls:
                sock = self._context().wrap_socket(sock, server_hostname=self.hostname)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        return sock, False

    def _context(self) -> ssl.SSLContext:
        """The TLS settings, made once and published whole: loading a CA bundle releases
        the GIL, and a thread that saw the context half made trusted the system's CAs only."""
        with self._tls_lock:
            if self._tls is None:
                context = ssl.create_default_context()
                if self.cafile:
                    context.load_verify_locations(cafile=self.cafile)
                self._tls = context
            return self._tls

    def exchange(self, request: bytes,
                 claim: Callable[[socket.socket], None] | None = None,
                 stopped: Callable[[], bool] = lambda: False
                 ) -> tuple[socket.socket, int, dict[str, str], bytes]:
        """Send ``request`` on a kept-alive connection (a new one if none is idle) and read
        the reply's head: (the connection, status, header fields, the body's first bytes).
        A kept connection the server closed while it sat idle is replaced once, unless
        ``stopped()``. ``claim(sock)`` hears of each connection before it is used (it may
        raise to refuse it: the connection is closed)."""
        for fresh in (False, True):
            sock, reused = self.take()
            try:
                if claim is not None:
                    claim(sock)
                sock.sendall(request)
                status, fields, rest = _read_head(sock)
            except (OSError, EOFError):
                sock.close()
                if reused and not fresh and not stopped():
                    continue  # the server closed it while it sat idle: once more, anew
                raise
            except BaseException:
                sock.close()
                raise
            return sock, status, fields, rest
        raise AssertionError("unreachable: the second attempt returns or raises")

    def give(self, sock: socket.socket) -> None:
        with self._lock:
            self._idle.append(sock)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()


class _Stopped(Exception):
    """The range was stopped from outside (its transfer was cancelled)."""


_local = threading.local()


def _buffer() -> memoryview:
    view: memoryview | None = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(RECV_SIZE))
    return view


class RangeCall:
    """One ranged GET, ``[start, end)`` of ``path``, written at the same offsets of ``fd``.

    ``run`` blocks (call it in a worker thread); ``stop`` may be called from any thread and
    makes ``run`` return promptly. ``written(n)`` hears of every ``n`` bytes on disk, so a
    retry can resume after them. ``write_lock``, shared by every range of one file, is held
    around each write to it (see ``fileio``).
    """

    def __init__(self, writer: RangeWriter, key: str, start: int, end: int, fd: int,
                 written: Callable[[int], None],
                 write_lock: threading.Lock | None = None) -> None:
        self._w = writer
        self.key = key
        self.start = start
        self.end = end
        self._fd = fd
        self._written = written
        self._write_lock = write_lock or threading.Lock()
        self._sock: socket.socket | None = None
        self._stopped = False
        self._lock = threading.Lock()

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _use(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self._stopped:
                raise _Stopped

    def run(self) -> None:
        w = self._w
        headers = w.signer.sign("GET", w.pool.host, w.path(self.key),
                                {"range": f"bytes={self.start}-{self.end - 1}"}, w.creds)
        request = _get(w.path(self.key), headers)
        try:
            sock, status, fields, rest = w.pool.exchange(
                request, claim=self._use, stopped=lambda: self._stopped)
            try:
                keep = self._body(sock, status, fields, rest)
            except BaseException:
                sock.close()
                raise
            self._use(None)
            if keep:
                w.pool.give(sock)
            else:
                sock.close()
        except _Stopped:
            return
        except _WriteFailed as failed:
            raise failed.error from None  # e.g. a full disk, as any local write reports it
        except StoreError:
            if self._stopped:  # what stopping it did to the socket: not a failure
                return
            raise
        except (OSError, EOFError, ValueError) as exc:
            if self._stopped:
                return
            if isinstance(exc, TimeoutError):
                exc = TimeoutError(f"no data in {w.pool.read_timeout:.0f} s")
            elif isinstance(exc, EOFError):
                exc = EOFError("the server closed the connection")
            raise w.error(exc, self.key) from exc

    def _body(self, sock: socket.socket, status: int, fields: dict[str, str],
              rest: bytes) -> bool:
        """Receive the body; True if the connection may be used again."""
        w = self._w
        length = int(fields.get("content-length", "-1"))
        if status not in (200, 206):
            text = rest
            while len(text) < min(length, _MAX_HEAD):
                more = sock.recv(_MAX_HEAD)
                if not more:
                    break
                text += more
            detail = text[:_MAX_HEAD].decode("utf-8", "replace")
            exc: Exception = (FileNotFoundError(detail) if status == 404
                              else OSError(f"status: {status} {detail}"))
            raise w.error(exc, self.key)
        want = self.end - self.start
        where = fields.get("content-range", "")
        if status == 200 and self.start == 0 and length == want:
            pass  # the whole object, which is the range asked for
        elif length != want or not where.startswith(f"bytes {self.start}-{self.end - 1}/"):
            raise StoreUnavailable(
                f"{self.key}: asked for bytes {self.start}-{self.end - 1}, the server sent "
                f"{length} bytes ({where or 'no Content-Range'}); {AGAIN}", self.key)
        if "chunked" in fields.get("transfer-encoding", ""):
            raise StoreUnavailable(f"{self.key}: chunked ranged reply; {AGAIN}", self.key)
        fd = self._fd
        lock = self._write_lock
        pos = self.start
        overran = len(rest) > want  # more than the body: the connection is out of step
        if rest:
            rest = rest[:want]
            with lock:
                _pwrite(fd, memoryview(rest), pos)
            pos += len(rest)
            self._written(len(rest))
        view = _buffer()
        while pos < self.end:
            n = sock.recv_into(view, min(RECV_SIZE, self.end - pos))
            if not n:
                raise StoreUnavailable(
                    f"{self.key}: truncated body ({pos - self.start} of {want} bytes); "
                    f"{AGAIN}", self.key)
            with lock:
                _pwrite(fd, view[:n], pos)
            pos += n
            self._written(n)
        return not overran and fields.get("connection", "").lower() != "close"


class _WriteFailed(Exception):
    """Writing to the local file failed (``error`` says why): not the store's fault, and
    not retried as if it were."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


def _pwrite(fd: int, data: memoryview, offset: int) -> None:
    try:
        pwrite_all(fd, data, offset)
    except OSError as exc:
        raise _WriteFailed(exc) from exc


def _get(target: str, headers: dict[str, str]) -> bytes:
    """An HTTP/1.1 GET of ``target`` (path and query, already encoded) with ``headers``."""
    return (f"GET {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            + "user-agent: snapdir\r\n\r\n").encode()


def _read_head(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, header fields (lower-case names) and whatever of the body came with them."""
    data = b""
    while True:
        more = sock.recv(_MAX_HEAD)
        if not more:
            raise EOFError
        data += more
        end = data.find(b"\r\n\r\n")
        if end >= 0:
            break
        if len(data) > _MAX_HEAD:
            raise ValueError("response head too long")
    lines = data[:end].decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:80]!r}")
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return int(parts[1]), fields, data[end + 4:]


class RangeWriter:
    """Ranged GETs from one bucket with one set of credentials; makes ``RangeCall``s."""

    def __init__(self, pool: Connections, signer: Signer, bucket: str, prefix: str,
                 creds: S3Credential, error: Callable[[BaseException, str], StoreError]
                 ) -> None:
        self.pool = pool
        self.signer = signer
        self._base = "/" + quote(bucket, safe="") + "/" + (quote(prefix) + "/" if prefix else "")
        self._bucket = bucket
        self._prefix = prefix
        self.creds = creds
        self.error = error

    def uploads_of(self, key: str) -> bool | None:
        """Whether the bucket holds incomplete multipart uploads of exactly ``key``: one
        signed ListMultipartUploads GET, without the aiobotocore client (0.4 s of imports
        and service models) a large put would otherwise make just to find none. False
        too when listing them is not allowed (403: none this caller could resume); None
        when it cannot tell (unreachable, another status, a reply it does not understand)."""
        import xml.etree.ElementTree as ET

        full = f"{self._prefix}/{key}" if self._prefix else key
        path = "/" + quote(self._bucket, safe="")
        query = canonical_query({"uploads": "", "prefix": full})
        headers = self.signer.sign("GET", self.pool.host, path, {}, self.creds, query=query)
        try:
            sock, status, fields, body = self.pool.exchange(_get(f"{path}?{query}", headers))
            try:
                length = int(fields.get("content-length", "-1"))
                if length < 0 or length > _MAX_LISTING:
                    raise ValueError("listing without a usable length")
                while len(body) < length:
                    more = sock.recv(min(length - len(body), RECV_SIZE))
                    if not more:
                        raise EOFError
                    body += more
            finally:
                # not kept for reuse: a push has no ranged GETs to reuse it for, and a
                # store that is never closed would leave it open
                sock.close()
            if status == 403:
                return False  # none this caller may see (or resume): a fresh upload
            if status != 200:
                return None
            root = ET.fromstring(body)
        except (OSError, EOFError, ValueError, ET.ParseError):
            return None
        truncated = False
        for el in root.iter():
            name = el.tag.rsplit("}", 1)[-1]
            if name == "Upload" and any(c.tag.rsplit("}", 1)[-1] == "Key" and c.text == full
                                        for c in el):
                return True
            if name == "IsTruncated" and (el.text or "").strip() == "true":
                truncated = True
        return None if truncated else False

    def path(self, key: str) -> str:
        return self._base + quote(key)

    def call(self, key: str, start: int, end: int, fd: int,
             written: Callable[[int], None],
             write_lock: threading.Lock | None = None) -> RangeCall:
        return RangeCall(self, key, start, end, fd, written, write_lock)
