"""Scale: many small files and one file over 5 GiB through snapdir, with peak RSS.

    .venv/bin/python benchmarks/bench_scale.py --files 100000 --files 1000000 --big-gib 6

For each file count N (1 KiB files, 1,000 per directory): ``snapdir manifest``, ``snapdir
push`` to a local SeaweedFS (fresh stat cache, so everything is hashed) and ``snapdir pull``
into a fresh directory with a fresh cache; wall time, peak RSS and time per file, so
linearity shows as a flat µs/file column. Then one sparse file of ``--big-gib`` GiB pushed
and pulled (multipart up, parallel ranged GETs down): memory must stay flat. Results go to
benchmarks/RESULTS.md between the bench_scale markers.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.harness import fmt_mb, run
from benchmarks.seaweed import seaweedfs

OURS = str(Path(sys.executable).parent / "snapdir")
START, END = "<!-- bench_scale:start -->", "<!-- bench_scale:end -->"


def make_small(root: Path, n: int) -> Path:
    marker = root.parent / f".{root.name}.done"
    if marker.exists() and marker.read_text() == str(n):
        return root
    shutil.rmtree(root, ignore_errors=True)
    print(f"generating {n} files ...", file=sys.stderr, flush=True)
    for i in range(n):
        if i % 1000 == 0:
            d = root / f"d{i // 1000:04d}"
            d.mkdir(parents=True)
        (d / f"f{i:07d}").write_bytes(os.urandom(1024))
    marker.write_text(str(n))
    return root


def make_big(path: Path, gib: int) -> Path:
    """A sparse file with a little random data every 64 MiB, so parts differ."""
    size = gib * 1024**3
    if path.exists() and path.stat().st_size == size:
        return path
    with open(path, "wb") as fh:
        fh.truncate(size)
        for off in range(0, size, 64 * 1024**2):
            fh.seek(off)
            fh.write(os.urandom(4096))
    return path


def env_for(s3_env: dict[str, str], home: Path) -> dict[str, str]:
    env = dict(s3_env)
    env.update(SNAPDIR_CACHE_DIR=str(home / "cache"), SNAPDIR_DATA_DIR=str(home / "data"),
               HOME=str(home))
    return env


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, action="append", help="file counts (repeatable)")
    ap.add_argument("--big-gib", type=int, default=6, help="size of the big file (0: skip)")
    ap.add_argument("--work", type=Path, default=HERE / ".work" / "scale")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()
    counts = args.files or [100_000, 1_000_000]
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    rows: list[str] = []
    with seaweedfs(work / "s3") as s3:
        base_env = s3.env()
        for n in counts:
            src = make_small(work / f"small-{n}", n)
            home = work / f"home-{n}"
            shutil.rmtree(home, ignore_errors=True)
            env = env_for(base_env, home)
            env["SNAPDIR_NO_STAT_CACHE"] = "1"
            m = run([OURS, "manifest", str(src)], env)
            env.pop("SNAPDIR_NO_STAT_CACHE")
            uri = f"s3://{s3.bucket}/scale-{n}"
            p = run([OURS, "push", "-q", "--store", uri, str(src)], env)
            sid = p.stdout.strip()
            home2 = work / f"home2-{n}"
            shutil.rmtree(home2, ignore_errors=True)
            dest = work / f"pulled-{n}"
            shutil.rmtree(dest, ignore_errors=True)
            q = run([OURS, "pull", "-q", "--store", uri, "--id", sid, str(dest)],
                    env_for(base_env, home2))
            check = run([OURS, "id", str(dest)], env_for(base_env, home2)).stdout.strip()
            assert check == sid, f"pulled tree id {check} != {sid}"
            for label, r in (("manifest", m), ("push", p), ("pull", q)):
                rows.append(f"| {n:,} small files | {label} | {r.seconds:.1f} s | "
                            f"{r.seconds / n * 1e6:.0f} µs | {fmt_mb(r.rss_kib)} |")
                print(rows[-1], flush=True)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(home2, ignore_errors=True)
        if args.big_gib:
            big_dir = work / "big"
            big_dir.mkdir(exist_ok=True)
            make_big(big_dir / "huge.bin", args.big_gib)
            home = work / "home-big"
            shutil.rmtree(home, ignore_errors=True)
            uri = f"s3://{s3.bucket}/scale-big"
            p = run([OURS, "push", "-q", "--store", uri, str(big_dir)], env_for(base_env, home))
            sid = p.stdout.strip()
            dest = work / "pulled-big"
            shutil.rmtree(dest, ignore_errors=True)
            home2 = work / "home-big2"
            shutil.rmtree(home2, ignore_errors=True)
            q = run([OURS, "pull", "-q", "--store", uri, "--id", sid, str(dest)],
                    env_for(base_env, home2))
            check = run([OURS, "id", str(dest)], env_for(base_env, home2)).stdout.strip()
            assert check == sid
            gib = args.big_gib
            for label, r in (("push", p), ("pull", q)):
                rows.append(f"| one {gib} GiB file | {label} | {r.seconds:.1f} s | "
                            f"{gib * 1024 / r.seconds:.0f} MiB/s | {fmt_mb(r.rss_kib)} |")
                print(rows[-1], flush=True)
            shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(home, ignore_errors=True)
            shutil.rmtree(home2, ignore_errors=True)
    if not args.no_write:
        write(rows)


def write(rows: list[str]) -> None:
    table = "\n".join([
        START, "## Scale (issue 5): many files and one file over 5 GiB", "",
        ("`benchmarks/bench_scale.py`, one local SeaweedFS, 1 KiB random files, "
        "1,000 per directory; push with an empty stat cache; pull into a fresh directory "
        "with a fresh cache, then `snapdir id` of the result checked equal. Peak RSS is GNU "
        "time's %M. Target: ≤ 1 GB at 1M files, time linear in the file count (flat "
        "per-file column)."), "",
        "| data | command | wall | per file / rate | peak RSS (MB) |", "|---|---|---:|---:|---:|",
        *rows, END])
    results = HERE / "RESULTS.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + table + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"
    results.write_text(text)


if __name__ == "__main__":
    main()
