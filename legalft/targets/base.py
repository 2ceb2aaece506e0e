"""The target contract: describe, check before anything is billed, and (for remote ones) the calls
the follower makes at lifecycle transitions only: launch, probe, cancel, pull, release."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from legalft.errors import UsageError

if TYPE_CHECKING:
    from legalft.train.hardware import Hardware

#: What to do with the GPU once training ends.
AFTER_CHOICES = ("release", "merge", "serve")


@dataclass
class TargetCheck:
    """What ``check`` found: ``problems`` block a launch (each says how to fix it), ``facts`` inform."""

    target: str
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


@dataclass
class Target:
    """Where to train. ``kind`` is ``local``, ``ssh`` or ``skypilot``."""

    kind: str = "local"
    after: str = "release"
    """After training: ``release`` the GPU, ``merge`` on it first, or ``serve`` the model there."""
    serve_idle_minutes: float = 30
    """``after: serve``: minutes without a request before the server there stops (and the GPU is released)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return "this machine"

    def check(self) -> TargetCheck:
        raise NotImplementedError

    @property
    def is_remote(self) -> bool:
        return self.kind != "local"

    @property
    def billed_gpus(self) -> int:
        """How many GPUs ``hourly_rate`` is multiplied by: 1 here (a VM's rate is for the whole VM)."""
        return 1

    @property
    def bills_by_itself(self) -> bool:
        """Whether the GPU keeps billing after the product is done with it (a VM the user owns)."""
        return False

    def hardware(self, check: TargetCheck) -> "Hardware | None":
        """The target's GPUs as the memory estimate and preflight see them (from ``check``'s facts)."""
        from legalft.train.hardware import GpuInfo, Hardware

        gpus = check.facts.get("gpus") or []
        if not gpus and "python" not in check.facts:
            return None
        return Hardware(gpus=[GpuInfo(index=i, name=g.get("name", "GPU"), memory_gib=float(g.get("memory_gib", 0)),
                                      compute_capability=g.get("compute_capability"))
                              for i, g in enumerate(gpus)],
                        cpu_count=int(check.facts.get("cpu_count") or 1), ram_gib=float(check.facts.get("ram_gib") or 0),
                        source=f"{self.kind} target")

    # The follower's calls, at lifecycle transitions only (never on the Monitor's refresh). ``info``
    # is what ``launch`` returned: where the run lives on the target.

    def launch(self, job_id: str, run_dir: Path, say: Callable[[str], None]) -> dict[str, Any]:
        raise NotImplementedError

    def resume(self, job_id: str, run_dir: Path, info: dict[str, Any], say: Callable[[str], None]) -> dict[str, Any]:
        raise NotImplementedError

    def probe(self, info: dict[str, Any], metrics_from: int, log_from: int,
              metrics_file: str | None = None) -> dict[str, Any]:
        """``legalft.targets.probe.status`` there: ``metrics_file`` is the last answer's, so a metrics
        file replaced by a resume is read again from its start."""
        raise NotImplementedError

    def cancel(self, info: dict[str, Any], grace_seconds: float) -> dict[str, Any]:
        raise NotImplementedError

    def pull(self, info: dict[str, Any], run_dir: Path, succeeded: bool) -> None:
        raise NotImplementedError

    def merge_there(self, info: dict[str, Any], job_id: str) -> dict[str, Any]:
        """Merge the adapter on the target's GPU (``after: merge``); the pull then brings ``merged/`` back."""
        raise NotImplementedError

    def after_training(self, info: dict[str, Any], job_id: str, run_dir: Path, status: dict[str, Any]) -> str:
        """Apply the user's choice once the run ended; a sentence saying what was done."""
        return ""

    def abandon(self, info: dict[str, Any], job_id: str) -> str:
        """Clean up after a launch that failed before the trainer started (nothing left billing)."""
        return ""


@dataclass
class LocalTarget(Target):
    """Today's detached process on the machine the app runs on."""

    def check(self) -> TargetCheck:
        from legalft.train.hardware import detect_hardware

        hardware = detect_hardware()
        check = TargetCheck(target="local", facts={"hardware": hardware.describe()})
        if not hardware.has_gpu:
            check.warnings.append("this machine has no GPU: the run trains on the CPU (fine for the smoke recipe)")
        return check


def parse_target(spec: str | None, **options: Any) -> Target:
    """A target from the CLI's TARGET: ``local``, ``ssh:HOST`` (an ssh_config alias or
    ``user@host[:port]``) or ``skypilot:INFRA`` (``skypilot:nebius/eu-north1``)."""
    text = (spec or "local").strip()
    options = {k: v for k, v in options.items() if v is not None}
    after = options.pop("after", "release")
    if after not in AFTER_CHOICES:
        raise UsageError(f"after training must be one of {', '.join(AFTER_CHOICES)}, not {after!r}")
    if text == "local":
        return LocalTarget(after=after)
    kind, _, rest = text.partition(":")
    if kind == "ssh":
        from legalft.targets.ssh import SshTarget

        if not rest:
            raise UsageError("ssh:HOST needs a host: an ssh_config alias or user@host[:port]")
        return SshTarget(host=rest, after=after, **options)
    if kind == "skypilot":
        from legalft.targets.skypilot import SkyPilotTarget

        if not rest:
            raise UsageError("skypilot:INFRA needs an infra, e.g. skypilot:nebius/eu-north1")
        return SkyPilotTarget(infra=rest, after=after, **options)
    raise UsageError(f"unknown target {text!r}: use local, ssh:HOST or skypilot:INFRA")


def target_from_dict(data: dict[str, Any]) -> Target:
    """The target recorded with a job (``job.remote["target"]``, ``RUN_DIR/target.json``)."""
    data = dict(data)
    kind = data.pop("kind", "local")
    if kind == "ssh":
        from legalft.targets.ssh import SshTarget

        return SshTarget(**data)
    if kind == "skypilot":
        from legalft.targets.skypilot import SkyPilotTarget

        return SkyPilotTarget(**data)
    return LocalTarget(**data)
