"""The GPU host's probe and the follower's mirror of it, on two local folders (no SSH): what the
Monitor shows of a remote run is exactly what the trainer there wrote, across a resume."""

from __future__ import annotations

import json
import time
from pathlib import Path

from legalft.targets import LocalTarget
from legalft.targets.follow import Follower
from legalft.targets.probe import status
from legalft.train import read_metrics
from legalft.train.rundir import append_metrics, truncate_metrics


def _row(step: int, pad: int = 0) -> dict:
    return {"kind": "train", "step": step, "loss": round(2.0 - step / 100, 4), "note": "x" * pad}


def _folders(tmp_path: Path) -> tuple[Path, Path]:
    """The run folder on the GPU host (a live run) and its mirror here."""
    remote, here = tmp_path / "host" / "runs" / "job1", tmp_path / "here" / "job1"
    remote.mkdir(parents=True)
    here.mkdir(parents=True)
    (remote / "status.json").write_text(json.dumps({"state": "running", "heartbeat": time.time()}))
    (here / "target.json").write_text(json.dumps(LocalTarget().to_dict()))
    return remote, here


def _poll(follower: Follower, remote: Path) -> dict:
    state = follower.state
    answer = status(remote, state.get("metrics_at", 0), state.get("log_at", 0), state.get("metrics_file"))
    follower.mirror(answer)
    return answer


def test_a_resume_that_replaces_the_metrics_file_is_mirrored_from_its_first_line(tmp_path):
    """The CI failure this pins: the follower read the old metrics (steps 1-62), then the resumed
    trainer replaced the file with steps 1-60 and wrote 61-70 in longer lines before the next poll,
    so the file was longer than the old offset again; reading on from that offset started inside
    step 61's line and the mirror lost it. The probe now tells the file by its inode."""
    remote, here = _folders(tmp_path)
    for step in range(1, 63):
        append_metrics(remote, _row(step))
    follower = Follower("job1", here)
    follower.state.update(metrics_at=0, metrics_file=None)  # what a resume sets
    _poll(follower, remote)
    assert [r["step"] for r in read_metrics(here)] == list(range(1, 63))
    old_offset = follower.state["metrics_at"]

    truncate_metrics(remote, 60)  # the resumed trainer, from checkpoint-60
    for step in range(61, 71):
        append_metrics(remote, _row(step, pad=40))
    assert (remote / "metrics.jsonl").stat().st_size > old_offset  # the size alone cannot tell

    answer = _poll(follower, remote)
    assert answer["metrics_reset"] is True
    _poll(follower, remote)
    assert [r["step"] for r in read_metrics(here)] == list(range(1, 71))
    assert (here / "metrics.jsonl").read_bytes() == (remote / "metrics.jsonl").read_bytes()


def test_appends_are_mirrored_without_a_reset_and_a_shorter_file_still_resets(tmp_path):
    remote, here = _folders(tmp_path)
    follower = Follower("job1", here)
    for step in range(1, 6):
        append_metrics(remote, _row(step))
    _poll(follower, remote)
    for step in range(6, 9):
        append_metrics(remote, _row(step))
    assert _poll(follower, remote)["metrics_reset"] is False
    assert [r["step"] for r in read_metrics(here)] == list(range(1, 9))

    truncate_metrics(remote, 3)
    assert _poll(follower, remote)["metrics_reset"] is True
    assert [r["step"] for r in read_metrics(here)] == [1, 2, 3]
    assert (here / "metrics.jsonl").read_bytes() == (remote / "metrics.jsonl").read_bytes()
