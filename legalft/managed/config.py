"""``LaunchConfig``: a managed fine-tuning job's settings, checked before anything is uploaded."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MAX_SUFFIX_CHARS = 64
HYPERPARAMETER_NAMES = (
    "n_epochs", "learning_rate", "batch_size", "warmup_ratio", "weight_decay", "max_grad_norm",
    "context_length", "packing", "lora", "lora_r", "lora_alpha", "lora_dropout",
)
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

    def __post_init__(self) -> None:
        def whole(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        if not self.model or not isinstance(self.model, str):
            raise ValueError("model is required: pick one from `legalft tf models`")
        if not whole(self.n_epochs) or self.n_epochs < 1:
            raise ValueError(f"epochs must be a whole number of at least 1, not {self.n_epochs!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning rate must be greater than 0, not {self.learning_rate!r}")
        if self.batch_size is not None and (not whole(self.batch_size) or self.batch_size < 1):
            raise ValueError(f"batch size must be a whole number of at least 1, not {self.batch_size!r}")
        if not whole(self.lora_r) or self.lora_r < 1:
            raise ValueError(f"LoRA rank must be a positive whole number, not {self.lora_r!r}")
        if not whole(self.lora_alpha) or self.lora_alpha < 1:
            raise ValueError(f"LoRA alpha must be a positive whole number, not {self.lora_alpha!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"LoRA dropout must be at least 0 and below 1, not {self.lora_dropout!r}")
        if self.context_length is not None and (not whole(self.context_length) or self.context_length < 1):
            raise ValueError(f"context length must be a positive whole number, not {self.context_length!r}")
        if self.warmup_ratio is not None and not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup ratio must be at least 0 and below 1, not {self.warmup_ratio!r}")
        for name in ("weight_decay", "max_grad_norm"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name.replace('_', ' ')} must not be negative, not {value!r}")
        if self.suffix is not None:
            if len(self.suffix) > MAX_SUFFIX_CHARS:
                raise ValueError(f"suffix is {len(self.suffix)} characters; the service allows {MAX_SUFFIX_CHARS}")
            self.suffix = self.suffix or None
        if self.seed is not None and not whole(self.seed):
            raise ValueError(f"seed must be a whole number, not {self.seed!r}")

    def hyperparameters(self) -> dict[str, Any]:
        """The ``hyperparameters`` object, with the service's own names; unset values are left out."""
        values = asdict(self)
        chosen = {name: values[name] for name in HYPERPARAMETER_NAMES if values[name] is not None}
        if not self.lora:  # LoRA settings mean nothing to a full fine-tune
            for name in ("lora_r", "lora_alpha", "lora_dropout"):
                chosen.pop(name)
        return chosen


# --- pre-flight -----------------------------------------------------------------------------------
