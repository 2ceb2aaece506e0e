"""Held-out evaluation of endpoints (base against fine-tuned, with and without grounding), stored in SQLite."""
