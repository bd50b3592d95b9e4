"""Hypothesis: the manifest parser and the path checks against arbitrary input."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snapdir.core.manifest import (
    DIR,
    FILE,
    MAX_SIZE,
    Entry,
    check_relative_path,
    from_entries,
    parse,
    validate_tree,
)
from snapdir.errors import ManifestError

FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

hexdigest = st.text("0123456789abcdef", min_size=64, max_size=64)
# names: anything a manifest can carry (no "/", newline or NUL), plus the tricky ones
name = st.one_of(
    st.sampled_from(["a", "b c", " ", "..a", "a..", "...", "-", "#x", "é", "\\", "a\\..\\b"]),
    st.text(st.characters(blacklist_characters="/\n\x00", blacklist_categories=("Cs",)),
            min_size=1, max_size=12),
).filter(lambda s: s not in (".", ".."))


def line(kind: str, path: str) -> bytes:
    return f"{kind} 644 {'a' * 64} 1 {path}\n".encode()


@FUZZ
@given(st.binary(max_size=2000))
def test_parse_arbitrary_bytes_only_raises_manifest_error(data: bytes) -> None:
    for strict in (True, False):
        try:
            parse(data, strict=strict)
        except ManifestError:
            pass


manifest_chars = st.sampled_from([b"F", b"D", b" ", b"./", b"/", b"..", b".", b"\n", b"#",
                                  b"644", b"755", b"0", b"a" * 64, b"1", b"x", b"\xff",
                                  b"-1", b"\x00", b"99999999999999999999"])


@FUZZ
@given(st.lists(manifest_chars, max_size=60))
def test_parse_near_manifests_only_raises_manifest_error(parts: list[bytes]) -> None:
    data = b"D 755 " + b"a" * 64 + b" 0 ./\n" + b"".join(parts)
    try:
        parse(data)
    except ManifestError:
        pass


@st.composite
def trees(draw: st.DrawFn) -> list[Entry]:
    """A valid tree: a root, directories, files under directories, unique paths."""
    dirs = ["./"]
    entries = [Entry(DIR, draw(st.integers(0, 0o7777)), draw(hexdigest), 0, "./")]
    used: set[str] = set()
    for _ in range(draw(st.integers(0, 25))):
        parent = draw(st.sampled_from(dirs))
        n = draw(name)
        path = parent + n
        if path in used:
            continue
        used.add(path)
        mode = draw(st.integers(0, 0o7777))
        checksum = draw(hexdigest)
        if draw(st.booleans()):
            dirs.append(path + "/")
            entries.append(Entry(DIR, mode, checksum, draw(st.integers(0, MAX_SIZE)),
                                 path + "/"))
        else:
            entries.append(Entry(FILE, mode, checksum, draw(st.integers(0, MAX_SIZE)), path))
    return entries


@FUZZ
@given(trees())
def test_valid_manifests_round_trip(entries: list[Entry]) -> None:
    m = from_entries(entries)
    data = m.encode()
    again = parse(data)
    assert again == m
    assert again.encode() == data
    assert parse(data, strict=False) == m


path_text = st.lists(st.one_of(name, st.sampled_from(["", ".", "..", "/", "./", "../"])),
                     max_size=6).map("/".join)


@FUZZ
@given(st.one_of(path_text.map(lambda p: "./" + p), path_text,
                 st.text(max_size=30)), st.booleans())
def test_accepted_paths_stay_inside_the_destination(path: str, is_dir: bool) -> None:
    dest = "/srv/dest"
    try:
        check_relative_path(path, is_dir)
    except ManifestError:
        return
    joined = os.path.normpath(os.path.join(dest, path[2:]))
    assert joined == dest or joined.startswith(dest + "/"), (path, joined)
    # no component can climb: normalising never removes a real name
    assert ".." not in path[2:].split("/")


@FUZZ
@given(st.lists(st.tuples(st.sampled_from([FILE, DIR]), path_text.map(lambda p: "./" + p)),
                max_size=12))
def test_validate_tree_accepts_only_contained_consistent_trees(
        items: list[tuple[str, str]]) -> None:
    entries = [Entry(DIR, 0o755, "a" * 64, 0, "./")]
    entries += [Entry(k, 0o644, "a" * 64, 0, p + "/" if k == DIR and not p.endswith("/")
                      else p) for k, p in items]
    try:
        validate_tree(entries)
    except ManifestError:
        return
    dest = "/srv/dest"
    seen = set()
    kinds = {}
    for e in entries:
        rel = e.path[2:].rstrip("/")
        joined = os.path.normpath(os.path.join(dest, rel))
        assert joined == dest or joined.startswith(dest + "/")
        assert joined not in seen
        seen.add(joined)
        kinds[joined] = e.kind
    for p, k in kinds.items():
        if p != dest:
            assert kinds.get(os.path.dirname(p)) == DIR, (p, k)


@pytest.mark.parametrize("data", [
    b"D 755 " + b"a" * 64 + b" 0 ./\nF 644 " + b"a" * 64 + b" 1 ./" + b"x" * 70000 + b"\n",
    b"\xff" * 100,
    b"D 755 " + b"a" * 64 + b" 0 ./\nF 644 " + b"a" * 64 + b" 1 ./a\rb\n",
])
def test_parse_examples(data: bytes) -> None:
    try:
        parse(data)
    except ManifestError:
        pass
