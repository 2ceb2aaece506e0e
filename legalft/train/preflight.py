"""Checks before a job starts, so failures surface as one actionable message instead of deep in TRL.

``check_dataset`` needs nothing heavy; ``inspect_chat_template`` and ``preflight`` load the
tokenizer (transformers) and check setting names against TRL and PEFT, which takes seconds.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from legalft.train.config import TrainConfig, TrainConfigError, check_library_fields
from legalft.train.errors import DATASET_PAGE_HINT, DatasetError, ModelUnavailableError, describe_model_error
from legalft.train.hardware import Hardware, MemoryEstimate, detect_hardware, estimate_memory
from legalft.train.smoke import SMOKE_MODEL_ID, ensure_smoke_model

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
FORMATS = ("messages", "prompt-completion", "text")


# ---- base model and tokenizer -----------------------------------------------------------------

def resolve_base_model(name: str) -> str:
    """What ``from_pretrained`` should load: ``builtin:smoke`` is built on first use, a path must exist."""
    if name == SMOKE_MODEL_ID:
        return str(ensure_smoke_model())
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if name.startswith(("/", "./", "../", "~")):
        raise ModelUnavailableError(
            f"the base model folder {name!r} does not exist: give an existing folder, a Hub id"
            " (org/name), or builtin:smoke"
        )
    return name


def read_chat_template(value: str) -> str:
    """A chat template override: the text of a ``.jinja``/``.j2`` file, or the template itself."""
    path = Path(value).expanduser()
    if path.suffix in (".jinja", ".j2", ".txt"):
        if not path.exists():
            raise TrainConfigError([f"chat_template file {value!r} does not exist"])
        return path.read_text(encoding="utf-8")
    if "{{" in value or "{%" in value:
        return value
    raise TrainConfigError([f"chat_template {value[:60]!r} is neither a .jinja file nor a Jinja template"])


def load_tokenizer(config: TrainConfig, model_path: str | None = None):
    """The run's tokenizer, with the chat template override applied and a pad token set."""
    from transformers import AutoTokenizer

    model_path = model_path or resolve_base_model(config.base_model)
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=config.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ModelUnavailableError(describe_model_error(config.base_model, exc)) from exc
    if config.chat_template:
        tokenizer.chat_template = read_chat_template(config.chat_template)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        # Causal LMs often ship without a pad token; padding positions carry no loss.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


@dataclass
class TemplateReport:
    """Whether a tokenizer's chat template supports assistant-only loss."""

    has_template: bool
    has_generation_markers: bool
    trl_training_template: bool
    """TRL knows a training variant of this template (it swaps it in by itself)."""
    problem: str | None = None
    """Set when assistant-only loss cannot work, with the two ways out."""

    @property
    def supports_assistant_only_loss(self) -> bool:
        return self.has_template and (self.has_generation_markers or self.trl_training_template)


def inspect_chat_template(tokenizer, model_name: str = "the model") -> TemplateReport:
    """Check the template for the ``{% generation %}`` markers that TRL's assistant-only loss needs."""
    from trl.chat_template_utils import get_training_chat_template, has_generation_markers

    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return TemplateReport(False, False, False, problem=(
            f"the tokenizer of {model_name} has no chat template, so conversations cannot be formatted:"
            " set chat_template: to a .jinja file (with {% generation %} markers for answers-only loss)"))
    markers = has_generation_markers(template)
    patched = False
    if not markers:
        try:
            patched = get_training_chat_template(tokenizer) is not None
        except (ValueError, TypeError):
            patched = False
    report = TemplateReport(True, markers, patched)
    if not report.supports_assistant_only_loss:
        report.problem = (
            f"the chat template of {model_name} has no {{% generation %}} markers, which assistant-only loss needs"
            " (and TRL has no training variant of it). Train on the whole sequence instead"
            " (set sft.assistant_only_loss: false, or `--set sft.assistant_only_loss=false`), or set"
            " chat_template: to a copy of the template with {% generation %}...{% endgeneration %} around"
            " the assistant turn"
        )
    return report


# ---- datasets ---------------------------------------------------------------------------------

@dataclass
class DatasetCheck:
    """What a training file holds, and the lines that stop it from training."""

    path: str
    records: int = 0
    format: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.records > 0

    def message(self) -> str:
        return f"the dataset {self.path} cannot be used for training: " + "; ".join(self.problems) + \
            f". {DATASET_PAGE_HINT}"


def _record_format(record: dict[str, Any]) -> str | None:
    if "messages" in record:
        return "messages"
    if "prompt" in record and "completion" in record:
        return "prompt-completion"
    if "text" in record:
        return "text"
    return None


def _record_problem(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"is a JSON {type(record).__name__}, not an object"
    kind = _record_format(record)
    if kind is None:
        return "has none of messages, prompt+completion or text"
    if kind == "messages":
        messages = record["messages"]
        if not isinstance(messages, list) or not messages:
            return "has an empty or non-list messages field"
        for number, message in enumerate(messages, start=1):
            if not isinstance(message, dict):
                return f"message {number} is not an object"
            role = message.get("role")
            if role not in ROLES:
                shown = role if not isinstance(role, str) or len(role) < 40 else role[:37] + "..."
                return f"message {number} has role {shown!r} (expected system, user or assistant)"
            if not isinstance(message.get("content"), str) or not message["content"].strip():
                return f"message {number} ({role}) has no text content"
        if not any(m.get("role") == "assistant" for m in messages):
            return "has no assistant message to learn from"
        return None
    if kind == "prompt-completion":
        if not record["prompt"] or not record["completion"]:
            return "has an empty prompt or completion"
        return None
    if not isinstance(record["text"], str) or not record["text"].strip():
        return "has an empty text field"
    return None


def check_dataset(path: str | Path, max_problems: int = 5) -> DatasetCheck:
    """Read a JSONL training file line by line; problems name the line numbers (1-based)."""
    check = DatasetCheck(path=str(path))
    bad_lines = 0
    try:
        handle = open(path, encoding="utf-8")
    except OSError as exc:
        check.problems.append(f"cannot open it ({exc.strerror or exc})")
        return check
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    problem = f"is not valid JSON ({exc.msg})"
                    record = None
                else:
                    problem = _record_problem(record)
                if problem is None:
                    kind = _record_format(record)
                    if check.format is None:
                        check.format = kind
                    elif kind != check.format:
                        problem = f"is a {kind} record in a file of {check.format} records"
                if problem is None:
                    check.records += 1
                    continue
                bad_lines += 1
                if len(check.problems) < max_problems:
                    check.problems.append(f"line {number}: {problem}")
        except UnicodeDecodeError:
            check.problems.append("it is not UTF-8 text")
            return check
    if bad_lines > max_problems:
        check.problems.append(f"and {bad_lines - max_problems} more bad lines")
    if not check.records and not check.problems:
        check.problems.append("it holds no records")
    return check


def load_records(path: str | Path) -> list[dict[str, Any]]:
    """The records of a checked training file; raises DatasetError with line numbers otherwise."""
    check = check_dataset(path)
    if not check.ok:
        raise DatasetError(check.message())
    records = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                records.append(json.loads(line))
    if check.format == "messages":
        # Keep only the fields the trainer reads, so extra metadata columns cannot break Arrow typing.
        records = [{"messages": [{"role": m["role"], "content": m["content"]} for m in r["messages"]]}
                   for r in records]
    elif check.format == "prompt-completion":
        records = [{"prompt": r["prompt"], "completion": r["completion"]} for r in records]
    else:
        records = [{"text": r["text"]} for r in records]
    return records


# ---- the whole preflight ----------------------------------------------------------------------

@dataclass
class TrainPreflight:
    """Everything checked before a job starts. ``problems`` block the start; ``warnings`` do not."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    dataset: DatasetCheck | None = None
    template: TemplateReport | None = None
    memory: MemoryEstimate | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def check_hardware(config: TrainConfig, hardware: Hardware) -> list[str]:
    """Contradictions between the config and this machine."""
    problems = []
    if config.device == "cuda" and not hardware.has_gpu:
        problems.append("device is cuda but this machine has no CUDA GPU: set device: auto (or cpu)")
    if config.method in ("qlora", "lora-8bit") and not hardware.has_gpu and config.device != "cpu":
        problems.append(
            f"method {config.method} needs a CUDA GPU (bitsandbytes) and this machine has none:"
            " set method: lora to train on the CPU (a small model such as the smollm2-135m-instruct recipe)"
        )
    wanted = config.distributed.num_processes
    if wanted > 1 and wanted > len(hardware.gpus):
        problems.append(
            f"distributed.num_processes is {wanted} but this machine has {len(hardware.gpus)} GPU(s):"
            f" set distributed.num_processes: {max(len(hardware.gpus), 1)}"
        )
    if config.precision == "bf16" and hardware.has_gpu and not hardware.supports_bf16:
        problems.append("this GPU does not compute in bf16 (needs Ampere or later): set precision: fp16 or auto")
    return problems


def preflight(config: TrainConfig, hardware: Hardware | None = None, *, load_model_files: bool = True) -> TrainPreflight:
    """Check a config before starting it: files, hardware, setting names, chat template, memory.

    With ``load_model_files`` the tokenizer is loaded (a local folder, the Hub cache, or a download
    when online), which is how an unreachable or gated model is caught before the job starts.
    """
    report = TrainPreflight()
    hardware = hardware or detect_hardware()
    if not config.train_file:
        report.problems.append("there is no training file: pick one on the Dataset page, or pass --dataset FILE")
    else:
        report.dataset = check_dataset(config.train_file)
        if not report.dataset.ok:
            report.problems.append(report.dataset.message())
    if config.validation_file:
        validation = check_dataset(config.validation_file)
        if not validation.ok:
            report.problems.append(validation.message().replace("the dataset", "the validation set", 1))
    report.problems += check_hardware(config, hardware)
    report.problems += check_library_fields(config)
    if load_model_files:
        try:
            tokenizer = load_tokenizer(config)
        except (ModelUnavailableError, TrainConfigError) as exc:
            report.problems.append(str(exc))
        else:
            if config.assistant_only_loss:
                report.template = inspect_chat_template(tokenizer, config.base_model)
                if report.template.problem:
                    report.problems.append(report.template.problem)
    if config.sft.get("packing") and not str(config.attn_implementation or "").startswith("flash"):
        # Padding-free packing relies on variable-length attention kernels; without them attention
        # spans the whole packed row, which measured slower than no packing on the CPU (bench/train.py).
        report.warnings.append("packing without attn_implementation: flash_attention_2 (or another varlen kernel)"
                               " computes attention over the whole packed row: expect it to be slower, not faster")
    report.memory = estimate_memory(config, hardware)
    if report.memory.fits is False and report.memory.suggestion:
        report.warnings.append(f"memory: about {report.memory.total_gib:.1f} GiB needed; {report.memory.suggestion}")
    report.warnings += report.memory.notes
    return report
