"""Managed fine-tuning services. ``token_factory``: Nebius Token Factory through the openai SDK."""
