"""A throwaway HTTP server on 127.0.0.1, for tests that need a stand-in for a service
(S3's region probe, STS, a web page where an S3 endpoint should be)."""

from __future__ import annotations

import http.server
import threading


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A request handler that keeps its request log off the test's stderr."""

    def log_message(self, *args: object) -> None:
        pass


class LoopbackHTTP:
    """``handler`` served from a daemon thread on a free loopback port, at ``url``."""

    def __init__(self, handler: type[http.server.BaseHTTPRequestHandler]) -> None:
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
