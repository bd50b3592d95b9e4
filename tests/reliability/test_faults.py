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
