"""Benchmark push / pull through one local SeaweedFS: snapdir vs s5cmd, snapdir 1.12, aws-cli.

    .venv/bin/python benchmarks/bench_transfer.py [--runs N] [--pulls N] [--quick] [--work DIR]
                                                  [--tools a,b] [--cases a,b,c,d] [--no-write]

Cases (data generated once in ``--work``, default ``benchmarks/.work/transfer``):

* (a) ``small``: 5,000 files x 64 KiB in 50 directories;
* (b) ``large``: 4 files x 256 MiB;
* (c) ``huge``: one 2 GiB file;
* (d) ``repush``: a copy of (a) pushed once (untimed), 1 % of its files rewritten, pushed
  again (timed): snapdir re-pushes with its caches from the first push, s5cmd runs
  ``sync``, aws-cli ``s3 sync`` (both compare size and mtime against the first upload).

Nothing that holds many files is deleted until the bench is over (pulled trees, caches,
the re-push copy): ext4 will not reuse an inode freed in the last 60 s, and with thousands
of them the next command's file creations scan past each one (perf, an (a) pull right
after an (a) tree was deleted: ``recently_deleted``, ``find_get_block_common`` and
``ext4_get_group_desc`` a third of its CPU, 12.3 s instead of 6.2 s). Deleting them as it
went made every (a) pull pay for the previous tool's clean-up.

One untimed push warms SeaweedFS up first (it grows volumes on the first writes). Every
push goes to a fresh prefix; every pull into a fresh directory with a fresh cache
(``SNAPDIR_CACHE_DIR`` for ours, ``XDG_CACHE_HOME``/``HOME`` for the reference). Each
timing is the whole process (``wait4`` gives its peak RSS). The run order of the tools
rotates between repetitions; the table shows medians. ``--quick``: 1,000 x 64 KiB,
4 x 80 MiB, 1 x 320 MiB, one run, nothing written unless ``--write``.

Results go to benchmarks/RESULTS.md between the ``bench_transfer`` markers and the raw
numbers to ``<work>/transfer.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import time
from pathlib import Path

#: ext4 skips inodes freed less than this many seconds ago when it allocates new ones
#: (``RECENTCY_MIN`` in fs/ext4/ialloc.c; 300 s while the inode table block is dirty)
RECENT_INODES = 60
#: a tree with at least this many entries is kept until the end instead of deleted
MANY_FILES = 100

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import (
    MiB,
    Run,
    Tool,
    ToolFailed,
    clean_env,
    data_files,
    delete_prefix,
    find_tools,
    fmt_mb,
    fmt_ratio,
    fmt_s,
    generate,
    median,
    modify,
    run,
    unique,
)
from benchmarks.seaweed import LocalS3, seaweedfs, vacuum

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
START = "<!-- bench_transfer:start -->"
END = "<!-- bench_transfer:end -->"

FULL = {"a": ("small", 5000, 64 * 1024, 50), "b": ("large", 4, 256 * MiB, 1),
        "c": ("huge", 1, 2048 * MiB, 1)}
QUICK = {"a": ("small", 1000, 64 * 1024, 10), "b": ("large", 4, 80 * MiB, 1),
         "c": ("huge", 1, 320 * MiB, 1)}
LABEL = {"a": "(a) {n:,} × {s}", "b": "(b) {n} × {s}", "c": "(c) {n} × {s}",
         "d": "(d) re-push, 1 % of (a) changed"}


def human(size: int) -> str:
    if size >= 1024 * MiB:
        return f"{size / (1024 * MiB):g} GiB"
    if size >= MiB:
        return f"{size / MiB:g} MiB"
    return f"{size / 1024:g} KiB"


class Bench:
    def __init__(self, work: Path, tools: list[Tool], base_env: dict[str, str],
                 base_uri: str, s3: LocalS3 | None = None) -> None:
        self.s3 = s3
        self.work = work
        self.tools = tools
        self.base_env = base_env
        self.base_uri = base_uri
        self.runs: dict[str, list[dict[str, float]]] = {}
        self.trash = work / "trash"
        self._discarded = 0

    def discard(self, path: Path) -> None:
        """Out of the way, but not deleted until the bench is over if it holds many files
        (see ``RECENT_INODES``); a few large files are deleted at once."""
        if not path.exists():
            return
        if sum(1 for _ in zip(path.rglob("*"), range(MANY_FILES), strict=False)) < MANY_FILES:
            shutil.rmtree(path, ignore_errors=True)
            return
        self.trash.mkdir(parents=True, exist_ok=True)
        self._discarded += 1
        path.rename(self.trash / str(self._discarded))

    def empty_trash(self, wait: bool = False) -> None:
        """Delete what ``discard`` kept; with ``wait``, then wait out ext4's window if there
        was anything (the next command to create files would pay for it)."""
        if self.trash.exists():
            shutil.rmtree(self.trash, ignore_errors=True)
            if wait:
                print(f"waiting {RECENT_INODES} s for ext4 to forget the inodes just freed",
                      file=sys.stderr, flush=True)
                time.sleep(RECENT_INODES)

    def drop(self, uri: str) -> None:
        """Delete a prefix and reclaim its space on the server."""
        delete_prefix(uri, self.base_env)
        if self.s3 is not None:
            vacuum(self.s3)

    def record(self, case: str, op: str, tool: Tool, r: Run) -> None:
        self.runs.setdefault(f"{case}/{op}/{tool.name}", []).append(
            {"seconds": r.seconds, "rss_kib": r.rss_kib})
        print(f"  {case} {op:6s} {tool.name:13s} {r.seconds:8.2f} s  {r.rss_kib / 1024:6.0f} MB",
              file=sys.stderr, flush=True)

    def state(self, label: str) -> Path:
        p = self.work / "state" / label
        self.discard(p)
        p.mkdir(parents=True)
        return p

    def go(self, tool: Tool, cmd_env: tuple[list[str], dict[str, str]]) -> Run:
        cmd, extra = cmd_env
        # untimed: flush what the previous step left dirty (SeaweedFS's volume writes, a
        # pulled tree), so no command pays for another's writeback
        os.sync()
        try:
            return run(cmd, clean_env(self.base_env, extra))
        except ToolFailed as exc:  # one retry: a shared, busy machine; then give up loudly
            print(f"  {tool.name} failed, retrying once: {exc}", file=sys.stderr, flush=True)
            return run(cmd, clean_env(self.base_env, extra))

    def push_pull(self, case: str, src: Path, tool: Tool, pulls: int = 1) -> None:
        """One push, then ``pulls`` pulls of it, each into a fresh directory with a fresh
        cache (a pull takes seconds where a push takes tens: more samples of it, same
        for every tool)."""
        uri = unique(self.base_uri, f"{tool.name}-{case}")
        st = self.state(f"{tool.name}-push")
        r = self.go(tool, tool.push(src, uri, st))
        self.record(case, "push", tool, r)
        handle = tool.handle(r, uri)
        want = sum(1 for p in src.rglob("*") if p.is_file())
        for _ in range(pulls):
            dest = self.work / "pulled"
            self.discard(dest)
            dest.mkdir(parents=True)
            st2 = self.state(f"{tool.name}-pull")
            r2 = self.go(tool, tool.pull(handle, uri, dest, st2))
            self.record(case, "pull", tool, r2)
            got = sum(1 for p in dest.rglob("*") if p.is_file())
            if got != want:
                raise SystemExit(f"{tool.name} pulled {got} files of {want} for case {case}")
            for p in (dest, st2):
                self.discard(p)
        self.discard(st)
        self.drop(uri)

    def repush(self, src: Path, rep: int, tools: list[Tool]) -> None:
        copy = self.work / "repush-src"
        self.discard(copy)
        shutil.copytree(src, copy)  # copy2: mtimes kept
        uris = {}
        states = {}
        for tool in tools:
            uris[tool.name] = unique(self.base_uri, f"{tool.name}-d")
            states[tool.name] = self.state(f"{tool.name}-repush")
            self.go(tool, tool.push(copy, uris[tool.name], states[tool.name]))
        files = data_files(copy)
        rng = random.Random(rep)
        modify(rng.sample(files, max(1, len(files) // 100)))
        time.sleep(0.5)
        for tool in tools:
            r = self.go(tool, tool.repush(copy, uris[tool.name], states[tool.name]))
            self.record("d", "push", tool, r)
        for tool in tools:
            self.drop(uris[tool.name])
            self.discard(states[tool.name])
        self.discard(copy)


def table(bench: Bench, specs: dict[str, tuple[str, int, int, int]], cases: list[str],
          runs: int) -> str:
    names = [t.name for t in bench.tools]
    has_s5 = "s5cmd" in names
    has_ref = "snapdir-1.12" in names
    head = ["case", "op", *[f"{n} s" for n in names]]
    if has_s5:
        head.append("ours ÷ s5cmd")
    if has_ref:
        head.append("ours ÷ 1.12")
    head += [f"{n} MB" for n in names]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        if case == "d":
            label = LABEL["d"]
        else:
            _, n, s, _ = specs[case]
            label = LABEL[case].format(n=n, s=human(s))
        for op in ("push", "pull") if case != "d" else ("push",):
            def med(name: str, key: str, op: str = op, case: str = case) -> float:
                return median([x[key] for x in bench.runs.get(f"{case}/{op}/{name}", [])])
            secs = {n: med(n, "seconds") for n in names}
            row = [label, op, *[fmt_s(secs[n]) for n in names]]
            if has_s5:
                row.append(fmt_ratio(secs["snapdir"] / secs["s5cmd"]))
            if has_ref:
                row.append(fmt_ratio(secs["snapdir"] / secs["snapdir-1.12"]))
            row += [fmt_mb(med(n, "rss_kib")) for n in names]
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_results(body: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{START}\n{body}\n{END}"
    if START in text and END in text:
        pre, rest = text.split(START, 1)
        _, post = rest.split(END, 1)
        text = pre + block + post
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    RESULTS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--pulls", type=int, default=None,
                    help="pulls timed after each push (default 2; 1 with --quick)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--work", type=Path, default=HERE / ".work" / "transfer")
    ap.add_argument("--tools", default="snapdir,s5cmd,snapdir-1.12,aws-cli")
    ap.add_argument("--cases", default="a,b,c,d")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--write", action="store_true", help="write RESULTS.md even with --quick")
    args = ap.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    pulls = args.pulls or (1 if args.quick else 2)
    specs = QUICK if args.quick else FULL
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    work: Path = args.work.resolve()
    datadir = work / ("data-quick" if args.quick else "data")
    datadir.mkdir(parents=True, exist_ok=True)
    sources = {}
    for c in ("a", "b", "c"):
        if c in cases or (c == "a" and "d" in cases):
            name, n, s, d = specs[c]
            sources[c] = generate(datadir / name, n, s, d)

    started = time.time()
    with seaweedfs(work / "seaweed") as s3:
        env = s3.env()
        tools = find_tools(s3.endpoint, [t.strip() for t in args.tools.split(",")])
        print("tools: " + ", ".join(f"{t.name} ({t.exe})" for t in tools), file=sys.stderr)
        bench = Bench(work, tools, env, f"s3://{s3.bucket}/bench", s3)
        bench.empty_trash(wait=True)  # left by an interrupted run
        # untimed warm-up: SeaweedFS grows its volumes on first writes, which would land
        # on whichever tool happens to go first
        warm = unique(bench.base_uri, "warm-up")
        bench.go(tools[0], tools[0].push(sources.get("a") or next(iter(sources.values())),
                                         warm, bench.state("warm-up")))
        bench.drop(warm)
        for rep in range(runs):
            order = tools[rep % len(tools):] + tools[:rep % len(tools)]
            print(f"run {rep + 1}/{runs}", file=sys.stderr, flush=True)
            for c in ("a", "b", "c"):
                if c in cases:
                    for tool in order:
                        bench.push_pull(c, sources[c], tool, pulls)
            if "d" in cases:
                bench.repush(sources["a"], rep, order)
        bench.empty_trash()
    out = table(bench, specs, cases, runs)
    (work / "transfer.json").write_text(json.dumps(
        {"runs": runs, "pulls": pulls, "quick": args.quick,
         "tools": {t.name: t.exe for t in tools},
         "results": bench.runs}, indent=1))
    minutes = (time.time() - started) / 60
    meta = (f"Medians of {runs} run(s) per cell ({runs * pulls} for pulls: {pulls} after each "
            f"push), seconds of wall time per whole process; "
            f"MB = peak RSS (GNU time %M). {'Quick sizes. ' if args.quick else ''}"
            f"One local SeaweedFS (`weed mini`) on 127.0.0.1, same machine "
            f"({platform.machine()}, {_cpus()} CPUs); took {minutes:.0f} min. "
            f"Reproduce: `.venv/bin/python benchmarks/bench_transfer.py"
            f"{' --quick' if args.quick else ''} --runs {runs} --pulls {pulls}`.")
    print(out)
    if not args.no_write and (not args.quick or args.write):
        write_results(f"## Transfers (bench_transfer)\n\n{meta}\n\n{out}\n")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    raise SystemExit(main())
