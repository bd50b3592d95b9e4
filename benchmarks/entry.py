"""Time push / pull / id of a generated data set against any S3 endpoint.

    python -m benchmarks --store s3://bucket/prefix [--shape small|large | --files N --size BYTES]
                         [--runs N] [--out DIR] [--tools snapdir,s5cmd,snapdir-1.12,aws-cli]
                         [--keep]

The endpoint, credentials and region come from the usual AWS environment
(``AWS_ENDPOINT_URL``/``AWS_ENDPOINT_URL_S3``, ``AWS_ACCESS_KEY_ID``, ``AWS_PROFILE``,
``AWS_REGION``...). snapdir is always measured; s5cmd, aws-cli and the reference snapdir
1.12 (``SNAPDIR_REFERENCE_PYTHON``, default ``/tmp/ref/bin/python``) when installed. Every
push goes to a fresh prefix under ``--store`` (deleted afterwards unless ``--keep``), every
pull into a fresh directory with fresh caches. Writes ``results.md``, ``results.json`` and
``throughput.png`` (needs matplotlib) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from pathlib import Path

from benchmarks.harness import (
    ALL_TOOLS,
    MiB,
    Tool,
    ToolFailed,
    clean_env,
    delete_prefix,
    find_tools,
    fmt_mb,
    fmt_s,
    generate,
    median,
    run,
    tree_bytes,
    unique,
)

SHAPES = {"small": (5000, 64 * 1024), "large": (4, 256 * MiB)}
OPS = ("push", "pull", "id")


def endpoint_from_env() -> str | None:
    for var in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "SNAPDIR_S3_STORE_ENDPOINT_URL"):
        value = os.environ.get(var, "").strip()
        if value:
            return value
    return None


def measure(tools: list[Tool], src: Path, store: str, runs: int, work: Path,
            keep: bool) -> dict[str, dict[str, list[dict[str, float]]]]:
    env = dict(os.environ)
    out: dict[str, dict[str, list[dict[str, float]]]] = {t.name: {} for t in tools}
    for rep in range(runs):
        order = tools[rep % len(tools):] + tools[:rep % len(tools)]
        for tool in order:
            state = work / "state" / tool.name
            shutil.rmtree(state, ignore_errors=True)
            state.mkdir(parents=True)
            uri = unique(store, f"{tool.name}-r{rep}")

            def go(cmd_env: tuple[list[str], dict[str, str]], op: str,
                   tool: Tool = tool) -> object:
                cmd, extra = cmd_env
                r = run(cmd, clean_env(env, extra))
                out[tool.name].setdefault(op, []).append(
                    {"seconds": r.seconds, "rss_kib": r.rss_kib})
                print(f"  {op:4s} {tool.name:13s} {r.seconds:8.2f} s {r.rss_kib / 1024:6.0f} MB",
                      file=sys.stderr, flush=True)
                return r

            try:
                pushed = go(tool.push(src, uri, state / "push"), "push")
                handle = tool.handle(pushed, uri)  # type: ignore[arg-type]
                dest = work / "pulled" / tool.name
                shutil.rmtree(dest, ignore_errors=True)
                dest.mkdir(parents=True)
                go(tool.pull(handle, uri, dest, state / "pull"), "pull")
                shutil.rmtree(dest, ignore_errors=True)
                idc = tool.id(src, state / "id")
                if idc is not None:
                    go(idc, "id")
            finally:
                if not keep:
                    delete_prefix(uri, env)
                shutil.rmtree(state, ignore_errors=True)
    return out


def table(results: dict[str, dict[str, list[dict[str, float]]]], nbytes: int) -> str:
    head = ["tool"]
    for op in OPS:
        head += [f"{op} s", f"{op} MB/s"]
    head.append("peak RSS MB")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, ops in results.items():
        row = [name]
        peak = 0.0
        for op in OPS:
            xs = ops.get(op, [])
            s = median([x["seconds"] for x in xs])
            row += [fmt_s(s), "—" if math.isnan(s) else f"{nbytes / MiB / s:.0f}"]
            if xs:
                peak = max(peak, median([x["rss_kib"] for x in xs]))
        row.append(fmt_mb(peak) if peak else "—")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def chart(results: dict[str, dict[str, list[dict[str, float]]]], nbytes: int, path: Path,
          title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no chart (pip install -e '.[bench]')",
              file=sys.stderr)
        return False
    names = list(results)
    width = 0.8 / max(1, len(names))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for i, name in enumerate(names):
        vals = []
        for op in OPS:
            s = median([x["seconds"] for x in results[name].get(op, [])])
            vals.append(0.0 if math.isnan(s) else nbytes / MiB / s)
        xs = [j + i * width for j in range(len(OPS))]
        ax.bar(xs, vals, width, label=name)
    ax.set_xticks([j + width * (len(names) - 1) / 2 for j in range(len(OPS))], list(OPS))
    ax.set_ylabel("MiB/s (higher is better)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", required=True, help="s3://bucket/prefix to benchmark against")
    ap.add_argument("--shape", choices=sorted(SHAPES), default=None,
                    help="small: 5,000 x 64 KiB (default); large: 4 x 256 MiB")
    ap.add_argument("--files", type=int, default=None, help="number of files (with --size)")
    ap.add_argument("--size", type=int, default=None, help="bytes per file (with --files)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path("bench-out"))
    ap.add_argument("--tools", default=",".join(ALL_TOOLS),
                    help="comma-separated subset of " + ", ".join(ALL_TOOLS))
    ap.add_argument("--keep", action="store_true", help="do not delete what was pushed")
    args = ap.parse_args(argv)
    if not args.store.startswith("s3://") or len(args.store) <= 5:
        ap.error("--store must be s3://bucket[/prefix]")
    if args.shape and (args.files or args.size):
        ap.error("give --shape or --files/--size, not both")
    files, size = SHAPES[args.shape or "small"]
    files = args.files or files
    size = args.size if args.size is not None else size
    if files < 1 or size < 0 or args.runs < 1:
        ap.error("--files and --runs must be positive, --size not negative")

    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    src = generate(out / "data" / f"{files}x{size}", files, size)
    nbytes = tree_bytes(src)
    tools = find_tools(endpoint_from_env(), [t.strip() for t in args.tools.split(",")])
    print("tools: " + ", ".join(f"{t.name} ({t.exe})" for t in tools), file=sys.stderr)
    try:
        results = measure(tools, src, args.store.rstrip("/"), args.runs, out / "work",
                          args.keep)
    except ToolFailed as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(out / "work", ignore_errors=True)
    where = endpoint_from_env() or "AWS S3"
    title = (f"{files:,} files x {size:,} bytes ({nbytes / MiB:.1f} MiB), {args.store} "
             f"at {where}, median of {args.runs}")
    md = (f"# snapdir benchmark\n\n{title}. Seconds are whole-process wall times; "
          f"MB/s = data set bytes / median seconds; `id` only for snapdir tools.\n\n"
          f"{table(results, nbytes)}\n")
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(json.dumps(
        {"files": files, "size": size, "bytes": nbytes, "store": args.store,
         "endpoint": where, "runs": args.runs, "tools": {t.name: t.exe for t in tools},
         "results": results}, indent=1))
    png = chart(results, nbytes, out / "throughput.png", title)
    print(md)
    print(f"wrote {out / 'results.md'}" + (f" and {out / 'throughput.png'}" if png else ""),
          file=sys.stderr)
    return 0
