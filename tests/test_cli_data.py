"""`legalft data ...` through the real console entry point."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REFERENCE_QA, ROOT


def legalft(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "legalft", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT)


def test_validate_json_report_and_exit_codes(tmp_path):
    out = tmp_path / "clean.jsonl"
    result = legalft("data", "validate", REFERENCE_QA, "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["total_records"], report["kept_records"], report["dropped_records"], report["repaired_records"]) == (148, 148, 0, 0)
    assert report["repair_counts"] == {"promoted_invalid_role_to_user_content": 1} and report["doubtful_records"] == 1
    assert out.exists()

    binary = tmp_path / "blob.jsonl"
    binary.write_bytes(b"\x00\x01\x02" * 100)
    unreadable = legalft("data", "validate", binary, "--out", tmp_path / "x.jsonl")
    assert unreadable.returncode == 1 and "binary" in unreadable.stderr
    assert legalft("data", "validate").returncode == 2
    assert legalft("data", "validate", tmp_path / "missing.jsonl").returncode == 1


def test_validate_writes_rejects_with_line_numbers(tmp_path):
    source = tmp_path / "mixed.jsonl"
    source.write_text('{"prompt": "Q", "completion": "A"}\nnot json\n')
    result = legalft("data", "validate", source)
    assert result.returncode == 0
    assert "line 2: the line is not valid JSON" in result.stdout
    rejects = (tmp_path / "mixed.rejects.jsonl").read_text().splitlines()
    assert json.loads(rejects[0])["line"] == 2
    assert (tmp_path / "mixed.clean.jsonl").exists()


def test_stats_convert_split(tmp_path):
    stats = json.loads(legalft("data", "stats", REFERENCE_QA, "--max-length", "128", "--json").stdout)
    assert stats["records"] == 148 and stats["tokens_are_approximate"] is True
    assert stats["over_max_length"] > 0

    out = tmp_path / "qa.jsonl"
    conv = legalft("data", "convert", ROOT / "data" / "uk_legislation_sections_subset.jsonl", "--out", out,
                   "--kinds", "provision", "metadata", "--include-meta", "--json")
    assert conv.returncode == 0, conv.stderr
    report = json.loads(conv.stdout)
    assert set(report["pairs_by_kind"]) == {"provision", "metadata"}
    assert json.loads(out.read_text().splitlines()[0])["meta"]["kind"] == "provision"
    assert legalft("data", "convert", out, "--out", tmp_path / "y", "--kinds", "bogus").returncode == 2

    clean = tmp_path / "clean.jsonl"
    legalft("data", "validate", REFERENCE_QA, "--out", clean)
    split = legalft("data", "split", clean, "--val-fraction", "0.2", "--seed", "1", "--group-by-act",
                    "--out-dir", tmp_path / "split", "--json")
    data = json.loads(split.stdout)
    assert data["train_records"] + data["validation_records"] == 148 and data["shared_acts"] == []
    assert legalft("data", "split", clean, "--val-fraction", "2", "--out-dir", tmp_path).returncode == 2


def test_cli_starts_without_heavy_imports():
    code = ("import sys, legalft.cli; legalft.cli.build_parser(); "
            "heavy = [m for m in ('torch', 'transformers', 'trl', 'peft', 'vllm', 'openai') if m in sys.modules]; "
            "print(heavy)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
