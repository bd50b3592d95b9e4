"""The manifest codec: canonical text, ids, byte-wise order, strict parsing."""

from __future__ import annotations

import random

import blake3
import pytest
from coreutil import EMPTY_B3, manifest_mod
from hypothesis import given, settings
from hypothesis import strategies as st

from snapdir.errors import ManifestError

parse = manifest_mod.parse
Entry = manifest_mod.Entry

HELLO = (
    b"D 755 6cd17c61c7e42c50586ee5f3f54dbc4f809f71073fc176ed2ae865103dd33625 5 ./\n"
    b"F 644 ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f 5 ./a.txt\n"
)
HELLO_ID = "5803426341cd88149ee1b981e8fa337b728d5cff9be5b92c3c4e1e214dc9d504"
H = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f"


def _b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def _root(size: int = 0) -> bytes:
    return f"D 755 {EMPTY_B3} {size} ./\n".encode()


# --- round trip and ids -------------------------------------------------------------------


def test_round_trip_vector() -> None:
    m = parse(HELLO)
    assert m.encode() == HELLO
    assert m.text() == HELLO.decode()
    assert m.id == HELLO_ID
    assert [e.path for e in m.entries] == ["./", "./a.txt"]
    d, f = m.entries
    assert (d.kind, d.mode, d.size, d.is_dir) == ("D", 0o755, 5, True)
    assert (f.kind, f.mode, f.checksum, f.size, f.is_dir) == ("F", 0o644, H, 5, False)
    assert f.line() == HELLO.decode().splitlines()[1]


def test_special_modes_round_trip() -> None:
    text = (
        f"D 1777 {EMPTY_B3} 0 ./\n"
        f"D 2755 {EMPTY_B3} 0 ./g/\n"
        f"F 0 {EMPTY_B3} 0 ./none\n"
        f"F 4755 {EMPTY_B3} 0 ./s\n"
    ).encode()
    m = parse(text)
    assert [e.mode for e in m.entries] == [0o1777, 0o2755, 0, 0o4755]
    assert m.encode() == text


def test_comments_and_blank_lines_take_no_part_in_the_id() -> None:
    noisy = b"# snapdir manifest\n\n" + HELLO.replace(b"\nF", b"\n# mid\n\nF") + b"\n# end\n"
    assert manifest_mod.snapshot_id_of(noisy) == HELLO_ID
    assert manifest_mod.snapshot_id_of(HELLO) == HELLO_ID
    m = parse(noisy)
    assert m.encode() == HELLO
    assert m.id == HELLO_ID


def test_id_is_blake3_of_text_with_trailing_newline() -> None:
    assert _b3(HELLO) == HELLO_ID
    assert parse(HELLO.rstrip(b"\n")).id == HELLO_ID  # parse restores the canonical newline


def test_path_may_hold_spaces_split_on_first_four_only() -> None:
    text = _root(0) + f"F 644 {EMPTY_B3} 0 ./a b  c \n".encode()
    m = parse(text)
    assert m.entries[1].path == "./a b  c "
    assert m.encode() == text


# --- order --------------------------------------------------------------------------------


def _lines(paths: list[str]) -> bytes:
    out = [f"D 755 {EMPTY_B3} 0 ./"]
    for p in paths:
        kind = "D" if p.endswith("/") else "F"
        out.append(f"{kind} 755 {EMPTY_B3} 0 {p}")
    return "".join(x + "\n" for x in out).encode()


def test_sort_is_bytewise_dot_before_slash() -> None:
    # '-' 0x2d < '.' 0x2e < '/' 0x2f < 'B' 0x42 < 'a' 0x61: `sort -k5` in the C locale
    paths = ["./a/", "./a/b", "./a.txt", "./a-b", "./B", "./a0"]
    rng = random.Random(1)
    for _ in range(5):
        rng.shuffle(paths)
        m = parse(_lines(paths))
        assert [e.path for e in m.entries] == \
            ["./", "./B", "./a-b", "./a.txt", "./a/", "./a/b", "./a0"]


def test_sort_is_bytewise_for_unicode() -> None:
    # UTF-8 byte order: 'z' 7a < 'é' c3 a9 < 'ｚ' ef bd 9a < '😀' f0 9f 98 80
    paths = ["./😀", "./ｚ", "./é", "./z", "./é/"[:-1] + "x"]
    m = parse(_lines(paths))
    got = [e.path for e in m.entries]
    assert got == sorted(got, key=lambda p: p.encode("utf-8"))
    assert got == ["./", "./z", "./é", "./éx", "./ｚ", "./😀"]


def test_from_entries_and_assemble_sort_bytewise() -> None:
    entries = [Entry("F", 0o644, EMPTY_B3, 0, p) for p in ["./😀", "./a/", "./a.txt"]]
    assert [e.path for e in manifest_mod.from_entries(entries).entries] == \
        ["./a.txt", "./a/", "./😀"]


# --- strict parsing refusals --------------------------------------------------------------

BAD = {
    "dotdot": _root() + f"F 644 {EMPTY_B3} 0 ./../etc/passwd\n".encode(),
    "dotdot-middle": _root() + f"D 755 {EMPTY_B3} 0 ./a/\nF 644 {EMPTY_B3} 0 ./a/../../x\n"
    .encode(),
    "dotdot-dir": _root() + f"D 755 {EMPTY_B3} 0 ./../\n".encode(),
    "dot-component": _root() + f"D 755 {EMPTY_B3} 0 ./a/\nF 644 {EMPTY_B3} 0 ./a/./b\n"
    .encode(),
    "empty-component": _root() + f"D 755 {EMPTY_B3} 0 ./a/\nF 644 {EMPTY_B3} 0 ./a//b\n"
    .encode(),
    "absolute": _root() + f"F 644 {EMPTY_B3} 0 /etc/passwd\n".encode(),
    "no-dot-slash": _root() + f"F 644 {EMPTY_B3} 0 a.txt\n".encode(),
    "duplicate-file": _root() + f"F 644 {EMPTY_B3} 0 ./a\nF 600 {EMPTY_B3} 0 ./a\n".encode(),
    "duplicate-file-and-dir": _root() + f"F 644 {EMPTY_B3} 0 ./a\nD 755 {EMPTY_B3} 0 ./a/\n"
    .encode(),
    "duplicate-root": _root() + _root(),
    "file-under-file": _root() + f"F 644 {EMPTY_B3} 0 ./a\nF 644 {EMPTY_B3} 0 ./a/b\n"
    .encode(),
    "dir-under-file": _root() + f"F 644 {EMPTY_B3} 0 ./a\nD 755 {EMPTY_B3} 0 ./a/b/\n"
    .encode(),
    "missing-parent": _root() + f"F 644 {EMPTY_B3} 0 ./nodir/b\n".encode(),
    "missing-root": f"F 644 {EMPTY_B3} 0 ./a\n".encode(),
    "root-as-file": f"F 644 {EMPTY_B3} 0 ./\n".encode(),
    "file-with-slash": _root() + f"F 644 {EMPTY_B3} 0 ./a/\n".encode(),
    "dir-without-slash": _root() + f"D 755 {EMPTY_B3} 0 ./a\n".encode(),
    "uppercase-hex": _root() + f"F 644 {EMPTY_B3.upper()} 0 ./a\n".encode(),
    "non-hex": _root() + f"F 644 {'g' * 64} 0 ./a\n".encode(),
    "short-hex": _root() + b"F 644 abc 0 ./a\n",
    "empty-checksum": _root() + b"F 644  0 ./a\n",
    "negative-size": _root() + f"F 644 {EMPTY_B3} -1 ./a\n".encode(),
    "plus-size": _root() + f"F 644 {EMPTY_B3} +1 ./a\n".encode(),
    "absurd-size": _root() + f"F 644 {EMPTY_B3} 99999999999999999999999 ./a\n".encode(),
    "size-2^64": _root() + f"F 644 {EMPTY_B3} {2**64} ./a\n".encode(),
    "float-size": _root() + f"F 644 {EMPTY_B3} 1.5 ./a\n".encode(),
    "hex-size": _root() + f"F 644 {EMPTY_B3} 0x10 ./a\n".encode(),
    "non-utf8-path": _root() + f"F 644 {EMPTY_B3} 0 ./".encode() + b"\xff\xfe\n",
    "non-utf8-overlong-encoding": _root() + f"F 644 {EMPTY_B3} 0 ./".encode() + b"\xc0\xaf\n",
    "overlong-line": _root() + f"F 644 {EMPTY_B3} 0 ./".encode() + b"a" * (1 << 20) + b"\n",
    "unknown-type": _root() + f"L 777 {EMPTY_B3} 0 ./a\n".encode(),
    "lowercase-type": _root() + f"f 644 {EMPTY_B3} 0 ./a\n".encode(),
    "bad-mode-digit": _root() + f"F 648 {EMPTY_B3} 0 ./a\n".encode(),
    "mode-too-long": _root() + f"F 107777 {EMPTY_B3} 0 ./a\n".encode(),
    "missing-field": _root() + f"F 644 {EMPTY_B3} ./a\n".encode(),
    "tab-separated": _root() + f"F\t644\t{EMPTY_B3}\t0\t./a\n".encode(),
    "nul-in-path": _root() + f"F 644 {EMPTY_B3} 0 ./a\x00b\n".encode(),
    "garbage": b"hello world, this is not a manifest\n",
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_strict_parse_refuses(name: str) -> None:
    with pytest.raises(ManifestError):
        parse(BAD[name])


def test_refusal_message_is_one_line_and_names_the_line() -> None:
    with pytest.raises(ManifestError) as ei:
        parse(BAD["negative-size"])
    msg = ei.value.format_message()
    assert "\n" not in msg
    assert "2" in msg  # line 2


def test_non_strict_accepts_absolute_manifest() -> None:
    text = (f"D 755 {EMPTY_B3} 0 /data/x/\n"
            f"F 644 {EMPTY_B3} 0 /data/x/a\n").encode()
    m = parse(text, strict=False)
    assert m.encode() == text
    with pytest.raises(ManifestError):
        parse(text)


def test_empty_manifest_text() -> None:
    # an empty text has no entries and the id of the empty string
    assert manifest_mod.snapshot_id_of(b"") == EMPTY_B3
    assert manifest_mod.snapshot_id_of(b"# only a comment\n\n") == EMPTY_B3


# --- properties ---------------------------------------------------------------------------

_name_chars = st.characters(
    blacklist_categories=("Cs",), blacklist_characters="/\n\r\x00",
)
names = st.text(_name_chars, min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
hexes = st.sampled_from([64, 32]).flatmap(
    lambda n: st.binary(min_size=n // 2, max_size=n // 2).map(bytes.hex))
modes = st.integers(0, 0o7777)
sizes = st.integers(0, 2**63 - 1)


@st.composite
def manifests(draw: st.DrawFn) -> list[Entry]:
    """A valid tree of entries (unsorted), with arbitrary fields."""
    entries = [Entry("D", draw(modes), draw(hexes), draw(sizes), "./")]
    dirs = ["./"]
    used: set[str] = {"."}
    for _ in range(draw(st.integers(0, 25))):
        parent = draw(st.sampled_from(dirs))
        name = draw(names)
        base = parent + name
        if base in used:
            continue
        used.add(base)
        if draw(st.booleans()):
            entries.append(Entry("D", draw(modes), draw(hexes), draw(sizes), base + "/"))
            dirs.append(base + "/")
        else:
            entries.append(Entry("F", draw(modes), draw(hexes), draw(sizes), base))
    draw(st.randoms()).shuffle(entries)
    return entries


def _canonical(entries: list[Entry]) -> bytes:
    ordered = sorted(entries, key=lambda e: e.path.encode("utf-8"))
    return "".join(f"{e.kind} {e.mode:o} {e.checksum} {e.size} {e.path}\n"
                   for e in ordered).encode("utf-8")


@settings(max_examples=150, deadline=None)
@given(manifests())
def test_property_encode_parse_round_trip(entries: list[Entry]) -> None:
    text = _canonical(entries)
    m = parse(text)
    assert m.encode() == text
    assert parse(m.encode()) == m
    assert m.id == _b3(text)
    assert manifest_mod.snapshot_id_of(text) == m.id
    assert sorted(m.entries, key=lambda e: e.path) == sorted(entries, key=lambda e: e.path)


@settings(max_examples=100, deadline=None)
@given(manifests(), st.randoms())
def test_property_line_order_and_comments_do_not_matter(entries: list[Entry],
                                                       rnd: random.Random) -> None:
    text = _canonical(entries)
    ordered = text.decode().split("\n")[:-1]  # not splitlines(): names may hold \x1e, \x85
    lines = list(ordered)
    rnd.shuffle(lines)
    noisy: list[str] = []
    for ln in lines:
        if rnd.random() < 0.3:
            noisy.append("# " + ln)
        if rnd.random() < 0.3:
            noisy.append("")
        noisy.append(ln)
    m = parse("\n".join(noisy).encode() + b"\n")
    assert m.encode() == text
    # comments and blank lines are not in the id, wherever they are
    commented = "".join(f"#c {i}\n\n{ln}\n" for i, ln in enumerate(ordered))
    assert manifest_mod.snapshot_id_of(commented.encode()) == _b3(text)


@settings(max_examples=100, deadline=None)
@given(manifests(), st.data())
def test_property_mutations_are_refused(entries: list[Entry], data: st.DataObject) -> None:
    """Breaking one line of a valid manifest makes strict parsing refuse it."""
    text = _canonical(entries)
    lines = text.decode().split("\n")[:-1]
    i = data.draw(st.integers(0, len(lines) - 1))
    kind, mode, cs, size, path = lines[i].split(" ", 4)
    how = data.draw(st.sampled_from(["dup", "dotdot", "abs", "hex", "size", "mode", "type"]))
    if how == "dup":
        lines.append(lines[i])
    elif how == "dotdot":
        lines.append(f"F 644 {cs} 0 ./../{data.draw(names)}")
    elif how == "abs":
        lines.append(f"F 644 {cs} 0 /{data.draw(names)}")
    elif how == "hex":
        lines[i] = f"{kind} {mode} {cs[:-1]}X {size} {path}"
    elif how == "size":
        lines[i] = f"{kind} {mode} {cs} -{size} {path}"
    elif how == "mode":
        lines[i] = f"{kind} 9{mode} {cs} {size} {path}"
    else:
        lines[i] = f"X {mode} {cs} {size} {path}"
    with pytest.raises(ManifestError):
        parse(("\n".join(lines) + "\n").encode())
