"""Credentials from botocore's chain rather than the environment: a profile's static keys,
and a ``credential_process`` whose credentials expire (as SSO, assume-role and instance
roles do), through whole pushes and pulls with multipart uploads and ranged GETs."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from conftest import Bucket, Cli, make_tree, tree_bytes

pytestmark = pytest.mark.s3

MiB = 1024 * 1024

#: prints the session's keys as credential_process JSON, expiring in ``sys.argv[2]``
#: seconds, and counts its calls in the file ``sys.argv[1]``
PROCESS = """\
import datetime, json, os, sys
with open(sys.argv[1], "a") as f:
    f.write("call\\n")
expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=int(sys.argv[2]))
print(json.dumps({"Version": 1, "AccessKeyId": os.environ["KEY"],
                  "SecretAccessKey": os.environ["SECRET"],
                  "Expiration": expires.strftime("%Y-%m-%dT%H:%M:%SZ")}))
"""


def profile_cli(cli: Cli, tmp_path: Path, profile: str) -> Cli:
    """``cli`` with no keys in its environment, only the AWS config and credentials files
    (which hold them) and ``AWS_PROFILE``."""
    key = cli.env.pop("AWS_ACCESS_KEY_ID")
    secret = cli.env.pop("AWS_SECRET_ACCESS_KEY")
    script = tmp_path / "creds.py"
    script.write_text(PROCESS)
    calls = tmp_path / "calls"
    config = tmp_path / "aws-config"
    config.write_text(f"[profile expiring]\ncredential_process = {sys.executable} {script} "
                      f"{calls} 1200\n")
    shared = tmp_path / "aws-credentials"
    shared.write_text(f"[static]\naws_access_key_id = {key}\n"
                      f"aws_secret_access_key = {secret}\n")
    cli.env.update(AWS_CONFIG_FILE=str(config), AWS_SHARED_CREDENTIALS_FILE=str(shared),
                   AWS_PROFILE=profile, KEY=key, SECRET=secret)
    return cli


@pytest.mark.parametrize("profile", ["static", "expiring"])
def test_push_and_pull_with_credentials_from_a_profile(s3_cli: Cli, bucket: Bucket,
                                                       tmp_path: Path, profile: str) -> None:
    cli = profile_cli(s3_cli, tmp_path, profile)
    # 70 MiB: its parts are uploaded from obstore's own threads, which ask for credentials
    src = make_tree(tmp_path / "src", {"big.bin": os.urandom(70 * MiB), "a.txt": b"a\n"})
    uri = bucket.unique_uri(f"creds-{profile}")
    sid = cli("push", "-q", "--store", uri, str(src)).out.strip()
    assert sid == cli("id", str(src)).out.strip()
    other = cli.machine("node")
    dest = tmp_path / "dest"
    other("pull", "-q", "--store", uri, "--id", sid, str(dest))
    assert tree_bytes(dest) == tree_bytes(src)
    if profile == "expiring":  # resolved once per command, not once per request
        calls = (tmp_path / "calls").read_text().count("call")
        assert 1 <= calls <= 4, calls


@pytest.mark.parametrize(("profile", "says"), [
    ("failing", "the profile's credential_process failed; run it by hand to see why"),
    ("chatty", "answered with something that is not JSON"),
    ("partial", ("the profile's credential_process answered wrongly: Missing required key in "
                "response: 'SecretAccessKey'")),
    ("sso", "the SSO session has no valid token; run `aws sso login`"),
    ("missing", "The config profile (missing) could not be found; check AWS_PROFILE"),
])
def test_a_credential_source_that_fails_is_one_line(s3_cli: Cli, bucket: Bucket,
                                                    tmp_path: Path, profile: str,
                                                    says: str) -> None:
    cli = profile_cli(s3_cli, tmp_path, profile)
    config = Path(cli.env["AWS_CONFIG_FILE"])
    config.write_text(
        "[profile failing]\ncredential_process = /bin/sh -c 'echo secret-ish >&2; exit 3'\n"
        "[profile chatty]\ncredential_process = /bin/echo hello\n"
        "[profile partial]\ncredential_process = /bin/echo '{\"Version\": 1, "
        "\"AccessKeyId\": \"AKIA\"}'\n"
        "[profile sso]\nsso_start_url = https://example.invalid/start\nsso_region = us-east-1\n"
        "sso_account_id = 123456789012\nsso_role_name = Reader\n")
    src = make_tree(tmp_path / "src", {"a.txt": b"a\n"})
    r = cli("push", "-q", "--store", bucket.unique_uri("creds-bad"), str(src), check=False)
    assert r.rc == 1, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err  # botocore's logged traceback is not shown
    assert "cannot load AWS credentials for s3://" in lines[0]
    assert says in lines[0]
    assert "secret-ish" not in r.err


@pytest.mark.parametrize(("var", "value", "code", "says"), [
    ("AWS_ACCESS_KEY_ID", "key\n", 1, "AWS_ACCESS_KEY_ID holds a newline, a control or a"),
    ("AWS_SESSION_TOKEN", "token\n", 1, "AWS_SESSION_TOKEN holds a newline, a control or a"),
    ("AWS_SECRET_ACCESS_KEY", "s\u00e9cret", 1, "AWS_SECRET_ACCESS_KEY holds a newline, a"),
    ("AWS_REGION", "eu\x7fwest", 2,
     "the S3 region 'eu\\x7fwest' (environment: AWS_REGION) is not a region name"),
    ("AWS_UNSIGNED_PAYLOAD", "maybe", 2, "AWS_UNSIGNED_PAYLOAD='maybe': set true or false"),
])
def test_a_malformed_aws_setting_is_named(s3_cli: Cli, bucket: Bucket, tmp_path: Path,
                                          var: str, value: str, code: int, says: str) -> None:
    """A secret made with `echo` ends in a newline: the S3 client used to panic on it
    (a Rust backtrace) and the error then blamed the network."""
    if var == "AWS_ACCESS_KEY_ID":
        value = s3_cli.env[var] + "\n"
    s3_cli.env[var] = value
    src = make_tree(tmp_path / "src", {"a.txt": b"a\n"})
    r = s3_cli("push", "-q", "--store", bucket.unique_uri("malformed"), str(src), check=False)
    assert r.rc == code, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1, r.err
    assert says in lines[0]
    assert "panicked" not in r.err


def test_aws_default_profile_comes_first_as_in_botocore(s3_cli: Cli, bucket: Bucket,
                                                        tmp_path: Path) -> None:
    """Credentials (botocore) and the endpoint (ours) come from the same profile:
    AWS_DEFAULT_PROFILE before AWS_PROFILE, as aws-cli reads them."""
    endpoint = s3_cli.env.pop("AWS_ENDPOINT_URL")
    config = tmp_path / "aws-config"
    config.write_text(f"[profile good]\nendpoint_url = {endpoint}\n"
                      "[profile closed]\nendpoint_url = http://127.0.0.1:9\n")
    s3_cli.env.update(AWS_CONFIG_FILE=str(config), AWS_DEFAULT_PROFILE="good",
                      AWS_PROFILE="closed")
    src = make_tree(tmp_path / "src", {"a.txt": b"profiles\n"})
    uri = bucket.unique_uri("default-profile")
    assert s3_cli("push", "-q", "--store", uri, str(src)).out.strip()
    s3_cli.env.pop("AWS_DEFAULT_PROFILE")
    r = s3_cli("push", "-q", "--store", uri, str(src), check=False)
    assert r.rc == 1, r
    # the advice names where the endpoint was set
    assert "check endpoint_url in the AWS config, profile closed" in r.err


def test_an_endpoint_with_a_path_is_pointed_at(s3_cli: Cli, bucket: Bucket,
                                               tmp_path: Path) -> None:
    """The bucket pasted into the endpoint URL (as some consoles show it): every request
    went to the wrong place and the error blamed a missing key or bucket; it now says the
    endpoint has a path."""
    src = make_tree(tmp_path / "src", {"a.txt": b"a\n"})
    endpoint = s3_cli.env["AWS_ENDPOINT_URL"]
    for path in (f"/{bucket.bucket}", "/some/path"):
        s3_cli.env["AWS_ENDPOINT_URL"] = endpoint + path
        r = s3_cli("push", "-q", "--store", bucket.unique_uri("pathy"), str(src), check=False)
        assert r.rc == 1, r
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert f"AWS_ENDPOINT_URL ({endpoint}{path}) has a path, {path}," in r.err, r.err
