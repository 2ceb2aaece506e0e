"""TrainerCallbacks that write the run directory: ``metrics.jsonl`` rows and ``status.json`` progress.

Imported only by the training process (it subclasses transformers' TrainerCallback).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from legalft.train.rundir import append_metrics
from legalft.train.status import StatusWriter

GIB = 1024**3
_SUMMARY_KEYS = ("train_runtime", "train_loss", "train_samples_per_second")


def _number(value: Any) -> float | int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value if not (isinstance(value, float) and math.isnan(value)) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


class RunDirCallback(TrainerCallback):
    """One ``metrics.jsonl`` row per logged step (and per evaluation), and progress in ``status.json``.

    Rows carry step, epoch, loss, eval loss, learning rate, grad norm, tokens seen, tokens/s, mean
    token accuracy and, on a GPU, peak memory. ``tokens_offset`` continues the token count of a
    resumed run, since TRL's own counter restarts at zero.
    """

    def __init__(self, run_dir: str | Path, status: StatusWriter, tokens_offset: float = 0.0):
        self.run_dir = Path(run_dir)
        self.status = status
        self.tokens_offset = tokens_offset
        self._start_time: float | None = None
        self._cuda = None

    def _gpu_memory_gib(self) -> float | None:
        if self._cuda is None:
            import torch

            self._cuda = torch.cuda if torch.cuda.is_available() else False
        if not self._cuda:
            return None
        return round(self._cuda.max_memory_allocated() / GIB, 3)

    def on_train_begin(self, args, state, control, **kwargs):
        self._start_time = time.time()
        self.status.update(force=True, phase="training", step=state.global_step, total_steps=state.max_steps,
                           epoch=state.epoch or 0.0)

    def on_step_end(self, args, state, control, **kwargs):
        self.status.update(step=state.global_step, epoch=state.epoch)

    def on_save(self, args, state, control, **kwargs):
        self.status.update(force=True, last_checkpoint_step=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        now = time.time()
        if any(key in logs for key in _SUMMARY_KEYS):
            self.status.update(summary={k: _number(v) for k, v in logs.items() if _number(v) is not None})
            return
        row: dict[str, Any] = {"step": state.global_step, "epoch": _number(logs.get("epoch", state.epoch)),
                               "time": round(now, 3)}
        is_eval = any(key.startswith("eval_") for key in logs)
        row["kind"] = "eval" if is_eval else "train"
        for key, value in logs.items():
            number = _number(value)
            if number is None or key in ("epoch", "num_tokens"):
                continue
            row[key] = number
        if not is_eval:
            tokens = _number(logs.get("num_tokens"))
            if tokens is not None:
                row["tokens_seen"] = tokens + self.tokens_offset
                # Averaged over this attempt: per-step rates swing with checkpoint saves and logging.
                if self._start_time is not None and now > self._start_time:
                    row["tokens_per_second"] = round(tokens / (now - self._start_time), 2)
        memory = self._gpu_memory_gib()
        if memory is not None:
            row["gpu_memory_gib"] = memory
        append_metrics(self.run_dir, row)
        self.status.update(step=state.global_step, epoch=row["epoch"], **{"latest_eval" if is_eval else "latest": row})
