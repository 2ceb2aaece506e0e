"""The follower: one detached process per remote run that launches it, mirrors it, and ends it.

``python -m legalft.targets.follow JOB_ID RUN_DIR --action launch|resume|watch`` holds
``RUN_DIR/follow.lock`` (one follower per run) and:

1. ``launch``/``resume``: starts the run on the target (phases ``provisioning``, ``setting up`` are
   written to the local ``status.json`` as they happen); a launch that fails before the trainer
   starts is torn down (``target.abandon``) and the job says why.
2. every ``SYNC_SECONDS``: one probe round trip; the remote ``status.json`` replaces the local one,
   new ``metrics.jsonl`` and ``train.log`` bytes are appended. An unreachable host is not a failed
   run: ``sync.json`` says ``reachable: false`` since when and why, the local copy stays, and the
   follower keeps trying (backing off to ``MAX_BACKOFF_SECONDS``) until the host answers.
3. when the run ends: pulls the adapter (and metrics, log), applies the user's choice (``release``:
   the GPU is given back; ``merge``/``serve``), records each phase's minutes and the cost, exits.

The app restarts a follower that died with the machine (``ensure_follower``), so closing the laptop
loses nothing: the run goes on on the GPU, and the mirror catches up when the follower is back.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

from legalft import procs
from legalft.errors import LegalftError, Unreachable
from legalft.jobs import utc_now
from legalft.targets.base import target_from_dict
from legalft.train.rundir import (
    CANCEL_FILE,
    METRICS_FILE,
    STATUS_FILE,
    SYNC_FILE,
    TARGET_FILE,
    read_json,
    read_status,
    write_json_atomic,
)

log = logging.getLogger(__name__)

FOLLOW_LOCK_FILE = "follow.lock"
FOLLOW_LOG_FILE = "follow.log"
SYNC_SECONDS = 2.0
#: The phase shown while a finished run's results are copied back (the run counts as ended after).
FINISHING = "fetching results"
#: The phase shown while the user's choice for after training is applied.
AFTER_PHASES = {"release": "releasing the GPU", "merge": "releasing the GPU", "serve": "starting the model server there"}
MAX_BACKOFF_SECONDS = 10.0
_ACTIVE = ("validating_files", "queued", "running")


# --- called by the library (train.launch) -------------------------------------------------------

def start_follower(job_id: str, run_dir: Path, action: str = "watch") -> procs.ProcessRecord:
    """Start the follower of a remote run, detached (it outlives the page or command that asked)."""
    return procs.spawn_detached([sys.executable, "-m", "legalft.targets.follow", job_id, str(run_dir),
                                 "--action", action], log_path=run_dir / FOLLOW_LOG_FILE, cwd=run_dir,
                                env=procs.checkout_env())


def follower_running(run_dir: Path) -> bool:
    from filelock import FileLock, Timeout

    lock = FileLock(run_dir / FOLLOW_LOCK_FILE)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def ensure_follower(job_id: str, run_dir: Path) -> None:
    """Start a watching follower if none holds the run (the app was closed, the machine restarted)."""
    if not follower_running(run_dir):
        start_follower(job_id, run_dir, action="watch")


def read_sync(run_dir: Path) -> dict[str, Any]:
    """The follower's record: ``info`` (where the run lives there), reachability, offsets, phases."""
    return read_json(Path(run_dir) / SYNC_FILE)


def cancel_remote(job_id: str, run_dir: Path, grace_seconds: float = 10.0) -> dict[str, Any]:
    """Cancel a remote run now (one round trip); when the host cannot be reached the request stays
    in ``cancel.requested`` and the follower sends it as soon as the host answers."""
    (run_dir / CANCEL_FILE).write_text(utc_now() + "\n", encoding="utf-8")
    state = read_sync(run_dir)
    target = target_from_dict(read_json(run_dir / TARGET_FILE))
    info = state.get("info")
    if not info:  # still launching: the follower cancels as soon as the trainer exists
        status = read_status(run_dir)
        if status.get("state") in _ACTIVE and not follower_running(run_dir):
            status.update(state="cancelled", phase="done", finished_at=utc_now())
            write_json_atomic(run_dir / STATUS_FILE, status)
        return status
    answer = target.cancel(info, grace_seconds)
    write_json_atomic(run_dir / STATUS_FILE, answer["status"])
    return answer["status"]


# --- the follower process ------------------------------------------------------------------------

class Follower:
    def __init__(self, job_id: str, run_dir: Path):
        self.job_id, self.run_dir = job_id, run_dir
        self.target = target_from_dict(read_json(run_dir / TARGET_FILE))
        self.state: dict[str, Any] = read_sync(run_dir) or {"phases": {}, "metrics_at": 0, "log_at": 0}
        self.state.setdefault("phases", {})

    def save(self) -> None:
        write_json_atomic(self.run_dir / SYNC_FILE, self.state)

    def say(self, phase: str) -> None:
        status = read_status(self.run_dir)
        status.update(state="queued", phase=phase, job_id=self.job_id, heartbeat=time.time())
        write_json_atomic(self.run_dir / STATUS_FILE, status)
        log.info("%s: %s", self.job_id, phase)

    def fail(self, message: str) -> None:
        status = read_status(self.run_dir)
        status.update(state="failed", phase="done", error=message, finished_at=utc_now())
        write_json_atomic(self.run_dir / STATUS_FILE, status)
        self.index()

    def index(self) -> None:
        """Bring the job's database row up to date (this process runs beside the app, on its home)."""
        try:
            from legalft.train.launch import refresh_job

            refresh_job(self.job_id)
        except LegalftError as exc:
            log.warning("cannot update the index: %s", exc)

    def launch(self, resume: bool) -> bool:
        started = time.monotonic()
        try:
            if resume and self.state.get("info"):
                self.say("resuming")
                info = self.target.resume(self.job_id, self.run_dir, self.state["info"], self.say)
            else:
                info = self.target.launch(self.job_id, self.run_dir, self.say)
        except LegalftError as exc:
            note = self.target.abandon(self.state.get("info") or {}, self.job_id)
            self.fail(f"could not start the run on {self.target.describe()}: {exc}" + (f" ({note})" if note else ""))
            return False
        phases = self.state["phases"]
        measured = info.pop("phase_seconds", None) or {"setup": time.monotonic() - started}
        for name, seconds in measured.items():
            phases[name] = round(phases.get(name, 0) + seconds, 1)
        # A resumed run rewrites its metrics from the checkpoint on: mirror them from the start.
        self.state.update(info=info, reachable=True, last_contact=utc_now(), error=None, metrics_at=0,
                          metrics_file=None)
        self.save()
        return True

    def mirror(self, answer: dict[str, Any]) -> dict[str, Any]:
        metrics = self.run_dir / METRICS_FILE
        if answer.get("metrics_reset") or (self.state.get("metrics_at", 0) == 0 and answer.get("metrics")):
            metrics.write_text(answer.get("metrics") or "", encoding="utf-8")
        elif answer.get("metrics"):
            with open(metrics, "a", encoding="utf-8") as handle:
                handle.write(answer["metrics"])
        if answer.get("log"):
            with open(self.run_dir / "train.log", "a", encoding="utf-8") as handle:
                handle.write(answer["log"])
        status = answer.get("status") or {}
        if status.get("state") in ("succeeded", "failed", "cancelled"):
            # Not ended here until the results are here: the pull writes the final status.
            write_json_atomic(self.run_dir / STATUS_FILE, {**status, "state": "running", "phase": FINISHING})
        elif status:
            write_json_atomic(self.run_dir / STATUS_FILE, status)
        self.state.update(metrics_at=answer.get("metrics_at", 0), metrics_file=answer.get("metrics_file"),
                          log_at=answer.get("log_at", 0), reachable=True,
                          last_contact=utc_now(), error=None, unreachable_since=None)
        return status

    def follow(self) -> None:
        backoff = SYNC_SECONDS
        cancel_sent = False
        while True:
            if not self.run_dir.is_dir():
                return
            info = self.state["info"]
            try:
                if (self.run_dir / CANCEL_FILE).exists() and not cancel_sent:
                    self.target.cancel(info, 10.0)
                    cancel_sent = True
                answer = self.target.probe(info, self.state.get("metrics_at", 0), self.state.get("log_at", 0),
                                           self.state.get("metrics_file"))
            except Unreachable as exc:
                if self.state.get("reachable", True):
                    self.state["unreachable_since"] = utc_now()
                self.state.update(reachable=False, error=str(exc))
                self.save()
                log.warning("%s: %s; trying again in %.0f s", self.job_id, exc, backoff)
                time.sleep(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
                continue
            except LegalftError as exc:
                self.state.update(error=str(exc))
                self.save()
                time.sleep(backoff)
                continue
            backoff = SYNC_SECONDS
            if answer.get("error"):
                self.fail(f"{self.target.describe()}: {answer['error']}")
                return
            status = self.mirror(answer)
            self.save()
            if status.get("state") in ("succeeded", "failed", "cancelled"):
                self.finish(status)
                return
            self.index()
            time.sleep(SYNC_SECONDS)

    def finish(self, status: dict[str, Any]) -> None:
        info = self.state["info"]
        phases = self.state["phases"]
        phases["train"] = phases.get("train", 0) + _seconds_between(status.get("started_at"), status.get("finished_at"))
        succeeded = status.get("state") == "succeeded"
        if succeeded and self.target.after == "merge":
            started = time.monotonic()
            try:
                merged = self.target.merge_there(info, self.job_id)
                self.state["merge"] = merged
            except LegalftError as exc:
                self.state["merge"] = {"error": f"the merge on the GPU failed: {exc}"}
            phases["merge"] = phases.get("merge", 0) + time.monotonic() - started
        started = time.monotonic()
        try:
            self.target.pull(info, self.run_dir, succeeded=succeeded)
        except LegalftError as exc:
            self.state["error"] = f"could not fetch the results: {exc}"
        final = read_status(self.run_dir)
        if final.get("phase") == FINISHING:  # the pull did not bring the final status
            final = status
        phases["pull"] = phases.get("pull", 0) + time.monotonic() - started
        # Still not ended while the GPU is released (or the server there starts): then it is.
        write_json_atomic(self.run_dir / STATUS_FILE, {**final, "state": "running", "phase": AFTER_PHASES.get(
            self.target.after if succeeded else "release", FINISHING)})
        started = time.monotonic()
        try:
            note = self.target.after_training(info, self.job_id, self.run_dir, status)
        except LegalftError as exc:
            note = f"after training: {exc}"
        phases["after"] = phases.get("after", 0) + time.monotonic() - started
        self.state.update(after=note, finished_at=utc_now())
        self.save()
        write_json_atomic(self.run_dir / STATUS_FILE, final)  # ended only once everything above is recorded
        self.index()
        record_cost(self.job_id, self.run_dir)


def _seconds_between(start: str | None, end: str | None) -> float:
    from datetime import datetime

    try:
        return max(0.0, (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds())
    except (TypeError, ValueError):
        return 0.0


def run_cost(run_dir: Path) -> dict[str, Any]:
    """Minutes per phase, the GPU and its rate, and the cost: the provider's report when it has one,
    else minutes × rate; None when the rate is not known (the user's own VM without a rate)."""
    state = read_sync(run_dir)
    target = read_json(Path(run_dir) / TARGET_FILE)
    minutes = {name: round(seconds / 60, 2) for name, seconds in (state.get("phases") or {}).items()}
    rate = target.get("hourly_rate")
    gpus = target_from_dict(target).billed_gpus if target else 1
    reported = (state.get("info") or {}).get("reported_cost")
    cost = reported if reported is not None else (
        round(sum(minutes.values()) / 60 * rate * gpus, 4) if rate is not None else None)
    return {"minutes": minutes, "total_minutes": round(sum(minutes.values()), 2), "hourly_rate": rate, "gpus": gpus,
            "accelerators": target.get("accelerators"), "cost": cost,
            "basis": "provider's cost report" if reported is not None else
                     ("minutes × hourly rate" if rate is not None else "no rate known for this host")}


def record_cost(job_id: str, run_dir: Path) -> None:
    from legalft.jobs import get_job, update_job

    cost = run_cost(run_dir)
    job = get_job(job_id)
    if job is not None:
        update_job(job_id, actual_cost=cost["cost"], output={**job.output, "remote_cost": cost})


def main(argv: list[str] | None = None) -> int:
    from filelock import FileLock, Timeout

    parser = argparse.ArgumentParser(prog="python -m legalft.targets.follow", description=__doc__.splitlines()[0])
    parser.add_argument("job_id")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--action", choices=("launch", "resume", "watch"), default="watch")
    args = parser.parse_args(argv)
    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        force=True)
    lock = FileLock(args.run_dir / FOLLOW_LOCK_FILE)
    try:
        lock.acquire(timeout=0 if args.action == "watch" else 30)
    except Timeout:
        log.info("another follower holds %s", args.run_dir)
        return 0
    try:
        follower = Follower(args.job_id, args.run_dir)
        if args.action in ("launch", "resume"):
            if not follower.launch(resume=args.action == "resume"):
                return 1
        elif not follower.state.get("info"):
            status = read_status(args.run_dir)
            if status.get("state") in _ACTIVE:
                follower.fail("the launch was interrupted before the run started there (the app or machine "
                              "stopped mid-launch); resume it to launch again")
            return 1
        follower.follow()
        return 0
    finally:
        lock.release()


if __name__ == "__main__":
    sys.exit(main())
