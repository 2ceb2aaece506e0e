"""legalft: fine-tune language models on UK legislation, on your own GPU or on Nebius Token Factory.

The package is light on import: torch, transformers, trl, peft and vllm are imported inside the
functions that need them, so the app and the CLI start fast.
"""

__version__ = "0.1.0"
