"""Property tests: arbitrary bytes and arbitrary JSON never make the sanitizer raise, and every line is accounted for."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from legalft.data.readers import DatasetReadError
from legalft.data.sanitize import sanitize_file, sanitize_record

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text() | st.sampled_from(["user", "assistant", "system", "bot", "question", " User ", ""]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["messages", "role", "content", "prompt", "completion", "instruction",
                                       "input", "output", "question", "answer", "text", "meta"]) | st.text(max_size=5),
                      children, max_size=4),
    max_leaves=25,
)

# Bytes that look like the files people have: JSON-ish fragments, line endings, bad bytes, BOMs.
fragments = st.sampled_from([b"{", b"}", b"[", b"]", b'"', b":", b",", b"\n", b"\r\n", b"\r", b"\x00", b"\xe9",
                             b"\xef\xbb\xbf", b"\\ud800", b'{"messages": [', b'{"role": "user", "content": "Q"}',
                             b'{"role": "assistant", "content": "A"}', b'"prompt": "P", "completion": "C"', b" "])
nasty_bytes = st.lists(fragments | st.binary(max_size=8), max_size=40).map(b"".join) | st.binary(max_size=300)


def physical_lines(data: bytes) -> list[bytes]:
    """The lines the reader must account for: split on LF, or on CR when the file has no LF."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    sep = b"\n" if b"\n" in data or b"\r" not in data else b"\r"
    lines = data.split(sep)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def check_accounting(data: bytes, name: str = "in.jsonl") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / name
        source.write_bytes(data)
        out, rejects = Path(tmp) / "out.jsonl", Path(tmp) / "rejects.jsonl"
        try:
            report = sanitize_file(source, out, rejects, fmt="jsonl")
        except DatasetReadError:
            return  # the whole file is not a dataset (binary): said in one message, nothing else to account
        assert source.read_bytes() == data
        non_blank = [line for line in physical_lines(data) if line.strip()]
        assert report.total_records == len(non_blank)
        assert report.kept_records + report.dropped_records == report.total_records
        kept = out.read_bytes().splitlines()
        assert len(kept) == report.kept_records
        for clean in kept:
            json.loads(clean)
        dropped = rejects.read_text(encoding="utf-8").splitlines() if rejects.exists() else []
        assert len(dropped) == report.dropped_records
        assert sum(report.drop_counts.values()) == report.dropped_records
        json.dumps(report.to_dict())  # the report itself is always serialisable


@SETTINGS
@given(nasty_bytes)
def test_arbitrary_bytes_never_raise_and_every_line_is_accounted_for(data):
    check_accounting(data)


@SETTINGS
@given(st.lists(json_values, max_size=12))
def test_arbitrary_json_never_raises_and_every_line_is_accounted_for(values):
    data = b"".join(json.dumps(v).encode() + b"\n" for v in values)
    check_accounting(data)


@SETTINGS
@given(json_values)
def test_sanitize_record_is_total(value):
    outcome = sanitize_record(value)
    assert (outcome.record is None) != (outcome.drop is None)
    if outcome.record is not None and "messages" in outcome.record:
        roles = [m["role"] for m in outcome.record["messages"]]
        assert roles[-1] == "assistant" and "user" in roles
        assert all(m["content"] and m["content"] == m["content"].strip() for m in outcome.record["messages"])


# Records the fast path keeps as they are, records the full rules repair (spaces around a text, a
# prompt/completion pair), drawn from few texts so that duplicates are common, across formats.
def _record(kind: int, q: int, a: int) -> dict:
    if kind == 0:
        return {"messages": [{"role": "user", "content": f"Q{q}"}, {"role": "assistant", "content": f"A{a}"}]}
    if kind == 1:
        return {"messages": [{"role": "user", "content": f" Q{q} "}, {"role": "assistant", "content": f"A{a}"}]}
    return {"prompt": f"Q{q}", "completion": f"A{a}"}


duplicate_heavy = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 6), st.integers(0, 3)), max_size=120)


@SETTINGS
@given(duplicate_heavy, st.integers(1, 7), st.integers(1, 15), st.sampled_from([64, 200, 4 * 1024 * 1024]))
def test_a_tiered_duplicate_index_keeps_and_drops_exactly_what_a_set_does(rows, spill_keys, array_keys, block_bytes):
    from legalft.data import readers, sanitize

    data = "".join(json.dumps(_record(*row)) + "\n" for row in rows).encode()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.jsonl"
        source.write_bytes(data)
        results = []
        # Every key in the set; then the set folded every few keys into an array that goes to disk
        # every few more.
        for keys, array in ((10**9, 10**9), (spill_keys, array_keys)):
            # Small blocks: the set is folded between blocks of the fast loop as well as inside the full rules.
            index = sanitize.DuplicateIndex
            original = index.SPILL_KEYS, index.ARRAY_KEYS, readers.BLOCK_BYTES
            index.SPILL_KEYS, index.ARRAY_KEYS, readers.BLOCK_BYTES = keys, array, block_bytes
            try:
                report = sanitize_file(source, Path(tmp) / f"out-{keys}.jsonl", Path(tmp) / f"rej-{keys}.jsonl")
            finally:
                index.SPILL_KEYS, index.ARRAY_KEYS, readers.BLOCK_BYTES = original
            rejects = Path(tmp) / f"rej-{keys}.jsonl"
            results.append(((Path(tmp) / f"out-{keys}.jsonl").read_bytes(),
                            rejects.read_bytes() if rejects.exists() else b"",
                            report.kept_records, dict(report.drop_counts)))
        assert results[0] == results[1]
        # And what a set keeps is one record per distinct (question, answer).
        distinct = {(q, a) for _, q, a in rows}
        assert results[0][2] == len(distinct)


def test_the_duplicate_index_folds_into_a_sorted_array_and_still_answers():
    from legalft.data.sanitize import DuplicateIndex

    index = DuplicateIndex(spill_keys=4)
    keys = [hash(("k", i)) for i in range(10)] + [-(2**63), 2**63 - 1]
    for key in keys:
        assert key not in index
        index.add(key)
    assert index.has_folded and len(index.recent) < 4 and len(index) == len(keys)
    assert all(key in index for key in keys) and hash(("k", 99)) not in index


def test_past_the_array_the_keys_go_to_disk_and_the_index_still_answers():
    """The third tier: the array, when full, goes to SQLite's temporary database behind a bitmap."""
    import random

    from legalft.data.sanitize import DuplicateIndex

    rng = random.Random(7)
    reference: set[int] = set()
    with DuplicateIndex(spill_keys=3, array_keys=7) as index:
        for _ in range(3000):
            # Wide keys (the filter's bits of many differ) and narrow ones (collide in the filter).
            key = rng.randrange(-(2**63), 2**63) if rng.random() < 0.5 else rng.randrange(-40, 40) << 28
            assert (key in index) == (key in reference)
            if key not in reference:
                index.add(key)
                reference.add(key)
        assert index.on_disk > 1000 and len(index) == len(reference)
        assert all(key in index for key in reference)
        assert not any(rng.randrange(-(2**63), 2**63) in index for _ in range(2000))  # 1 in 2**52 would


def _deleted_files() -> list[str]:
    """The open files of this process that were unlinked (SQLite's temporary database is one)."""
    import os

    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the listing's own descriptor
        if target.endswith("(deleted)"):
            found.append(target)
    return found


def test_a_sanitized_file_uses_the_disk_tier_and_leaves_nothing_open(tmp_path, monkeypatch):
    from legalft.data import readers, sanitize

    monkeypatch.setattr(readers, "BLOCK_BYTES", 16 * 1024)  # the fast loop folds between blocks
    monkeypatch.setattr(sanitize.DuplicateIndex, "SPILL_KEYS", 1000)
    monkeypatch.setattr(sanitize.DuplicateIndex, "ARRAY_KEYS", 2000)
    monkeypatch.setattr(sanitize.DuplicateIndex, "CACHE_KIB", 64)  # a small cache: the database file exists
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(_record(0, q, 0)) + "\n" for q in range(30_000))
                      + json.dumps(_record(0, 5, 0)) + "\n")
    seen_open: list[list[str]] = []
    real_to_disk = sanitize.DuplicateIndex._to_disk

    def to_disk(self, keys):
        real_to_disk(self, keys)
        seen_open.append(_deleted_files())

    monkeypatch.setattr(sanitize.DuplicateIndex, "_to_disk", to_disk)
    before = _deleted_files()
    report = sanitize_file(source, tmp_path / "out.jsonl", tmp_path / "rejects.jsonl")
    assert report.kept_records == 30_000 and report.drop_counts["duplicate"] == 1
    assert any(len(files) > len(before) for files in seen_open)  # the disk tier was used, as a file
    assert _deleted_files() == before  # and closed with the run
