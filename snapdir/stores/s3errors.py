"""S3 failures as our ``StoreError`` classes: what went wrong, for which key, and what
to do about it, on one line; and whether retrying can help."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from obstore.exceptions import PermissionDeniedError, UnauthenticatedError

from ..errors import (
    AccessDenied,
    ObjectNotFound,
    StoreError,
    StoreUnavailable,
    Throttled,
    redact_userinfo,
)

if TYPE_CHECKING:
    from .awsauth import AiobotocoreCredentials

_STATUS = re.compile(r"\bstatus(?: code)?: (\d{3})\b")
_TOOK = re.compile(r" in ([\d.]+)(ms|s)\b")
_CODE = re.compile(r"<Code>([A-Za-z0-9.]+)</Code>")
#: AuthorizationHeaderMalformed's message names the bucket's region
_EXPECTING = re.compile(r"expecting '([a-z0-9-]+)'")
_THROTTLE_CODES = frozenset({"SlowDown", "Throttling", "ThrottlingException", "TooManyRequests",
                             "RequestLimitExceeded", "RequestThrottled"})
_DENIED_CODES = frozenset({"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                           "ExpiredToken", "InvalidToken", "TokenRefreshRequired"})
_TRANSIENT_CODES = frozenset({"RequestTimeout", "InternalError", "ServiceUnavailable"})


def has_status(exc: BaseException) -> bool:
    """Whether the failure carries an HTTP status (so the server did answer)."""
    return _STATUS.search(str(exc)) is not None


def map_error(exc: BaseException, key: str, uri: str, bucket: str,
              creds: AiobotocoreCredentials | None = None, *, endpoint: str | None = None,
              answered: bool = True, endpoint_from: str = "AWS_ENDPOINT_URL") -> StoreError:
    """Translate an obstore failure into the most specific ``StoreError``.

    ``answered``: whether the server has ever answered this store. A connection failure or
    timeout before it ever has is a wrong endpoint or a server that is down, not a passing
    fault: it is not retried (a black hole would otherwise take 5 x 60 s to give up).
    ``endpoint_from``: where the endpoint was set, for the advice to change it.
    """
    if isinstance(exc, StoreError):
        return exc
    if creds is not None and creds.error is not None:
        return type(creds.error)(str(creds.error), key=key)  # not about any one object
    # an endpoint (AWS_ENDPOINT_URL) may carry user:password@, and obstore quotes URLs
    text = redact_userinfo(str(exc))
    endpoint = redact_userinfo(endpoint) if endpoint else endpoint
    m = _STATUS.search(text)
    status = int(m.group(1)) if m else None
    c = _CODE.search(text)
    code = c.group(1) if c else None
    where = f"{key} in {uri}"
    detail = " ".join(str(x) for x in (f"HTTP {status}" if status else None, code) if x)
    # an endpoint with a path (the bucket pasted into it, as some consoles show the URL):
    # every request goes to that path first, and the server answers for the wrong bucket
    path = urlsplit(endpoint).path.strip("/") if endpoint else ""
    pathy = (f"; {endpoint_from} ({endpoint}) has a path, /{path}, put in front of "
             "every request: an S3 endpoint is usually scheme://host[:port] alone") if path else ""
    if code == "NoSuchBucket":
        return StoreError(f"bucket {bucket!r} does not exist (for {where}): create it or fix "
                          f"the store URI{pathy}", key=key)
    scheme = _wrong_scheme(exc, text, endpoint_from)  # an https server's plain-text 400
    foreign = _foreign_reply(text, status, bucket) if scheme is None else None
    if foreign is not None:
        # a web server or proxy where the S3 service should be: nothing to retry, and a
        # 404 from it says nothing about the key
        return not_s3_server(endpoint or "the S3 endpoint", key, uri, foreign, endpoint_from)
    if isinstance(exc, FileNotFoundError):
        return ObjectNotFound(f"{where} does not exist", key=key)
    if (isinstance(exc, PermissionDeniedError | UnauthenticatedError)
            or status in (401, 403) or code in _DENIED_CODES):
        return AccessDenied(f"access denied to {where} ({detail or 'forbidden'}): check the "
                            f"AWS credentials/profile and the bucket policy", key=key)
    if status in (429, 503) or code in _THROTTLE_CODES:
        return Throttled(f"{uri} is throttling requests ({detail}) for {key}", key=key)
    if (status is not None and status >= 500) or code in _TRANSIENT_CODES:
        return StoreUnavailable(f"{uri} failed ({detail}) for {key}", key=key)
    if status == 301 or code in ("PermanentRedirect", "AuthorizationHeaderMalformed"):
        said = _EXPECTING.search(text)
        region = f" ({said.group(1)})" if said else ""
        return StoreError(f"bucket {bucket!r} is in another region{region} than "
                          f"{endpoint or 'the endpoint'} (for {where}): set AWS_REGION to "
                          "the bucket's region", key=key)
    tls = _tls_problem(exc, text, endpoint or "the S3 endpoint", endpoint_from)
    if scheme is not None or tls is not None:
        err = StoreUnavailable(
            f"cannot reach {endpoint or 'the S3 endpoint'} for {where}: {scheme}"
            if scheme is not None else f"{tls} (for {where})", key=key)
        err.retryable = False  # a handshake fails the same way every time
        return err
    if status is None:
        # connection refused/reset, timeouts, truncated bodies: no HTTP status to go by
        if not answered:
            took = _TOOK.search(text)
            secs = (float(took.group(1)) / (1000 if took.group(2) == "ms" else 1)
                    if took else 0.0)
            why = (f"no answer in {secs:.0f} s" if secs >= 5
                   else "the connection failed")
            from .s3ranges import proxy_variable

            proxy = proxy_variable(endpoint)
            via = f", the proxy in {proxy}" if proxy else ""
            err = StoreUnavailable(
                f"cannot reach {endpoint or 'S3'} for {where}: {why}; check {endpoint_from}"
                f"{via} (or the network) and that the server is up", key=key)
            err.retryable = False
            return err
        return StoreUnavailable(f"cannot reach {endpoint or uri} for {where}: "
                                f"{_cause(exc, text)}", key=key)
    hint = ""
    if status == 400 and code is None and (endpoint or "").startswith("http://"):
        # what a plain-http request to an https port gets (a HEAD has no body to say so)
        hint = ("; if that server speaks https, write its URL with https:// in "
                f"{endpoint_from}; if it expects another region, set AWS_REGION")
    return StoreError(f"{uri} refused the request for {key} ({detail}){hint}{pathy}",
                      key=key)


#: the body obstore quotes after the status of a failed request, and the request's URL
_BODY = re.compile(r"status code: \d{3}[^:\n]*: (.*?)(?:\n\s*\nDebug source:|\Z)", re.DOTALL)
_REQUEST = re.compile(r"Error performing [A-Z]+ (\S+)")


def not_s3_server(endpoint: str, key: str, uri: str, answer: str,
                  endpoint_from: str) -> StoreError:
    """The error for an endpoint that answered, but not as an S3 server does (a web
    server or proxy at that address): ``answer`` says how, e.g. ``HTTP 404 and an HTML
    page, not S3's XML``."""
    return StoreError(f"{redact_userinfo(endpoint)} is not an S3 server: it answered the "
                      f"request for {key} in {uri} with {answer}; check {endpoint_from} (it "
                      "should be the URL of the S3 service)", key=key)


def _foreign_reply(text: str, status: int | None, bucket: str) -> str | None:
    """How an endpoint that is not an S3 server answered, in words, or None: a failure
    (other than 5xx and 429, which proxies in front of S3 send too) with a body that is
    not S3's XML error, or a PUT answered without the ETag S3 always sends."""
    if "MissingEtag" in text or "ETag Header missing" in text:
        return "no ETag header, which S3 always sends"
    if status is None or status >= 500 or status == 429:
        return None
    request = _REQUEST.search(text)
    if request is not None and bucket not in request.group(1):
        return None  # not a request to the bucket (credentials from a metadata service)
    m = _BODY.search(text)
    body = m.group(1).strip() if m else ""
    if not body or "<Error" in body or "<?xml" in body or "<Code>" in body:
        return None  # S3's XML, or no body to judge (a HEAD has none)
    kind = "an HTML page" if "<html" in body[:300].lower() else "a body"
    return f"HTTP {status} and {kind}, not S3's XML"


#: what obstore's (reqwest's, hyper's) words for a failure without an HTTP status mean
_CAUSES = (("error sending request", "the connection failed (is the server still up?)"),
           ("connection reset", "the connection was reset"),
           ("connection closed", "the server closed the connection"),
           ("broken pipe", "the server closed the connection"),
           ("timed out", "no answer in time"),
           ("error decoding response body", "the reply was cut short"),
           ("unexpected eof", "the reply was cut short"),
           ("incomplete", "the reply was cut short"))


def _cause(exc: BaseException, text: str) -> str:
    """A failure without an HTTP status, in words (obstore's own text says which request,
    how long, how many retries: noise on a user's screen)."""
    low = text.lower()
    for words, meaning in _CAUSES:
        if words in low:
            return meaning
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return first.rsplit(" - ", 1)[-1][:300]


#: rustls' (obstore's) and OpenSSL's words for a certificate that is not trusted
_UNTRUSTED = "signed by a CA this machine does not trust"
_WRONG_NAME = "not issued for this host name"
#: a self-made certificate that says it is a CA (``openssl req -x509`` makes one unless
#: told otherwise): rustls refuses it as a server's own even when it is in the CA bundle
_CA_AS_SERVER = "a CA's certificate (CA:TRUE), which TLS does not take as a server's own"
_CERT_WHY = {"UnknownIssuer": _UNTRUSTED, "NotValidForName": _WRONG_NAME,
             "Expired": "expired", "NotValidYet": "not valid yet",
             "CaUsedAsEndEntity": _CA_AS_SERVER,
             "unable to get local issuer certificate": _UNTRUSTED,
             "self-signed certificate": "self-signed", "Hostname mismatch": _WRONG_NAME,
             "certificate has expired": "expired", "certificate is not yet valid":
             "not valid yet"}
#: (webpki's own reasons come wrapped: ``InvalidCertificate(Other(OtherError(Reason)))``)
_RUSTLS_CERT = re.compile(r"InvalidCertificate\(\s*(?:Other\(\s*OtherError\(\s*)?(\w+)")


def _tls_problem(exc: BaseException, text: str, endpoint: str,
                 endpoint_from: str) -> str | None:
    """What went wrong setting up TLS with the endpoint, in words, or None."""
    import ssl

    m = _RUSTLS_CERT.search(text)
    if m is not None or isinstance(exc, ssl.SSLCertVerificationError):
        said = m.group(1) if m is not None else str(getattr(exc, "verify_message", ""))
        why = next((v for k, v in _CERT_WHY.items() if said.startswith(k)),
                   said or "not trusted")
        return f"the TLS certificate of {endpoint} is {why}: {_cert_advice(why, endpoint_from)}"
    return None


def _wrong_scheme(exc: BaseException, text: str, endpoint_from: str) -> str | None:
    """Why an endpoint written with the wrong scheme (http:// for https, or the reverse)
    cannot be reached, and what to write instead, or None."""
    import ssl

    if ("InvalidMessage(" in text or "InvalidContentType" in text
            or (isinstance(exc, ssl.SSLError) and "WRONG_VERSION_NUMBER" in text)):
        return ("it does not speak TLS; if it is a plain-http server, write its URL with "
                f"http:// in {endpoint_from}")
    if "HTTP request to an HTTPS server" in text:
        return f"it is an https server; write its URL with https:// in {endpoint_from}"
    return None


def _cert_advice(why: str, endpoint_from: str) -> str:
    if why == _WRONG_NAME:
        return f"use the host name it was issued for in {endpoint_from}"
    if why in ("expired", "not valid yet"):
        return "the server needs a valid certificate (or this machine's clock is wrong)"
    if why == _CA_AS_SERVER:
        return ("give the server a certificate with basicConstraints CA:FALSE (openssl req "
                "-x509 ... -addext basicConstraints=critical,CA:FALSE), or one signed by "
                "that CA")
    from .awsconfig import ca_bundle

    bundle = ca_bundle()
    if bundle is not None:
        return (f"the CA bundle {bundle[0]} ({bundle[1]}) does not hold the CA that signed "
                "it; add that CA's PEM file to it")
    return ("if it is signed by your own CA, set AWS_CA_BUNDLE (or ca_bundle in the AWS "
            "profile) to that CA's PEM file")


def unsatisfiable(exc: BaseException) -> bool:
    """Whether ``exc`` is S3's answer to a range that starts past the end of the object."""
    text = str(exc)
    status = _STATUS.search(text)
    return (status is not None and status.group(1) == "416") or "<Code>InvalidRange<" in text


def boto_error(exc: BaseException) -> BaseException:
    """A botocore failure (the aiobotocore requests of a resumed multipart upload) as the
    text ``map_error`` reads in obstore's: HTTP status and S3 code, or the cause in words."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        error = response.get("Error", {})
        said = f"status code: {status}: " if status else ""
        code = f"<Code>{error['Code']}</Code> " if error.get("Code") else ""
        return RuntimeError(f"{said}{code}{error.get('Message') or ''}".strip())
    from botocore.exceptions import (
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    if isinstance(exc, ConnectTimeoutError | ReadTimeoutError):
        return RuntimeError("timed out")
    if isinstance(exc, EndpointConnectionError | ConnectionClosedError):
        return RuntimeError("error sending request")
    return exc
