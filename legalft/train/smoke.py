"""The offline smoke model: a tiny random-weight Llama and a byte-level BPE tokenizer trained locally.

It exists so the whole pipeline (train, resume, merge, serve) can be checked on any machine without
a download: the tokenizer is trained on the bundled reference Q&A set and the chat template carries
the ``{% generation %}`` markers that assistant-only loss needs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from legalft.home import bundled_data_dir, subdir

logger = logging.getLogger(__name__)

#: What a recipe's ``base_model`` says to mean "the smoke model, built on first use".
SMOKE_MODEL_ID = "builtin:smoke"

#: ChatML with generation markers around each assistant turn, end-of-turn token included, so
#: TRL's assistant-only loss trains the model to stop.
SMOKE_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "{{ '<|im_start|>assistant\\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{%- else -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)

SPECIAL_TOKENS = ["<|pad|>", "<|begin|>", "<|im_start|>", "<|im_end|>"]


@dataclass
class SmokeModelSpec:
    """Shape of the smoke model (a Llama). The defaults train 32 records in seconds on a CPU."""

    vocab_size: int = 1024
    """BPE vocabulary size, special tokens included."""
    hidden_size: int = 64
    intermediate_size: int = 128
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024
    initializer_range: float = 0.1
    """Wider than usual so the random model's greedy outputs are not near-ties (parity checks)."""
    seed: int = 0


def smoke_model_dir() -> Path:
    """Where ``builtin:smoke`` lives: ``LEGALFT_HOME/models/smoke``."""
    return subdir("models") / "smoke"


def ensure_smoke_model() -> Path:
    """The built-in smoke model's folder, built on first use."""
    path = smoke_model_dir()
    if not (path / "config.json").exists() or not (path / "tokenizer.json").exists():
        build_smoke_model(path)
    return path


def _training_texts(data_file: Path) -> list[str]:
    texts: list[str] = []
    with open(data_file, encoding="utf-8") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            for message in record.get("messages") or []:
                if isinstance(message, dict) and isinstance(message.get("content"), str):
                    texts.append(message["content"])
    return texts


def build_tokenizer(spec: SmokeModelSpec, data_file: Path | None = None):
    """A byte-level BPE tokenizer trained on ``data_file`` (default: the bundled Q&A set)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    data_file = data_file or bundled_data_dir() / "legislation_qa_clean.jsonl"
    texts = _training_texts(data_file)
    if not texts:
        raise ValueError(f"{data_file} holds no message text to train the smoke tokenizer on")
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|begin|>",
        eos_token="<|im_end|>",
        pad_token="<|pad|>",
        model_max_length=spec.max_position_embeddings,
    )
    tokenizer.chat_template = SMOKE_CHAT_TEMPLATE
    return tokenizer


def build_smoke_model(out_dir: str | Path, spec: SmokeModelSpec | None = None, data_file: Path | None = None) -> Path:
    """Write a tiny random-weight Llama with a locally trained tokenizer to ``out_dir``; offline.

    Deterministic for a given spec and data file. Returns the folder, loadable with
    ``AutoModelForCausalLM.from_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    spec = spec or SmokeModelSpec()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(spec, data_file)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        intermediate_size=spec.intermediate_size,
        num_hidden_layers=spec.num_hidden_layers,
        num_attention_heads=spec.num_attention_heads,
        num_key_value_heads=spec.num_key_value_heads,
        max_position_embeddings=spec.max_position_embeddings,
        initializer_range=spec.initializer_range,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(spec.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "smoke_spec.json").write_text(json.dumps(asdict(spec), indent=2) + "\n", encoding="utf-8")
    logger.info("built the smoke model (%d parameters) in %s", model.num_parameters(), out)
    return out
