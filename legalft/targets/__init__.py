"""Where a Cloud-path run trains: this machine, a GPU VM over SSH, or a cluster SkyPilot provisions.

Every target produces the same run folder (``LEGALFT_HOME/runs/<job id>/``), so the Monitor page,
merge, serve and chat do not change. A remote run is launched and followed by a detached follower
(``legalft.targets.follow``) that mirrors ``status.json``, ``metrics.jsonl`` and ``train.log`` into
the local folder in one SSH round trip every few seconds, pulls the adapter when training ends and
applies the user's choice (release the GPU, merge there, or serve there).

    target = parse_target("ssh:gpu-box", remote_root="~/legalft")   # or "skypilot:nebius/eu-north1"
    check = target.check()                                           # before anything is billed
    job = start_training(config, "clean.jsonl", target=target)
"""

from __future__ import annotations

from legalft.targets.base import AFTER_CHOICES, LocalTarget, Target, TargetCheck, parse_target, target_from_dict

__all__ = ["AFTER_CHOICES", "LocalTarget", "Target", "TargetCheck", "parse_target", "target_from_dict"]
