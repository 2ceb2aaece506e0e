"""What the machine has (GPUs, memory), and whether a training config fits in it.

Detection is lazy and cheap: ``nvidia-smi`` when present, torch only if something already imported
it, so the app can call this at start-up. The memory estimate is arithmetic on the model's shape
(from a table of known models, a local ``config.json`` or the Hub cache, never a download):

    weights + LoRA adapter + gradients + optimizer state + activations + logits + overhead

It is a planning figure, typically within 15 % of the peak the allocator reports; the Train page
shows it next to the GPU's memory with a suggestion when it does not fit.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from legalft.train.config import TrainConfig

logger = logging.getLogger(__name__)

GIB = 1024**3


@dataclass
class GpuInfo:
    index: int
    name: str
    memory_gib: float
    compute_capability: str | None = None

    @property
    def supports_bf16(self) -> bool:
        """Ampere (8.0) and later compute in bf16."""
        try:
            return float(self.compute_capability or 0) >= 8.0
        except ValueError:
            return False


@dataclass
class Hardware:
    """The GPUs and memory of this machine."""

    gpus: list[GpuInfo] = field(default_factory=list)
    cpu_count: int = 1
    ram_gib: float = 0.0
    source: str = "none"
    """How the GPUs were found: ``nvidia-smi``, ``torch`` or ``none``."""

    @property
    def has_gpu(self) -> bool:
        return bool(self.gpus)

    @property
    def gpu_memory_gib(self) -> float:
        """Memory of the smallest GPU (data parallel training holds a copy on each)."""
        return min((gpu.memory_gib for gpu in self.gpus), default=0.0)

    @property
    def supports_bf16(self) -> bool:
        return bool(self.gpus) and all(gpu.supports_bf16 for gpu in self.gpus)

    def describe(self) -> str:
        if not self.gpus:
            return f"no CUDA GPU; {self.cpu_count} CPU cores, {self.ram_gib:.0f} GiB RAM"
        names = {gpu.name for gpu in self.gpus}
        return (
            f"{len(self.gpus)} × {', '.join(sorted(names))} ({self.gpu_memory_gib:.0f} GiB each);"
            f" {self.cpu_count} CPU cores, {self.ram_gib:.0f} GiB RAM"
        )


def detect_hardware(refresh: bool = False) -> Hardware:
    """This machine's GPUs and memory (cached; ``refresh=True`` looks again)."""
    if refresh:
        _detect.cache_clear()
    return copy.deepcopy(_detect())


@lru_cache(maxsize=1)
def _detect() -> Hardware:
    import os

    import psutil

    hardware = Hardware(cpu_count=os.cpu_count() or 1, ram_gib=psutil.virtual_memory().total / GIB)
    gpus = _gpus_from_nvidia_smi()
    if gpus is not None:
        hardware.gpus, hardware.source = gpus, "nvidia-smi"
    elif "torch" in sys.modules:
        hardware.gpus = _gpus_from_torch()
        hardware.source = "torch" if hardware.gpus else "none"
    return hardware


def _gpus_from_nvidia_smi() -> list[GpuInfo] | None:
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,compute_cap", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError) as exc:
        logger.warning("nvidia-smi is present but failed (%s); assuming no GPU", exc)
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3:
            continue
        try:
            gpus.append(GpuInfo(int(parts[0]), parts[1], float(parts[2]) / 1024,
                                parts[3] if len(parts) > 3 else None))
        except ValueError:
            continue
    return gpus


def _gpus_from_torch() -> list[GpuInfo]:
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        gpus.append(GpuInfo(index, props.name, props.total_memory / GIB, f"{props.major}.{props.minor}"))
    return gpus


# ---- model shapes -----------------------------------------------------------------------------

@dataclass
class ModelShape:
    """The dimensions that decide a decoder's memory and compute."""

    hidden_size: int
    num_layers: int
    intermediate_size: int
    vocab_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int | None = None
    tied_embeddings: bool = False
    extra_params: int = 0
    """Parameters outside the decoder stack (per-layer embeddings, vision and audio towers)."""

    @property
    def dim_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of each projection in one layer, by module name."""
        h, q, kv, inter = self.hidden_size, self.num_heads * self.dim_head, self.num_kv_heads * self.dim_head, \
            self.intermediate_size
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}

    @property
    def layer_params(self) -> int:
        return sum(i * o for i, o in self.linear_shapes().values()) + 2 * self.hidden_size

    @property
    def params(self) -> int:
        embeddings = self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)
        return embeddings + self.num_layers * self.layer_params + self.hidden_size + self.extra_params

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "ModelShape":
        """From a transformers ``config.json`` (a multimodal one's ``text_config`` is used)."""
        text = config.get("text_config") or config
        hidden = int(text["hidden_size"])
        heads = int(text.get("num_attention_heads") or 1)
        layers = int(text.get("num_hidden_layers") or text.get("num_layers"))
        extra = 0
        per_layer = text.get("hidden_size_per_layer_input")
        if per_layer:
            extra += int(text.get("vocab_size_per_layer_input") or text["vocab_size"]) * layers * int(per_layer)
        return cls(
            hidden_size=hidden,
            num_layers=layers,
            intermediate_size=int(text.get("intermediate_size") or 4 * hidden),
            vocab_size=int(text["vocab_size"]),
            num_heads=heads,
            num_kv_heads=int(text.get("num_key_value_heads") or heads),
            head_dim=text.get("head_dim"),
            tied_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
            extra_params=extra,
        )


#: Shapes of the recipes' models, so the estimate needs no download. Gemma 4 E4B: 42 layers,
#: hidden 2560, FFN 10240, 8 heads / 2 KV heads of 256, 262k vocabulary, plus per-layer embeddings
#: (262144 × 42 × 256) and the vision and audio towers (about 0.45 B).
KNOWN_SHAPES: dict[str, ModelShape] = {
    "google/gemma-4-e4b": ModelShape(2560, 42, 10240, 262144, 8, 2, 256, True, 262144 * 42 * 256 + 450_000_000),
    "meta-llama/llama-3.1-8b": ModelShape(4096, 32, 14336, 128256, 32, 8, 128, False),
    "huggingfacetb/smollm2-135m": ModelShape(576, 30, 1536, 49152, 9, 3, 64, True),
}


def model_shape(name_or_path: str) -> ModelShape | None:
    """The shape of a model from the known table, a local folder or the Hub cache; None if unknown."""
    from legalft.train.smoke import SMOKE_MODEL_ID, SmokeModelSpec

    if name_or_path == SMOKE_MODEL_ID:
        spec = SmokeModelSpec()
        return ModelShape(spec.hidden_size, spec.num_hidden_layers, spec.intermediate_size, spec.vocab_size,
                          spec.num_attention_heads, spec.num_key_value_heads)
    key = re.sub(r"-(instruct|it)$", "", name_or_path.lower().rstrip("/"))
    if key in KNOWN_SHAPES:
        return KNOWN_SHAPES[key]
    path = Path(name_or_path).expanduser()
    config_file = path / "config.json" if path.is_dir() else None
    if config_file is None and "/" in name_or_path and not name_or_path.startswith((".", "/", "~")):
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(name_or_path, "config.json")
            config_file = Path(cached) if isinstance(cached, str) else None
        except Exception:  # noqa: BLE001 - a cache lookup never blocks an estimate
            config_file = None
    if config_file and config_file.exists():
        try:
            return ModelShape.from_config(json.loads(config_file.read_text(encoding="utf-8")))
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("cannot read the shape of %s from %s: %s", name_or_path, config_file, exc)
    return None


# ---- memory estimate --------------------------------------------------------------------------

@dataclass
class MemoryEstimate:
    """Peak memory of one training process, in GiB, by component."""

    device: str
    """``cuda`` or ``cpu``: where the estimate says training runs."""
    available_gib: float
    """Memory of one GPU (or 80 % of RAM on the CPU)."""
    params_billion: float | None = None
    trainable_params_million: float | None = None
    weights_gib: float = 0.0
    adapter_gib: float = 0.0
    gradients_gib: float = 0.0
    optimizer_gib: float = 0.0
    activations_gib: float = 0.0
    overhead_gib: float = 0.0
    total_gib: float = 0.0
    fits: bool | None = None
    """None when the model's size is unknown."""
    suggestion: str | None = None
    """What to change when it does not fit."""
    suggested_overrides: dict[str, Any] = field(default_factory=dict)
    """The same suggestion as ``TrainConfig.with_overrides`` keys, for a one-click fix."""
    notes: list[str] = field(default_factory=list)

    def components(self) -> dict[str, float]:
        return {"weights": self.weights_gib, "LoRA adapter": self.adapter_gib, "gradients": self.gradients_gib,
                "optimizer state": self.optimizer_gib, "activations": self.activations_gib,
                "overhead": self.overhead_gib}


def _target_names(target_modules: Any, shape: ModelShape) -> list[str]:
    names = list(shape.linear_shapes())
    if target_modules in (None, "all-linear"):
        return names
    if isinstance(target_modules, str):
        return [n for n in names if n in target_modules]
    return [n for n in names if n in set(target_modules)]


def _estimate(config: TrainConfig, hardware: Hardware, shape: ModelShape) -> MemoryEstimate:
    on_gpu = hardware.has_gpu and config.device != "cpu"
    world = max(1, config.distributed.num_processes * config.distributed.num_machines)
    if on_gpu:
        available = hardware.gpu_memory_gib
        act_bytes = 4 if config.precision == "fp32" else 2
    else:
        available = hardware.ram_gib * 0.8
        act_bytes = 2 if config.precision == "bf16" else 4
    params = shape.params
    sft, lora = config.sft, config.lora

    # Frozen base weights (LoRA) or fp32 master weights (full fine-tuning under mixed precision).
    if config.method == "qlora":
        weight_bytes = 0.55  # NF4 plus quantization constants
    elif config.method == "lora-8bit":
        weight_bytes = 1.05
    elif config.method == "full":
        weight_bytes = 4
    else:
        weight_bytes = act_bytes
    estimate = MemoryEstimate(device="cuda" if on_gpu else "cpu", available_gib=available,
                              params_billion=params / 1e9)
    estimate.weights_gib = params * weight_bytes / GIB

    if config.method == "full":
        trainable = params - shape.extra_params
        estimate.gradients_gib = trainable * 4 / GIB
        estimate.optimizer_gib = trainable * 8 / GIB  # AdamW: two fp32 moments
    else:
        rank = int(lora.get("r") or 16)
        shapes = shape.linear_shapes()
        per_layer = sum(rank * (shapes[n][0] + shapes[n][1]) for n in _target_names(lora.get("target_modules"), shape))
        trainable = per_layer * shape.num_layers
        estimate.adapter_gib = trainable * 4 / GIB
        estimate.gradients_gib = trainable * 4 / GIB
        estimate.optimizer_gib = trainable * 8 / GIB
    estimate.trainable_params_million = trainable / 1e6

    # Sharding across processes divides what the strategy shards.
    strategy = config.distributed.strategy
    if world > 1 and strategy == "fsdp":
        estimate.weights_gib /= world
        estimate.gradients_gib /= world
        estimate.optimizer_gib /= world
    elif world > 1 and strategy == "deepspeed":
        stage = config.distributed.deepspeed_stage
        estimate.optimizer_gib /= world
        if stage >= 2:
            estimate.gradients_gib /= world
        if stage >= 3:
            estimate.weights_gib /= world

    # Activations of one micro-batch: each layer keeps about (8·hidden + 4·intermediate) values per
    # token for the backward pass; gradient checkpointing keeps only each layer's input and recomputes
    # one layer at a time. Logits are upcast to fp32 for the loss, and their gradient is as large.
    tokens = int(sft.get("per_device_train_batch_size") or 1) * int(sft.get("max_length") or 1024)
    per_layer_token = act_bytes * (8 * shape.hidden_size + 4 * shape.intermediate_size)
    if sft.get("activation_checkpointing"):
        layers_bytes = tokens * (shape.num_layers * shape.hidden_size * act_bytes + per_layer_token)
    else:
        layers_bytes = tokens * shape.num_layers * per_layer_token
    logits_bytes = tokens * shape.vocab_size * 4 * 2
    estimate.activations_gib = (layers_bytes + logits_bytes) / GIB

    subtotal = (estimate.weights_gib + estimate.adapter_gib + estimate.gradients_gib + estimate.optimizer_gib
                + estimate.activations_gib)
    # CUDA context and allocator fragmentation; on the CPU the interpreter and libraries.
    estimate.overhead_gib = (1.0 + 0.1 * subtotal) if on_gpu else (0.7 + 0.05 * subtotal)
    estimate.total_gib = subtotal + estimate.overhead_gib
    estimate.fits = estimate.total_gib <= available
    return estimate


def estimate_memory(config: TrainConfig, hardware: Hardware | None = None,
                    shape: ModelShape | None = None) -> MemoryEstimate:
    """Peak memory of training ``config`` on ``hardware`` (default: this machine), with a suggestion.

    When it does not fit, the suggestion applies changes in order of how little they cost in quality
    (gradient checkpointing, smaller micro-batches with more accumulation, QLoRA, a shorter max
    length, LoRA instead of full) until it fits, and says what remains if nothing does.
    """
    hardware = hardware or detect_hardware()
    shape = shape or model_shape(config.base_model)
    if shape is None:
        on_gpu = hardware.has_gpu and config.device != "cpu"
        return MemoryEstimate(
            device="cuda" if on_gpu else "cpu",
            available_gib=hardware.gpu_memory_gib if on_gpu else hardware.ram_gib * 0.8,
            notes=[f"the size of {config.base_model!r} is unknown here (not a known model, a local folder"
                   " or in the Hub cache), so memory cannot be estimated"],
        )
    estimate = _estimate(config, hardware, shape)
    if estimate.device == "cpu" and config.method in ("qlora", "lora-8bit"):
        estimate.fits = False
        estimate.notes.append(f"{config.method} needs a CUDA GPU (bitsandbytes)")
    if estimate.fits:
        return estimate

    overrides: dict[str, Any] = {}
    # Keyed by the first setting a step changes, so halving a value twice reads as its final value.
    steps: dict[str, str] = {}
    candidate = config
    on_gpu = estimate.device == "cuda"

    def trial(changes: dict[str, Any], text: str) -> bool:
        nonlocal candidate
        try:
            trial_config = candidate.with_overrides(changes)
        except ValueError:
            return False
        overrides.update(changes)
        steps[next(iter(changes))] = text
        candidate = trial_config
        result = _estimate(candidate, hardware, shape)
        return bool(result.fits) and not (result.device == "cpu" and candidate.method in ("qlora", "lora-8bit"))

    fitted = False
    if config.method in ("qlora", "lora-8bit") and not on_gpu:
        fitted = trial({"method": "lora"}, "method: lora (quantized loading needs a GPU)")
    if not fitted and not candidate.sft.get("activation_checkpointing"):
        fitted = trial({"sft.activation_checkpointing": True}, "sft.activation_checkpointing: true")
    while not fitted and int(candidate.sft.get("per_device_train_batch_size") or 1) > 1:
        batch = int(candidate.sft["per_device_train_batch_size"]) // 2
        accum = int(candidate.sft.get("gradient_accumulation_steps") or 1) * 2
        fitted = trial({"sft.per_device_train_batch_size": batch, "sft.gradient_accumulation_steps": accum},
                       f"sft.per_device_train_batch_size: {batch} with sft.gradient_accumulation_steps: {accum}")
    if not fitted and candidate.method == "full":
        fitted = trial({"method": "lora"}, "method: lora (no optimizer state for the base weights)")
    if not fitted and on_gpu and candidate.method in ("lora", "lora-8bit"):
        fitted = trial({"method": "qlora"}, "method: qlora (4-bit base weights)")
    while not fitted and int(candidate.sft.get("max_length") or 1024) > 256:
        length = int(candidate.sft.get("max_length") or 1024) // 2
        fitted = trial({"sft.max_length": length}, f"sft.max_length: {length}")

    final = _estimate(candidate, hardware, shape)
    if fitted:
        estimate.suggestion = (f"does not fit in {estimate.available_gib:.0f} GiB; with "
                               + "; ".join(steps.values()) + f" it needs about {final.total_gib:.1f} GiB")
        estimate.suggested_overrides = overrides
    else:
        where = "GPU" if on_gpu else "machine"
        estimate.suggestion = (
            f"does not fit in {estimate.available_gib:.0f} GiB even with " + "; ".join(list(steps.values()) or ["any change"])
            + f" (about {final.total_gib:.1f} GiB): use a {where} with more memory, several GPUs with"
            " distributed.strategy: fsdp, or a smaller base model"
        )
    return estimate
