"""A fault-injecting HTTP/1.1 reverse proxy for S3 tests (loopback only).

``FaultProxy(upstream).start()`` listens on 127.0.0.1 in a background thread with its own
asyncio loop and forwards every request to ``upstream`` (e.g. SeaweedFS's S3 port). Point a
client at it with ``AWS_ENDPOINT_URL=proxy.endpoint``. The Host header is forwarded
unchanged (SigV4 signs it), so signatures stay valid.

For a share ``rate`` of requests (chosen with a seeded RNG) it injects one fault:

* ``slowdown``: answers ``503`` with an S3 ``<Code>SlowDown</Code>`` body (not forwarded);
* ``reset_before``: forwards the request (the server acts on it) then resets the client
  connection before any byte of the response;
* ``reset_mid_body``: sends the headers and part of the body, then resets;
* ``truncate``: sends the headers (full Content-Length) and part of the body, then closes
  cleanly (FIN);
* ``flip``: flips one byte of a GET object body (a read of one object, not a listing).

Setting ``frozen`` makes it stop answering: later requests are read, then held until it stops.
Setting ``down`` makes it a server that went away: each later request is read, then its
connection reset (nothing forwarded); ``down_after_parts = n`` sets ``down`` once ``n``
multipart-upload parts (PUTs with a ``partNumber``) have been forwarded. ``log`` holds the
method and target of every request forwarded. ``deny(method, target)``, if set, picks
requests to answer ``403 AccessDenied`` (not forwarded), as a bucket policy would.

Faults that need a body fall back to ``reset_before`` on bodiless responses. ``counts``
holds how many of each kind were injected; ``requests`` how many requests were seen.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable
from typing import Self
from urllib.parse import urlsplit

KINDS = ("slowdown", "reset_before", "reset_mid_body", "truncate", "flip")
_HOP = {b"connection", b"keep-alive", b"proxy-connection", b"expect", b"te", b"upgrade",
        b"proxy-authorization", b"proxy-authenticate"}
_SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
             b"<Message>Please reduce your request rate.</Message>"
             b"<RequestId>faultproxy</RequestId></Error>")

_DENIED = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code>'
           b"<Message>Access Denied</Message><RequestId>faultproxy</RequestId></Error>")


class _Closed(Exception):
    pass


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        raise _Closed from exc
    lines = raw[:-4].split(b"\r\n")
    headers = []
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        headers.append((name.strip(), value.strip()))
    return lines[0], headers


def _get(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def _read_chunked(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    """(raw chunked bytes including trailers, decoded body)."""
    raw = bytearray()
    body = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        raw += line
        size = int(line.split(b";", 1)[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then an empty line
                t = await reader.readuntil(b"\r\n")
                raw += t
                if t == b"\r\n":
                    return bytes(raw), bytes(body)
        data = await reader.readexactly(size + 2)
        raw += data
        body += data[:-2]


class FaultProxy:
    def __init__(self, upstream: str, *, rate: float = 0.05, seed: int = 0,
                 kinds: tuple[str, ...] = KINDS) -> None:
        u = urlsplit(upstream)
        assert u.hostname is not None
        assert u.port is not None
        self.upstream = (u.hostname, u.port)
        self.rate = rate
        self.kinds = kinds
        self.rng = random.Random(seed)
        self.counts: Counter[str] = Counter()
        self.requests = 0
        #: once True, requests are read and never answered
        self.frozen = False
        #: once True, requests are read and their connections reset (a server gone away)
        self.down = False
        #: set ``down`` once this many upload parts have been forwarded
        self.down_after_parts: int | None = None
        self.parts = 0
        #: (method, target) of each request forwarded, in order
        self.log: list[tuple[str, str]] = []
        #: requests to refuse with 403 AccessDenied: deny(method, target)
        self.deny: Callable[[str, str], bool] | None = None
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        #: every connection's transport, client and upstream side, until it is closed
        self._transports: set[asyncio.BaseTransport] = set()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._run, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        self._server = loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0, limit=1 << 20))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            assert self._server is not None
            self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            # connections still closing (a killed client's, with bytes unsent) are dropped
            # now: left to the garbage collector, they warn in whichever test runs next
            for transport in list(self._transports):
                transport.abort()
            for _ in range(3):
                await asyncio.sleep(0)

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def summary(self) -> str:
        kinds = ", ".join(f"{k}={self.counts.get(k, 0)}" for k in KINDS)
        return f"{self.requests} requests, {sum(self.counts.values())} faults: {kinds}"

    # --- one client connection ---------------------------------------------------------

    def _pick(self) -> str | None:
        self.requests += 1
        if self.rng.random() >= self.rate:
            return None
        return self.rng.choice(self.kinds)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # asyncio drops its reference to this task when the client goes away; keep one so
        # a handler still talking to the upstream is not garbage-collected mid-flight
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        self._transports.add(writer.transport)
        try:
            while True:
                if not await self._one(reader, writer):
                    break
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            if not writer.is_closing():
                writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the client connection is finished."""
        start, headers = await _read_head(reader)
        method = start.split(b" ", 1)[0].upper()
        target = start.split(b" ")[1] if start.count(b" ") >= 2 else b"/"
        if (_get(headers, b"expect") or b"").lower() == b"100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # botocore waits for it
            await writer.drain()
        te = _get(headers, b"transfer-encoding")
        if te is not None and b"chunked" in te.lower():
            body, _ = await _read_chunked(reader)
        else:
            body = await reader.readexactly(int(_get(headers, b"content-length") or b"0"))
        keep = (_get(headers, b"connection") or b"").lower() != b"close"
        if self.frozen:  # a store that stopped answering: held until the proxy stops
            await asyncio.sleep(3600)
        if self.down:
            self._reset(writer)
            return False
        if self.deny is not None and self.deny(method.decode(), target.decode()):
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(_DENIED), _DENIED))
            await writer.drain()
            return keep
        fault = self._pick()

        if fault == "slowdown":
            self.counts[fault] += 1
            writer.write(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                         b"Content-Length: %d\r\nRetry-After: 0\r\n\r\n%s"
                         % (len(_SLOWDOWN), _SLOWDOWN))
            await writer.drain()
            return keep

        self.log.append((method.decode(), target.decode()))
        status_line, rheaders, rbody = await self._forward(start, headers, body)
        if method == b"PUT" and b"partNumber=" in target:
            self.parts += 1
            if self.down_after_parts is not None and self.parts >= self.down_after_parts:
                self.down = True
        status = int(status_line.split(b" ")[1])
        bodiless = method == b"HEAD" or status in (204, 304) or 100 <= status < 200
        if fault in ("reset_mid_body", "truncate", "flip") and (bodiless or len(rbody) < 2):
            fault = "reset_before"
        is_object_get = method == b"GET" and b"?" not in target and status in (200, 206)
        if fault == "flip" and not is_object_get:
            fault = "truncate"

        out = [status_line]
        for k, v in rheaders:
            lk = k.lower()
            if lk in _HOP or lk == b"transfer-encoding" or (lk == b"content-length"
                                                            and not bodiless):
                continue
            out.append(k + b": " + v)
        if not bodiless:
            out.append(b"Content-Length: %d" % len(rbody))
        out.append(b"Connection: keep-alive" if keep else b"Connection: close")
        head = b"\r\n".join(out) + b"\r\n\r\n"

        if fault == "reset_before":
            self.counts[fault] += 1
            self._reset(writer)
            return False
        if fault in ("reset_mid_body", "truncate"):
            self.counts[fault] += 1
            cut = self.rng.randrange(1, len(rbody))
            writer.transport.set_write_buffer_limits(0)
            writer.write(head + rbody[:cut])
            await writer.drain()
            if fault == "reset_mid_body":
                self._reset(writer)
            else:
                writer.close()
            return False
        if fault == "flip":
            self.counts[fault] += 1
            buf = bytearray(rbody)
            i = self.rng.randrange(len(buf))
            buf[i] ^= 1 << self.rng.randrange(8)
            rbody = bytes(buf)
        writer.write(head)
        if not bodiless:
            writer.write(rbody)
        await writer.drain()
        return keep

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def _forward(self, start: bytes, headers: list[tuple[bytes, bytes]], body: bytes
                       ) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
        """Send the request upstream on a fresh connection; the whole response."""
        ureader, uwriter = await asyncio.open_connection(*self.upstream, limit=1 << 20)
        self._transports.add(uwriter.transport)
        try:
            lines = [start]
            lines += [k + b": " + v for k, v in headers if k.lower() not in _HOP]
            lines.append(b"Connection: close")
            uwriter.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
            await uwriter.drain()
            method = start.split(b" ", 1)[0].upper()
            while True:
                status_line, rheaders = await _read_head(ureader)
                status = int(status_line.split(b" ")[1])
                if not 100 <= status < 200:
                    break
            te = _get(rheaders, b"transfer-encoding")
            if method == b"HEAD" or status in (204, 304):
                rbody = b""
            elif te is not None and b"chunked" in te.lower():
                _, rbody = await _read_chunked(ureader)
            elif (cl := _get(rheaders, b"content-length")) is not None:
                rbody = await ureader.readexactly(int(cl))
            else:
                rbody = await ureader.read()
            return status_line, rheaders, rbody
        finally:
            uwriter.close()
