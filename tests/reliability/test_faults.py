"""Push and pull through a proxy that injects S3 faults into 5% of requests."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from relutil import KINDS, FaultProxy, big_file, small_tree

pytestmark = [pytest.mark.s3]

FILES = 2000
BIG = 70 * 1024 * 1024  # above the 64 MiB multipart threshold


@pytest.mark.slow
def test_push_pull_through_5pct_faults(s3_env, cli, faultproxy, tmp_path: Path) -> None:
    src = small_tree(tmp_path / "src", FILES, seed=1)
    big_file(src / "big" / "weights.bin", BIG, seed=2)
    want = cli("id", str(src)).out.strip()
    uri = s3_env.unique_uri("faults")

    cli.env["AWS_ENDPOINT_URL"] = faultproxy.endpoint
    t0 = time.monotonic()
    pushed = cli("push", "-q", "--store", uri, str(src)).out.strip()
    t_push = time.monotonic() - t0
    assert pushed == want
    after_push = dict(faultproxy.counts)

    other = cli.machine("puller")
    other.env["AWS_ENDPOINT_URL"] = faultproxy.endpoint
    dest = tmp_path / "dest"
    t0 = time.monotonic()
    other("pull", "-q", "--store", uri, "--id", want, str(dest))
    t_pull = time.monotonic() - t0
    assert cli("id", str(dest)).out.strip() == want

    print(f"\nfault proxy: {faultproxy.summary()}; push {t_push:.1f}s (faults {after_push}), "
          f"pull {t_pull:.1f}s")
    assert sum(faultproxy.counts.values()) > 0
    assert all(faultproxy.counts[k] > 0 for k in KINDS), faultproxy.summary()


@pytest.mark.parametrize("retries", [1, 3])
def test_snapdir_retries_is_the_number_of_requests(s3_env, cli, tmp_path: Path,
                                                   retries: int) -> None:
    """Throttled on every request: SNAPDIR_RETRIES=N sends the manifest GET N times, not N
    times the S3 client's own retries (which made 5 attempts 15 requests)."""
    with FaultProxy(s3_env.endpoint, rate=1.0, kinds=("slowdown",)) as proxy:
        cli.env.update(AWS_ENDPOINT_URL=proxy.endpoint, SNAPDIR_RETRIES=str(retries))
        r = cli("pull", "-q", "--store", s3_env.unique_uri("retries"), "--id", "a" * 64,
                str(tmp_path / "d"), check=False)
        assert r.rc != 0
        assert "Traceback" not in r.err
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert proxy.requests == retries, r.err


def _held_parts(sw, prefix: str) -> list[int]:
    """Parts held by each incomplete multipart upload under ``prefix`` (straight from the
    server)."""
    import asyncio

    from aiobotocore.session import get_session

    async def ask() -> list[int]:
        async with get_session().create_client(
                "s3", endpoint_url=sw.endpoint, region_name=sw.region,
                aws_access_key_id=sw.access_key, aws_secret_access_key=sw.secret_key) as c:
            r = await c.list_multipart_uploads(Bucket=sw.bucket, Prefix=prefix)
            held = []
            for up in r.get("Uploads", []):
                parts = await c.list_parts(Bucket=sw.bucket, Key=up["Key"],
                                           UploadId=up["UploadId"])
                held.append(len(parts.get("Parts", [])))
            return held

    return asyncio.run(ask())


def test_a_push_cut_mid_upload_resumes_where_it_stopped(s3_env, cli, tmp_path: Path) -> None:
    """The server goes away mid-upload of a large file (so the upload cannot be aborted
    either): the next push sends only the parts it lacks, and the snapshot pulls whole."""
    src = tmp_path / "src"
    big_file(src / "weights.bin", 2 * BIG, seed=3)  # 18 parts of 8 MiB, 8 at a time
    want = cli("id", str(src)).out.strip()
    uri = s3_env.unique_uri("resume")
    prefix = uri.removeprefix(f"s3://{s3_env.bucket}/")
    with FaultProxy(s3_env.endpoint, rate=0.0) as proxy:
        cli.env.update(AWS_ENDPOINT_URL=proxy.endpoint, SNAPDIR_RETRIES="1")
        proxy.down_after_parts = 2
        r = cli("push", "-q", "--store", uri, str(src), check=False)
        assert r.rc != 0
        assert r.out == ""
        assert "Traceback" not in r.err
        assert len(r.err.strip().splitlines()) == 1, r.err
        [held] = _held_parts(s3_env, prefix)  # left behind: nothing could abort it
        assert 2 <= held < 18

        proxy.down = False
        proxy.down_after_parts = None
        seen = len(proxy.log)
        assert cli("push", "-q", "--store", uri, str(src)).out.strip() == want
        sent = [t for m, t in proxy.log[seen:] if m == "PUT" and "partNumber=" in t]
        assert len(sent) == 18 - held, proxy.log[seen:]
    assert _held_parts(s3_env, prefix) == []

    other = cli.machine("puller")
    other.env["AWS_ENDPOINT_URL"] = s3_env.endpoint
    other("pull", "-q", "--store", uri, "--id", want, str(tmp_path / "dest"))
    assert cli("id", str(tmp_path / "dest")).out.strip() == want
