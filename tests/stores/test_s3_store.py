"""S3Store against a real S3 server (SeaweedFS on loopback, see tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import pytest

from snapdir.errors import AccessDenied, ObjectNotFound, StoreError
from snapdir.stores import open_store
from snapdir.stores.base import object_key
from snapdir.stores.s3 import MiB, S3Store, part_size_for
from snapdir.stores.s3errors import map_error

if TYPE_CHECKING:
    from conftest import SeaweedFS

pytestmark = [pytest.mark.anyio, pytest.mark.s3]

KEY = object_key("49dc870df1de7fd60794cebce449f5ccdae575affaa67a24b62acb03e039db92")


def make(sw: SeaweedFS, label: str, **kw: Any) -> S3Store:
    uri = sw.unique_uri(label)
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return S3Store(bucket, prefix, **kw)


async def chunks_of(data: bytes, step: int = 3 * MiB, fail_after: int | None = None
                    ) -> AsyncIterator[bytes]:
    for i in range(0, len(data), step):
        if fail_after is not None and i >= fail_after:
            raise RuntimeError("source changed")
        yield data[i:i + step]


async def pending_uploads(sw: SeaweedFS, prefix: str) -> list[str]:
    from aiobotocore.session import get_session

    async with get_session().create_client(
            "s3", endpoint_url=sw.endpoint, region_name=sw.region,
            aws_access_key_id=sw.access_key, aws_secret_access_key=sw.secret_key) as c:
        r = await c.list_multipart_uploads(Bucket=sw.bucket, Prefix=prefix)
        return [u["Key"] for u in r.get("Uploads", [])]


async def test_open_store_and_round_trip(s3_env: SeaweedFS) -> None:
    st = open_store(s3_env.unique_uri("roundtrip"))
    assert isinstance(st, S3Store)
    assert await st.head(KEY) is None
    await st.put_bytes(KEY, b"foo\n")
    assert await st.head(KEY) == 4
    assert await st.get_bytes(KEY) == b"foo\n"
    assert b"".join([c async for c in st.get(KEY)]) == b"foo\n"
    await st.delete(KEY)
    assert await st.head(KEY) is None
    await st.delete(KEY)  # idempotent
    await st.aclose()


async def test_ranged_get(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "range")
    data = bytes(range(256)) * 100
    await st.put_bytes("blob", data)
    assert b"".join([c async for c in st.get("blob", 10, 300)]) == data[10:300]
    assert b"".join([c async for c in st.get("blob", 25000)]) == data[25000:]
    assert [c async for c in st.get("blob", 5, 5)] == []


async def test_list_is_relative_and_filters_by_prefix(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "list", list_chunk=2)
    keys = [object_key(f"{i:03d}" + "a" * 61) for i in range(5)] + [".manifests/abc/x"]
    for k in keys:
        await st.put_bytes(k, b"x")
    got = [k async for chunk in st.list(".objects/") for k in chunk]
    assert sorted(got) == sorted(keys[:5])
    got = [k async for chunk in st.list(".objects/00") for k in chunk]
    assert sorted(got) == sorted(keys[:5])
    assert [k async for chunk in st.list(".objects/001") for k in chunk] == [keys[1]]
    assert [c async for c in st.list("nothing/")] == []


async def test_small_put_streams_into_one_request(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "small")
    data = os.urandom(5 * MiB + 7)
    await st.put(KEY, chunks_of(data, MiB), len(data))
    assert await st.get_bytes(KEY) == data


@pytest.mark.slow
async def test_multipart_put(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "multipart", multipart_threshold=8 * MiB, part_size=8 * MiB,
              max_concurrency=3)
    data = os.urandom(40 * MiB + 123)
    await st.put(KEY, chunks_of(data), len(data))
    assert await st.head(KEY) == len(data)
    assert b"".join([c async for c in st.get(KEY)]) == data
    assert await pending_uploads(s3_env, st.prefix) == []


async def test_failed_source_aborts_multipart(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "abort", multipart_threshold=5 * MiB, part_size=5 * MiB)
    data = os.urandom(24 * MiB)
    with pytest.raises(RuntimeError, match="source changed"):
        await st.put(KEY, chunks_of(data, fail_after=18 * MiB), len(data))
    assert await st.head(KEY) is None
    assert await pending_uploads(s3_env, st.prefix) == []


async def test_short_source_aborts_multipart(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "short", multipart_threshold=5 * MiB, part_size=5 * MiB)
    data = os.urandom(12 * MiB)
    with pytest.raises(StoreError, match="source changed"):
        await st.put(KEY, chunks_of(data), len(data) + 1)
    assert await st.head(KEY) is None
    assert await pending_uploads(s3_env, st.prefix) == []


async def test_cancelled_multipart_leaves_nothing(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "cancel", multipart_threshold=5 * MiB, part_size=5 * MiB)
    data = os.urandom(30 * MiB)

    async def slow() -> AsyncIterator[bytes]:
        async for c in chunks_of(data, MiB):
            await anyio.sleep(0.02)
            yield c

    with anyio.move_on_after(0.4):
        await st.put(KEY, slow(), len(data))
    await anyio.sleep(0.5)
    assert await st.head(KEY) is None
    assert await pending_uploads(s3_env, st.prefix) == []


async def test_missing_key(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "missing")
    with pytest.raises(ObjectNotFound) as info:
        await st.get_bytes(KEY)
    assert info.value.key == KEY
    assert st.uri in str(info.value)
    assert KEY in str(info.value)
    with pytest.raises(ObjectNotFound):
        async for _ in st.get(KEY):
            pass


async def test_wrong_credentials(s3_env: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "wrong-secret-value-1234"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    st = make(s3_env, "denied")
    for call in (lambda: st.put_bytes(KEY, b"x"), lambda: st.get_bytes(KEY)):
        with pytest.raises(AccessDenied) as info:
            await call()
        msg = str(info.value)
        assert secret not in msg
        assert s3_env.secret_key not in msg
        assert KEY in msg
        assert st.uri in msg
        assert "\n" not in msg


async def test_no_credentials(s3_env: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    st = make(s3_env, "nocreds")
    with pytest.raises(AccessDenied, match="no AWS credentials"):
        await st.put_bytes(KEY, b"x")


async def test_aws_profile_names_a_missing_profile(s3_env: SeaweedFS, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config"
    cfg.write_text("[profile dev]\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_PROFILE", "nope")  # a typo: refused, as aws-cli refuses it
    with pytest.raises(AccessDenied, match="AWS_PROFILE='nope'"):
        await make(s3_env, "profile").put_bytes(KEY, b"x")
    monkeypatch.setenv("AWS_PROFILE", "dev")  # it exists: the environment's keys are used
    st = make(s3_env, "profile")
    await st.put_bytes(KEY, b"x")
    assert await st.head(KEY) == 1
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")  # the profile has no keys: the message says so
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(AccessDenied, match="profile 'dev' has none"):
        await make(s3_env, "profile").put_bytes(KEY, b"x")


async def test_missing_bucket(s3_env: SeaweedFS) -> None:
    st = S3Store("no-such-bucket-snapdir", "p")
    for call in (lambda: st.put_bytes(KEY, b"x"), lambda: st.get_bytes(KEY)):
        with pytest.raises(StoreError, match="bucket 'no-such-bucket-snapdir' does not exist"):
            await call()
    with pytest.raises(StoreError, match="does not exist"):
        async for _ in st.list(".objects/"):
            pass


def test_endpoint_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    """As botocore for the AWS variables; snapdir 1.x's own variable first, as 1.x reads
    it (with both set, the two tools used different servers for one s3:// URI)."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://b")
    assert S3Store("b").endpoint == "http://b"
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://a")
    assert S3Store("b").endpoint == "http://a"
    monkeypatch.setenv("SNAPDIR_S3_STORE_ENDPOINT_URL", "http://c")
    assert S3Store("b").endpoint == "http://c"
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")  # AWS's alone
    assert S3Store("b").endpoint == "http://c"
    assert S3Store("b", endpoint="http://x").endpoint == "http://x"


def test_part_size() -> None:
    assert part_size_for(100 * MiB) == 8 * MiB
    big = 5 * 1024**4  # 5 TiB
    assert big / part_size_for(big) <= 10_000
    assert part_size_for(big) % MiB == 0


@pytest.mark.parametrize(("text", "kind", "retryable"), [
    ("Server returned non-2xx status code: 503 Service Unavailable: <Code>SlowDown</Code>",
     "Throttled", True),
    ("status: 429, body", "Throttled", True),
    ("Server returned non-2xx status code: 500 Internal Server Error", "StoreUnavailable", True),
    ("error sending request: connection reset by peer", "StoreUnavailable", True),
    ("Server returned non-2xx status code: 400 Bad Request: <Code>InvalidRequest</Code>",
     "StoreError", False),
])
def test_map_error(text: str, kind: str, retryable: bool) -> None:
    err = map_error(RuntimeError(text), "k", "s3://b/p", "b")
    assert type(err).__name__ == kind
    assert err.retryable is retryable
    assert err.key == "k"


async def test_get_small_reads_whole_small_objects_only(s3_env: SeaweedFS) -> None:
    st = make(s3_env, "small-get")
    await st.put_bytes("a", b"x" * 100)
    assert await st.get_small("a", 100) == b"x" * 100
    assert await st.get_small("a", 99) is None  # too big: the caller streams it instead
    with pytest.raises(ObjectNotFound):
        await st.get_small("missing", 100)
    await st.put_bytes("empty", b"")
    assert await st.get_small("empty", 100) == b""  # S3 answers 416 to its byte range


def test_map_error_before_the_server_ever_answered() -> None:
    text = ("Generic S3 error: Error performing GET http://10.0.0.9:9000/b/k in 60.001374511s"
            " - HTTP error: error sending request")
    first = map_error(RuntimeError(text), "k", "s3://bkt/p", "bkt",
                      endpoint="http://10.0.0.9:9000", answered=False)
    assert first.retryable is False  # a black hole must not cost 5 x 60 s
    assert "http://10.0.0.9:9000" in str(first)
    assert "no answer in 60 s" in str(first)
    assert "AWS_ENDPOINT_URL" in str(first)
    later = map_error(RuntimeError(text), "k", "s3://bkt/p", "bkt",
                      endpoint="http://10.0.0.9:9000", answered=True)
    assert later.retryable is True  # once it has answered, a timeout is a passing fault


@pytest.mark.parametrize(("endpoint", "variable", "named"), [
    ("http://10.0.0.9:9000", "HTTP_PROXY", True),
    ("http://10.0.0.9:9000", "all_proxy", True),
    ("http://10.0.0.9:9000", "HTTPS_PROXY", False),  # not the one an http:// URL goes by
    (None, "https_proxy", True),  # AWS itself: https
])
def test_a_connection_failure_through_a_proxy_names_the_proxy(
        monkeypatch: pytest.MonkeyPatch, endpoint: str | None, variable: str,
        named: bool) -> None:
    """The endpoint cannot be reached and requests go through a proxy: the proxy is
    named too (it said only "check AWS_ENDPOINT_URL ... and that the server is up",
    for a server that was up behind a proxy that was not)."""
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, "http://127.0.0.1:1")
    text = "Generic S3 error: Error performing GET url in 2ms - HTTP error: error sending request"
    err = map_error(RuntimeError(text), "k", "s3://b/p", "b", endpoint=endpoint,
                    answered=False)
    assert ("the proxy in " + variable in str(err)) is named, str(err)
    assert "check AWS_ENDPOINT_URL" in str(err)


@pytest.mark.parametrize(("text", "says"), [
    (("Generic S3 error: Error performing POST http://127.0.0.1:8333/b/k?uploads= in 219ms, "
     "after 2 retries, max_retries: 2, retry_timeout: 60s - HTTP error: error sending "
     "request"), "the connection failed"),
    (("Generic S3 error: Error performing GET http://127.0.0.1:8333/b/k in 365\u00b5s - HTTP "
     "error: connection reset by peer"), "the connection was reset"),
    ("Generic S3 error: error decoding response body", "the reply was cut short"),
    ("Generic S3 error: something new - the last words", "the last words"),
])
def test_a_server_gone_mid_transfer_is_said_in_words(text: str, says: str) -> None:
    """The server answered before, then went away: one line naming the endpoint and the
    object, in words, not obstore's request dump (it was quoted whole)."""
    err = map_error(RuntimeError(text), "k", "s3://b/p", "b",
                    endpoint="http://127.0.0.1:8333", answered=True)
    assert str(err) == f"cannot reach http://127.0.0.1:8333 for k in s3://b/p: {says}" + (
        " (is the server still up?)" if says == "the connection failed" else "")
    assert err.retryable is True
    assert "Generic" not in str(err)
    assert "retries" not in str(err)


async def test_nothing_listening_fails_at_once_naming_the_endpoint(s3_env: SeaweedFS) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    st = S3Store("bucket", "p", endpoint=f"http://127.0.0.1:{port}")
    with pytest.raises(StoreError) as info:
        await st.head(KEY)
    assert info.value.retryable is False
    assert f"http://127.0.0.1:{port}" in str(info.value)
    assert "check the endpoint argument" in str(info.value)  # S3Store(endpoint=...)
    # the same store, once it has answered, treats a connection failure as transient
    live = make(s3_env, "answered")
    assert await live.head(KEY) is None
    live.endpoint = f"http://127.0.0.1:{port}"
    live._stores.clear()  # rebuilt against the dead endpoint
    with pytest.raises(StoreError) as again:
        await live.head(KEY)
    assert again.value.retryable is True


def test_endpoint_from_the_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from snapdir.stores.awsconfig import ENDPOINT_VARS, configured_endpoint

    for var in (*ENDPOINT_VARS, "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    cfg = tmp_path / "config"
    cfg.write_text("[default]\nendpoint_url = http://plain:1\n"
                   "[profile r2]\nendpoint_url = http://global:2\nservices = mine\n"
                   "[services mine]\ns3 =\n  endpoint_url = http://s3-only:3\n"
                   "[profile bare]\nregion = eu-west-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(cfg))
    assert configured_endpoint() == ("http://plain:1", "AWS config: profile default")
    monkeypatch.setenv("AWS_PROFILE", "r2")
    assert configured_endpoint() == ("http://s3-only:3", "AWS config: profile r2, services mine")
    assert configured_endpoint("bare") is None
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://env:4")  # the environment wins
    assert configured_endpoint() == ("http://env:4", "environment: AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true")
    assert configured_endpoint() is None


async def test_a_profile_endpoint_reaches_the_server(s3_env: SeaweedFS, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "config"
    cfg.write_text(f"[profile local]\nendpoint_url = {s3_env.endpoint}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("AWS_PROFILE", "local")
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    st = make(s3_env, "profile-endpoint")
    assert st.endpoint == s3_env.endpoint
    await st.put_bytes(KEY, b"abc")
    assert await st.get_bytes(KEY) == b"abc"


@pytest.mark.parametrize(("scheme", "env", "want"), [
    ("https", None, "true"),     # TLS protects the body: no SHA-256 of every byte sent
    ("http", None, "false"),     # plain http: the signature covers the body, as botocore does
    ("https", "false", "false"),  # the user's AWS_UNSIGNED_PAYLOAD wins
])
async def test_payload_signing_follows_the_scheme(s3_env: SeaweedFS,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  scheme: str, env: str | None,
                                                  want: str) -> None:
    endpoint = s3_env.https_endpoint if scheme == "https" else s3_env.endpoint
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_CA_BUNDLE", s3_env.ca_file)
    if env is not None:
        monkeypatch.setenv("AWS_UNSIGNED_PAYLOAD", env)
    st = make(s3_env, "signing")
    assert (await st._ob()).config["unsigned_payload"] == want
    await st.put_bytes(KEY, b"signed or not\n")  # and the server takes it either way
    assert await st.get_bytes(KEY) == b"signed or not\n"


def test_an_untrusted_certificate_on_a_ranged_get_socket(s3_env: SeaweedFS) -> None:
    """The ranged GETs' own TLS (``s3ranges``) fails the same way, not retried."""
    import ssl

    from snapdir.stores.s3ranges import Connections

    with pytest.raises(ssl.SSLCertVerificationError) as info:
        Connections(s3_env.https_endpoint, 5, 5).take()
    err = map_error(info.value, KEY, "s3://b/p", "b", endpoint=s3_env.https_endpoint)
    assert f"the TLS certificate of {s3_env.https_endpoint} is signed by a CA" in str(err)
    assert "AWS_CA_BUNDLE" in str(err)
    assert not err.retryable
    sock, _ = Connections(s3_env.https_endpoint, 5, 5, cafile=s3_env.ca_file).take()
    sock.close()


@pytest.mark.parametrize(("text", "region"), [
    ("Server returned non-2xx status code: 301 Moved Permanently", ""),
    (("status code: 400 Bad Request: <Error><Code>AuthorizationHeaderMalformed</Code>"
      "<Message>The authorization header is malformed; the region 'us-east-1' is wrong; "
      "expecting 'eu-west-1'</Message></Error>"), " (eu-west-1)"),
])
def test_a_request_to_the_wrong_region_says_to_set_it(text: str, region: str) -> None:
    err = map_error(RuntimeError(text), KEY, "s3://ml-data/p", "ml-data",
                    endpoint="s3.us-east-1.amazonaws.com")
    assert str(err) == (f"bucket 'ml-data' is in another region{region} than "
                        f"s3.us-east-1.amazonaws.com (for {KEY} in s3://ml-data/p): set "
                        "AWS_REGION to the bucket's region")


def test_ranged_get_sockets_trust_the_bundle_from_the_first_connection(
        s3_env: SeaweedFS, tmp_path: Path) -> None:
    """Many threads open their first TLS connections at once, with a large bundle (the
    system's CAs and ours, as a corporate setup has): every one trusts our CA."""
    import ssl
    import threading

    from snapdir.stores.s3ranges import Connections

    bundle = tmp_path / "bundle.pem"
    system = Path(ssl.get_default_verify_paths().cafile or "/etc/ssl/certs/ca-certificates.crt")
    ours = Path(s3_env.ca_file).read_text()
    bundle.write_text((system.read_text() if system.is_file() else "") + ours)
    for _ in range(3):
        pool = Connections(s3_env.https_endpoint, 5, 5, cafile=str(bundle))
        start = threading.Barrier(8)
        failed: list[BaseException] = []

        def connect(pool: Connections = pool, start: threading.Barrier = start,
                    failed: list[BaseException] = failed) -> None:
            start.wait()
            try:
                pool.take()[0].close()
            except BaseException as exc:  # noqa: BLE001 - collected for the assert
                failed.append(exc)

        threads = [threading.Thread(target=connect) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert failed == []


@pytest.mark.parametrize(("said", "bundle", "advice"), [
    ("UnknownIssuer", None, ("signed by a CA this machine does not trust: if it is signed by "
                            "your own CA, set AWS_CA_BUNDLE")),
    ("UnknownIssuer", "/etc/corp.pem", ("signed by a CA this machine does not trust: the CA "
                                       "bundle /etc/corp.pem (environment: AWS_CA_BUNDLE) "
                                       "does not hold the CA that signed it")),
    ("NotValidForNameContext { expected: ... }", None,
     "not issued for this host name: use the host name it was issued for in AWS_ENDPOINT_URL"),
    ("ExpiredContext { time: ... }", None, "expired: the server needs a valid certificate"),
    # a self-made certificate that is a CA (openssl req -x509's default): refused even
    # when the bundle holds it, so not the bundle's advice (it said "is Other: the CA
    # bundle ... does not hold the CA that signed it")
    ("Other(\n OtherError(\n CaUsedAsEndEntity,\n ),\n )", "/etc/corp.pem",
     ("a CA's certificate (CA:TRUE), which TLS does not take as a server's own: give the "
      "server a certificate with basicConstraints CA:FALSE")),
])
def test_certificate_problems_get_their_own_advice(monkeypatch: pytest.MonkeyPatch, said: str,
                                                   bundle: str | None, advice: str) -> None:
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    if bundle:
        monkeypatch.setenv("AWS_CA_BUNDLE", bundle)
    text = f"HTTP error: error sending request ... error: InvalidCertificate(\n {said},\n )"
    err = map_error(RuntimeError(text), KEY, "s3://b/p", "b", endpoint="https://s3.corp:9000")
    assert str(err).startswith(f"the TLS certificate of https://s3.corp:9000 is {advice}")
    assert not err.retryable


def _failed(method: str, url: str, answer: str) -> str:
    """obstore's text for a request the server answered with a failure."""
    return (f"Error performing {method} {url} in 1ms - Server returned non-2xx status "
            f"code: {answer}\n\nDebug source: ...")


@pytest.mark.parametrize(("text", "kind", "not_s3"), [
    # a web server's page where S3's XML should be: not S3, not retried
    (_failed("GET", "http://h:1/b/p/k", "404 Not Found: <html><body>nginx</body></html>"),
     "StoreError", True),
    ("Unable to extract metadata from headers: ETag Header missing from response",
     "StoreError", True),
    # S3's own answers, a HEAD (no body), a proxy's 5xx page, a metadata service's refusal
    (_failed("GET", "http://h:1/b/p/k", "404 Not Found: <?xml version='1.0'?><Error><Code>"
             "NoSuchKey</Code></Error>"), "ObjectNotFound", False),
    (_failed("HEAD", "http://h:1/b/p/k", "404 Not Found: "), "ObjectNotFound", False),
    (_failed("GET", "http://h:1/b/p/k", "502 Bad Gateway: <html>bad gateway</html>"),
     "StoreUnavailable", False),
    (_failed("PUT", "http://169.254.169.254/latest/api/token", "403 Forbidden: denied"),
     "AccessDenied", False),
])
def test_a_reply_that_is_not_s3s_is_named(text: str, kind: str, not_s3: bool) -> None:
    exc: Exception = (FileNotFoundError(text) if "404" in text else RuntimeError(text))
    err = map_error(exc, KEY, "s3://b/p", "b", endpoint="http://h:1")
    assert type(err).__name__ == kind, str(err)
    assert str(err).startswith("http://h:1 is not an S3 server: ") is not_s3, str(err)
    if not_s3:
        assert not err.retryable
        assert str(err).endswith("check AWS_ENDPOINT_URL (it should be the URL of the S3 "
                                 "service)")
