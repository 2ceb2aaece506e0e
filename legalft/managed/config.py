"""``LaunchConfig``: a managed fine-tuning job's settings, checked before anything is uploaded."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

MAX_SUFFIX_CHARS = 64
HYPERPARAMETER_NAMES = (
    "n_epochs", "learning_rate", "batch_size", "warmup_ratio", "weight_decay", "max_grad_norm",
    "context_length", "packing", "lora", "lora_r", "lora_alpha", "lora_dropout",
)

#: The service's published ranges (fine-tuning OpenAPI 20260630, ``SupervisedHParameters``):
#: name -> (lowest, highest); None where the schema sets no bound. Checked before anything is uploaded.
SERVICE_LIMITS: dict[str, tuple[float | None, float | None]] = {
    "n_epochs": (1, 20), "batch_size": (1, 64), "lora_r": (8, 128), "lora_alpha": (8, None),
    "context_length": (8192, 131072), "warmup_ratio": (0, 1), "weight_decay": (0, None),
    "lora_dropout": (0, 1),
}
INTEGRATION_KINDS = ("wandb", "mlflow", "hf")
# Rough tokens per character for English legal text; good enough for a cost estimate before upload.


@dataclass
class LaunchConfig:
    """A Token Factory fine-tuning job's settings; values are checked here, before anything is sent."""

    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    """Base model to fine-tune (see ``legalft tf models``)."""
    n_epochs: int = 3
    """Passes over the training file."""
    learning_rate: float = 1e-5
    """Peak learning rate."""
    batch_size: int | None = None
    """Examples per step (the service's default is 8)."""
    lora: bool = True
    """Train a LoRA adapter (deployable serverlessly) instead of the full weights."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 16
    """LoRA scaling numerator."""
    lora_dropout: float = 0.05
    """Dropout on the LoRA layers, in [0, 1)."""
    packing: bool = True
    """Pack several short examples into one sequence."""
    context_length: int | None = None
    """Longest sequence in tokens (the service's default is 8192)."""
    warmup_ratio: float | None = None
    """Fraction of steps spent warming the learning rate up, in [0, 1)."""
    weight_decay: float | None = None
    """AdamW weight decay."""
    max_grad_norm: float | None = None
    """Gradient clipping norm."""
    suffix: str | None = None
    """Added to the fine-tuned model's name; at most 64 characters."""
    seed: int | None = None
    """Seed for a reproducible run."""
    from_checkpoint: str | None = None
    """Continue from an earlier checkpoint: ``JOB:CHECKPOINT`` (the service's ids, e.g. from
    ``legalft tf status``) or a Hugging Face repo (``org/name`` or ``org/name@revision``)."""
    integrations: list[str] = field(default_factory=list)
    """Experiment tracking and export on the service's side: ``wandb``, ``mlflow``, ``hf``; their
    settings come from the environment (see ``legalft.managed.integrations``), secrets never stored."""
    tags: list[str] = field(default_factory=list)
    """Tags the service keeps on the job."""

    def __post_init__(self) -> None:
        def whole(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        def in_range(name: str, label: str, value: Any) -> None:
            low, high = SERVICE_LIMITS[name]
            if (low is not None and value < low) or (high is not None and value > high):
                bounds = f"from {low:,g} to {high:,g}" if high is not None else f"at least {low:,g}"
                raise ValueError(f"{label} must be {bounds} (the service's limit), not {value!r}")

        if not self.model or not isinstance(self.model, str):
            raise ValueError("model is required: pick one from `legalft tf models`")
        if not whole(self.n_epochs) or self.n_epochs < 1:
            raise ValueError(f"epochs must be a whole number of at least 1, not {self.n_epochs!r}")
        in_range("n_epochs", "epochs", self.n_epochs)
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be greater than 0, not {self.learning_rate!r}")
        if self.batch_size is not None:
            if not whole(self.batch_size) or self.batch_size < 1:
                raise ValueError(f"batch size must be a whole number of at least 1, not {self.batch_size!r}")
            in_range("batch_size", "batch size", self.batch_size)
        if not whole(self.lora_r) or self.lora_r < 1:
            raise ValueError(f"LoRA rank must be a positive whole number, not {self.lora_r!r}")
        if not whole(self.lora_alpha) or self.lora_alpha < 1:
            raise ValueError(f"LoRA alpha must be a positive whole number, not {self.lora_alpha!r}")
        if self.lora:  # a full fine-tune sends no LoRA settings, so their limits do not apply
            in_range("lora_r", "LoRA rank", self.lora_r)
            in_range("lora_alpha", "LoRA alpha", self.lora_alpha)
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"LoRA dropout must be at least 0 and below 1, not {self.lora_dropout!r}")
        if self.context_length is not None:
            if not whole(self.context_length) or self.context_length < 1:
                raise ValueError(f"context length must be a positive whole number, not {self.context_length!r}")
            in_range("context_length", "context length", self.context_length)
        if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup ratio must be at least 0 and below 1, not {self.warmup_ratio!r}")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ValueError(f"weight decay must not be negative, not {self.weight_decay!r}")
        if self.max_grad_norm is not None and not self.max_grad_norm > 0:
            raise ValueError(f"max grad norm must be greater than 0 (the service's limit), not {self.max_grad_norm!r}")
        if self.from_checkpoint is not None:
            self.from_checkpoint = self.from_checkpoint.strip() or None
            if self.from_checkpoint:
                checkpoint_reference(self.from_checkpoint)  # raises with what is accepted
        unknown = [i for i in self.integrations if i not in INTEGRATION_KINDS]
        if unknown:
            raise ValueError(f"unknown integration {unknown[0]!r}: choose from {', '.join(INTEGRATION_KINDS)}")
        self.integrations = list(dict.fromkeys(self.integrations))
        if any(not isinstance(t, str) or not t.strip() for t in self.tags):
            raise ValueError("tags must be non-empty text")
        if self.suffix is not None:
            if len(self.suffix) > MAX_SUFFIX_CHARS:
                raise ValueError(f"suffix is {len(self.suffix)} characters; the service allows {MAX_SUFFIX_CHARS}")
            self.suffix = self.suffix or None
        if self.seed is not None and not whole(self.seed):
            raise ValueError(f"seed must be a whole number, not {self.seed!r}")

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> "LaunchConfig":
        """A config from saved or typed settings; names it does not know are refused.

        The service itself accepts and silently ignores hyperparameter names it does not know, so a
        misspelt ``lora_rank`` would train with the default rank: refusing it is this product's rule.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown setting {unknown[0]!r}: the service would ignore it without a word (this product "
                f"refuses it); known settings: {', '.join(sorted(HYPERPARAMETER_NAMES))}")
        return cls(**values)

    def start_from(self) -> dict[str, Any] | None:
        """The ``from_checkpoint`` object to send, or None."""
        return checkpoint_reference(self.from_checkpoint) if self.from_checkpoint else None

    def hyperparameters(self) -> dict[str, Any]:
        """The ``hyperparameters`` object, with the service's own names; unset values are left out."""
        values = asdict(self)
        chosen = {name: values[name] for name in HYPERPARAMETER_NAMES if values[name] is not None}
        if not self.lora:  # LoRA settings mean nothing to a full fine-tune
            for name in ("lora_r", "lora_alpha", "lora_dropout"):
                chosen.pop(name)
        return chosen


# --- pre-flight -----------------------------------------------------------------------------------


_HF_REPO = re.compile(r"(?:https://huggingface\.co/)?([A-Za-z0-9][\w.-]*/[\w.-]+)(?:@([\w./-]+))?")


def checkpoint_reference(text: str) -> dict[str, Any]:
    """``JOB:CHECKPOINT`` or a Hugging Face repo (``org/name[@revision]``) as the service's object.

    The published schema names only ``type`` for a fine-tuning checkpoint (``"ft"``); the job and
    checkpoint ids are sent as ``job_id``/``checkpoint_id`` (see docs/managed-rules.md).
    """
    text = text.strip()
    job, sep, checkpoint = text.partition(":")
    if sep and job.startswith("ftjob-") and checkpoint.startswith("ftckpt"):
        return {"type": "ft", "job_id": job, "checkpoint_id": checkpoint}
    match = _HF_REPO.fullmatch(text)
    if match and not sep:
        reference = {"type": "hf", "repo": match.group(1)}
        if match.group(2):
            reference["revision"] = match.group(2)
        return reference
    raise ValueError(f"cannot continue from {text!r}: give JOB:CHECKPOINT (e.g. ftjob-...:ftckpt_...) or a "
                     "Hugging Face repo (org/name or org/name@revision)")
