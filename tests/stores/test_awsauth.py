"""S3 credentials and region (``snapdir.stores.awsauth``): what botocore's chain finds,
kept and renewed for obstore; a bucket on AWS followed to its own region."""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from loopback import LoopbackHTTP, QuietHandler

from snapdir.stores import awsauth
from snapdir.stores.s3 import S3Store

pytestmark = pytest.mark.anyio


class _RegionServer(LoopbackHTTP):
    """A loopback stand-in for s3.amazonaws.com's answer to an anonymous HEAD of a bucket
    in another region: 301 (or 403) and ``x-amz-bucket-region``."""

    def __init__(self, region: str | None) -> None:
        seen: list[tuple[str, str | None]] = []
        self.seen = seen

        class Handler(QuietHandler):
            def do_HEAD(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                self.send_response(301 if region else 403)
                if region:
                    self.send_header("x-amz-bucket-region", region)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)


@pytest.mark.parametrize(("answer", "configured", "want"), [
    ("eu-west-1", None, "eu-west-1"),     # followed to the bucket's region
    (None, None, "us-east-1"),            # 403 without a region: the default
    ("eu-west-1", "ap-south-1", "ap-south-1"),  # a configured region is not second-guessed
    ("down", None, "us-east-1"),          # no answer at all: the default
])
async def test_a_bucket_on_aws_is_found_in_its_region(monkeypatch: pytest.MonkeyPatch,
                                                      answer: str | None,
                                                      configured: str | None,
                                                      want: str) -> None:
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3",
                "SNAPDIR_S3_STORE_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    if configured:
        monkeypatch.setenv("AWS_REGION", configured)
    server = _RegionServer(None if answer in (None, "down") else answer)
    if answer == "down":
        server.close()
    monkeypatch.setattr(awsauth, "REGION_PROBE", server.url)
    try:
        st = S3Store("ml-data.v2", "datasets")
        assert (await st._ob()).config["region"] == want
        assert (await st._ob(parts=True)).config["region"] == want  # asked once per store
        if configured or answer == "down":
            assert server.seen == []
        else:
            assert server.seen == [("/ml-data.v2", None)]  # anonymous: no credentials sent
    finally:
        server.close()


def test_expiring_credentials_are_kept_then_renewed(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Credentials that expire are resolved once, handed to obstore with their expiry (in
    UTC), and resolved again before they expire: called from any thread, no event loop."""
    script = tmp_path / "creds.py"
    script.write_text(
        "import datetime, sys\n"
        "n = len(open(sys.argv[1]).read()) if __import__('os').path.exists(sys.argv[1]) "
        "else 0\n"
        "open(sys.argv[1], 'a').write('x')\n"
        "t = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=4)\n"
        "print('{\"Version\": 1, \"AccessKeyId\": \"key%d\", \"SecretAccessKey\": \"s\", '\n"
        "      '\"Expiration\": \"%s\"}' % (n, t.strftime('%Y-%m-%dT%H:%M:%SZ')))\n")
    config = tmp_path / "config"
    config.write_text(f"[profile expiring]\ncredential_process = {sys.executable} {script} "
                      f"{tmp_path / 'calls'}\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(var, raising=False)
    provider = awsauth.AiobotocoreCredentials("s3://b/p", "expiring")
    first = provider()
    expires = first["expires_at"]
    assert expires is not None
    assert expires.tzinfo is UTC
    assert timedelta(0) < expires - datetime.now(UTC) <= timedelta(seconds=4)
    assert provider() is first  # kept, not resolved per request
    time.sleep(2.5)  # past half its lifetime: renewed
    again = provider()
    assert again["access_key_id"] != first["access_key_id"]
    assert again["expires_at"] is not None
    assert again["expires_at"] > expires


_ASSUMED = """<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
<AssumeRoleResult><Credentials><AccessKeyId>ASIAROLE</AccessKeyId>
<SecretAccessKey>role-secret</SecretAccessKey><SessionToken>role-token</SessionToken>
<Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>
<AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId>
<Arn>arn:aws:sts::123456789012:assumed-role/reader/s</Arn></AssumedRoleUser>
</AssumeRoleResult><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata>
</AssumeRoleResponse>"""
_REFUSED = """<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>
<Message>not authorized</Message></Error><RequestId>1</RequestId></ErrorResponse>"""


class _StsServer(LoopbackHTTP):
    """A loopback STS that answers AssumeRole (or refuses it), recording the
    ``Authorization`` header of each request (its credential scope names the region)."""

    def __init__(self, refuse: bool) -> None:
        seen: list[str] = []
        self.seen = seen

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen.append(self.headers.get("Authorization") or "")
                body = (_REFUSED if refuse else _ASSUMED).encode()
                self.send_response(403 if refuse else 200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)


@pytest.mark.parametrize(("region", "want"), [(None, "us-east-1"), ("eu-west-3", "eu-west-3"),
                                              ("refused", "")])
def test_an_assumed_role_needs_no_region_in_its_profile(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch,
                                                        region: str | None,
                                                        want: str) -> None:
    """A role profile without ``region``: STS is asked in AWS_REGION's region, else the
    default, as S3 is (botocore reads neither, and failed with 'NoRegionError')."""
    server = _StsServer(refuse=region == "refused")
    config = tmp_path / "config"
    config.write_text("[profile role]\nrole_arn = arn:aws:iam::123456789012:role/reader\n"
                      "source_profile = base\n")
    creds = tmp_path / "credentials"
    creds.write_text("[base]\naws_access_key_id = AKIABASE\n"
                     "aws_secret_access_key = base-secret\n")
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
                "AWS_ENDPOINT_URL_STS", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(creds))
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    if region and region != "refused":
        monkeypatch.setenv("AWS_REGION", region)
    try:
        provider = awsauth.AiobotocoreCredentials("s3://b/p", "role")
        if region == "refused":
            with pytest.raises(awsauth.AccessDenied) as info:
                provider()
            assert "AssumeRole was refused (AccessDenied)" in str(info.value)
            assert "base-secret" not in str(info.value)
            return
        got = provider()
    finally:
        server.close()
    assert (got["access_key_id"], got["token"]) == ("ASIAROLE", "role-token")
    assert len(server.seen) == 1
    assert f"/{want}/sts/aws4_request" in server.seen[0]


@pytest.mark.parametrize(("answer", "what"), [
    ('"AccessKeyId": "AKIA", "SecretAccessKey": null', "secret access key"),
    ('"AccessKeyId": "AKIA", "SecretAccessKey": 12345', "secret access key"),
    ('"AccessKeyId": "", "SecretAccessKey": "s"', "access key id"),
])
def test_a_credential_process_giving_no_key_is_named(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     answer: str, what: str) -> None:
    """null or a number where a key should be (jq given a wrong field name prints null)
    is refused here, by name; it went on to obstore and read as "access denied"."""
    config = tmp_path / "config"
    config.write_text("[profile p]\ncredential_process = /bin/echo "
                      f"'{{\"Version\": 1, {answer}}}'\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(awsauth.AccessDenied) as info:
        awsauth.AiobotocoreCredentials("s3://b/p", "p")()
    assert str(info.value) == (f"the {what} that the AWS profile's credential source gave "
                               "for s3://b/p is empty or not text: fix the credentials file "
                               "or credential_process")
