"""The one trained-token estimator: hand-worked counts, packing, the reference bill, the pre-flight."""

from __future__ import annotations

import json

import pytest

from legalft import costs
from legalft import managed as tf
from tests.conftest import REFERENCE_QA

BILLED_REFERENCE_RUN = 238_844  # 148 records, 4 epochs, packing, Llama-3.1-8B-Instruct


def record(user_chars: int, assistant_chars: int) -> dict:
    return {"messages": [{"role": "user", "content": "q" * user_chars},
                         {"role": "assistant", "content": "a" * assistant_chars}]}


def test_reference_run_lands_within_15_percent_of_the_bill():
    tokens = costs.estimate_trained_tokens(REFERENCE_QA, model="meta-llama/Llama-3.1-8B-Instruct", epochs=4)
    assert tokens.records == 148 and tokens.skipped_records == 0
    assert abs(tokens.total - BILLED_REFERENCE_RUN) / BILLED_REFERENCE_RUN <= 0.15
    # The text alone (what the old estimates counted) is far below the bill: the template matters.
    assert tokens.text_tokens * 4 < 0.3 * BILLED_REFERENCE_RUN
    assert "chat template" in tokens.basis and "238,844" in tokens.basis


def test_hand_worked_llama_record():
    # Text: 40 / 4 + 80 / 4 = 30; Llama 3.1 template: 26 per record + 5 × 2 messages = 36; 66 in all.
    tokens = costs.estimate_trained_tokens([record(40, 80)], model="meta-llama/Llama-3.1-8B-Instruct", epochs=2)
    assert (tokens.text_tokens, tokens.template_tokens, tokens.sequence_per_epoch) == (30, 36, 66)
    assert tokens.service_factor == 2.9
    assert tokens.per_epoch == 191  # 66 × 2.9 = 191.4
    assert tokens.total == 383  # 66 × 2.9 × 2 = 382.8
    assert tokens.sequence_total == 132
    mine = costs.estimate_trained_tokens([record(40, 80)], model="meta-llama/Llama-3.1-8B-Instruct", service=False)
    assert mine.per_epoch == 66 and mine.service_factor == 1


def test_template_follows_the_model():
    generic = costs.estimate_trained_tokens([record(40, 80)], model="acme/unknown-7B", service=False)
    assert generic.template_tokens == 1 + 4 * 2
    gemma = costs.estimate_trained_tokens([record(40, 80)], model="google/gemma-4-E4B", service=False)
    assert gemma.template_tokens == 1 + 5 * 2


def test_packing_off_cuts_long_records_at_the_context_length():
    records = [record(400, 400), record(40, 80)]  # 200 + 36 = 236 and 66 tokens
    packed = costs.estimate_trained_tokens(records, context_length=100, service=False)
    assert packed.sequence_per_epoch == 302 and packed.truncated_tokens == 0
    assert packed.sequences_per_epoch == 4  # ⌈302 / 100⌉
    cut = costs.estimate_trained_tokens(records, context_length=100, packing=False, service=False)
    assert cut.truncated_tokens == 136 and cut.sequence_per_epoch == 166
    assert cut.sequences_per_epoch == 2
    assert "cut at 100 tokens" in cut.basis


def test_every_record_read_is_accounted_for(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(json.dumps(record(40, 80)) + "\n{not json\n" + json.dumps({"messages": []}) + "\n")
    tokens = costs.estimate_trained_tokens(path)
    assert tokens.records == 1 and tokens.skipped_records == 2


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="epochs"):
        costs.estimate_trained_tokens([record(4, 4)], epochs=0)


def test_preflight_uses_the_same_estimator(tmp_path):
    report = tf.preflight_dataset(REFERENCE_QA, out_dir=tmp_path)
    tokens = costs.estimate_trained_tokens(REFERENCE_QA, epochs=3)
    assert report.estimated_tokens == tokens.per_epoch
    expected = costs.estimate_managed_training(tokens).cost
    assert report.estimated_cost("meta-llama/Llama-3.1-8B-Instruct", 3) == pytest.approx(expected)
    assert expected == pytest.approx(tokens.total * 0.40 / 1e6)


def test_format_money_shows_amounts_under_a_cent():
    assert costs.format_money(0.005) == "< $0.01"
    assert costs.format_money(0.0957) == "$0.10"
    assert costs.format_money(0) == "$0.00"
    assert costs.format_money(-11_592) == "−$11,592.00"
    assert costs.format_money(None) == "no price"


@pytest.mark.slow
def test_a_real_tokenizer_counts_with_its_own_chat_template(tmp_path):
    from legalft.data.stats import load_tokenizer
    from legalft.train import build_smoke_model

    smoke = str(build_smoke_model(tmp_path / "smoke"))
    tok = load_tokenizer(smoke)
    one = record(40, 80)
    ids = tok.apply_chat_template(one["messages"], tokenize=True)
    ids = ids["input_ids"] if hasattr(ids, "keys") else ids
    counted = costs.estimate_trained_tokens([one], tokenizer=smoke, service=False)
    assert counted.sequence_per_epoch == len(ids) and not counted.approximate
    text = sum(len(tok(m["content"], add_special_tokens=False)["input_ids"]) for m in one["messages"])
    assert counted.text_tokens == text and counted.template_tokens == len(ids) - text > 0
    assert "with its chat template" in counted.basis
    # The bundled set counted with this tokenizer also lands within 15% of the bill.
    reference = costs.estimate_trained_tokens(REFERENCE_QA, tokenizer=smoke, epochs=4)
    assert abs(reference.total - BILLED_REFERENCE_RUN) / BILLED_REFERENCE_RUN <= 0.15
