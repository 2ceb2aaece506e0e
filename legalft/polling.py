"""The one polling layer: ask until something is done, riding out passing failures.

Training jobs, model servers, managed jobs and deployments are all followed the same way:
``poll_until(fetch, done)`` calls ``fetch`` every ``interval`` seconds until ``done(result)`` or
the timeout, hands each result to ``on_update``, and waits out up to ``max_transient`` consecutive
transient errors (``LegalftError.transient``: network, rate limit, 5xx). Anything else is raised
at once. Pages do not loop: the Monitor page's fragment asks once per run, and a shared throttle
(``legalft.jobs.claim_poll``) keeps the managed API to one call per job per interval however many
tabs and commands watch it.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, TypeVar

from legalft.errors import LegalftError

log = logging.getLogger(__name__)

T = TypeVar("T")


def poll_until(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    *,
    interval: float,
    timeout: float | None = None,
    on_update: Callable[[T], None] | None = None,
    max_transient: int = 0,
    what: str = "poll",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """The first result ``done`` accepts, or the last one when ``timeout`` seconds pass.

    A transient error that persists past ``max_transient`` tries, or outlives the timeout before
    any result arrived, is raised.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    failures = 0
    result: T | None = None
    have_result = False
    while True:
        try:
            result = fetch()
            have_result = True
            failures = 0
        except LegalftError as exc:
            failures += 1
            timed_out = deadline is not None and time.monotonic() >= deadline
            if not exc.transient or failures > max_transient or (timed_out and not have_result):
                raise
            log.warning("%s failed (%s); trying again in %g s", what, exc, interval)
        else:
            if on_update:
                on_update(result)
            if done(result):
                return result
        if deadline is not None and time.monotonic() >= deadline and have_result:
            return result  # type: ignore[return-value]
        sleep(interval)
