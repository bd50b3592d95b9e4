"""Helpers for transfer tests: run the CLI as a user would, in an isolated home."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class Run:
    rc: int
    out: str
    err: str


@dataclass
class Cli:
    env: dict[str, str]
    home: Path

    def __call__(self, *args: str, check: bool = True, input: str | None = None) -> Run:
        p = subprocess.run([sys.executable, "-m", "snapdir", *args], env=self.env,
                           capture_output=True, text=True, input=input, timeout=600)
        r = Run(p.returncode, p.stdout, p.stderr)
        if check and r.rc != 0:
            raise AssertionError(f"snapdir {' '.join(args)} failed ({r.rc}): {r.err}")
        return r

    def machine(self, name: str) -> Cli:
        """Another 'machine': fresh home, cache and data directories, same environment."""
        home = self.home.parent / name
        home.mkdir(exist_ok=True)
        env = dict(self.env)
        env.update(_dirs(home))
        return Cli(env, home)


def _dirs(home: Path) -> dict[str, str]:
    return {"HOME": str(home), "SNAPDIR_CACHE_DIR": str(home / "cache"),
            "SNAPDIR_DATA_DIR": str(home / "data"), "XDG_CACHE_HOME": str(home / "xdg-c"),
            "XDG_DATA_HOME": str(home / "xdg-d")}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNAPDIR_")}
    env.update(_dirs(home))
    return Cli(env, home)


def make_tree(root: Path, files: dict[str, bytes], modes: dict[str, int] | None = None) -> Path:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, (modes or {}).get(rel, 0o644))
    return root


def object_files(store: Path) -> set[Path]:
    return {p for p in (store / ".objects").rglob("*") if p.is_file()}


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}
