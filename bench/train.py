"""Benchmark: `legalft train` against a plain TRL SFTTrainer script, same model, data and settings.

    .venv/bin/python bench/train.py                  # CPU: a ~3.7 M-parameter Llama built offline
    .venv/bin/python bench/train.py --shape llama-3.1-8b --steps 30     # on a GPU machine
    .venv/bin/python bench/train.py --shape gemma-4-e4b --steps 30

Both trainers run as separate processes in the same invocation, alternating, `--repeats` times:
`legalft train --config ... --wait` (the detached job with its heartbeat, status and per-step
metrics) and a plain script that builds the same SFTConfig/LoraConfig and calls trainer.train().
Throughput is trained tokens (non-padding tokens the trainer fed the model) divided by the
trainer's own train_runtime; the median of the repeats is compared (target: ratio ≥ 0.95, the job
machinery costs nothing). Then `legalft train` runs with packing on against off.

On a GPU the model has the shape of Gemma 4 E4B (text stack) or Llama 3.1 8B with random weights
from the config (no download), and the benchmark also prints model FLOPs utilisation: model FLOPs
per token (2·N forward + 2·N backward through the frozen weights for LoRA, 6·N for full, plus
attention 12·layers·hidden·length/2) × tokens/s ÷ the GPU's peak dense bf16 FLOPs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
REFERENCE = ROOT / "data" / "legislation_qa_clean.jsonl"

#: Peak dense bf16 tensor FLOPs by GPU name fragment.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}

PLAIN_SCRIPT = r'''
import json, sys, time
config = json.loads(sys.argv[1])
import datasets, torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import SFTConfig, SFTTrainer

records = [json.loads(line) for line in open(config["train_file"], encoding="utf-8") if line.strip()]
records = [{"messages": [{"role": m["role"], "content": m["content"]} for m in r["messages"]]} for r in records]
tokenizer = AutoTokenizer.from_pretrained(config["model"])
cuda = torch.cuda.is_available()
dtype = torch.bfloat16 if cuda else torch.float32
model = AutoModelForCausalLM.from_pretrained(config["model"], dtype=dtype)
args = SFTConfig(output_dir=config["out"], bf16=cuda, use_cpu=not cuda, report_to="none", save_strategy="no",
                 **{k: v for k, v in config["sft"].items() if k not in ("save_strategy", "save_steps", "save_total_limit",
                                                                       "logging_steps")})
trainer = SFTTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(records),
                     processing_class=tokenizer, peft_config=LoraConfig(task_type="CAUSAL_LM", **config["lora"]))
result = trainer.train()
print("RESULT " + json.dumps({"tokens": float(trainer._total_train_tokens),
                              "train_runtime": result.metrics["train_runtime"], "steps": trainer.state.global_step}))
'''


def build_model(shape: str, out: Path) -> Path:
    """A random-weight model of the requested shape with the smoke tokenizer; offline."""
    from legalft.train.smoke import SmokeModelSpec, build_smoke_model, build_tokenizer

    if shape == "tiny":
        spec = SmokeModelSpec(hidden_size=256, intermediate_size=688, num_hidden_layers=4, num_attention_heads=4,
                              num_key_value_heads=4, initializer_range=0.02)
        return build_smoke_model(out, spec)
    import torch
    from transformers import AutoModelForCausalLM

    tokenizer = build_tokenizer(SmokeModelSpec())
    if shape == "llama-3.1-8b":
        from transformers import LlamaConfig

        config = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                             num_key_value_heads=8, vocab_size=128256, max_position_embeddings=8192,
                             rope_theta=500000.0, tie_word_embeddings=False)
    elif shape == "gemma-4-e4b":
        from transformers import Gemma4TextConfig

        config = Gemma4TextConfig(hidden_size=2560, intermediate_size=10240, num_hidden_layers=42,
                                  num_attention_heads=8, num_key_value_heads=2, head_dim=256, vocab_size=262144)
    else:
        raise SystemExit(f"unknown shape {shape}")
    config.pad_token_id, config.eos_token_id, config.bos_token_id = (
        tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


def model_flops_per_token(model_dir: Path, max_length: int, method: str) -> float:
    from legalft.train.hardware import model_shape

    shape = model_shape(str(model_dir))
    n = shape.params - shape.vocab_size * shape.hidden_size  # embeddings are a lookup, not a matmul
    per_param = 6 if method == "full" else 4  # LoRA: no weight gradients for the frozen base
    attention = 12 * shape.num_layers * shape.hidden_size * max_length / 2 * (per_param / 6)
    return per_param * n + attention


def run_legalft(model: Path, data: Path, sft: dict, lora: dict, work: Path, env: dict) -> dict:
    config = {"base_model": str(model), "method": "lora", "train_file": str(data), "sft": sft, "lora": lora,
              "precision": "auto", "name": "bench"}
    path = work / f"legalft-{time.time_ns()}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "legalft", "train", "--config", str(path), "--wait"],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"legalft train failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    run_dir = Path(next(line.split(": ", 1)[1] for line in out.stdout.splitlines() if line.startswith("run directory")))
    status = json.loads((run_dir / "status.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    tokens = [r["tokens_seen"] for r in rows if "tokens_seen" in r][-1]
    runtime = status["summary"]["train_runtime"]
    return {"tokens": tokens, "train_runtime": runtime, "tokens_per_second": tokens / runtime, "wall": wall,
            "steps": status["step"]}


def run_plain(model: Path, data: Path, sft: dict, lora: dict, work: Path, env: dict) -> dict:
    config = {"model": str(model), "train_file": str(data), "sft": sft, "lora": lora,
              "out": str(work / f"plain-{time.time_ns()}")}
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PLAIN_SCRIPT, json.dumps(config)], capture_output=True, text=True,
                         env=env, cwd=work)
    wall = time.perf_counter() - started
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise SystemExit(f"plain TRL script failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    result = json.loads(line[len("RESULT "):])
    result.update(tokens_per_second=result["tokens"] / result["train_runtime"], wall=wall)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny", choices=("tiny", "llama-3.1-8b", "gemma-4-e4b"))
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--steps", type=int, default=0, help="max_steps (0: use --epochs)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--no-packing-comparison", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="legalft-bench-"))
    env = dict(os.environ, LEGALFT_HOME=str(work / "home"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    data = work / "train.jsonl"
    # Records 2-148 of the reference set (record 1 is the known malformed one).
    data.write_text("\n".join(REFERENCE.read_text(encoding="utf-8").splitlines()[1:]) + "\n", encoding="utf-8")
    print(f"building the {args.shape} model in {work} ...", flush=True)
    model = build_model(args.shape, work / "model")
    from legalft.train.hardware import detect_hardware, model_shape

    hardware = detect_hardware()
    params = model_shape(str(model)).params
    print(f"model: {args.shape}, {params / 1e6:.1f} M parameters; machine: {hardware.describe()}")

    sft = {"num_train_epochs": args.epochs, "per_device_train_batch_size": args.batch,
           "gradient_accumulation_steps": 1, "max_length": args.max_length, "learning_rate": 1e-4,
           "lr_scheduler_type": "constant", "warmup_steps": 0, "packing": False, "assistant_only_loss": True,
           "activation_checkpointing": hardware.has_gpu and args.shape != "tiny", "seed": 0,
           "logging_steps": 1, "save_steps": 1000, "save_total_limit": 1, "dataloader_num_workers": 0}
    if args.steps:
        sft["max_steps"] = args.steps
    lora = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear"}

    def compare(label_a, run_a, label_b, run_b):
        """Alternate two runners (the order flips each repeat, so drift in the load hits both alike)."""
        runs = {label_a: [], label_b: []}
        for repeat in range(args.repeats):
            order = [(label_a, run_a), (label_b, run_b)]
            if repeat % 2:
                order.reverse()
            for label, runner in order:
                result = runner()
                runs[label].append(result)
                print(f"  run {repeat + 1} {label:16} {result['tokens']:>9.0f} tokens in {result['steps']:3d} steps,"
                      f" {result['train_runtime']:7.2f} s = {result['tokens_per_second']:8.1f} tok/s"
                      f"  (process wall {result['wall']:.1f} s)", flush=True)
        return runs

    def summary(runs):
        rates = [r["tokens_per_second"] for r in runs]
        return {"best": max(rates), "median": statistics.median(rates), "wall_median": statistics.median(
            r["wall"] for r in runs), "tokens": runs[0]["tokens"], "steps": runs[0]["steps"]}

    print("legalft train against a plain TRL script:")
    runs = compare("legalft train", lambda: run_legalft(model, data, sft, lora, work, env),
                   "plain TRL", lambda: run_plain(model, data, sft, lora, work, env))
    ours, plain = summary(runs["legalft train"]), summary(runs["plain TRL"])
    results = {"shape": args.shape, "params": params, "machine": hardware.describe(), "settings": sft,
               "legalft": ours, "plain_trl": plain,
               "ratio_best": ours["best"] / plain["best"], "ratio_median": ours["median"] / plain["median"]}
    # The best of the repeats is the least disturbed by other work on the machine; the median is shown too.
    print(f"\nlegalft train {ours['best']:.1f} tok/s, plain TRL {plain['best']:.1f} tok/s (best of {args.repeats}):"
          f" ratio {results['ratio_best']:.3f} (target >= 0.95); medians {ours['median']:.1f} / {plain['median']:.1f}"
          f" = {results['ratio_median']:.3f}")
    print(f"process wall time (median), start to finish: legalft train {ours['wall_median']:.1f} s"
          f" (preflight, detached start, polling), plain script {plain['wall_median']:.1f} s")

    if not args.no_packing_comparison:
        print("\nlegalft train with packing against without:")
        packed_sft = {**sft, "packing": True}
        runs = compare("packing", lambda: run_legalft(model, data, packed_sft, lora, work, env),
                       "no packing", lambda: run_legalft(model, data, sft, lora, work, env))
        packed, unpacked = summary(runs["packing"]), summary(runs["no packing"])
        results.update(packing=packed, no_packing=unpacked, packing_ratio_best=packed["best"] / unpacked["best"])
        print(f"packing {packed['best']:.1f} tok/s in {packed['steps']} steps, without {unpacked['best']:.1f} tok/s"
              f" in {unpacked['steps']} steps (best of {args.repeats}): x{results['packing_ratio_best']:.2f}")

    if hardware.has_gpu:
        peak = next((v for k, v in PEAK_TFLOPS.items() if k in hardware.gpus[0].name), None)
        flops = model_flops_per_token(model, args.max_length, "lora")
        results["model_flops_per_token"] = flops
        if peak:
            results["mfu"] = ours["best"] * flops / (peak * 1e12)
            print(f"MFU: {results['mfu'] * 100:.1f} % ({flops / 1e9:.2f} GFLOP/token at {peak:.0f} TFLOPS peak)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
