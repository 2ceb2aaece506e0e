"""Turning the failures people hit into messages that say what to do."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


class DatasetError(ValueError):
    """A training file that cannot be read as training records."""


class ModelUnavailableError(RuntimeError):
    """A base model that cannot be loaded: gated, unknown, or unreachable offline."""


DATASET_PAGE_HINT = "Open it on the Dataset page to clean it (or run `legalft data validate FILE`)"


def describe_model_error(name: str, exc: BaseException) -> str:
    """Why ``name`` did not load and what to do about it, in words that suit the Train page and the
    CLI alike (no command-line flags). The library's own exception goes to the log, not the message:
    a reader of a raw ``OSError`` learns nothing they can act on."""
    text = f"{type(exc).__name__}: {exc}"
    logger.info("base model %r did not load: %s", name, _short(text, 2000))
    lowered = text.lower()
    if any(word in lowered for word in ("gated", "401", "403", "restricted", "access to model", "awaiting")):
        return (
            f"cannot load the base model {name!r}: it is gated. Accept its licence on "
            f"https://huggingface.co/{name}, then sign this machine in to Hugging Face (`hf auth login`, or set "
            "HF_TOKEN) and try again; or set the base model to a model folder on this machine."
        )
    if any(word in lowered for word in ("offline", "couldn't connect", "connection", "resolve", "localentrynotfound",
                                        "cannot find the requested files", "timed out", "not a local folder",
                                        "repositorynotfound", "404", "does not appear to have", "is not a valid",
                                        "repo id must be")):
        return (
            f"cannot load the base model {name!r}: there is no model of that name on this machine, and the"
            " Hugging Face Hub cannot be reached or has no such model. Check the spelling (a Hub id looks like"
            " org/name), connect to the internet once so it can be downloaded, or set the base model to a model"
            " folder on this machine; builtin:smoke (the smoke recipe) needs no download."
        )
    return f"cannot load the base model {name!r}: {_short(str(exc) or type(exc).__name__, 200)}"


def describe_oom(config: Any, step: int | None) -> str:
    """Out of GPU memory, with the settings to change in order of what saves most."""
    sft = getattr(config, "sft", {}) or {}
    batch = int(sft.get("per_device_train_batch_size") or 1)
    accum = int(sft.get("gradient_accumulation_steps") or 1)
    max_length = sft.get("max_length")
    where = f" at step {step}" if step else ""
    tips = []
    if getattr(config, "method", "") in ("lora", "full"):
        tips.append("method: qlora (4-bit base, about a quarter of the weight memory)")
    if getattr(config, "method", "") == "full":
        tips.append("method: lora (no optimizer state for the base weights)")
    if max_length and int(max_length) > 256:
        tips.append(f"a shorter sft.max_length (e.g. {int(max_length) // 2})")
    if batch > 1:
        tips.append(
            f"sft.per_device_train_batch_size: {max(batch // 2, 1)} with sft.gradient_accumulation_steps: "
            f"{accum * 2} (same effective batch)"
        )
    if not sft.get("activation_checkpointing"):
        tips.append("sft.activation_checkpointing: true")
    advice = "; ".join(tips) if tips else "a smaller model or a GPU with more memory"
    return f"out of GPU memory{where}. Try {advice}. Then resume the job or start it again."


def _short(text: str, limit: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
