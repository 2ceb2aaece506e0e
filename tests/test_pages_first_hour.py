"""What a first-time user reads on Train, Monitor, Home and Chat (issue 13), through the library and AppTest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from legalft import monitor
from legalft.data.registry import register_dataset
from legalft.data.sanitize import sanitize_file
from legalft.endpoints import save_endpoint
from legalft.jobs import create_job
from tests.conftest import REFERENCE_QA, open_app_page

CLI_WORDS = ("--model", "--set", "legalft ", "pip install", ".venv", "venv ")


def registered(tmp_path):
    clean = tmp_path / "clean.jsonl"
    return register_dataset(clean, "reference.jsonl", sanitize_file(REFERENCE_QA, clean).to_dict())


# ---- time left, duration, log ----------------------------------------------------------------

def test_time_left_comes_from_the_measured_step_rate_not_the_start_up():
    now = 1_000.0
    # Step 1 came 15 s after the start (loading the model), then a step a second.
    rows = [{"step": 1, "time": now - 3}, {"step": 2, "time": now - 2}, {"step": 3, "time": now - 1}]
    assert monitor.seconds_left(rows[:1], 1, 34, now=now) is None  # one timed step: not guessed
    assert monitor.seconds_left(rows, 3, 34, now=now) == 30.0  # 31 steps at 1 s, 1 s already spent
    # A run that stops moving never shows more time left; it counts down to zero.
    assert monitor.seconds_left(rows, 3, 34, now=now + 10) == 20.0
    assert monitor.seconds_left(rows, 3, 34, now=now + 100) == 0.0
    # After a resume the step goes back: the rate is measured on the new attempt only.
    resumed = rows + [{"step": 2, "time": now + 50}, {"step": 3, "time": now + 52}]
    assert monitor.seconds_left(resumed, 3, 34, now=now + 52) == 62.0


def test_duration_leaves_out_the_time_spent_cancelled():
    start = datetime(2026, 1, 1, 12, 0, tzinfo=timezone.utc)
    job = create_job("local", status="succeeded", started_at=start.isoformat(),
                     finished_at=(start + timedelta(minutes=30)).isoformat(), progress={"paused_seconds": 1500})
    assert monitor.duration_seconds(job) == 300.0


def test_the_log_leaves_out_library_noise_and_says_cancel_plainly():
    raw = [
        "===== 2026-12-02T06:50:26+00:00 attempt 1: /venv/bin/python -m legalft.train /runs/run-1",
        "2026-12-02 06:50:32,032 WARNING bitsandbytes.backends.cpu.ops: Failed to load CPU gemm_4bit_forward from "
        "kernels-community: No module named 'kernels'. Please make sure you already `pip install kernels`",
        "/venv/lib/python3.11/site-packages/transformers/modeling_utils.py:3312: FutureWarning: `x` is deprecated",
        "  warnings.warn(",
        "Tokenizing train dataset:  45%|████▌     | 67/148 [00:00<00:00, 1442.06 examples/s]",
        " 30%|███       | 11/37 [00:01<00:02, 9.1it/s]",
        "{'loss': '7.325', 'epoch': '0.027'}",
        "{'eval_loss': '6.912', 'eval_runtime': '0.0506', 'epoch': '0.2353'}",
        "{'train_runtime': '3.432', 'train_loss': '6.851', 'epoch': '1'}",
        "2026-12-02 06:50:37,522 INFO legalft.train: received SIGTERM: cancelling",
        "===== 2026-12-02T06:52:00+00:00 attempt 2: /venv/bin/python -m legalft.train /runs/run-1",
    ]
    assert monitor.readable_log(raw) == [
        "2026-12-02 06:50:26 started",
        "epoch 0.027 · loss 7.325",
        "epoch 0.2353 · validation loss 6.912",
        "training done in 3.432 s · average loss 6.851",
        "2026-12-02 06:50:37,522 INFO legalft.train: Stopping: the run was cancelled.",
        "2026-12-02 06:52:00 attempt 2: resumed",
    ]


# ---- Train -----------------------------------------------------------------------------------

def test_a_mistyped_base_model_is_refused_in_words_for_a_browser(tmp_path):
    registered(tmp_path)
    at = open_app_page("views/train.py")
    at.text_input(key="train_base_model").set_value("HuggingFaceTB/SmolLM2-135M-Instruckt").run()
    at.button(key="train_launch").click().run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("Not launched:") and "Check the spelling" in error, error
    assert not any(word in error for word in CLI_WORDS + ("OSError", "Error:", "Traceback")), error
    # The split training uses is said where it is chosen.
    assert any("Split & export" in c.value and "does not change what trains here" in c.value for c in at.caption)


# ---- Monitor and Home ------------------------------------------------------------------------

def test_monitor_and_home_name_paths_and_datasets_alike(tmp_path):
    dataset = registered(tmp_path)
    local = create_job("local", status="failed", base_model="builtin:smoke", dataset_id=dataset.id,
                       dataset_path="/home/x/.legalft/datasets/uploads/3f2a9c-reference.clean.jsonl",
                       name="smoke")
    create_job("token_factory", status="failed", base_model="meta-llama/Llama-3.1-8B-Instruct")
    at = open_app_page("views/monitor.py")
    table = at.dataframe[0].value
    assert set(table["path"]) == {"Cloud (own GPU)", "Token Factory"}
    assert "reference.jsonl (#1)" in set(table["dataset"])  # the registered name, not the internal file
    # A message about merging another job is not shown under this one.
    at.session_state["monitor_merge_messages"] = {"run-other": "merged job run-other into /x"}
    at.run()
    assert not any("run-other" in i.value for i in at.info)

    home = open_app_page()
    text = str([m.value for m in home.markdown])
    assert "Cloud (own GPU)" in text and "Token Factory" in text
    assert "token_factory" not in text and "'local'" not in text
    links = {(link.proto.page, link.proto.label) for link in home.get("page_link")}
    assert {label for _, label in links} >= {"**1 · Data**", "**2 · Train**", "**3 · Monitor**", "**4 · Chat**"}
    assert any(label.endswith(local.id) for _, label in links)  # each job row opens it on Monitor


# ---- Chat ------------------------------------------------------------------------------------

def test_chat_explains_vllm_on_a_cpu_machine_and_names_the_run(monkeypatch):
    from legalft.train import hardware

    monkeypatch.setattr(hardware, "detect_hardware", lambda refresh=False: hardware.Hardware(cpu_count=2, ram_gib=8))
    job = create_job("local", status="succeeded", job_id="run-20260101-000000-abcdef", name="smoke")
    save_endpoint(kind="local", name="smoke", base_url="http://127.0.0.1:9/v1", model="/m", status="active",
                  job_id=job.id)
    at = open_app_page("views/chat.py")
    at.radio(key="chat_server_kind").set_value("vllm").run()
    assert not at.exception, at.exception
    [info] = [i.value for i in at.info if "vLLM" in i.value]
    assert "NVIDIA GPU" in info and "**local**" in info
    assert not any(word in info for word in CLI_WORDS)
    assert at.button(key="chat_start").disabled
    label = at.selectbox(key="chat_endpoint").options[0]
    assert "run run-20260101-000000-abcdef" in label and "local server" in label


def test_favicon_is_a_local_file():
    from tests.conftest import ROOT

    source = (ROOT / "app.py").read_text()
    assert 'page_icon=str(ROOT / "assets" / "favicon.png")' in source
    assert (ROOT / "assets" / "favicon.png").read_bytes().startswith(b"\x89PNG")
