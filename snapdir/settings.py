"""Where things live and the knobs users set, each with its source.

======================== ============================================ =====================
setting                  environment                                  default
======================== ============================================ =====================
cache directory          SNAPDIR_CACHE_DIR                            $XDG_CACHE_HOME/snapdir
data directory           SNAPDIR_DATA_DIR                             $XDG_DATA_HOME/snapdir
store                    SNAPDIR_STORE                                <data directory>/store
stat cache               SNAPDIR_NO_STAT_CACHE=1 disables it          on
network jobs             SNAPDIR_JOBS                                 32
hash threads             SNAPDIR_HASH_THREADS                         number of CPUs
file I/O threads         SNAPDIR_IO_THREADS                           32
checksum context         SNAPDIR_MANIFEST_CONTEXT                     (plain BLAKE3)
retry attempts           SNAPDIR_RETRIES                              5
progress interval        SNAPDIR_PROGRESS_INTERVAL (seconds)          5 plain, 0.2 terminal
large downloads direct   SNAPDIR_DIRECT_IO=1 writes them O_DIRECT     off (page cache)
======================== ============================================ =====================
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    value: str
    source: str  # "flag", "environment: VAR", "default"
    #: why commands refuse this value (the message they stop with), if they do
    problem: str | None = None


def _xdg(var: str, fallback: str) -> Path:
    """``$var`` if it is an absolute path, else ``~/fallback``: the XDG Base Directory
    spec says relative values are invalid and to be ignored (a relative one would put the
    cache or the default store wherever the command happens to run)."""
    base = os.environ.get(var)
    return Path(base) if base and os.path.isabs(base) else Path.home() / fallback


def cache_dir() -> Path:
    env = os.environ.get("SNAPDIR_CACHE_DIR")
    return Path(env) if env else _xdg("XDG_CACHE_HOME", ".cache") / "snapdir"


def data_dir() -> Path:
    env = os.environ.get("SNAPDIR_DATA_DIR")
    return Path(env) if env else _xdg("XDG_DATA_HOME", ".local/share") / "snapdir"


def data_dir_problem() -> str | None:
    """Why the data directory cannot be one (it is, or lies under, a file), naming the
    variable to fix; None when it can be (whether or not it exists yet)."""
    from .stores.file import blocking_file

    root = Path(os.path.abspath(data_dir()))
    blocker = blocking_file(root)
    if blocker is None:
        return None
    if os.environ.get("SNAPDIR_DATA_DIR"):
        fix = "SNAPDIR_DATA_DIR"
    else:
        xdg = os.environ.get("XDG_DATA_HOME")
        fix = ("SNAPDIR_DATA_DIR (or XDG_DATA_HOME)" if xdg and os.path.isabs(xdg)
               else "SNAPDIR_DATA_DIR")
    return (f"the snapdir data directory {root} cannot be used: {blocker} is a file, not a "
            f"directory; set {fix} to a directory (or a path that does not exist yet)")


def checked_data_dir() -> Path:
    """The data directory, refused (a usage error naming the variable) if it cannot be one."""
    if (problem := data_dir_problem()) is not None:
        raise UsageError(problem)
    return data_dir()


def default_store() -> str:
    return os.environ.get("SNAPDIR_STORE") or str(data_dir() / "store")


def store_to_use(store: str | None) -> str:
    """``store``, else ``$SNAPDIR_STORE``, else the embedded store in the data directory,
    which is refused, naming the variable, if the data directory cannot be one. ``""``
    is not None: ``open_store`` refuses it, instead of it meaning the default store."""
    if store is not None:
        return store
    if not os.environ.get("SNAPDIR_STORE"):  # empty is unset, as environment variables go
        checked_data_dir()
    return default_store()


def object_cache_dir() -> Path:
    """The local cache of objects and manifests (same layout as a store)."""
    return cache_dir() / "store"


def env_bool(name: str, usage: str) -> bool:
    """``$name`` as a yes/no: 1/true/yes/on or 0/false/no/off (any case; unset or empty
    is no); anything else is a usage error ending with ``usage``."""
    raw = os.environ.get(name, "").strip().lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("", "0", "false", "no", "off"):
        return False
    raise UsageError(f"{name}={raw!r}: {usage}")


def env_int(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not an integer; set a whole number") from None
    if value < minimum:
        raise UsageError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise UsageError(f"{name}={value} is too large: use {minimum} to {maximum}")
    return value


#: the most network jobs (``-j`` and ``SNAPDIR_JOBS`` alike)
MAX_JOBS = 1024


def jobs() -> int:
    return env_int("SNAPDIR_JOBS", 32, maximum=MAX_JOBS)


def retries() -> int:
    return env_int("SNAPDIR_RETRIES", 5)


def hash_threads() -> int:
    return env_int("SNAPDIR_HASH_THREADS", os.cpu_count() or 2)


def direct_io() -> bool:
    """Whether large downloads are written past the page cache (see fileio.py)."""
    return env_bool("SNAPDIR_DIRECT_IO", "set 0 (the default) or 1")


def io_threads() -> int:
    """Worker threads for blocking file work during transfers (see transfer/threads.py)."""
    return env_int("SNAPDIR_IO_THREADS", 32)


def stat_cache_enabled() -> bool:
    return not env_bool("SNAPDIR_NO_STAT_CACHE",
                        "set 1 to hash every file, or 0 (the default) to use the stat cache")


#: the longest SNAPDIR_PROGRESS_INTERVAL, in seconds (a day)
MAX_PROGRESS_INTERVAL = 86400


def progress_interval(default: float) -> float:
    """Seconds between progress updates: ``$SNAPDIR_PROGRESS_INTERVAL``, else ``default``
    (unset or empty). Anything but a number of seconds above 0 and at most a day is a
    usage error (nan, inf, 0 and negative numbers too)."""
    raw = os.environ.get("SNAPDIR_PROGRESS_INTERVAL", "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_PROGRESS_INTERVAL:  # nan compares false
        raise UsageError(f"SNAPDIR_PROGRESS_INTERVAL={raw!r}: set a number of seconds above "
                         f"0, at most {MAX_PROGRESS_INTERVAL} (e.g. 0.5), or unset it")
    return value


def manifest_context() -> str | None:
    ctx = os.environ.get("SNAPDIR_MANIFEST_CONTEXT")
    return ctx if ctx else None


def _env_or(name: str, default: str) -> Setting:
    raw = os.environ.get(name)
    if raw:
        return Setting(name, raw, f"environment: {name}")
    return Setting(name, default, "default")


#: how commands read each setting they can refuse (see ``describe``)
_CHECKS: dict[str, Callable[[], object]] = {
    "SNAPDIR_JOBS": jobs, "SNAPDIR_RETRIES": retries, "SNAPDIR_HASH_THREADS": hash_threads,
    "SNAPDIR_IO_THREADS": io_threads, "SNAPDIR_DIRECT_IO": direct_io,
    "SNAPDIR_NO_STAT_CACHE": stat_cache_enabled,
    "SNAPDIR_PROGRESS_INTERVAL": lambda: progress_interval(5.0)}


def _checked(s: Setting) -> Setting:
    """``s`` with the error commands would stop with, if its variable is set badly."""
    check = _CHECKS.get(s.name)
    if check is None or s.source != f"environment: {s.name}":
        return s
    try:
        check()
    except UsageError as exc:
        return Setting(s.name, s.value, s.source, str(exc))
    return s


def _refused(read: Callable[[], object]) -> str | None:
    """The usage error ``read`` stops with, as a setting's problem, or None."""
    try:
        read()
    except UsageError as exc:
        return str(exc)
    return None


def _shown(value: str) -> str:
    """``value`` on one line: escaped if it holds control characters."""
    return value if value.isprintable() else repr(value)


def describe(store_flag: str | None = None, jobs_flag: int | None = None,
             jobs_problem: str | None = None) -> list[Setting]:
    """Every setting, its value and where it came from (with ``problem`` set where
    commands would refuse the value). ``jobs_problem``: why commands would refuse
    ``jobs_flag`` (the CLI's option type decides that)."""
    out: list[Setting] = []
    from .errors import SnapdirError
    from .stores import check_store, shown_uri

    s = (Setting("store", store_flag, "flag: --store") if store_flag is not None
         else _env_or("SNAPDIR_STORE", str(data_dir() / "store")))
    try:
        store_to_use(store_flag)  # the embedded store needs a data directory
        check_store(s.value)  # what open_store refuses, without opening it
    except SnapdirError as exc:
        s = Setting(s.name, s.value, s.source, exc.format_message())
    out.append(Setting("store", shown_uri(s.value), s.source, s.problem))
    for label, var, fallback in (
        ("cache directory", "SNAPDIR_CACHE_DIR", str(_xdg("XDG_CACHE_HOME", ".cache") /
                                                     "snapdir")),
        ("data directory", "SNAPDIR_DATA_DIR", str(_xdg("XDG_DATA_HOME", ".local/share") /
                                                   "snapdir")),
        ("hash threads", "SNAPDIR_HASH_THREADS", str(os.cpu_count() or 2)),
        ("file I/O threads", "SNAPDIR_IO_THREADS", "32"),
        ("retry attempts", "SNAPDIR_RETRIES", "5"),
        ("stat cache off", "SNAPDIR_NO_STAT_CACHE", "0"),
        ("manifest context", "SNAPDIR_MANIFEST_CONTEXT", "(plain BLAKE3)"),
        ("progress interval", "SNAPDIR_PROGRESS_INTERVAL", "5 s plain, 0.2 s terminal"),
        ("direct I/O", "SNAPDIR_DIRECT_IO", "0 (large downloads buffered)"),
    ):
        s = _checked(_env_or(var, fallback))
        if var == "SNAPDIR_DATA_DIR":  # from the environment or not
            s = Setting(s.name, s.value, s.source, data_dir_problem())
        out.append(Setting(label, s.value, s.source, s.problem))
    from .stores.awsconfig import (
        ca_bundle,
        configured_endpoint,
        configured_region,
        endpoint_problem,
        env_profile,
        missing_profile,
        read_ca_bundle,
        region_problem,
        shown_endpoint,
        unsigned_payload,
    )

    endpoint = configured_endpoint()  # as stores/s3.py finds it
    shown = (shown_endpoint(endpoint[0]), endpoint[1]) if endpoint else ("(AWS)", "default")
    out.append(Setting("s3 endpoint", *shown,
                       endpoint_problem(*endpoint) if endpoint else None))
    region = configured_region()
    out.append(Setting("s3 region", *((_shown(region[0]), region[1]) if region else (
        "us-east-1" if endpoint else "(the bucket's own on AWS, else us-east-1)",
        "default")),
        region_problem(*region) if region else None))
    named = env_profile()
    out.append(Setting("aws profile", *((named[0], f"environment: {named[1]}") if named
                                        else ("default", "default")), missing_profile()))
    raw = os.environ.get("AWS_UNSIGNED_PAYLOAD", "").strip()
    out.append(Setting("unsigned payload",
                       *((raw, "environment: AWS_UNSIGNED_PAYLOAD") if raw else
                         ("over https only", "default")), _refused(unsigned_payload)))
    # only a TLS endpoint uses the CA bundle
    tls = not (endpoint and endpoint[0].strip().lower().startswith("http://"))
    bundle = ca_bundle()
    out.append(Setting("s3 CA bundle", *(bundle or ("(the system's CAs)", "default")),
                       _refused(read_ca_bundle) if tls else None))
    if jobs_flag is not None:
        out.insert(1, Setting("network jobs", str(jobs_flag), "flag: --jobs", jobs_problem))
    else:
        s = _checked(_env_or("SNAPDIR_JOBS", "32"))
        out.insert(1, Setting("network jobs", s.value, s.source, s.problem))
    return out
