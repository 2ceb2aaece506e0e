"""The settings the Train page (and ``legalft train --set``) expose, defined once against ``TrainConfig``.

Each ``Setting`` names a dotted ``TrainConfig`` key; its current value is read from the config itself
(``setting_value``), so a recipe's value and the project defaults (``DEFAULT_SFT``/``DEFAULT_LORA``)
are the only source of a default. A page renders widgets from ``CLOUD_SETTINGS`` and hands back
``{key: value}`` to ``TrainConfig.with_overrides``; a test round-trips every key through the config,
so a renamed setting can never silently do nothing again (the old ``gradient_checkpointing`` box).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from legalft.train.config import METHODS, PRECISIONS, TrainConfig


@dataclass(frozen=True)
class Setting:
    key: str
    """Dotted ``TrainConfig`` key: ``method``, ``sft.learning_rate``, ``lora.r``."""
    label: str
    kind: type
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[str, ...] = ()
    help: str | None = None
    advanced: bool = False
    number_format: str | None = None


CLOUD_SETTINGS: tuple[Setting, ...] = (
    Setting("base_model", "Base model (hub id, local folder or builtin:smoke)", str),
    Setting("method", "Method", str, choices=METHODS),
    Setting("sft.num_train_epochs", "Epochs", float, 0.1, 100.0, 1.0),
    Setting("sft.learning_rate", "Learning rate", float, 1e-7, 1.0, 1e-5, number_format="%.1e"),
    Setting("lora.r", "LoRA rank", int, 1, 1024),
    Setting("lora.lora_alpha", "LoRA alpha", int, 1, 4096),
    Setting("sft.max_length", "Max length", int, 32, 131072, 64),
    Setting("sft.per_device_train_batch_size", "Batch per device", int, 1, 1024, advanced=True),
    Setting("sft.gradient_accumulation_steps", "Gradient accumulation", int, 1, 1024, advanced=True),
    Setting("sft.warmup_steps", "Warmup (below 1: share of steps)", float, 0.0, 10000.0, 0.01, advanced=True),
    Setting("sft.seed", "Seed", int, 0, 2**31 - 1, advanced=True),
    Setting("sft.packing", "Packing", bool, advanced=True),
    Setting("sft.assistant_only_loss", "Assistant-only loss", bool, advanced=True,
            help="Train only on the answers; needs {% generation %} markers in the chat template."),
    Setting("sft.activation_checkpointing", "Gradient checkpointing", bool, advanced=True,
            help="Recompute activations in the backward pass: less memory, about 20-30% slower."),
    Setting("precision", "Precision", str, choices=PRECISIONS, advanced=True),
    Setting("sft.save_steps", "Save a checkpoint every N steps", int, 1, 100000, advanced=True),
)


def setting_value(config: TrainConfig, key: str) -> Any:
    """The config's value for a dotted key (the recipe's, else the project default)."""
    section, _, name = key.partition(".")
    if not name:
        return getattr(config, section)
    return getattr(config, section).get(name)


def form_values(config: TrainConfig, settings: tuple[Setting, ...] = CLOUD_SETTINGS) -> dict[str, Any]:
    """``{key: value}`` for every setting, typed as its widget needs (None stays None)."""
    values = {}
    for setting in settings:
        value = setting_value(config, setting.key)
        values[setting.key] = value if value is None or setting.kind is str else setting.kind(value)
    return values
