"""The training configuration: what to train, how, and on what hardware.

``TrainConfig`` holds the decisions that are this project's own (base model, method, files,
precision, device, distribution). Everything TRL's ``SFTConfig`` and PEFT's ``LoraConfig`` already
define is passed through their own field names in the ``sft`` and ``lora`` sections, so nothing of
theirs is re-declared here; ``check_library_fields`` checks those names against the installed
libraries. Contradictions are rejected in ``__post_init__`` with a message that says what to change.

Nothing here imports torch, transformers, trl or peft at module level.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from legalft.errors import ConfigError

METHODS = ("lora", "qlora", "lora-8bit", "full")
PRECISIONS = ("auto", "bf16", "fp16", "fp32")
DEVICES = ("auto", "cuda", "cpu")
STRATEGIES = ("ddp", "fsdp", "deepspeed")
MODEL_CLASSES = ("causal-lm", "image-text-to-text")

#: Project defaults under a recipe's ``sft:`` section (TRL ``SFTConfig`` field names). They follow the
#: reference recipe except where a default there would surprise: ``logging_steps: 1`` so
#: ``metrics.jsonl`` has a row per optimizer step. ``eval_strategy`` is left out on purpose: with a
#: validation file the run evaluates at every checkpoint unless the recipe says otherwise.
DEFAULT_SFT: dict[str, Any] = {
    "num_train_epochs": 3,
    "learning_rate": 1e-4,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.03,
    "per_device_train_batch_size": 1,
    "gradient_accumulation_steps": 4,
    "max_length": 1024,
    "packing": False,
    "assistant_only_loss": True,
    "activation_checkpointing": True,
    "seed": 42,
    "logging_steps": 1,
    "save_strategy": "steps",
    "save_steps": 50,
    "save_total_limit": 2,
}

#: Project defaults under a recipe's ``lora:`` section (PEFT ``LoraConfig`` field names).
DEFAULT_LORA: dict[str, Any] = {
    "r": 16,
    "lora_alpha": 32,
    "lora_dropout": 0.05,
    "bias": "none",
    "target_modules": "all-linear",
}

#: ``SFTConfig`` fields the run decides from ``TrainConfig``'s own fields; setting them in ``sft`` is
#: a contradiction, and the value says what to set instead.
RESERVED_SFT_KEYS: dict[str, str] = {
    "output_dir": "the run directory decides where checkpoints go",
    "bf16": "set precision: bf16",
    "fp16": "set precision: fp16",
    "use_cpu": "set device: cpu",
    "report_to": "set report_to: at the top level (trackio, tensorboard, wandb, mlflow)",
    "resume_from_checkpoint": "use `legalft jobs resume ID`",
    "chat_template_path": "set chat_template:",
    "trust_remote_code": "set trust_remote_code: at the top level",
}

#: TRL reporters a run can send metrics to, besides its own ``metrics.jsonl``.
REPORTERS = ("trackio", "tensorboard", "wandb", "mlflow")

#: Deprecated names the libraries still accept; stored under the current name.
ALIASES: dict[str, str] = {
    "gradient_checkpointing": "activation_checkpointing",
    "gradient_checkpointing_kwargs": "activation_checkpointing_kwargs",
}

#: Names that moved between library versions, with the name to use now.
RENAMED_KEYS: dict[str, str] = {
    "max_seq_length": "max_length",
    "warmup_ratio": "warmup_steps (a float below 1 is read as a ratio of the total steps)",
    "evaluation_strategy": "eval_strategy",
    "lora_r": "r",
    "alpha": "lora_alpha",
    "dropout": "lora_dropout",
}


class TrainConfigError(ConfigError):
    """A training configuration that cannot run; ``problems`` lists what to change, one message each."""


@dataclass
class DistributedConfig:
    """How many processes train, and how they share the model."""

    num_processes: int = 1
    """Processes (GPUs) per machine; above 1 the job starts through ``accelerate launch``."""
    strategy: str = "ddp"
    """``ddp`` (data parallel, a full copy per GPU), ``fsdp`` (shards weights and optimizer state) or ``deepspeed``."""
    deepspeed_stage: int = 2
    """ZeRO stage when strategy is ``deepspeed`` (2 shards optimizer state and gradients, 3 the weights too)."""
    num_machines: int = 1
    """Machines in a multi-node run; each runs the same job with its own ``machine_rank``."""
    machine_rank: int = 0
    main_process_ip: str | None = None
    """Address of machine 0, needed when ``num_machines`` is above 1."""
    main_process_port: int = 29500


@dataclass
class TrainConfig:
    """One training run: the base model, the data, the method and its settings."""

    base_model: str
    """Hub id (``meta-llama/Llama-3.1-8B-Instruct``), local folder, or ``builtin:smoke`` (the offline tiny model)."""
    method: str = "lora"
    """``lora``, ``qlora`` (4-bit base, needs a CUDA GPU), ``lora-8bit`` (8-bit base, needs a CUDA GPU) or ``full``."""
    train_file: str | None = None
    """JSONL of ``messages`` (or ``prompt``/``completion``, or ``text``) records, as the Dataset page writes them."""
    validation_file: str | None = None
    """Optional held-out JSONL in the same format; needed when ``sft.eval_strategy`` is not ``no``."""
    precision: str = "auto"
    """``auto`` (bf16 on a GPU that has it, else fp16 on a GPU, fp32 on the CPU), ``bf16``, ``fp16`` or ``fp32``."""
    device: str = "auto"
    """``auto`` (a CUDA GPU when present), ``cuda`` or ``cpu``."""
    chat_template: str | None = None
    """Override of the tokenizer's chat template: a ``.jinja`` file or the template text itself."""
    trust_remote_code: bool = False
    """Allow model code from the Hub (only for models that need it)."""
    model_class: str = "causal-lm"
    """``causal-lm`` (AutoModelForCausalLM) or ``image-text-to-text`` for multimodal checkpoints that need it."""
    attn_implementation: str | None = None
    """``sdpa``, ``eager``, ``flash_attention_2``...; None lets transformers choose."""
    freeze_modules: list[str] = field(default_factory=list)
    """Regular expressions of parameter names kept frozen in ``full`` training (vision and audio towers)."""
    lora: dict[str, Any] = field(default_factory=dict)
    """PEFT ``LoraConfig`` fields (r, lora_alpha, lora_dropout, target_modules, bias...), over DEFAULT_LORA."""
    sft: dict[str, Any] = field(default_factory=dict)
    """TRL ``SFTConfig`` fields (num_train_epochs, learning_rate, max_length, packing...), over DEFAULT_SFT."""
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    """Multi-GPU and multi-node settings."""
    name: str | None = None
    """A label for the run (recipe name by default)."""
    description: str | None = None
    """One line on what the recipe is for."""
    report_to: list[str] = field(default_factory=list)
    """Experiment trackers besides ``metrics.jsonl``: ``trackio`` (local, no account), ``tensorboard``,
    ``wandb``, ``mlflow`` (TRL's reporters; their keys come from the environment)."""
    init_adapter: str | None = None
    """Continue from a finished run's LoRA adapter: its job id, run folder or adapter folder."""

    def __post_init__(self) -> None:
        if isinstance(self.distributed, dict):
            self.distributed = _build(DistributedConfig, self.distributed, "distributed")
        self.lora = {key: _coerce_number(value) for key, value in {**DEFAULT_LORA, **(self.lora or {})}.items()}
        sft = dict(self.sft or {})
        for old, new in ALIASES.items():
            if old in sft:
                value = sft.pop(old)
                sft.setdefault(new, value)
        self.sft = {key: _coerce_number(value) for key, value in {**DEFAULT_SFT, **sft}.items()}
        self.freeze_modules = list(self.freeze_modules or [])
        if isinstance(self.report_to, str):
            self.report_to = [] if self.report_to in ("", "none") else [self.report_to]
        self.report_to = list(dict.fromkeys(self.report_to or []))
        self.init_adapter = str(self.init_adapter).strip() or None if self.init_adapter else None
        problems = self.find_problems()
        if problems:
            raise TrainConfigError(problems)

    # The contradictions a config can be checked for without the hardware or the heavy libraries.
    def find_problems(self) -> list[str]:
        problems: list[str] = []
        if not self.base_model or not str(self.base_model).strip():
            problems.append("base_model is empty: give a Hub id, a local folder or builtin:smoke")
        problems += _check_choice("method", self.method, METHODS)
        problems += _check_choice("precision", self.precision, PRECISIONS)
        problems += _check_choice("device", self.device, DEVICES)
        problems += _check_choice("model_class", self.model_class, MODEL_CLASSES)
        problems += _check_choice("distributed.strategy", self.distributed.strategy, STRATEGIES)
        if self.method in ("qlora", "lora-8bit") and self.device == "cpu":
            problems.append(
                f"method {self.method} loads the base model quantized with bitsandbytes, which needs a CUDA GPU:"
                " set method: lora to train on the CPU, or device: auto on a GPU machine"
            )
        if self.precision == "fp16" and self.device == "cpu":
            problems.append("fp16 mixed precision needs a GPU: set precision: fp32 (or auto) to train on the CPU")
        for key, hint in RESERVED_SFT_KEYS.items():
            if key in self.sft:
                problems.append(f"sft.{key} is decided by the run ({hint}): remove it from sft")
        for section, values in (("sft", self.sft), ("lora", self.lora)):
            for key in values:
                if key in RENAMED_KEYS:
                    problems.append(f"{section}.{key} is not a setting any more: use {section}.{RENAMED_KEYS[key]}")
        for reporter in self.report_to:
            if reporter not in REPORTERS:
                problems.append(f"report_to {reporter!r} is not a tracker this project runs: choose from "
                                f"{', '.join(REPORTERS)}")
        if self.init_adapter and not self.uses_lora:
            problems.append("init_adapter continues a LoRA adapter, but method is full: set method: lora (or "
                            "qlora), or remove init_adapter")
        problems += self._check_numbers()
        eval_strategy = str(self.sft.get("eval_strategy") or "no")
        if eval_strategy != "no" and not self.validation_file:
            problems.append(
                f"sft.eval_strategy is {eval_strategy!r} but there is no validation_file:"
                " give a validation file, or set sft.eval_strategy: no"
            )
        limit = self.sft.get("save_total_limit")
        if limit is not None and int(limit) < 1:
            problems.append("sft.save_total_limit must keep at least 1 checkpoint, or the job cannot resume")
        dist = self.distributed
        if dist.num_processes < 1 or dist.num_machines < 1:
            problems.append("distributed.num_processes and distributed.num_machines must be at least 1")
        if (dist.num_processes > 1 or dist.num_machines > 1) and self.device == "cpu":
            problems.append("multi-process training here is for GPUs: set distributed.num_processes: 1 on the CPU")
        if dist.num_machines > 1 and not dist.main_process_ip:
            problems.append("a multi-node run needs distributed.main_process_ip (the address of machine 0)")
        if not 0 <= dist.machine_rank < max(dist.num_machines, 1):
            problems.append(f"distributed.machine_rank must be between 0 and {dist.num_machines - 1}")
        if dist.strategy == "deepspeed" and dist.deepspeed_stage not in (1, 2, 3):
            problems.append("distributed.deepspeed_stage must be 1, 2 or 3")
        return problems

    def _check_numbers(self) -> list[str]:
        problems: list[str] = []
        sft, lora = self.sft, self.lora

        def number(section: dict, key: str):
            value = section.get(key)
            if value is None:
                return None
            try:
                return float(value)
            except (TypeError, ValueError):
                problems.append(f"{key} must be a number, not {value!r}")
                return None

        epochs, max_steps = number(sft, "num_train_epochs"), number(sft, "max_steps")
        if (max_steps is None or max_steps <= 0) and (epochs is None or epochs <= 0):
            problems.append("sft.num_train_epochs must be above 0 (or set sft.max_steps)")
        lr = number(sft, "learning_rate")
        if lr is not None and not 0 < lr < 1:
            problems.append(f"sft.learning_rate {lr:g} is out of range: LoRA typically uses 1e-4 to 2e-4, full 1e-5")
        for key in ("per_device_train_batch_size", "gradient_accumulation_steps"):
            value = number(sft, key)
            if value is not None and (value < 1 or value != int(value)):
                problems.append(f"sft.{key} must be a whole number of at least 1")
        max_length = number(sft, "max_length")
        if max_length is not None and max_length < 16:
            problems.append("sft.max_length below 16 tokens cannot hold a question and an answer: raise it")
        warmup = number(sft, "warmup_steps")
        if warmup is not None and warmup < 0:
            problems.append("sft.warmup_steps must be 0 or more (a float below 1 is a ratio)")
        if self.method != "full":
            rank = number(lora, "r")
            if rank is not None and (rank < 1 or rank != int(rank)):
                problems.append("lora.r must be a whole number of at least 1 (8 to 64 is usual)")
            dropout = number(lora, "lora_dropout")
            if dropout is not None and not 0 <= dropout < 1:
                problems.append("lora.lora_dropout must be in [0, 1)")
        return problems

    # ---- conversions -------------------------------------------------------------------------
    @property
    def uses_lora(self) -> bool:
        return self.method != "full"

    @property
    def assistant_only_loss(self) -> bool:
        return bool(self.sft.get("assistant_only_loss"))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (YAML/JSON ready)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        """Build from plain data; unknown top-level keys are an error that lists the known ones."""
        return _build(cls, data, "config")

    def with_overrides(self, overrides: dict[str, Any]) -> "TrainConfig":
        """A copy with dotted keys set (``method``, ``sft.learning_rate``, ``lora.r``, ``distributed.num_processes``)."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            apply_override(data, dotted, value)
        return TrainConfig.from_dict(data)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TrainConfig":
        """Read a YAML config (a recipe or a run's ``config.yaml``)."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TrainConfigError([f"{path} is not valid YAML: {exc}"]) from exc
        if not isinstance(data, dict):
            raise TrainConfigError([f"{path} must hold a mapping of settings, not {type(data).__name__}"])
        return cls.from_dict(data)


_NUMBER_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _coerce_number(value: Any) -> Any:
    """``"2e-4"`` as 0.0002: YAML 1.1 reads exponents without a dot as strings."""
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        number = float(value)
        return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


def _check_choice(name: str, value: Any, choices: tuple[str, ...]) -> list[str]:
    if value not in choices:
        return [f"{name} {value!r} is not one of: {', '.join(choices)}"]
    return []


def _build(cls, data: dict[str, Any], where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        hints = []
        for key in unknown:
            if key in RENAMED_KEYS:
                hints.append(f"{key} (use {RENAMED_KEYS[key]})")
            else:
                hints.append(key)
        raise TrainConfigError(
            [f"unknown {where} setting(s): {', '.join(hints)}; known: {', '.join(sorted(known))}"
             " (TRL settings go under sft:, PEFT settings under lora:)"]
        )
    if cls is TrainConfig and "base_model" not in data:
        raise TrainConfigError(["base_model is missing: give a Hub id, a local folder or builtin:smoke"])
    return cls(**copy.deepcopy(data))


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as YAML (``2e-4``, ``true``, ``[q_proj]``)."""
    if "=" not in text:
        raise TrainConfigError([f"--set {text!r} needs the form key=value, e.g. sft.learning_rate=2e-4"])
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def apply_override(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``dotted`` (``sft.learning_rate``) in nested plain data."""
    parts = dotted.split(".")
    target = data
    for part in parts[:-1]:
        if not isinstance(target.get(part), dict):
            if part not in ("sft", "lora", "distributed"):
                raise TrainConfigError([f"cannot set {dotted!r}: {part!r} is not a section (sft, lora, distributed)"])
            target[part] = {}
        target = target[part]
    target[parts[-1]] = value


def check_library_fields(config: TrainConfig) -> list[str]:
    """Names in ``sft`` and ``lora`` that the installed TRL and PEFT do not know. Imports trl (seconds)."""
    from peft import LoraConfig
    from trl import SFTConfig

    problems: list[str] = []
    for section, values, cls in (("sft", config.sft, SFTConfig), ("lora", config.lora, LoraConfig)):
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known and key not in RENAMED_KEYS:
                close = [k for k in known if key.replace("_", "") in k.replace("_", "")][:3]
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                problems.append(f"{section}.{key} is not a {cls.__name__} setting{hint}")
    return problems
