"""docker/ and the README agree with the CLI (no Docker engine needed).

Every ``snapdir VERB --flag`` written in README.md or docker/ must exist in ``snapdir
--help`` / ``snapdir VERB --help``; the compose file's credentials, endpoint, bucket and
store must agree with each other; its bucket-creation step is run against the real
SeaweedFS.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from conftest import SeaweedFS

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"
yaml = pytest.importorskip("yaml")


def run_help(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "snapdir", *args, "--help"], check=False, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


@cache
def verbs() -> frozenset[str]:
    text = run_help().split("Commands:", 1)[1]
    return frozenset(m.group(1) for m in re.finditer(r"^  ([a-z-]+)\s", text, re.MULTILINE))


@cache
def flags(verb: str) -> frozenset[str]:
    return frozenset(re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b", run_help(verb)))


def invocations(text: str) -> list[tuple[str, list[str]]]:
    """(verb, flags) of each ``snapdir VERB ...`` in code: indented lines, `spans`, and
    YAML/Dockerfile text; a segment ends at a shell separator or the next ``snapdir``."""
    out = []
    for m in re.finditer(r"(?<![\w.-])snapdir ([a-z][a-z-]*)\b([^`|;&)#\n]*)", text):
        rest = re.split(r"\bsnapdir ", m.group(2))[0]
        out.append((m.group(1), re.findall(r"(?<![\w-])(--[a-z][a-z-]*|-[a-zA-Z])\b", rest)))
    return out


def code_of_readme() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = [ln for ln in text.splitlines() if ln.startswith("    ")]
    spans = re.findall(r"`([^`\n]+)`", text)
    return "\n".join(blocks + spans).replace("\\|", "/")  # table-escaped pipes


def compose() -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_every_snapdir_command_named_in_docs_exists() -> None:
    named = invocations(code_of_readme())
    named += invocations((DOCKER / "compose.yaml").read_text())
    assert len({v for v, _ in named}) >= 15, named  # every verb is documented somewhere
    for verb, used in named:
        assert verb in verbs(), f"`snapdir {verb}` is not a command"
        unknown = set(used) - flags(verb)
        assert not unknown, f"`snapdir {verb}` has no {sorted(unknown)}"
    assert verbs() <= {v for v, _ in named}, sorted(verbs() - {v for v, _ in named})


def test_compose_snapdir_service_runs_real_commands() -> None:
    svc = compose()["services"]["snapdir"]
    assert svc["command"][0] in verbs()
    for var in svc["environment"]:
        # each variable it sets is one `snapdir defaults` reports
        assert var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY") or var in \
            subprocess.run([sys.executable, "-m", "snapdir", "defaults"], check=False, capture_output=True,
                           text=True, env={"PATH": "/usr/bin", "HOME": "/nonexistent",
                                           var: "x"}).stdout, var


def test_dockerfile_is_slim_non_root_and_runs_snapdir() -> None:
    text = (DOCKER / "Dockerfile").read_text()
    cli_stage = text.split("FROM cli AS bench")[0]
    assert re.search(r"^FROM python:3\.11-slim AS cli$", cli_stage, re.MULTILINE)
    assert re.search(r"^RUN pip install /tmp/src\b", cli_stage, re.MULTILINE)
    users = re.findall(r"^USER (\S+)$", cli_stage, re.MULTILINE)
    assert users
    assert users[-1] not in ("root", "0")
    assert "useradd" in cli_stage
    assert users[-1] in cli_stage.split("useradd", 1)[1]
    assert re.search(r'^ENTRYPOINT \["snapdir"\]$', cli_stage, re.MULTILINE)
    assert re.findall(r"^USER (\S+)$", text, re.MULTILINE)[-1] not in ("root", "0")
    for src in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", text, re.MULTILINE):
        for path in src.split():
            assert (ROOT / path).exists(), path
    assert (DOCKER / "Dockerfile.dockerignore").is_file()


def test_compose_pieces_agree() -> None:
    data = compose()
    svcs = data["services"]
    s3, snap = svcs["s3"], svcs["snapdir"]
    assert s3["image"].startswith("chrislusf/seaweedfs")
    port = next(a.split("=")[1] for a in s3["command"] if a.startswith("-s3.port="))
    env = snap["environment"]
    assert env["AWS_ENDPOINT_URL"] == f"http://s3:{port}"
    ident = json.loads((DOCKER / "seaweedfs-s3.json").read_text())["identities"][0]
    cred = ident["credentials"][0]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == (
        cred["accessKey"], cred["secretKey"])
    assert {"Read", "Write", "List"} <= set(ident["actions"])
    config_mount = next(v for v in s3["volumes"] if "s3.json" in v)
    assert (DOCKER / config_mount.split(":")[0]).resolve().is_file()
    assert any(a == "-s3.config=" + config_mount.split(":")[1] for a in s3["command"])
    bucket = re.search(r'create_bucket\(Bucket="([^"]+)"\)', svcs["bucket"]["command"][0])
    assert bucket
    assert env["SNAPDIR_STORE"].startswith(f"s3://{bucket.group(1)}/")
    for svc in (snap, svcs["bench"], svcs["bucket"]):
        assert svc["build"]["context"] == ".."
        assert (DOCKER / ".." / svc["build"]["dockerfile"]).resolve().is_file()
        assert svc["build"]["target"] in ("cli", "bench")
    assert svcs["bench"]["command"][:2] == ["--store", f"s3://{bucket.group(1)}/bench"]
    assert (ROOT / "README.md").read_text().count("## Docker") == 1


@pytest.mark.s3
def test_compose_bucket_step_against_seaweedfs(s3_env: SeaweedFS) -> None:
    """The one-shot ``bucket`` service's script creates the bucket, and is idempotent."""
    script = compose()["services"]["bucket"]["command"][0]
    for _ in range(2):
        p = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True,
                           timeout=120)
        assert p.returncode == 0, p.stderr
    import botocore.session
    from botocore.config import Config

    s3 = botocore.session.get_session().create_client(
        "s3", config=Config(s3={"addressing_style": "path"}))
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert "snapdir" in names
