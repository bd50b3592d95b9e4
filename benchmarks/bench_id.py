"""Benchmark ``snapdir id`` against the reference snapdir 1.12 (Rust, Python binding).

    .venv/bin/python benchmarks/bench_id.py [--runs N] [--quick] [--work DIR] [--no-write]

Data sets (generated once in the work dir, default ``benchmarks/.work/``, then reused):

* ``small``: 20,000 files x 16 KiB of random bytes in 100 directories;
* ``large``: 4 files x 512 MiB of random bytes;
* ``many``:  200,000 files x 1 KiB in 200 directories (peak RSS of ``snapdir manifest``).

Every timing is a whole process (interpreter start-up included), started with
``subprocess``, repeated ``--runs`` times; the table shows medians. Modes:

* cold: ours with ``--no-stat-cache``, the page cache warm (one untimed run first);
* warm: ours with its stat cache filled (a fresh ``SNAPDIR_CACHE_DIR`` filled by one run);
* dropped: the page cache dropped before every run (``/proc/sys/vm/drop_caches``, root).

The reference is run with ``SNAPDIR_REFERENCE_PYTHON`` (default ``/tmp/ref/bin/python``);
if that interpreter is missing a venv is created there and ``snapdir==1.12.0`` installed.
Results go to benchmarks/RESULTS.md between the ``bench_id`` markers (other sections of
that file are left alone). ``--quick`` = 3 runs, no dropped-cache rows, no RSS, no write.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "RESULTS.md"
START = "<!-- bench_id:start -->"
END = "<!-- bench_id:end -->"
OURS = [str(Path(sys.executable).parent / "snapdir")]
REF_CODE = ("import asyncio,os,sys,snapdir; print(asyncio.run(snapdir.{fn}(sys.argv[1])){attr}, "
            "flush=True); os._exit(0)")

SMALL = ("small", 20_000, 16 * 1024, 100)
LARGE = ("large", 4, 512 * 1024 * 1024, 1)
MANY = ("many", 200_000, 1024, 200)


# --- data ---------------------------------------------------------------------------------


def generate(work: Path, spec: tuple[str, int, int, int]) -> Path:
    name, count, size, ndirs = spec
    root = work / name
    marker = work / f".{name}.done"
    want = f"{count} {size} {ndirs}"
    if marker.exists() and marker.read_text() == want:
        return root
    print(f"generating {name}: {count} files x {size} bytes in {ndirs} dirs ...", flush=True)
    if root.exists():
        subprocess.run(["rm", "-rf", str(root)], check=True)
    root.mkdir(parents=True)
    per_dir = -(-count // ndirs)
    chunk = 16 * 1024 * 1024
    n = 0
    for d in range(ndirs):
        sub = root / f"d{d:03d}" if ndirs > 1 else root
        sub.mkdir(exist_ok=True)
        for _ in range(min(per_dir, count - n)):
            with open(sub / f"f{n:06d}.bin", "wb") as fh:
                left = size
                while left:
                    k = min(chunk, left)
                    fh.write(os.urandom(k))
                    left -= k
            n += 1
    os.sync()
    marker.write_text(want)
    return root


def settle(root: Path) -> None:
    """Wait until every file is older than the stat cache's racy window (2 s)."""
    newest = max(e.stat().st_mtime for e in os.scandir(root))
    for sub in os.scandir(root):
        if sub.is_dir():
            newest = max(newest, sub.stat().st_mtime)
    wait = newest + 3 - time.time()
    if wait > 0:
        time.sleep(wait)


# --- running ------------------------------------------------------------------------------


def ref_python() -> str:
    py = os.environ.get("SNAPDIR_REFERENCE_PYTHON", "/tmp/ref/bin/python")
    if not Path(py).exists():
        venv = Path(py).parent.parent
        print(f"creating the reference venv in {venv} ...", flush=True)
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "snapdir==1.12.0"],
                       check=True)
    return py


def ref_cmd(verb: str, root: Path) -> list[str]:
    # -P: do not put the cwd on sys.path (our own package is also called snapdir)
    code = REF_CODE.format(fn=verb, attr=".raw" if verb == "manifest" else "")
    return [ref_python(), "-P", "-c", code, str(root)]


def can_drop() -> bool:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("3\n")
        return True
    except OSError:
        return False


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as fh:
        fh.write("3\n")


@dataclass
class Run:
    seconds: float
    rss_kb: int
    out: bytes


def run(cmd: list[str], env: dict[str, str] | None = None, keep: bool = True) -> Run:
    """Run ``cmd`` as a child; wall time and that child's own peak RSS (wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if keep else subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env, cwd="/")
    out = proc.stdout.read() if proc.stdout is not None else b""
    err = proc.stderr.read() if proc.stderr is not None else b""
    _, status, usage = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return Run(dt, usage.ru_maxrss, out)


def timed(cmd: list[str], runs: int, *, env: dict[str, str] | None = None,
          before: object = None) -> tuple[float, list[float], bytes]:
    times = []
    out = b""
    for _ in range(runs):
        if callable(before):
            before()
        r = run(cmd, env)
        times.append(r.seconds)
        out = r.out
    return statistics.median(times), times, out


def timed_pair(a: list[str], b: list[str], runs: int, *, env: dict[str, str] | None = None,
               before: object = None) -> tuple[float, list[float], float, list[float]]:
    """Time ``a`` and ``b`` alternately (a, b, a, b, ...): on a noisy machine both see the
    same background load."""
    ta, tb = [], []
    for _ in range(runs):
        for cmd, out in ((a, ta), (b, tb)):
            if callable(before):
                before()
            out.append(run(cmd, env).seconds)
    return statistics.median(ta), ta, statistics.median(tb), tb


def env_with(**kw: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SNAPDIR_NO_STAT_CACHE", None)
    env.update(kw)
    return env


# --- the benchmark ------------------------------------------------------------------------


@dataclass
class Row:
    data: str
    mode: str
    ours: float
    ref: float | None
    target: str
    met: bool | None
    note: str = ""


def fmt_t(x: float | None) -> str:
    return "—" if x is None else f"{x:.3f} s"


def bench_set(root: Path, label: str, runs: int, drop: bool, cache_base: Path,
              rows: list[Row], targets: dict[str, float]) -> None:
    ours_cold = [*OURS, "id", "--no-stat-cache", str(root)]
    ours_warm = [*OURS, "id", str(root)]
    ref = ref_cmd("id", root)
    plain = env_with(SNAPDIR_CACHE_DIR=str(cache_base / f"{label}-unused"))

    # identical ids, and a warm page cache
    a = run(ours_cold, plain).out.strip()
    b = run(ref, plain).out.strip()
    if a != b:
        raise SystemExit(f"{label}: ids differ: ours {a!r} reference {b!r}")
    print(f"[{label}] id {a.decode()}", flush=True)

    cold_t, cold_all, ref_t, ref_all = timed_pair(ours_cold, ref, runs, env=plain)
    print(f"[{label}] cold: ours {cold_all} ref {ref_all}", flush=True)
    lim = targets.get("cold")
    rows.append(Row(label, "cold (page cache warm; ours --no-stat-cache)", cold_t, ref_t,
                    f"≤ {lim}× ref" if lim else "", cold_t / ref_t <= lim if lim else None))

    cache = cache_base / f"{label}-warm"
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    warm_env = env_with(SNAPDIR_CACHE_DIR=str(cache))
    settle(root)
    run(ours_warm, warm_env)  # fills the stat cache
    warm_t, warm_all, out = timed(ours_warm, runs, env=warm_env)
    if out.strip() != a:
        raise SystemExit(f"{label}: warm id differs: {out!r}")
    print(f"[{label}] warm: ours {warm_all}", flush=True)

    ref_drop_t = None
    if drop:
        od_t, od_all, rd_t, rd_all = timed_pair(ours_cold, ref, runs, env=plain,
                                                before=drop_caches)
        print(f"[{label}] dropped: ours {od_all} ref {rd_all}", flush=True)
        ref_drop_t = rd_t
        lim = targets.get("dropped")
        rows.append(Row(label, "page cache dropped before each run (ours --no-stat-cache)",
                        od_t, rd_t, f"≤ {lim}× ref" if lim else "",
                        od_t / rd_t <= lim if lim else None))
    lim = targets.get("warm")
    if lim is not None:
        rows.append(Row(label, "warm (ours: stat cache filled)", warm_t, ref_t,
                        f"≤ {lim}× ref (cold)", warm_t / ref_t <= lim))
    lim = targets.get("warm_vs_dropped")
    if lim is not None and ref_drop_t is not None:
        rows.append(Row(label, "warm (ours: stat cache filled) vs ref page cache dropped",
                        warm_t, ref_drop_t, f"≤ {lim}× ref (dropped)",
                        warm_t / ref_drop_t <= lim))
    elif lim is not None:
        rows.append(Row(label, "warm (ours: stat cache filled)", warm_t, ref_t, "", None))
    if drop:
        wd_t, wd_all, _ = timed(ours_warm, runs, env=warm_env, before=drop_caches)
        print(f"[{label}] warm+dropped: ours {wd_all}", flush=True)
        rows.append(Row(label, "warm stat cache, page cache dropped", wd_t, ref_drop_t, "",
                        None))


def bench_rss(root: Path, cache_base: Path) -> list[tuple[str, int, float]]:
    out = []
    plain = env_with(SNAPDIR_CACHE_DIR=str(cache_base / "many-unused"))
    run(ref_cmd("id", root), plain, keep=False)  # warm the page cache (RSS, not disk speed)
    r = run([*OURS, "manifest", "--no-stat-cache", str(root)], plain, keep=False)
    out.append(("ours `snapdir manifest --no-stat-cache`", r.rss_kb, r.seconds))
    cache = cache_base / "many-warm"
    subprocess.run(["rm", "-rf", str(cache)], check=True)
    warm_env = env_with(SNAPDIR_CACHE_DIR=str(cache))
    settle(root)
    r = run([*OURS, "manifest", str(root)], warm_env, keep=False)
    out.append(("ours `snapdir manifest` (filling the stat cache)", r.rss_kb, r.seconds))
    r = run([*OURS, "manifest", str(root)], warm_env, keep=False)
    out.append(("ours `snapdir manifest` (stat cache filled)", r.rss_kb, r.seconds))
    r = run(ref_cmd("manifest", root), plain, keep=False)
    out.append(("reference `manifest(...).raw`", r.rss_kb, r.seconds))
    return out


def render(rows: list[Row], rss: list[tuple[str, int, float]], runs: int, note: str) -> str:
    lines = [
        "## snapdir id",
        "",
        (f"`benchmarks/bench_id.py --runs {runs}`, {time.strftime('%Y-%m-%d')}, "
         f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; whole processes "
         "(start-up included), medians. small = 20,000 × 16 KiB in 100 dirs; large = "
         "4 × 512 MiB."),
        "",
        ("cold and dropped rows time ours and the reference alternately (same background "
         "load); the machine is shared and noisy, so compare ratios within a row."),
        "",
        "| data | mode | ours | reference 1.12 | ours / ref | target | met |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        ratio = "—" if r.ref is None else f"{r.ours / r.ref:.2f}×"
        met = "—" if r.met is None else ("yes" if r.met else "**no**")
        lines.append(f"| {r.data} | {r.mode} | {fmt_t(r.ours)} | {fmt_t(r.ref)} | {ratio} | "
                     f"{r.target} | {met} |")
    if rss:
        lines += ["", ("Peak RSS over 200,000 files × 1 KiB (200 dirs), one run each "
                       "(target for ours: ≤ 300 MB):"), "",
                  "| command | peak RSS | wall |", "|---|---:|---:|"]
        for name, kb, sec in rss:
            lines.append(f"| {name} | {kb / 1024:.0f} MiB | {sec:.2f} s |")
    if note:
        lines += ["", note.strip()]
    return "\n".join(lines) + "\n"


def write_results(section: str) -> None:
    block = f"{START}\n{section}{END}\n"
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + block + ("\n" + tail.lstrip("\n") if tail.strip() else "")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    RESULTS.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=None, help="timed runs per case (default 5)")
    ap.add_argument("--quick", action="store_true",
                    help="3 runs, no dropped-cache rows, no RSS, do not write RESULTS.md")
    ap.add_argument("--work", type=Path, default=HERE / ".work")
    ap.add_argument("--no-write", action="store_true", help="print, do not write RESULTS.md")
    ap.add_argument("--only", choices=["small", "large", "rss"], action="append",
                    help="run only these parts (repeatable)")
    ap.add_argument("--note-file", type=Path, help="markdown appended to the section")
    args = ap.parse_args()
    runs = args.runs or (3 if args.quick else 5)
    parts = set(args.only or ["small", "large", "rss"])
    if args.quick:
        parts.discard("rss")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    drop = not args.quick and can_drop()
    if not args.quick and not drop:
        print("cannot write /proc/sys/vm/drop_caches (not root?): no dropped-cache rows",
              file=sys.stderr)
    rows: list[Row] = []
    rss: list[tuple[str, int, float]] = []
    with tempfile.TemporaryDirectory(prefix="bench-id-cache-") as tmp:
        cache_base = Path(tmp)
        if "small" in parts:
            bench_set(generate(work, SMALL), "small", runs, False, cache_base, rows,
                      {"cold": 1.5, "warm": 0.5})
        if "large" in parts:
            bench_set(generate(work, LARGE), "large", runs, drop, cache_base, rows,
                      {"cold": 1.1, "warm_vs_dropped": 0.1})
        if "rss" in parts:
            rss = bench_rss(generate(work, MANY), cache_base)
    note = args.note_file.read_text() if args.note_file else ""
    section = render(rows, rss, runs, note)
    print(section)
    if not (args.quick or args.no_write):
        write_results(section)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
