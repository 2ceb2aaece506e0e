"""Reading every supported format, and the statistics, split and converter built on them."""

from __future__ import annotations

import csv
import json

import pytest

from legalft.data.convert import ALL_KINDS, ConvertOptions, convert_file, convert_records, subsections
from legalft.data.readers import DatasetReadError, detect_format, iter_records
from legalft.data.sanitize import sanitize_file
from legalft.data.split import record_act, split_file, split_records
from legalft.data.stats import cited_acts, compute_stats
from tests.conftest import REFERENCE_QA, ROOT

SECTIONS = ROOT / "data" / "uk_legislation_sections_subset.jsonl"


def test_json_array_with_line_numbers(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[\n  {"prompt": "Q1", "completion": "A1"},\n  {"text": "T"},\n  5\n]\n')
    assert detect_format(path) == "json"
    records = list(iter_records(path))
    assert [r.line for r in records] == [2, 3, 4]
    report = sanitize_file(path, tmp_path / "c.jsonl")
    assert report.formats == {"prompt_completion": 1, "text": 1}
    assert report.drop_counts == {"not_an_object": 1}


@pytest.mark.parametrize("header,row,fmt", [
    (["question", "answer"], ["What is s.1?", "It establishes ARIA."], "question_answer"),
    (["prompt", "completion"], ["Q", "A"], "prompt_completion"),
    (["instruction", "input", "output"], ["Explain", "", "Out"], "alpaca"),
    (["text"], ["Section 1 ..."], "text"),
])
def test_csv_columns_are_mapped(tmp_path, header, row, fmt):
    path = tmp_path / "data.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerow(row)
        writer.writerow([""] * len(header))  # an empty row is a record, dropped and said so
    report = sanitize_file(path, tmp_path / "c.jsonl")
    assert (report.total_records, report.kept_records, report.dropped_records) == (2, 1, 1)
    assert report.formats == {fmt: 1}
    if len(header) > 1:
        assert report.drop_counts == {"empty_row": 1} and report.issues[-1].message == "line 3: the row is empty (record dropped)"


def test_parquet_is_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    pq.write_table(pa.table({"question": ["Q1", "Q2"], "answer": ["A1", "A2"]}), path)
    assert detect_format(path) == "parquet"
    report = sanitize_file(path, tmp_path / "c.jsonl")
    assert report.kept_records == 2
    first = json.loads((tmp_path / "c.jsonl").read_text().splitlines()[0])
    assert first["messages"][1] == {"role": "assistant", "content": "A1"}


def test_binary_file_gets_one_clear_error(tmp_path):
    path = tmp_path / "model.jsonl"
    path.write_bytes(bytes(range(256)) * 10)
    with pytest.raises(DatasetReadError, match="binary file"):
        sanitize_file(path, tmp_path / "c.jsonl")
    fake = tmp_path / "x.parquet"
    fake.write_text("hello")
    with pytest.raises(DatasetReadError, match="not a Parquet file"):
        list(iter_records(fake))


def test_stats_of_reference_set():
    stats = compute_stats(REFERENCE_QA, max_length=100)
    assert stats.records == 148
    assert stats.tokens_are_approximate and "approximate" in stats.token_label
    assert set(stats.per_role) == {"user", "assistant"}
    assert stats.per_role["assistant"].messages == 148
    assert stats.turns == {2: 148}
    assert 0 < stats.over_max_length < 148
    assert stats.share_over_max_length == stats.over_max_length / 148
    top = dict(stats.top_acts(20))
    assert "Companies Act 2006" in top


def test_stats_with_a_real_local_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.train_from_iterator(["Section 1 of the Companies Act 2006 provides"] * 20,
                            trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    PreTrainedTokenizerFast(tokenizer_object=tok).save_pretrained(tmp_path / "tok")
    stats = compute_stats(REFERENCE_QA, tokenizer=str(tmp_path / "tok"))
    assert not stats.tokens_are_approximate
    assert stats.tokenizer == str(tmp_path / "tok")
    approx = compute_stats(REFERENCE_QA)
    assert stats.total_tokens != approx.total_tokens and stats.total_tokens > 0


def test_cited_acts():
    assert cited_acts("Under section 3 of the Companies Act 2006 and the Insurance Act 2015") == [
        "Companies Act 2006", "Insurance Act 2015"]
    assert cited_acts("Open-Ended Investment Companies Act (Northern Ireland) 2002") == [
        "Open-Ended Investment Companies Act (Northern Ireland) 2002"]


def _records(n_acts=10, per_act=5):
    return [{"messages": [{"role": "user", "content": f"What does section {i} of the Test{a} Act 2020 say?"},
                          {"role": "assistant", "content": "It says."}]}
            for a in range(n_acts) for i in range(per_act)]


def test_split_is_deterministic_and_sized():
    records = _records()
    a = split_records(records, 0.2, seed=3)
    b = split_records(records, 0.2, seed=3)
    assert a.validation == b.validation and len(a.validation) == 10 and len(a.train) == 40
    assert split_records(records, 0.2, seed=4).validation != a.validation
    assert a.shared_acts  # ungrouped: Acts leak across


def test_split_grouped_by_act_never_leaks():
    records = _records()
    result = split_records(records, 0.2, seed=3, group_by_act=True)
    train_acts = {record_act(r) for r in result.train}
    val_acts = {record_act(r) for r in result.validation}
    assert not train_acts & val_acts and result.shared_acts == []
    assert len(result.validation) == 10
    with pytest.raises(ValueError):
        split_records(records, 1.5)


def test_split_file_writes_both_sides(tmp_path):
    clean = tmp_path / "clean.jsonl"
    sanitize_file(REFERENCE_QA, clean)
    train, val, result = split_file(clean, tmp_path / "out", 0.1, seed=0, group_by_act=True)
    assert len(train.read_text().splitlines()) + len(val.read_text().splitlines()) == 148
    assert result.shared_acts == []


def test_convert_sections_grounded_and_cited(tmp_path):
    out = tmp_path / "qa.jsonl"
    report = convert_file(SECTIONS, out, ConvertOptions(include_meta=True))
    records = [json.loads(l) for l in out.read_text(encoding="utf-8").splitlines()]
    assert report.pairs == len(records) > 1000
    assert report.lines == report.sections + sum(report.skipped.values())
    assert set(report.pairs_by_kind) == {"provision", "heading", "subsection"}
    aria = [r for r in records if r["meta"]["act"] == "Advanced Research and Invention Agency Act 2022"
            and r["meta"]["kind"] == "provision" and r["meta"]["section"] == "1"]
    assert aria[0]["messages"][0]["content"] == "What does section 1 of the Advanced Research and Invention Agency Act 2022 provide?"
    assert aria[0]["messages"][1]["content"].startswith(
        "Section 1 of the Advanced Research and Invention Agency Act 2022 (\"Establishment of ARIA\") provides")
    # The output sanitizes clean: every record is a valid conversation ending with the assistant.
    check = sanitize_file(out, tmp_path / "check.jsonl")
    assert check.dropped_records == 0 and check.repaired_records == 0
    # Deterministic.
    convert_file(SECTIONS, tmp_path / "again.jsonl", ConvertOptions(include_meta=True))
    assert (tmp_path / "again.jsonl").read_bytes() == out.read_bytes()


def test_convert_long_section_is_chunked_by_subsection():
    text = "\n".join(f"({i}) " + "The Secretary of State may make regulations. " * 30 for i in range(1, 9))
    value = {"act_title": "Long Act 2023", "section": "7", "heading": "Regulations", "text": text}
    records, report = convert_records([(1, value)], ConvertOptions(kinds=("provision",), chunk_chars=3000))
    assert len(records) > 1
    assert all(len(r["messages"][1]["content"]) < 3300 for r in records)
    assert "section 7 of the Long Act 2023 subsections (1) to" in records[0]["messages"][0]["content"]
    assert len(subsections(text)) == 8


def test_convert_per_act_schema_and_parity_kinds():
    value = {"id": "https://www.legislation.gov.uk/ukpga/2023/1", "title": "Sample Act 2023",
             "year_number": "2023 c. 1", "leg_type": "UK Public General Acts",
             "text": "https://x.example/ Preamble text. BE IT ENACTED by the King. The Minister must publish a report. It must be laid."}
    records, report = convert_records([(1, value), (2, None), (3, {"foo": 1})], ConvertOptions(kinds=ALL_KINDS, embed_context=True))
    assert report.skipped == {"invalid_json": 1, "unrecognized_record": 1}
    assert report.pairs_by_kind["metadata"] == 1 and report.pairs_by_kind["summary"] == 1
    summary = next(r for r in records if "Summarise this provision" in r["messages"][0]["content"])
    assert "Preamble" not in summary["messages"][0]["content"]  # boilerplate before the enacting words trimmed
    assert "BE IT ENACTED" in summary["messages"][0]["content"]
    with pytest.raises(ValueError, match="unknown kind"):
        ConvertOptions(kinds=("nonsense",))
