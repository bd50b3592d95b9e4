"""The AWS config and shared credentials files, read directly with configparser.

Importing botocore costs a few hundred milliseconds of start-up; these two questions
(does a profile exist, does it configure an S3 endpoint) only need the files.
"""

from __future__ import annotations

import configparser
import os

#: environment variables naming the S3 endpoint, first set wins (the last is snapdir 1.x's)
#: in the order they win: snapdir 1.x's own variable first, as 1.x reads them (with it set
#: beside AWS_ENDPOINT_URL, both tools then talk to the same server for one s3:// URI)
ENDPOINT_VARS = ("SNAPDIR_S3_STORE_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")


def _read(path: str) -> configparser.RawConfigParser | None:
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(os.path.expanduser(path))
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    return parser


def _config_path() -> str:
    return os.environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config")


def _credentials_path() -> str:
    return (os.environ.get("AWS_SHARED_CREDENTIALS_FILE")
            or os.path.join("~", ".aws", "credentials"))


def _section(parser: configparser.RawConfigParser, names: set[str]) -> str | None:
    for sec in parser.sections():
        if " ".join(sec.split()) in names:
            return sec
    return None


def _profile_sections(name: str) -> set[str]:
    return {f"profile {name}"} | ({"default"} if name == "default" else set())


def profile_exists(name: str) -> bool:
    """Whether the AWS config or shared credentials file defines profile ``name`` (True
    when a file cannot be read: then nothing is known against it)."""
    for path, names in ((_config_path(), _profile_sections(name)),
                        (_credentials_path(), {name})):
        parser = _read(path)
        if parser is None or _section(parser, names) is not None:
            return True
    return False


def env_profile() -> tuple[str, str] | None:
    """The profile the environment names, and the variable: botocore (and so aws-cli)
    reads ``AWS_DEFAULT_PROFILE`` before ``AWS_PROFILE``."""
    for var in ("AWS_DEFAULT_PROFILE", "AWS_PROFILE"):
        value = os.environ.get(var, "").strip()
        if value:
            return value, var
    return None


def missing_profile() -> str | None:
    """Why the profile the environment names cannot be used (no file defines it), or None.
    botocore (and so aws-cli) refuses such a profile whatever keys the environment has."""
    named = env_profile()
    if named is None or profile_exists(named[0]):
        return None
    return (f"{named[1]}={named[0]!r} names no profile in the AWS config or credentials "
            f"file: fix or unset {named[1]}")


def unsigned_payload() -> bool | None:
    """``AWS_UNSIGNED_PAYLOAD`` (obstore's own variable): True or False, None if unset; a
    ``UsageError`` for anything else."""
    raw = os.environ.get("AWS_UNSIGNED_PAYLOAD", "").strip()
    if not raw:
        return None
    if raw.lower() not in ("true", "false"):
        from ..errors import UsageError

        raise UsageError(f"AWS_UNSIGNED_PAYLOAD={raw!r}: set true or false (or unset it)")
    return raw.lower() == "true"


def _profile_name(profile: str | None) -> str:
    named = env_profile()
    return profile or (named[0] if named else "default")


def _profile_value(profile: str | None, key: str) -> tuple[str, str] | None:
    """``key`` of the profile in use, in the AWS config file, and where it was found."""
    name = _profile_name(profile)
    parser = _read(_config_path())
    sec = _section(parser, _profile_sections(name)) if parser is not None else None
    value = parser.get(sec, key, fallback="").strip() if parser and sec else ""
    return (value, f"AWS config: profile {name}") if value else None


def configured_region(profile: str | None = None) -> tuple[str, str] | None:
    """The region and where it is set, as the S3 store reads it: ``AWS_REGION``,
    ``AWS_DEFAULT_REGION``, then the profile's ``region``; None: not set."""
    for var in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        value = os.environ.get(var, "").strip()
        if value:
            return value, f"environment: {var}"
    return _profile_value(profile, "region")


def region_problem(value: str, where: str) -> str | None:
    """Why ``value`` (set in ``where``) cannot be a region name, or None: letters, digits,
    '-', '_' and '.' (AWS's names and the free-form ones of MinIO, Ceph or R2)."""
    import re

    if re.fullmatch(r"[A-Za-z0-9._-]+", value):
        return None
    return (f"the S3 region {value!r} ({where}) is not a region name (letters, digits, '-', "
            "'_' or '.'); fix it")


def ca_bundle(profile: str | None = None) -> tuple[str, str] | None:
    """The CA bundle that TLS connections to S3 trust, and where it was set, as botocore
    finds it: ``AWS_CA_BUNDLE``, then the profile's ``ca_bundle``; None: the system's."""
    value = os.environ.get("AWS_CA_BUNDLE", "").strip()
    if value:
        return os.path.expanduser(value), "environment: AWS_CA_BUNDLE"
    found = _profile_value(profile, "ca_bundle")
    return (os.path.expanduser(found[0]), found[1]) if found else None


def read_ca_bundle(profile: str | None = None) -> tuple[str, str] | None:
    """``AWS_CA_BUNDLE`` (or the profile's ``ca_bundle``): its path and its certificates;
    a ``UsageError`` if it cannot be read or holds none."""
    from ..errors import UsageError

    found = ca_bundle(profile)
    if found is None:
        return None
    path, where = found
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            pem = f.read()
    except OSError as exc:
        raise UsageError(f"the CA bundle {path!r} ({where}) cannot be read: "
                         f"{exc.strerror or exc}; point it at a PEM file of CA certificates"
                         ) from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise UsageError(f"the CA bundle {path!r} ({where}) holds no PEM certificate; point "
                         "it at a PEM file of CA certificates")
    bad = _broken_certificate(pem)
    if bad:
        raise UsageError(f"the CA bundle {path!r} ({where}): its certificate #{bad} is not "
                         "valid PEM (cut short or not base64); fix or remove it")
    return path, pem


def _broken_certificate(pem: str) -> int:
    """The number (from 1) of the first certificate in ``pem`` whose base64 body does not
    decode to one whole DER structure, or 0. The TLS library refuses a bundle with one,
    and says so only as a client-builder failure."""
    import base64
    import binascii

    end = "-----END CERTIFICATE-----"
    for n, block in enumerate(pem.split("-----BEGIN CERTIFICATE-----")[1:], 1):
        if end not in block:  # cut short before its end line
            return n
        body = block.split(end, 1)[0]
        try:
            der = base64.b64decode("".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            return n
        if len(der) < 2 or der[0] != 0x30:
            return n
        size, head = der[1], 2
        if size & 0x80:
            width = size & 0x7F
            size, head = int.from_bytes(der[2:2 + width], "big"), 2 + width
        if head + size != len(der):
            return n
    return 0


def shown_endpoint(value: str) -> str:
    """``value`` fit to print: a user name and password in it become ``***``, with or
    without a scheme before them."""
    from ..errors import redact_userinfo

    shown = redact_userinfo(value)
    if "@" in shown and "://" not in shown:  # user:password@host without a scheme
        shown = "***@" + shown.rsplit("@", 1)[1]
    return shown


def endpoint_problem(value: str, where: str) -> str | None:
    """Why ``value`` (set in ``where``) cannot be an S3 endpoint, or None. The S3 client
    needs a URL with its scheme: ``127.0.0.1:9000`` alone made it panic."""
    from urllib.parse import urlsplit

    bad_port = False
    try:
        url = urlsplit(value)
    except ValueError:  # an unclosed [ of an IPv6 address
        url = None
    try:
        if url is not None:
            url.port  # noqa: B018 - raises on a port that is not a number in 0-65535
    except ValueError:
        bad_port = True
    shown = shown_endpoint(value)
    if bad_port:
        return (f"the S3 endpoint {shown!r} ({where}) has a port that is not a number "
                "from 1 to 65535; correct it, e.g. http://127.0.0.1:9000")
    if url is None or url.scheme.lower() not in ("http", "https") or not url.hostname:
        return (f"the S3 endpoint {shown!r} ({where}) is not an http:// or https:// URL; "
                "write it in full, e.g. http://127.0.0.1:9000")
    return None


def _ignored() -> bool:
    return os.environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "").strip().lower() == "true"


def configured_endpoint(profile: str | None = None) -> tuple[str, str] | None:
    """The S3 endpoint and where it was set: snapdir 1.x's ``SNAPDIR_S3_STORE_ENDPOINT_URL``
    (first, as in 1.x), then as botocore finds it: ``AWS_ENDPOINT_URL_S3``,
    ``AWS_ENDPOINT_URL``, then the profile's ``services``
    section (its ``s3`` ``endpoint_url``), then the profile's own ``endpoint_url``.
    ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` skips all but snapdir's variable."""
    for var in ENDPOINT_VARS:
        value = os.environ.get(var, "").strip()
        if value and not (_ignored() and var.startswith("AWS_")):
            return value, f"environment: {var}"
    if _ignored():
        return None
    name = _profile_name(profile)
    parser = _read(_config_path())
    if parser is None:
        return None
    sec = _section(parser, _profile_sections(name))
    if sec is None:
        return None
    where = f"AWS config: profile {name}"
    services = parser.get(sec, "services", fallback="").strip()
    if services:
        ssec = _section(parser, {f"services {services}"})
        block = parser.get(ssec, "s3", fallback="") if ssec else ""
        for line in block.splitlines():
            key, eq, value = line.partition("=")
            if eq and key.strip() == "endpoint_url" and value.strip():
                return value.strip(), f"{where}, services {services}"
    value = parser.get(sec, "endpoint_url", fallback="").strip()
    return (value, where) if value else None
