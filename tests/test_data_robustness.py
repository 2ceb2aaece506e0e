"""Every nasty-but-real input of issue #10, through `legalft data validate` as a user runs it.

Each test writes its input, runs the command, and checks the same things: the exit code, no
traceback, ``kept + dropped == total``, the clean and rejects files agreeing with the report, every
valid record kept, and the input unchanged byte for byte.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from legalft.cli import main
from legalft.data import readers


def qa(i: int, question: str | None = None) -> dict:
    return {"messages": [{"role": "user", "content": question or f"What does section {i} of the Test Act 2020 provide?"},
                         {"role": "assistant", "content": f"Section {i} provides that item {i} applies."}]}


def line(record) -> bytes:
    return json.dumps(record).encode() + b"\n"


VALID = [qa(i) for i in range(1, 4)]
VALID_LINES = b"".join(line(r) for r in VALID)


@dataclass
class Run:
    code: int
    out: str
    err: str
    report: dict = field(default_factory=dict)
    clean: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)

    def drops(self) -> dict[int, str]:
        return {r["line"]: r["reason"] for r in self.rejects}


def validate(capsys, source: Path, *args: str, expect: int = 0, valid: list[dict] = (), out: Path | None = None,
             rejects: Path | None = None) -> Run:
    """Run the command and assert what every case must hold."""
    before = source.read_bytes() if source.is_file() else None
    out = out or source.with_name("result.clean.jsonl")
    rejects = rejects or source.with_name("result.rejects.jsonl")
    argv = ["data", "validate", str(source), *args]
    if "--out" not in args:
        argv += ["--out", str(out)]
    if "--rejects" not in args:
        argv += ["--rejects", str(rejects)]
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    run = Run(code, captured.out, captured.err)
    assert code == expect, captured.err
    assert "Traceback" not in captured.err + captured.out
    if before is not None:
        assert source.read_bytes() == before, "the input file changed"
    if code != 0:
        return run
    run.report = report = json.loads(captured.out)
    assert report["kept_records"] + report["dropped_records"] == report["total_records"]
    run.clean = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()] if out.exists() else []
    assert len(run.clean) == report["kept_records"]
    run.rejects = [json.loads(l) for l in rejects.read_text(encoding="utf-8").splitlines()] if rejects.exists() else []
    assert len(run.rejects) == report["dropped_records"]
    assert sum(report["drop_counts"].values()) == report["dropped_records"]
    dropped_issues = {i["line"]: i["kind"] for i in report["issues"] if i["message"].endswith("(record dropped)")}
    assert dropped_issues == run.drops()
    for record in valid:
        assert record in run.clean, f"a valid record was lost: {record}"
    return run


# --- outputs never touch inputs -------------------------------------------------------------------


def test_rejects_equal_to_the_input_is_refused_before_writing(tmp_path, capsys):
    mine = tmp_path / "mine.jsonl"
    mine.write_bytes(VALID_LINES + b"{broken\n")
    run = validate(capsys, mine, "--out", str(tmp_path / "mine.clean.jsonl"), "--rejects", str(mine), expect=2)
    assert "is the input file" in run.err and not (tmp_path / "mine.clean.jsonl").exists()


def test_input_named_like_a_default_rejects_file_is_kept(tmp_path, capsys):
    source = tmp_path / "batch1.rejects.jsonl"
    source.write_bytes(VALID_LINES + b"{broken\n")
    before = source.read_bytes()
    code = main(["data", "validate", str(source)])
    assert code == 0 and source.read_bytes() == before
    assert "Traceback" not in capsys.readouterr().err
    clean = (tmp_path / "batch1.rejects.clean.jsonl").read_text().splitlines()
    rejects = (tmp_path / "batch1.rejects.rejects.jsonl").read_text().splitlines()
    assert [json.loads(l) for l in clean] == VALID and [json.loads(l)["line"] for l in rejects] == [4]


def test_out_equal_to_rejects_is_refused(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES)
    same = tmp_path / "both.jsonl"
    run = validate(capsys, source, "--out", str(same), "--rejects", str(same), expect=2)
    assert "the same file" in run.err and not same.exists()


def test_out_resolving_to_the_input_through_a_symlink_is_refused(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES)
    (tmp_path / "alias.jsonl").symlink_to(source)
    run = validate(capsys, source, "--out", str(tmp_path / "alias.jsonl"), expect=2)
    assert "is the input file" in run.err


def test_default_names_keep_the_full_stem(tmp_path, capsys):
    for version in ("v1", "v2"):
        source = tmp_path / f"acts.{version}.jsonl"
        source.write_bytes(line(qa(int(version[1]))))
        assert main(["data", "validate", str(source)]) == 0
    capsys.readouterr()
    assert json.loads((tmp_path / "acts.v1.clean.jsonl").read_text()) == qa(1)
    assert json.loads((tmp_path / "acts.v2.clean.jsonl").read_text()) == qa(2)
    assert not (tmp_path / "acts.clean.jsonl").exists()


def test_missing_rejects_folder_is_created_and_a_folder_as_out_is_named(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES + b"{broken\n")
    run = validate(capsys, source, "--rejects", str(tmp_path / "new" / "folder" / "r.jsonl"), valid=VALID,
                   rejects=tmp_path / "new" / "folder" / "r.jsonl")
    assert run.drops() == {4: "invalid_json"}
    folder = tmp_path / "existing"
    folder.mkdir()
    run = validate(capsys, source, "--out", str(folder), expect=2)
    assert "is a folder" in run.err and "cannot read" not in run.err


def test_an_interrupted_run_leaves_the_previous_output(tmp_path, capsys, monkeypatch):
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES)
    out = tmp_path / "out.jsonl"
    out.write_text("previous output\n")
    from legalft.data import sanitize

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sanitize, "_sanitize_lines", interrupted)
    assert main(["data", "validate", str(source), "--out", str(out)]) == 130
    assert out.read_text() == "previous output\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


# --- one bad record never costs another ----------------------------------------------------------


def test_lone_surrogate_escape_drops_that_record(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES + b'{"messages": [{"role": "user", "content": "bad \\ud800 here"}, '
                       b'{"role": "assistant", "content": "A"}]}\n')
    run = validate(capsys, source, valid=VALID)
    assert run.drops() == {4: "invalid_unicode"}
    assert "lone surrogate" in run.report["issues"][-1]["message"]


@pytest.mark.parametrize("where", ["line", "record", "content"])
def test_ten_thousand_deep_nesting_drops_that_record(tmp_path, capsys, where):
    deep = "[" * 10_000 + "]" * 10_000
    text = {"line": deep,
            "record": '{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], "meta": ' + deep + "}",
            "content": '{"messages": [{"role": "user", "content": ' + deep + '}, {"role": "assistant", "content": "A"}]}'}[where]
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES + text.encode() + b"\n")
    run = validate(capsys, source, valid=VALID)
    assert run.drops() == {4: "too_deep"}
    assert "nested too deeply" in run.report["issues"][-1]["message"]
    # The statistics and the managed pre-flight share the reader: neither raises.
    assert main(["data", "stats", str(source), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["records"] == 3
    from legalft import managed as tf

    assert tf.preflight_dataset(source).ok


def test_deep_nesting_inside_a_json_array_and_a_csv_cell(tmp_path, capsys):
    deep = "[" * 10_000 + "]" * 10_000
    array = tmp_path / "in.json"
    array.write_text("[\n" + ",\n".join([json.dumps(VALID[0]), deep, json.dumps(VALID[1])]) + "\n]\n")
    run = validate(capsys, array, valid=VALID[:2])
    assert run.drops() == {3: "too_deep"}
    table = tmp_path / "in.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["messages", "question", "answer"])
        writer.writerow([deep, "", ""])
        writer.writerow(["", "What is s.1?", "It establishes ARIA."])
    run = validate(capsys, table)
    assert run.report["kept_records"] == 1 and list(run.drops()) == [2]


def test_csv_cell_of_a_long_act_section_is_read(tmp_path, capsys):
    section = "The Secretary of State may by regulations make provision. " * 4000  # ~236 KB
    table = tmp_path / "acts.csv"
    with open(table, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["question", "answer"])
        writer.writerow(["What does section 1 provide?", section])
        writer.writerow(["What does section 2 provide?", "It applies."])
    run = validate(capsys, table)
    assert run.report["kept_records"] == 2 and run.clean[0]["messages"][1]["content"] == section.strip()


def test_non_utf8_byte_after_64_kb_in_csv_and_json_array_drops_that_record(tmp_path, capsys):
    filler = [(f"What does section {i} provide?", "x" * 1000) for i in range(80)]  # ~80 KB before the bad byte
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["question", "answer"])
    writer.writerows(filler)
    table = tmp_path / "big.csv"
    table.write_bytes(rows.getvalue().encode() + b"Caf\xe9 question?,Its answer.\nLast question?,Last answer.\n")
    run = validate(capsys, table)
    assert run.drops() == {82: "not_utf8"} and run.report["kept_records"] == 81

    elements = [json.dumps(qa(i, "x" * 1000 + f" {i}?")).encode() for i in range(80)]
    bad = b'{"messages": [{"role": "user", "content": "Caf\xe9?"}, {"role": "assistant", "content": "A"}]}'
    array = tmp_path / "big.json"
    array.write_bytes(b"[\n" + b",\n".join([*elements, bad, json.dumps(VALID[0]).encode()]) + b"\n]\n")
    run = validate(capsys, array, valid=VALID[:1])
    assert run.drops() == {82: "not_utf8"} and run.report["kept_records"] == 81


@pytest.mark.parametrize("bad", [b"caf\xe9 is not UTF-8", b'{"text": "nul \x00 byte"}'], ids=["latin1", "nul"])
@pytest.mark.parametrize("where", ["first", "late"])
def test_latin1_or_nul_line_is_dropped_alone_wherever_it_sits(tmp_path, capsys, bad, where):
    filler = b"".join(line(qa(i, f"Question {i}? " + "y" * 900)) for i in range(100, 180))  # ~75 KB
    source = tmp_path / "in.jsonl"
    source.write_bytes(bad + b"\n" + VALID_LINES if where == "first" else VALID_LINES + filler + bad + b"\n")
    run = validate(capsys, source, valid=VALID)
    number = 1 if where == "first" else 84
    kind = "not_utf8" if b"\xe9" in bad else "nul_byte"
    assert run.drops() == {number: kind}
    message = run.report["issues"][-1]["message"] if where == "late" else run.report["issues"][0]["message"]
    assert message.startswith(f"line {number}: ") and ("0xE9" in message or "NUL" in message)


def test_cr_only_line_endings_read_as_lines(tmp_path, capsys):
    source = tmp_path / "mac.jsonl"
    source.write_bytes(b"\r".join(json.dumps(r).encode() for r in VALID) + b"\r{broken\r")
    run = validate(capsys, source, valid=VALID)
    assert run.report["total_records"] == 4 and run.drops() == {4: "invalid_json"}


def test_line_over_the_record_limit_is_dropped_alone(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(readers, "MAX_RECORD_BYTES", 10_000)
    monkeypatch.setattr(readers, "BLOCK_BYTES", 4096)
    huge = line(qa(9, "z" * 50_000))
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES[:len(line(VALID[0]))] + huge + VALID_LINES[len(line(VALID[0])):])
    run = validate(capsys, source, valid=VALID)
    assert run.drops() == {2: "too_large"} and "MB" in run.report["issues"][0]["message"]


def test_symlink_loop_is_a_clear_error(tmp_path, capsys):
    loop = tmp_path / "loop.jsonl"
    loop.symlink_to(tmp_path / "loop.jsonl")
    run = validate(capsys, loop, expect=1)
    assert "loops back on itself" in run.err


def test_report_size_is_bounded(tmp_path, capsys):
    big_role = "r" * 100_000
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES + b"".join(
        line({"messages": [{"role": "user", "content": f"Q{i}"}, {"role": big_role + str(i), "content": "A"}]})
        for i in range(200)))
    run = validate(capsys, source, valid=VALID)
    assert run.report["total_records"] == 203
    assert len(run.out) < 200_000, f"the report is {len(run.out):,} characters"


def test_utf16_is_named_and_gzip_is_read_directly(tmp_path, capsys):
    utf16 = tmp_path / "excel.jsonl"
    utf16.write_bytes(VALID_LINES.decode().encode("utf-16"))
    run = validate(capsys, utf16, expect=1)
    assert "UTF-16" in run.err and "convert it to UTF-8" in run.err and "binary" not in run.err
    no_bom = tmp_path / "excel2.csv"
    no_bom.write_bytes("question,answer\nQ,A\n".encode("utf-16-le"))
    assert "UTF-16" in validate(capsys, no_bom, expect=1).err

    packed = tmp_path / "acts.jsonl.gz"
    packed.write_bytes(gzip.compress(VALID_LINES + b"{broken\n"))
    run = validate(capsys, packed, valid=VALID)
    assert run.drops() == {4: "invalid_json"}
    assert main(["data", "validate", str(packed)]) == 0
    assert (tmp_path / "acts.clean.jsonl").is_file()  # acts.jsonl.gz → acts.clean.jsonl
    capsys.readouterr()


def test_prose_renamed_jsonl_gets_one_message(tmp_path, capsys):
    source = tmp_path / "act.jsonl"
    source.write_text("Companies Act 2006\n\n1 Companies\nIn the Companies Acts, a company means a company formed.\n")
    run = validate(capsys, source)
    assert run.report["kept_records"] == 0 and "plain text, not JSONL" in run.report["summary"]
    assert main(["data", "validate", str(source)]) == 0
    assert "Convert legislation" in capsys.readouterr().out


# --- one validator, safe concurrency ------------------------------------------------------------


def test_managed_preflight_accepts_what_the_sanitizer_repairs(tmp_path, capsys):
    from legalft import managed as tf

    source = tmp_path / "roles.jsonl"
    records = [{"messages": [{"role": "question", "content": f"What does section {i} provide?"},
                             {"role": "answer", "content": "It applies."}]} for i in range(12)]
    source.write_bytes(b"".join(line(r) for r in records))
    run = validate(capsys, source)
    report = tf.preflight_dataset(source)
    assert report.ok and report.records == run.report["kept_records"] == 12
    assert report.sanitize["repaired_records"] == run.report["repaired_records"] == 12
    uploaded = [json.loads(l) for l in Path(report.upload_path).read_text().splitlines()]
    assert uploaded == run.clean


def test_concurrent_preflights_of_one_dataset_never_read_a_half_written_file(tmp_path):
    from legalft import managed as tf

    source = tmp_path / "big.jsonl"
    source.write_bytes(b"".join(line(qa(i, f"Question {i}? " + "w" * 2000)) for i in range(3000)))
    results, errors = [], []

    def one():
        try:
            report = tf.preflight_dataset(source)
            with open(report.upload_path, encoding="utf-8") as fh:
                results.append((report.ok, report.records, sum(1 for _ in fh)))
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=one) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and results == [(True, 3000, 3000)] * 10
    leftovers = [p for p in Path(tf.preflight_dataset(source).upload_path).parent.iterdir() if p.suffix == ".part"]
    assert leftovers == []


def test_files_are_readable_by_others_after_the_rename(tmp_path, capsys):
    source = tmp_path / "in.jsonl"
    source.write_bytes(VALID_LINES)
    validate(capsys, source, valid=VALID)
    assert os.stat(tmp_path / "result.clean.jsonl").st_mode & 0o044 == 0o044


def test_truncated_gzip_says_so(tmp_path, capsys):
    packed = tmp_path / "cut.jsonl.gz"
    packed.write_bytes(gzip.compress(VALID_LINES * 50)[:60])
    run = validate(capsys, packed, expect=1)
    assert "damaged or truncated gzip" in run.err
