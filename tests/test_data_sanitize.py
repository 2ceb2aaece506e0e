"""The sanitizer: the reference rules, the rules beyond them, and full accounting."""

from __future__ import annotations

import json
import random

import pytest

from legalft.data.readers import RawRecord
from legalft.data.sanitize import iter_values, sanitize_file, sanitize_record, sanitize_records
from tests.conftest import REFERENCE_QA


def one(value):
    return sanitize_record(value)


def kinds(outcome):
    return [k for k, _ in outcome.repairs]


def test_reference_file_exact_counts(tmp_path):
    report = sanitize_file(REFERENCE_QA, tmp_path / "clean.jsonl", tmp_path / "rejects.jsonl")
    assert (report.total_records, report.kept_records, report.dropped_records, report.repaired_records) == (148, 148, 0, 0)
    assert dict(report.repair_counts) == {"promoted_invalid_role_to_user_content": 1}
    # The question moved out of line 1's role field is a fragment ("u ed subjects of …"): doubtful, not repaired.
    assert report.doubtful_records == 1
    assert [(i.line, i.kind) for i in report.issues] == [(1, "doubtful_repair"), (1, "promoted_invalid_role_to_user_content")]
    assert "looks like a fragment" in report.issues[0].message
    lines = (tmp_path / "clean.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 148
    first = json.loads(lines[0])["messages"]
    assert [m["role"] for m in first] == ["user", "assistant"]
    assert "Open-Ended Investment Companies Act" in first[0]["content"]
    assert not (tmp_path / "rejects.jsonl").exists()  # nothing dropped, no empty rejects file


def test_valid_record_is_kept_unchanged():
    out = one({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]})
    assert out.drop is None and out.repairs == []
    assert out.record == {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}


def test_roles_trimmed_and_lowercased_without_repair():
    out = one({"messages": [{"role": " User ", "content": " Q "}, {"role": "ASSISTANT", "content": "A"}]})
    assert out.repairs == []
    assert out.record["messages"][0] == {"role": "user", "content": "Q"}


@pytest.mark.parametrize("alias,role", [("human", "user"), ("question", "user"), ("prompt", "user"),
                                        ("answer", "assistant"), ("response", "assistant"),
                                        ("bot", "assistant"), ("model", "assistant")])
def test_role_aliases_are_mapped_and_count_as_repair(alias, role):
    other = "assistant" if role == "user" else "user"
    messages = [{"role": alias, "content": "x"}, {"role": other, "content": "y"}]
    if role == "assistant":
        messages.reverse()
    out = one({"messages": messages})
    assert "mapped_role_alias" in kinds(out)
    assert {m["role"] for m in out.record["messages"]} == {"user", "assistant"}
    assert any(f"role '{alias}' (mapped to {role})" in msg for _, msg in out.repairs)


def test_content_list_of_parts_and_object_are_flattened_without_repair():
    out = one({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Part one"}, {"type": "text", "text": "Part two"}]},
        {"role": "assistant", "content": {"text": "Answer"}},
    ]})
    assert out.repairs == []
    assert out.record["messages"][0]["content"] == "Part one\nPart two"
    assert out.record["messages"][1]["content"] == "Answer"
    assert one({"messages": [{"role": "user", "content": {"content": "c"}},
                             {"role": "assistant", "content": {"message": "m"}}]}).record["messages"][1]["content"] == "m"


def test_first_message_role_holding_the_question_is_promoted():
    out = one({"messages": [{"role": "What does section 1 provide?"}, {"role": "assistant", "content": "A"}]})
    assert kinds(out) == ["promoted_invalid_role_to_user_content"]
    assert out.record["messages"][0] == {"role": "user", "content": "What does section 1 provide?"}


def test_first_message_with_unknown_role_becomes_user():
    out = one({"messages": [{"role": "client", "content": "Q"}, {"role": "assistant", "content": "A"}]})
    assert kinds(out) == ["coerced_unknown_role_to_user"]
    assert out.record["messages"][0]["role"] == "user"


def test_later_invalid_messages_are_dropped_and_counted_as_repair():
    out = one({"messages": [
        {"role": "user", "content": "Q"}, "not an object", {"role": "assistant"},
        {"role": "narrator", "content": "x"}, {"role": "assistant", "content": "A"},
    ]})
    assert kinds(out).count("dropped_invalid_message") == 3
    assert out.record["messages"] == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]


def test_trailing_messages_after_last_assistant_are_trimmed():
    out = one({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"},
                            {"role": "user", "content": "follow-up"}]})
    assert kinds(out) == ["trimmed_trailing_messages"]
    assert out.record["messages"][-1]["role"] == "assistant"


def test_consecutive_roles_are_merged_with_blank_line():
    out = one({"messages": [{"role": "user", "content": "one"}, {"role": "user", "content": "two"},
                            {"role": "assistant", "content": "A"}]})
    assert kinds(out) == ["merged_consecutive_roles"]
    assert out.record["messages"][0]["content"] == "one\n\ntwo"


def test_misplaced_system_message_is_removed_first_one_kept():
    out = one({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                            {"role": "system", "content": "late"}, {"role": "assistant", "content": "A"}]})
    assert kinds(out) == ["removed_misplaced_system"]
    assert [m["role"] for m in out.record["messages"]] == ["system", "user", "assistant"]


def test_record_without_assistant_is_dropped():
    out = one({"messages": [{"role": "user", "content": "Q"}]})
    assert out.drop[0] == "missing_user_or_assistant"


def test_record_without_messages_list_is_dropped():
    assert one({"messages": "hello"}).drop[0] == "invalid_messages"
    assert one({"foo": 1}).drop[0] == "unrecognized_record"
    assert one([1, 2]).drop[0] == "not_an_object"


def test_conversions_are_counted_apart_from_repairs():
    pc = one({"prompt": "Q", "completion": "A"})
    assert pc.conversion == "converted_from_prompt_completion" and kinds(pc) == []
    assert pc.record["messages"] == [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    alpaca = one({"instruction": "Explain", "input": "s.1", "output": "It says"})
    assert alpaca.conversion == "converted_from_alpaca" and kinds(alpaca) == []
    assert alpaca.record["messages"][0]["content"] == "Explain\n\ns.1"
    conversational = one({"prompt": [{"role": "user", "content": "Q"}],
                          "completion": [{"role": "assistant", "content": "A"}]})
    assert conversational.record["messages"][1] == {"role": "assistant", "content": "A"}
    clean, report = sanitize_records(iter_values([{"question": f"Q{i}", "answer": "A"} for i in range(24)]))
    assert (report.kept_records, report.converted_records, report.repaired_records) == (24, 24, 0)
    assert report.conversion_counts == {"converted_from_question_answer": 24} and report.issues == []


def test_an_empty_answer_is_named_as_such():
    assert one({"question": "Q", "answer": ""}).drop == ("empty_answer", "the answer is empty")
    assert one({"question": "Q"}).drop == ("empty_answer", "the answer is missing")
    assert one({"prompt": " ", "completion": "A"}).drop == ("empty_question", "the prompt is empty")
    assert one({"instruction": "Do", "output": ""}).drop == ("empty_answer", "the output is empty")


def test_text_record_is_kept_as_is():
    out = one({"text": "Section 1 provides ..."})
    assert out.record == {"text": "Section 1 provides ..."} and out.format == "text" and out.repairs == []
    assert one({"text": "   "}).drop[0] == "empty_text"


def test_duplicates_dropped_after_cleaning_and_report_counts():
    values = [
        {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]},
        {"messages": [{"role": "User", "content": " Q"}, {"role": "assistant", "content": "A "}]},
        {"prompt": "Q", "completion": "A"},
    ]
    clean, report = sanitize_records(iter_values(values))
    assert len(clean) == 1
    assert dict(report.drop_counts) == {"duplicate": 2}
    assert report.repaired_records == 0  # a dropped record is counted as dropped only
    assert report.kept_records + report.dropped_records == report.total_records == 3


def test_bad_lines_do_not_abort_and_are_kept_in_rejects(tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_bytes(
        b'\xef\xbb\xbf{"messages": [{"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}]}\r\n'
        b"\r\n"
        b"{not json\n"
        b"[1, 2]\n"
        b'{"messages": [{"role": "bot", "content": "A2"}, {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A3"}]}\n'
    )
    report = sanitize_file(source, tmp_path / "clean.jsonl", tmp_path / "rejects.jsonl")
    assert (report.total_records, report.kept_records, report.dropped_records) == (4, 2, 2)
    assert dict(report.drop_counts) == {"invalid_json": 1, "not_an_object": 1}
    lines = {i.line: i.kind for i in report.issues}
    assert lines[3] == "invalid_json" and lines[4] == "not_an_object"  # blank line 2 not counted, still numbered
    rejects = [json.loads(l) for l in (tmp_path / "rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["reason"], r["raw"]) for r in rejects] == [(3, "invalid_json", "{not json"), (4, "not_an_object", "[1, 2]")]
    # The BOM and CRLF did not break the first record.
    assert json.loads((tmp_path / "clean.jsonl").read_text().splitlines()[0])["messages"][0]["content"] == "Q1"


def test_report_to_dict_has_the_documented_keys(tmp_path):
    report = sanitize_file(REFERENCE_QA, tmp_path / "c.jsonl")
    data = report.to_dict()
    for key in ("total_records", "kept_records", "dropped_records", "repaired_records",
                "repair_counts", "drop_counts", "formats", "issues"):
        assert key in data
    assert data["formats"] == {"messages": 148}


def _random_json(rng: random.Random, depth=0):
    choice = rng.randrange(9 if depth < 3 else 5)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False, 0, -1, 3.5])
    if choice in (2, 3, 4):
        return rng.choice(["", " ", "user", "assistant", "bot", "system", "x" * rng.randrange(5), "Q?"])
    if choice in (5, 6):
        return [_random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["messages", "role", "content", "prompt", "completion", "instruction", "output", "input",
            "text", "question", "answer", "type", "message", "zzz"]
    return {rng.choice(keys): _random_json(rng, depth + 1) for _ in range(rng.randrange(4))}


def test_randomised_inputs_never_raise_and_always_add_up(tmp_path):
    rng = random.Random(1234)
    for trial in range(30):
        lines = []
        for _ in range(rng.randrange(1, 40)):
            kind = rng.randrange(4)
            if kind == 0:
                lines.append(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 30))))
            elif kind == 1:
                lines.append(json.dumps(_random_json(rng)).encode())
            else:
                msgs = [{"role": rng.choice(["user", "assistant", "bot", "system", "", "zz"]),
                         "content": rng.choice(["a", "b", "", None, ["c"], {"text": "d"}])}
                        for _ in range(rng.randrange(4))]
                lines.append(json.dumps({"messages": msgs}).encode())
        source = tmp_path / f"r{trial}.jsonl"
        source.write_bytes(b"\n".join(l.replace(b"\n", b" ") for l in lines) + b"\n")
        try:
            report = sanitize_file(source, tmp_path / "c.jsonl", tmp_path / "r.jsonl")
        except Exception as exc:  # only "not a dataset at all" may be raised, never a crash
            from legalft.data.readers import DatasetReadError
            assert isinstance(exc, DatasetReadError), exc
            continue
        assert report.kept_records + report.dropped_records == report.total_records
        kept = (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(kept) == report.kept_records
        rejected = (tmp_path / "r.jsonl").read_text().splitlines() if report.dropped_records else []
        assert len(rejected) == report.dropped_records
        assert sum(report.drop_counts.values()) == report.dropped_records


def test_raw_record_with_error_is_accounted():
    _, report = sanitize_records([RawRecord(7, "{", error="invalid_json")])
    assert report.issues[0].message.startswith("line 7:")
    assert report.dropped_records == 1
