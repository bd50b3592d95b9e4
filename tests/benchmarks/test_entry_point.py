"""``python -m benchmarks`` end to end at a tiny size against the session's SeaweedFS."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SeaweedFS

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.s3


def _need_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        if os.environ.get("CI"):
            pytest.fail("matplotlib is missing in CI: it belongs in the test extra")
        pytest.skip("matplotlib is not installed (pip install -e '.[bench]')")


def _available_tools(endpoint: str) -> list[str]:
    sys.path.insert(0, str(REPO))
    try:
        from benchmarks.harness import find_tools
    finally:
        sys.path.remove(str(REPO))
    return [t.name for t in find_tools(endpoint)]


@pytest.mark.timeout(120)
def test_entry_point_writes_table_and_chart(s3_env: SeaweedFS, tmp_path: Path) -> None:
    _need_matplotlib()
    out = tmp_path / "out"
    store = s3_env.unique_uri("bench-entry")
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--store", store, "--files", "8", "--size", "2048",
         "--runs", "1", "--out", str(out)],
        cwd=REPO, env=dict(os.environ), capture_output=True, text=True, timeout=110,
        check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]

    expected = _available_tools(s3_env.endpoint)
    assert expected[0] == "snapdir"
    table = (out / "results.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]
    assert [r.split("|")[1].strip() for r in rows] == expected
    for row in rows:
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] != "—", row  # push was timed
        assert cells[3] != "—", row  # pull was timed
    ours = rows[0].split("|")
    assert ours[5].strip() != "—"  # snapdir id was timed

    png = (out / "throughput.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 1000

    data = json.loads((out / "results.json").read_text())
    assert list(data["results"]) == expected
    assert data["bytes"] == 8 * 2048
