"""Training config, recipes, command lines, memory estimates, run-directory files and reconciling.

Fast: no training here (tests/test_train_run.py trains the smoke model).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from legalft.cli import main as cli_main
from legalft.jobs import create_job, get_job
from legalft.train import (
    GpuInfo,
    Hardware,
    TrainConfig,
    TrainConfigError,
    accelerate_config,
    check_dataset,
    estimate_memory,
    launch_command,
    list_recipes,
    load_recipe,
    model_shape,
    parse_override,
    read_log_tail,
    read_metrics,
    reconcile_jobs,
    refresh_job,
)
from legalft.train.config import check_library_fields
from legalft.train.errors import describe_model_error, describe_oom
from legalft.train.rundir import find_checkpoints, truncate_metrics, write_json_atomic

ROOT = Path(__file__).resolve().parent.parent
RECIPES = sorted(p.stem for p in (ROOT / "recipes").glob("*.yaml"))
H100 = Hardware(gpus=[GpuInfo(0, "NVIDIA H100 80GB HBM3", 79.6, "9.0")], cpu_count=26, ram_gib=200)
L4 = Hardware(gpus=[GpuInfo(0, "NVIDIA L4", 22.5, "8.9")], cpu_count=8, ram_gib=32)
T4 = Hardware(gpus=[GpuInfo(0, "Tesla T4", 15.0, "7.5")], cpu_count=8, ram_gib=32)
LAPTOP = Hardware(gpus=[], cpu_count=8, ram_gib=16)


# ---- recipes ----------------------------------------------------------------------------------

def test_the_four_recipes_are_bundled():
    assert {"gemma-4-e4b-lora", "llama-3.1-8b-qlora", "smollm2-135m-instruct", "smoke"} <= set(RECIPES)
    assert {info.name for info in list_recipes()} == set(RECIPES)


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_loads_and_round_trips(name, tmp_path):
    config = load_recipe(name)
    assert config.name == name
    assert config.description
    saved = config.save(tmp_path / "config.yaml")
    assert TrainConfig.load(saved) == config


@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_uses_real_trl_and_peft_settings(name):
    assert check_library_fields(load_recipe(name)) == []


def test_gemma_recipe_trains_only_the_language_layers():
    config = load_recipe("gemma-4-e4b-lora")
    assert (config.base_model, config.method) == ("google/gemma-4-E4B", "lora")
    assert (config.lora["r"], config.lora["lora_alpha"], config.lora["lora_dropout"]) == (16, 32, 0.05)
    assert config.sft["use_liger_kernel"] is False
    assert (config.sft["num_train_epochs"], config.sft["learning_rate"], config.sft["max_length"]) == (5, 1e-4, 1024)
    pattern = re.compile(config.lora["target_modules"])
    assert pattern.fullmatch("model.language_model.layers.3.self_attn.q_proj")
    assert pattern.fullmatch("model.language_model.layers.3.mlp.down_proj")
    assert not pattern.fullmatch("model.vision_tower.encoder.layers.3.self_attn.q_proj")
    assert not pattern.fullmatch("model.audio_tower.layers.0.self_attn.q_proj")
    assert any(re.search(p, "model.vision_tower.x") for p in config.freeze_modules)


# ---- contradictions ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("changes", "advice"),
    [
        ({"method": "qlora", "device": "cpu"}, "set method: lora"),
        ({"precision": "fp16", "device": "cpu"}, "set precision: fp32"),
        ({"sft": {"bf16": True}}, "set precision: bf16"),
        ({"sft": {"output_dir": "/tmp/x"}}, "remove it from sft"),
        ({"sft": {"warmup_ratio": 0.1}}, "use sft.warmup_steps"),
        ({"sft": {"max_seq_length": 512}}, "use sft.max_length"),
        ({"sft": {"eval_strategy": "steps"}}, "give a validation file"),
        ({"sft": {"save_total_limit": 0}}, "cannot resume"),
        ({"sft": {"learning_rate": 3}}, "out of range"),
        ({"sft": {"gradient_accumulation_steps": 0}}, "at least 1"),
        ({"lora": {"r": 0}}, "lora.r"),
        ({"method": "dora"}, "method 'dora' is not one of"),
        ({"distributed": {"num_processes": 2}, "device": "cpu"}, "num_processes: 1"),
        ({"distributed": {"num_machines": 2}}, "main_process_ip"),
    ],
)
def test_contradictions_say_what_to_change(changes, advice):
    data = {"base_model": "builtin:smoke", **changes}
    with pytest.raises(TrainConfigError) as caught:
        TrainConfig.from_dict(data)
    assert any(advice in problem for problem in caught.value.problems), caught.value.problems


def test_unknown_top_level_setting_points_to_the_sections():
    with pytest.raises(TrainConfigError, match="TRL settings go under sft"):
        TrainConfig.from_dict({"base_model": "x/y", "learning_rate": 1e-4})


def test_library_field_check_catches_misspellings():
    config = TrainConfig(base_model="x/y", sft={"learning_rat": 1e-4}, lora={"lora_alpah": 8})
    problems = check_library_fields(config)
    assert any("sft.learning_rat is not a SFTConfig setting" in p and "learning_rate" in p for p in problems)
    assert any("lora.lora_alpah" in p for p in problems)


def test_overrides_parse_yaml_values_and_revalidate():
    config = load_recipe("smoke")
    changed = config.with_overrides(dict(parse_override(t) for t in
                                         ["sft.learning_rate=2e-4", "lora.r=4", "method=full",
                                          "lora.target_modules=[q_proj, v_proj]"]))
    assert changed.sft["learning_rate"] == 2e-4 and changed.lora["r"] == 4 and changed.method == "full"
    assert changed.lora["target_modules"] == ["q_proj", "v_proj"]
    assert config.sft["learning_rate"] == 1e-2  # the original is untouched
    with pytest.raises(TrainConfigError, match="key=value"):
        parse_override("sft.learning_rate")
    with pytest.raises(TrainConfigError, match="set method: lora"):
        config.with_overrides({"method": "qlora", "device": "cpu"})


def test_defaults_log_every_step():
    config = TrainConfig(base_model="x/y")
    assert config.sft["logging_steps"] == 1 and config.lora["r"] == 16


def test_deprecated_library_names_are_stored_under_the_current_ones():
    config = TrainConfig(base_model="x/y", sft={"gradient_checkpointing": False})
    assert config.sft["activation_checkpointing"] is False and "gradient_checkpointing" not in config.sft


# ---- datasets ---------------------------------------------------------------------------------

def test_dataset_check_points_at_the_bad_line_and_the_dataset_page(tmp_path):
    check = check_dataset(ROOT / "data" / "legislation_qa_clean.jsonl")
    assert check.records == 147 and check.format == "messages"
    assert len(check.problems) == 1 and check.problems[0].startswith("line 1: message 1 has role")
    assert "Dataset page" in check.message()

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "q"}]}\nnot json\n\n'
                   '{"prompt": "p", "completion": "c"}\n', encoding="utf-8")
    check = check_dataset(bad)
    assert check.problems == [
        "line 1: has no assistant message to learn from",
        "line 2: is not valid JSON (Expecting value)",
    ]
    assert check.records == 1 and check.format == "prompt-completion"
    assert not check.ok
    assert check_dataset(tmp_path / "missing.jsonl").problems[0].startswith("cannot open it")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    assert check_dataset(empty).problems == ["it holds no records"]


def test_dataset_check_rejects_mixed_formats(tmp_path):
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text('{"text": "a"}\n{"prompt": "p", "completion": "c"}\n', encoding="utf-8")
    check = check_dataset(mixed)
    assert check.problems == ["line 2: is a prompt-completion record in a file of text records"]


# ---- command lines ----------------------------------------------------------------------------

def test_one_gpu_runs_the_module_directly(tmp_path):
    config = TrainConfig(base_model="x/y")
    assert launch_command(config, tmp_path) == [sys.executable, "-m", "legalft.train", str(tmp_path)]


@pytest.mark.parametrize("gpus", [2, 8])
@pytest.mark.parametrize(("strategy", "flag", "kind"),
                         [("ddp", "--multi_gpu", "MULTI_GPU"), ("fsdp", "--use_fsdp", "FSDP"),
                          ("deepspeed", "--use_deepspeed", "DEEPSPEED")])
def test_several_gpus_start_through_accelerate(tmp_path, gpus, strategy, flag, kind):
    config = TrainConfig(base_model="x/y", distributed={"num_processes": gpus, "strategy": strategy})
    command = launch_command(config, tmp_path)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[command.index("--num_processes") + 1] == str(gpus)
    assert command[command.index("--config_file") + 1] == str(tmp_path / "accelerate.yaml")
    assert flag in command
    assert command[-3:] == ["--module", "legalft.train", str(tmp_path)]
    settings = accelerate_config(config)
    assert settings["distributed_type"] == kind and settings["num_processes"] == gpus
    if strategy == "fsdp":
        assert settings["fsdp_config"]["fsdp_version"] == 2
    if strategy == "deepspeed":
        assert settings["deepspeed_config"]["zero_stage"] == 2
        assert settings["deepspeed_config"]["gradient_accumulation_steps"] == config.sft["gradient_accumulation_steps"]


def test_accelerate_parses_the_generated_command(tmp_path):
    """The flags are accelerate's own: its parser accepts the command line."""
    import yaml
    from accelerate.commands.launch import launch_command_parser

    config = TrainConfig(base_model="x/y", distributed={"num_processes": 8, "strategy": "fsdp"})
    (tmp_path / "accelerate.yaml").write_text(yaml.safe_dump(accelerate_config(config)))
    command = launch_command(config, tmp_path)
    args = launch_command_parser().parse_args(command[3:])
    assert args.num_processes == 8 and args.module and args.training_script == "legalft.train"
    assert args.training_script_args == [str(tmp_path)]


def test_multi_node_command_names_machine_zero(tmp_path):
    config = TrainConfig(base_model="x/y", distributed={"num_processes": 8, "num_machines": 2, "machine_rank": 1,
                                                        "main_process_ip": "10.0.0.1"})
    command = launch_command(config, tmp_path)
    assert command[command.index("--num_processes") + 1] == "16"
    assert command[command.index("--machine_rank") + 1] == "1"
    assert command[command.index("--main_process_ip") + 1] == "10.0.0.1"


# ---- hardware and memory ----------------------------------------------------------------------

def test_known_shapes_match_published_sizes():
    assert model_shape("meta-llama/Llama-3.1-8B-Instruct").params == pytest.approx(8.03e9, rel=0.01)
    assert model_shape("HuggingFaceTB/SmolLM2-135M-Instruct").params == pytest.approx(134.5e6, rel=0.02)
    assert model_shape("google/gemma-4-E4B").params == pytest.approx(7.9e9, rel=0.06)
    assert model_shape("someone/unknown-model") is None


def test_reference_recipe_fits_one_h100():
    estimate = estimate_memory(load_recipe("gemma-4-e4b-lora"), H100)
    assert estimate.fits and estimate.device == "cuda"
    assert 10 < estimate.total_gib < 40
    # r·(in+out) per projection: q 2560→2048, k/v 2560→512, o 2048→2560, gate/up 2560→10240, down back
    per_layer = 16 * (2 * (2560 + 2048) + 2 * (2560 + 512) + 3 * (2560 + 10240))
    assert estimate.trainable_params_million == pytest.approx(42 * per_layer / 1e6, rel=1e-9)


def test_llama_qlora_fits_a_16gb_gpu_where_bf16_lora_does_not():
    qlora = load_recipe("llama-3.1-8b-qlora")
    assert estimate_memory(qlora, T4).fits and estimate_memory(qlora, L4).fits
    lora_config = qlora.with_overrides({"method": "lora"})
    lora = estimate_memory(lora_config, T4)
    assert lora.fits is False and lora.weights_gib > 14
    assert "method: qlora" in lora.suggestion and lora.suggested_overrides["method"] == "qlora"
    # The suggestion is consistent: applying it gives a config that fits.
    assert estimate_memory(lora_config.with_overrides(lora.suggested_overrides), T4).fits
    # On a 24 GB GPU a smaller micro-batch is enough, and costs less than quantizing.
    on_l4 = estimate_memory(lora_config, L4)
    assert on_l4.fits is False and on_l4.suggested_overrides == {"sft.per_device_train_batch_size": 1,
                                                                 "sft.gradient_accumulation_steps": 8}


def test_full_fine_tuning_of_8b_does_not_fit_and_the_suggestion_does():
    config = load_recipe("llama-3.1-8b-qlora").with_overrides({"method": "full"})
    estimate = estimate_memory(config, H100)
    assert estimate.fits is False
    assert estimate.optimizer_gib == pytest.approx(2 * estimate.gradients_gib)
    assert "method: lora" in estimate.suggestion
    assert estimate_memory(config.with_overrides(estimate.suggested_overrides), H100).fits


def test_fsdp_shards_weights_and_optimizer_state():
    config = load_recipe("llama-3.1-8b-qlora").with_overrides({"method": "full"})
    one = estimate_memory(config, H100)
    eight = estimate_memory(config.with_overrides({"distributed.num_processes": 8, "distributed.strategy": "fsdp"}),
                            Hardware(gpus=[GpuInfo(i, "H100", 79.6, "9.0") for i in range(8)]))
    assert eight.optimizer_gib == pytest.approx(one.optimizer_gib / 8)
    assert eight.fits


def test_cpu_estimates_use_ram_and_reject_quantized_methods():
    smol = estimate_memory(load_recipe("smollm2-135m-instruct"), LAPTOP)
    assert smol.device == "cpu" and smol.fits and smol.available_gib == pytest.approx(16 * 0.8)
    qlora = estimate_memory(load_recipe("llama-3.1-8b-qlora"), LAPTOP)
    assert qlora.fits is False and "method: lora" in qlora.suggestion


def test_unknown_model_size_is_said_not_guessed():
    estimate = estimate_memory(TrainConfig(base_model="someone/unknown-model"), H100)
    assert estimate.fits is None and "unknown" in estimate.notes[0]


def test_shape_from_a_local_config(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({
        "hidden_size": 64, "num_hidden_layers": 2, "intermediate_size": 128, "vocab_size": 1000,
        "num_attention_heads": 4, "num_key_value_heads": 2, "tie_word_embeddings": False}))
    shape = model_shape(str(tmp_path))
    # embeddings and head, 2 layers (q 64x64, k/v 64x32, o 64x64, 3 MLP 64x128, 2 norms), final norm
    assert shape.params == 2 * 1000 * 64 + 2 * (64 * 64 * 2 + 64 * 32 * 2 + 3 * 64 * 128 + 128) + 64


def test_oom_advice_names_the_settings():
    text = describe_oom(load_recipe("gemma-4-e4b-lora"), 12)
    assert "at step 12" in text and "method: qlora" in text and "sft.max_length (e.g. 512)" in text
    batchy = load_recipe("smoke")
    assert "sft.per_device_train_batch_size: 2 with sft.gradient_accumulation_steps: 2" in describe_oom(batchy, None)


def test_model_errors_say_how_to_get_the_model():
    gated = describe_model_error("meta-llama/Llama-3.1-8B-Instruct", OSError("401 Client Error: gated repo"))
    assert "hf auth login" in gated and "model folder on this machine" in gated
    offline = describe_model_error("x/y", OSError("We couldn't connect to 'https://huggingface.co'"))
    assert "model folder on this machine" in offline and "builtin:smoke" in offline
    # The words suit a browser as well as a shell: no flags, and not the library's own exception.
    for text in (gated, offline):
        assert "--" not in text and "OSError" not in text and "huggingface.co'" not in text


# ---- run directory ----------------------------------------------------------------------------

def test_metrics_reader_skips_a_half_written_line(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": 1.5}\n{"step": 3, "lo')
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]
    assert truncate_metrics(tmp_path, 1) == 1
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 2.0}]
    assert read_metrics(tmp_path / "nowhere") == []


def test_incomplete_checkpoints_are_not_resumed_from(tmp_path):
    for step, complete in ((10, True), (20, True), (30, False)):
        folder = tmp_path / "checkpoints" / f"checkpoint-{step}"
        folder.mkdir(parents=True)
        if complete:
            (folder / "trainer_state.json").write_text("{}")
    assert [step for step, _ in find_checkpoints(tmp_path)] == [10, 20]


def test_log_tail_folds_progress_bars(tmp_path):
    (tmp_path / "train.log").write_text("one\ntwo\r 50%|####\r100%|########\nthree\n")
    assert read_log_tail(tmp_path, 2) == "100%|########\nthree"


# ---- reconciling dead jobs --------------------------------------------------------------------

def _fake_run(tmp_path, *, pid, host=None, heartbeat=None, cancel=False, create_time=None):
    import socket

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "train.log").write_text("loading\nstep 3\nKilled\n")
    write_json_atomic(run_dir / "status.json", {"state": "running", "step": 3, "total_steps": 10,
                                                "heartbeat": heartbeat or time.time(), "pid": pid})
    write_json_atomic(run_dir / "run.json", {"attempts": [{"pid": pid, "host": host or socket.gethostname(),
                                                           "create_time": create_time}]})
    if cancel:
        (run_dir / "cancel.requested").write_text("now")
    job = create_job("local", status="running", run_dir=str(run_dir), base_model="x/y")
    return job, run_dir


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_dead_process_is_reconciled_to_failed_with_its_log_tail(tmp_path):
    job, run_dir = _fake_run(tmp_path, pid=_dead_pid())
    refreshed = {j.id: j for j in reconcile_jobs()}
    assert refreshed[job.id].status == "failed"
    error = get_job(job.id).error
    assert "ended without a final status" in error and "Killed" in error and "jobs resume" in error
    assert json.loads((run_dir / "status.json").read_text())["state"] == "failed"
    assert get_job(job.id).finished_at


def test_a_dead_process_after_a_cancel_request_is_cancelled(tmp_path):
    job, _ = _fake_run(tmp_path, pid=_dead_pid(), cancel=True)
    assert refresh_job(job.id).status == "cancelled"


def test_a_reused_pid_does_not_keep_a_job_alive(tmp_path):
    import os

    # This test process is alive, but it started at another time than the recorded one.
    job, _ = _fake_run(tmp_path, pid=os.getpid(), create_time=1.0)
    assert refresh_job(job.id).status == "failed"


def test_a_live_process_stays_running(tmp_path):
    import os

    import psutil

    job, _ = _fake_run(tmp_path, pid=os.getpid(), create_time=psutil.Process().create_time())
    job = refresh_job(job.id)
    assert job.status == "running" and job.progress["step"] == 3


def test_another_machines_run_is_judged_by_its_heartbeat(tmp_path):
    job, _ = _fake_run(tmp_path, pid=123, host="elsewhere", heartbeat=time.time() - 5)
    assert refresh_job(job.id).status == "running"
    stale = tmp_path / "stale"
    stale.mkdir()
    job2, _ = _fake_run(stale, pid=123, host="elsewhere", heartbeat=time.time() - 3600)
    job2 = refresh_job(job2.id)
    assert job2.status == "failed" and "last heartbeat 3600 s ago" in job2.error


# ---- start-up cost and CLI --------------------------------------------------------------------

def test_importing_the_api_and_cli_loads_no_heavy_library():
    code = ("import sys, legalft.train, legalft.cli.train, legalft.cli;"
            " legalft.cli.build_parser();"
            " print([m for m in ('torch', 'transformers', 'trl', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_cli_lists_recipes_and_estimates(capsys):
    assert cli_main(["train", "--list-recipes"]) == 0
    assert "gemma-4-e4b-lora" in capsys.readouterr().out
    code = cli_main(["train", "--recipe", "gemma-4-e4b-lora", "--estimate"])
    out = capsys.readouterr().out
    assert "google/gemma-4-E4B" in out and "total" in out
    assert code in (0, 1)


def test_cli_reports_contradictions_as_usage_errors(capsys):
    assert cli_main(["train", "--recipe", "smoke", "--set", "method=qlora", "--set", "device=cpu"]) == 2
    assert "set method: lora" in capsys.readouterr().err
    assert cli_main(["train"]) == 2
    assert cli_main(["jobs", "show", "run-nope"]) == 2
    assert "legalft jobs list" in capsys.readouterr().err


def test_cli_jobs_list_when_empty(capsys):
    assert cli_main(["jobs", "list"]) == 0
    assert "no jobs yet" in capsys.readouterr().out


def test_a_job_whose_run_directory_is_gone_is_failed(tmp_path):
    job = create_job("local", status="running", run_dir=str(tmp_path / "deleted"), base_model="x/y")
    job = refresh_job(job.id)
    assert job.status == "failed" and "is gone" in job.error


def test_quantized_methods_have_their_library_in_the_pinned_set():
    """The QLoRA recipe must not stop on a missing package on a GPU machine set up by `make run`."""
    import importlib.util

    assert importlib.util.find_spec("bitsandbytes") is not None
