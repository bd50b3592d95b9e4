"""S3 credentials and region (``snapdir.stores.awsauth``): what botocore's chain finds,
kept and renewed for obstore; a bucket on AWS followed to its own region."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapdir.stores import awsauth
from snapdir.stores.s3 import S3Store

pytestmark = pytest.mark.anyio


class _RegionServer:
    """A loopback stand-in for s3.amazonaws.com's answer to an anonymous HEAD of a bucket
    in another region: 301 (or 403) and ``x-amz-bucket-region``."""

    def __init__(self, region: str | None) -> None:
        import http.server
        import threading

        seen: list[tuple[str, str | None]] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(301 if region else 403)
                if region:
                    self.send_header("x-amz-bucket-region", region)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(("answer", "configured", "want"), [
    ("eu-west-1", None, "eu-west-1"),     # followed to the bucket's region
    (None, None, "us-east-1"),            # 403 without a region: the default
    ("eu-west-1", "ap-south-1", "ap-south-1"),  # a configured region is not second-guessed
    ("down", None, "us-east-1"),          # no answer at all: the default
])
async def test_a_bucket_on_aws_is_found_in_its_region(monkeypatch: pytest.MonkeyPatch,
                                                      answer: str | None,
                                                      configured: str | None,
                                                      want: str) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                "SNAPDIR_S3_STORE_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    if configured:
        monkeypatch.setenv("AWS_REGION", configured)
    server = _RegionServer(None if answer in (None, "down") else answer)
    if answer == "down":
        server.close()
    monkeypatch.setattr(awsauth, "REGION_PROBE", server.url)
    try:
        st = S3Store("ml-data.v2", "datasets")
        assert (await st._ob()).config["region"] == want
        assert (await st._ob(parts=True)).config["region"] == want  # asked once per store
        if configured or answer == "down":
            assert server.seen == []
        else:
            assert server.seen == [("/ml-data.v2", None)]  # anonymous: no credentials sent
    finally:
        server.close()


def test_expiring_credentials_are_kept_then_renewed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that expire are resolved once, handed to obstore with their expiry (in
    UTC), and resolved again before they expire: called from any thread, no event loop."""
    script = tmp_path / "creds.py"
    script.write_text(
        "import datetime, sys\n"
        "n = len(open(sys.argv[1]).read()) if __import__('os').path.exists(sys.argv[1]) "
        "else 0\n"
        "open(sys.argv[1], 'a').write('x')\n"
        "t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=4)\n"
        "print('{\"Version\": 1, \"AccessKeyId\": \"key%d\", \"SecretAccessKey\": \"s\", '\n"
        "      '\"Expiration\": \"%s\"}' % (n, t.strftime('%Y-%m-%dT%H:%M:%SZ')))\n")
    config = tmp_path / "config"
    config.write_text(f"[profile expiring]\ncredential_process = {sys.executable} {script} "
                      f"{tmp_path / 'calls'}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    provider = awsauth.AiobotocoreCredentials("s3://b/p", "expiring")
    first = provider()
    expires = first["expires_at"]
    assert expires is not None
    assert expires.tzinfo is UTC
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=4)
    assert provider() is first  # kept, not resolved per request
    time.sleep(2.5)  # past half its lifetime: renewed
    again = provider()
    assert again["access_key_id"] != first["access_key_id"]
    assert again["expires_at"] is not None
    assert again["expires_at"] > expires
