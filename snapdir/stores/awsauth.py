"""Who is asking, and where the bucket is: S3 credentials and region from botocore's
chain (through aiobotocore's session: environment, profiles, SSO, assume-role,
credential_process, instance metadata), in the forms obstore takes."""

from __future__ import annotations

import os
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import anyio
import anyio.to_thread

from ..errors import AccessDenied, StoreError
from .awsconfig import env_profile, missing_profile

if TYPE_CHECKING:
    from obstore.store import S3Credential

DEFAULT_REGION = "us-east-1"
#: expiring credentials are renewed this long before they expire (botocore's mandatory
#: refresh window; obstore itself asks again 5 minutes before the expiry it is given)
_RENEW_BEFORE = timedelta(minutes=10)
#: the lifetime assumed for refreshable credentials that do not say when they expire
_UNKNOWN_LIFETIME = timedelta(minutes=15)


class AiobotocoreCredentials:
    """An obstore ``credential_provider`` backed by aiobotocore's credential chain.

    Synchronous on purpose: obstore asks for credentials from whichever thread of its own
    runtime needs them, and the parts of a multipart upload run where no Python event loop
    is: an async provider called there is never awaited, and with expiring credentials
    (SSO, assume-role, credential_process, instance roles) every large upload failed as
    "access denied". The chain runs on a private event loop in a short-lived thread; its
    answer is kept until ``_RENEW_BEFORE`` its expiry, and obstore is given that expiry.

    Static keys in the environment are botocore's first choice too (unless a profile was
    given explicitly); they are used directly, which saves importing aiobotocore (aiohttp,
    two SSL contexts: 0.3-0.6 s of every command's start-up).
    """

    def __init__(self, uri: str, profile: str | None = None) -> None:
        self.uri = uri
        self.profile = profile
        self._lock = threading.Lock()
        self._held: S3Credential | None = None
        self._renew_at: datetime | None = None
        #: the last failure, so ``map_error`` can report it instead of obstore's wrapper
        self.error: StoreError | None = None

    def _from_env(self) -> S3Credential | None:
        if self.profile or os.environ.get("AWS_CREDENTIAL_EXPIRATION"):
            return None
        key = os.environ.get("AWS_ACCESS_KEY_ID")
        secret = os.environ.get("AWS_SECRET_ACCESS_KEY")
        if not key or not secret:
            return None
        if (problem := missing_profile()) is not None:
            self.error = AccessDenied(f"{problem} (for {self.uri})")
            raise self.error
        token_var = next((v for v in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
                          if os.environ.get(v)), None)
        token = os.environ[token_var] if token_var else None
        for var, value in (("AWS_ACCESS_KEY_ID", key), ("AWS_SECRET_ACCESS_KEY", secret),
                           (token_var, token)):
            if value is not None and not _header_safe(value):
                self.error = AccessDenied(
                    f"{var} holds a newline, a control or a non-ASCII character (for "
                    f"{self.uri}): set it again without it (a secret made with `echo` ends "
                    "in a newline)")
                raise self.error
        return {"access_key_id": key, "secret_access_key": secret, "token": token,
                "expires_at": None}

    def __call__(self) -> S3Credential:
        static = self._from_env()
        if static is not None:
            return static
        with self._lock:
            if self._held is None or (self._renew_at is not None
                                      and datetime.now(UTC) >= self._renew_at):
                self._held = self._resolve()
                self.error = None  # a failure before, since mended, explains nothing now
                expires = self._held["expires_at"]
                if expires is not None:
                    left = expires - datetime.now(UTC)
                    self._renew_at = expires - min(_RENEW_BEFORE, left / 2)
            return self._held

    def _resolve(self) -> S3Credential:
        """Run the chain on an event loop of its own, in a thread of its own (the caller
        may be on one of obstore's threads, or on our event loop's)."""
        import asyncio

        box: list[S3Credential | BaseException] = []

        def run() -> None:
            try:
                box.append(asyncio.run(self._fetch()))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                box.append(exc)

        worker = threading.Thread(target=run, name="snapdir-aws-credentials", daemon=True)
        worker.start()
        worker.join()
        got = box[0]
        if isinstance(got, BaseException):
            raise got
        return got

    async def _fetch(self) -> S3Credential:
        from aiobotocore.session import get_session

        _quiet_botocore()
        session = get_session()
        if self.profile:
            session.set_config_variable("profile", self.profile)
        try:
            # the chain's own clients (STS, for assume-role and web identity) need a region
            # as the S3 requests do: AWS_REGION (which botocore does not read), the
            # session's (AWS_DEFAULT_REGION, the profile's), else the default
            region = (os.environ.get("AWS_REGION", "").strip()
                      or session.get_config_variable("region"))
            session.set_config_variable("region", region or DEFAULT_REGION)
            creds = await session.get_credentials()
            # a deferred source (SSO, assume-role) only runs here
            frozen = await creds.get_frozen_credentials() if creds is not None else None
        except Exception as exc:
            self.error = AccessDenied(f"cannot load AWS credentials for {self.uri}: "
                                      f"{_credentials_failure(exc)}")
            raise self.error from exc
        if creds is None or frozen is None:
            named = env_profile()
            profile = self.profile or (named[0] if named else "")
            which = f" (profile {profile!r} has none)" if profile else ""
            self.error = AccessDenied(
                f"no AWS credentials found for {self.uri}{which}: set AWS_PROFILE or "
                f"AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or log in (aws sso login)")
            raise self.error
        for what, value in (("access key id", frozen.access_key),
                            ("secret access key", frozen.secret_key),
                            ("session token", frozen.token)):
            if value is None and what == "session token":
                continue
            # a credential_process's JSON may hold null or a number (jq given a wrong
            # field name prints null): it went on to obstore and read as "access denied"
            if not isinstance(value, str) or (not value and what != "session token"):
                problem = "is empty or not text"
            elif not _header_safe(value):
                problem = "holds a newline, a control or a non-ASCII character"
            else:
                continue
            self.error = AccessDenied(
                f"the {what} that the AWS profile's credential source gave for {self.uri} "
                f"{problem}: fix the credentials file or credential_process")
            raise self.error
        expires: datetime | None = None
        if getattr(creds, "refresh_needed", None) is not None:  # refreshable
            expires = getattr(creds, "_expiry_time", None)
            if isinstance(expires, datetime) and expires.tzinfo is not None:
                expires = expires.astimezone(UTC)  # botocore's is dateutil's tzlocal()
            else:
                expires = datetime.now(UTC) + _UNKNOWN_LIFETIME
        return {"access_key_id": frozen.access_key, "secret_access_key": frozen.secret_key,
                "token": frozen.token, "expires_at": expires}


def _header_safe(value: str) -> bool:
    """Whether ``value`` can go into an HTTP header (obstore panics on anything else)."""
    return value.isascii() and value.isprintable()


def _credentials_failure(exc: BaseException) -> str:
    """Why botocore's chain failed, and what to do, without quoting the config or a
    credential process's output (either may hold a secret)."""
    from botocore.exceptions import (
        ClientError,
        ConfigParseError,
        CredentialRetrievalError,
        InfiniteLoopConfigError,
        PartialCredentialsError,
        ProfileNotFound,
        SSOError,
        TokenRetrievalError,
    )
    from botocore.exceptions import ConnectionError as BotoConnectionError

    from ..errors import redact_userinfo

    named = env_profile()
    var = named[1] if named else "AWS_PROFILE"
    if isinstance(exc, ProfileNotFound):
        return f"{exc}; check {var} and your AWS config"
    if isinstance(exc, ConfigParseError | PartialCredentialsError | InfiniteLoopConfigError):
        return f"{exc}"  # names a file, a missing field or a profile: nothing secret
    if isinstance(exc, FileNotFoundError):
        return (f"{exc.filename or 'a program'} was not found (the profile's "
                "credential_process?)")
    if isinstance(exc, RuntimeError) and "expired" in str(exc):
        return ("the credentials the profile's source gave had already expired; check its "
                "clock or its credential_process")
    if isinstance(exc, SSOError | TokenRetrievalError):
        return "the SSO session has no valid token; run `aws sso login` (with that profile)"
    if isinstance(exc, CredentialRetrievalError):
        source = getattr(exc, "kwargs", {}).get("provider") or ""
        said = str(getattr(exc, "kwargs", {}).get("error_msg") or "")
        if source == "custom-process" and said.startswith(("Unsupported version",
                                                           "Missing required key")):
            return f"the profile's credential_process answered wrongly: {said}"
        if source == "custom-process":  # its own stderr: not shown, it may hold a secret
            return "the profile's credential_process failed; run it by hand to see why"
        return f"the {source or 'credential'} source failed; check {var} and your AWS config"
    if isinstance(exc, ClientError):  # STS refused (assume-role, web identity)
        code = exc.response.get("Error", {}).get("Code") or "an error"
        return (f"{exc.operation_name} was refused ({code}); check the profile's role and "
                f"source credentials ({var}, your AWS config)")
    if isinstance(exc, BotoConnectionError):
        url = redact_userinfo(str(getattr(exc, "kwargs", {}).get("endpoint_url") or ""))
        return (f"the credential source could not reach {url or 'its endpoint'}; check the "
                "network (AWS_ENDPOINT_URL applies to STS too; AWS_ENDPOINT_URL_S3 to S3 "
                "only)")
    if isinstance(exc, ValueError) and type(exc).__name__ == "JSONDecodeError":
        return ("a credential source answered with something that is not JSON (the "
                "profile's credential_process?); run it by hand to see what it prints")
    return f"{type(exc).__name__}; check {var} and your AWS config"


def _quiet_botocore() -> None:
    """botocore logs failed refreshes with a traceback; with no logging set up, Python
    prints that on stderr (its last-resort handler). A ``NullHandler`` keeps it quiet and
    leaves an application's own logging (records still propagate) as it was; the failure
    reaches the user as one line instead."""
    import logging

    for name in ("botocore", "aiobotocore"):
        log = logging.getLogger(name)
        if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
            log.addHandler(logging.NullHandler())


#: where a bucket's region is asked for when none is configured (AWS only)
REGION_PROBE = "https://s3.amazonaws.com"
_REGION_NAME = re.compile(r"[a-z]{2}(?:-[a-z]+)+-\d{1,2}")


async def resolve_region(profile: str | None = None, bucket: str | None = None,
                         cafile: str | None = None) -> str:
    """``AWS_REGION``, else the session's region (env or profile config); else, for a
    ``bucket`` on AWS itself, the region AWS says the bucket is in; else us-east-1."""
    # the environment beats the config file in botocore too; skip importing aiobotocore
    region = (os.environ.get("AWS_REGION", "").strip()
              or os.environ.get("AWS_DEFAULT_REGION", "").strip())
    if region:
        return region

    def from_session() -> str | None:
        from aiobotocore.session import get_session

        session = get_session()
        if profile:
            session.set_config_variable("profile", profile)
        try:
            value = session.get_config_variable("region")
        except Exception:  # noqa: BLE001 - a broken profile should not stop a default
            return None
        return str(value) if value else None

    found = await anyio.to_thread.run_sync(from_session)
    if not found and bucket:
        found = await anyio.to_thread.run_sync(bucket_region, bucket, cafile)
    return found or DEFAULT_REGION


def bucket_region(bucket: str, cafile: str | None = None, timeout: float = 5) -> str | None:
    """The region AWS says ``bucket`` is in, or None. An anonymous HEAD of the bucket
    answers with ``x-amz-bucket-region`` whether or not the caller may read it (200, 301 or
    403), which is how botocore and the AWS SDKs follow a bucket to its region."""
    import http.client
    import ssl
    from urllib.parse import quote

    url = urlsplit(REGION_PROBE)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        ctx = ssl.create_default_context()
        if cafile:
            ctx.load_verify_locations(cafile=cafile)
        conn = http.client.HTTPSConnection(url.netloc, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(url.netloc, timeout=timeout)
    try:
        conn.request("HEAD", "/" + quote(bucket))
        said = (conn.getresponse().getheader("x-amz-bucket-region") or "").strip()
    except (OSError, http.client.HTTPException):
        return None  # no answer: the default, and the requests themselves will say more
    finally:
        conn.close()
    return said if _REGION_NAME.fullmatch(said) else None
