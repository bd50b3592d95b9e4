"""S3 over TLS with a private CA, as an on-premises MinIO or Ceph is often set up: the
session's SeaweedFS serves https with a certificate signed by a throw-away CA
(``seaweedfs.ca_file``). Driven through the CLI, as a user would."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Bucket, Cli, make_tree, tree_bytes
from loopback import LoopbackHTTP, QuietHandler

pytestmark = pytest.mark.s3

MiB = 1024 * 1024


@pytest.fixture
def tls_cli(s3_cli: Cli, seaweedfs: object) -> Cli:
    """The CLI pointed at the https endpoint, with the CA in AWS_CA_BUNDLE."""
    s3_cli.env["AWS_ENDPOINT_URL"] = seaweedfs.https_endpoint  # type: ignore[attr-defined]
    s3_cli.env["AWS_CA_BUNDLE"] = seaweedfs.ca_file  # type: ignore[attr-defined]
    return s3_cli


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_push_and_pull_over_https_with_a_private_ca(tls_cli: Cli, bucket: Bucket,
                                                    tmp_path: Path) -> None:
    # 70 MiB: a multipart upload and ranged downloads (on their own sockets) over TLS too
    src = make_tree(tmp_path / "src", {"small.txt": b"over tls\n",
                                       "big.bin": os.urandom(70 * MiB)})
    uri = bucket.unique_uri("tls")
    sid = tls_cli("push", "-q", "--store", uri, str(src)).out.strip()
    assert sid == tls_cli("id", str(src)).out.strip()
    assert len(bucket.keys(uri, ".objects")) == 2  # the same store over plain http

    other = tls_cli.machine("node")
    dest = tmp_path / "dest"
    other("pull", "-q", "--store", uri, "--id", sid, str(dest))
    assert other("id", str(dest)).out.strip() == sid
    assert tree_bytes(dest) == tree_bytes(src)


def test_the_ca_bundle_of_the_aws_profile_is_used(tls_cli: Cli, bucket: Bucket,
                                                  tmp_path: Path) -> None:
    config = tmp_path / "aws-config"
    config.write_text(f"[default]\nca_bundle = {tls_cli.env.pop('AWS_CA_BUNDLE')}\n")
    tls_cli.env["AWS_CONFIG_FILE"] = str(config)
    src = make_tree(tmp_path / "src", {"a.txt": b"profile ca\n"})
    uri = bucket.unique_uri("tls-profile")
    sid = tls_cli("push", "-q", "--store", uri, str(src)).out.strip()
    assert sid == tls_cli("id", str(src)).out.strip()


def test_an_untrusted_certificate_says_what_to_set(tls_cli: Cli, bucket: Bucket,
                                                   tmp_path: Path) -> None:
    src = make_tree(tmp_path / "src", {"a.txt": b"untrusted\n"})
    uri = bucket.unique_uri("tls-untrusted")
    sid = tls_cli("push", "-q", "--store", uri, str(src)).out.strip()
    del tls_cli.env["AWS_CA_BUNDLE"]
    endpoint = tls_cli.env["AWS_ENDPOINT_URL"]
    for args in (("push", "-q", "--store", uri, str(src)),
                 ("pull", "-q", "--store", uri, "--id", sid, str(tmp_path / "dest"))):
        r = tls_cli(*args, check=False)
        assert r.rc == 1, r
        line = one_line(r.err)
        assert f"the TLS certificate of {endpoint} is signed by a CA" in line
        assert "AWS_CA_BUNDLE" in line
    assert not (tmp_path / "dest").exists() or not any((tmp_path / "dest").iterdir())


GARBAGE = b"-----BEGIN CERTIFICATE-----\nnotbase64!!!\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("content", [None, b"not a certificate\n", GARBAGE, "cut",
                                     "cut, no end line"])
def test_a_bad_ca_bundle_is_a_usage_error(tls_cli: Cli, bucket: Bucket, tmp_path: Path,
                                          content: bytes | str | None) -> None:
    bundle = tmp_path / "ca.pem"
    if content == "cut":  # a good certificate, then one cut short
        pem = Path(tls_cli.env["AWS_CA_BUNDLE"]).read_bytes()
        bundle.write_bytes(pem + pem[:300] + b"\n-----END CERTIFICATE-----\n")
    elif content == "cut, no end line":  # as a copy that stopped half-way leaves it
        pem = Path(tls_cli.env["AWS_CA_BUNDLE"]).read_bytes()
        bundle.write_bytes(pem[:len(pem) // 2])
    elif isinstance(content, bytes):
        bundle.write_bytes(content)
    tls_cli.env["AWS_CA_BUNDLE"] = str(bundle)
    src = make_tree(tmp_path / "src", {"a.txt": b"bad bundle\n"})
    r = tls_cli("push", "-q", "--store", bucket.unique_uri("tls-bad"), str(src), check=False)
    assert r.rc == 2, r
    line = one_line(r.err)
    assert f"the CA bundle {str(bundle)!r} (environment: AWS_CA_BUNDLE)" in line
    want = {None: "cannot be read", GARBAGE: "its certificate #1 is not valid PEM",
            "cut": "its certificate #2 is not valid PEM",
            "cut, no end line": "its certificate #1 is not valid PEM"}.get(
                content, "holds no PEM certificate")
    assert want in line


def test_the_wrong_scheme_is_named(tls_cli: Cli, s3_env: object, bucket: Bucket,
                                   tmp_path: Path) -> None:
    """One sentence: the endpoint, the key and store, why, and what to write where (not
    two parenthesised asides in a row)."""
    src = make_tree(tmp_path / "src", {"a.txt": b"scheme\n"})
    uri = bucket.unique_uri("tls-scheme")
    plain = s3_env.endpoint  # type: ignore[attr-defined]
    wrong = "https://" + plain.removeprefix("http://")
    tls_cli.env["AWS_ENDPOINT_URL"] = wrong
    r = tls_cli("push", "-q", "--store", uri, str(src), check=False)
    assert r.rc == 1, r
    line = one_line(r.err)
    assert line.startswith(f"snapdir: store error: cannot reach {wrong} for .manifests/"), line
    assert line.endswith(f" in {uri}: it does not speak TLS; if it is a plain-http server, "
                         "write its URL with http:// in AWS_ENDPOINT_URL"), line

    tls = s3_env.https_endpoint  # type: ignore[attr-defined]
    wrong = "http://" + tls.removeprefix("https://")
    tls_cli.env["AWS_ENDPOINT_URL"] = wrong
    r = tls_cli("push", "-q", "--store", uri, str(src), check=False)
    assert r.rc == 1, r
    line = one_line(r.err)
    assert "write its URL with https:// in AWS_ENDPOINT_URL" in line, line
    assert ") (" not in line, line

    r = tls_cli("pull", "-q", "--store", uri, "--id", "a" * 64, str(tmp_path / "dest"),
                check=False)
    assert r.rc == 1, r
    line = one_line(r.err)
    assert line.startswith(f"snapdir: store error: cannot reach {wrong} for .manifests/"), line
    assert line.endswith(f" in {uri}: it is an https server; write its URL with https:// "
                         "in AWS_ENDPOINT_URL"), line


class _WebServer(LoopbackHTTP):
    """A plain web server on a free loopback port, answering every request with
    ``status`` and an HTML page (what a mistyped port often reaches: nginx, a dashboard)."""

    def __init__(self, status: int) -> None:
        class Handler(QuietHandler):
            def _answer(self, body: bool = True) -> None:
                if n := int(self.headers.get("Content-Length") or 0):
                    self.rfile.read(n)
                page = b"<html><body><h1>Welcome to nginx!</h1></body></html>\n"
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                if body:
                    self.wfile.write(page)

            do_GET = do_PUT = do_POST = do_DELETE = _answer

            def do_HEAD(self) -> None:
                self._answer(body=False)

        super().__init__(Handler)


@pytest.mark.parametrize("status", [200, 404])
def test_an_endpoint_that_is_not_s3_is_named(s3_cli: Cli, bucket: Bucket, tmp_path: Path,
                                             status: int) -> None:
    """AWS_ENDPOINT_URL at a web server that is not S3: said so, naming it and the variable,
    not "connection failed", "not in the store", "the store is corrupt" or (listings) an
    empty answer."""
    src = make_tree(tmp_path / "src", {"a.txt": b"not s3\n"})
    uri = bucket.unique_uri("not-s3")
    real = s3_cli.env["AWS_ENDPOINT_URL"]
    web = _WebServer(status)
    try:
        s3_cli.env["AWS_ENDPOINT_URL"] = web.url
        for args in (("push", "-q", "--store", uri, str(src)),
                     ("pull", "-q", "--store", uri, "--id", "a" * 64, str(tmp_path / "d")),
                     ("verify", "--store", uri, "--id", "a" * 64),
                     # listings: a page of HTML with 200 parses as an empty listing
                     ("revisions", "--store", uri, "src"),
                     ("ancestors", "--store", uri, "a" * 64)):
            r = s3_cli(*args, check=False)
            assert r.rc == 1, r
            line = one_line(r.err)
            assert line.startswith(f"snapdir: store error: {web.url} is not an S3 "
                                   "server: it answered the request for "), line
            assert line.endswith("; check AWS_ENDPOINT_URL (it should be the URL of the S3 "
                                 "service)"), line
            assert f" in {uri} with " in line, line
    finally:
        web.close()
    # the real S3 server's own answers are unchanged
    s3_cli.env["AWS_ENDPOINT_URL"] = real
    r = s3_cli("pull", "-q", "--store", uri, "--id", "a" * 64, str(tmp_path / "d"),
               check=False)
    assert r.rc == 1, r
    assert f"snapshot {'a' * 64} is not in {uri}" in one_line(r.err)
    r = s3_cli("revisions", "--store", uri, "src")  # an empty listing from S3 is just empty
    assert (r.rc, r.out, r.err) == (0, "", f"snapdir: note: no revisions named 'src' in {uri}\n"), r
