"""The retry policy of a OneFile call: which failures are repeated, and after how long.

A 429 is always repeated, after OneFile's ``Retry-After`` (or until the limiter's window
clears), and pauses everyone sharing the budget. A 5xx, a timeout or a dropped connection is
repeated after a full-jitter backoff, except for a create (``retry_ambiguous=False``):
OneFile may already have made the entity, so repeating could make it twice. Anything else
is not repeated. The hook bounds the repeats by ``max_retries`` (:class:`OneFileSettings`).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import requests

from onefile.limiter import CallLimiter
from onefile.settings import OneFileSettings


def full_jitter_backoff(
    attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): uniform in [0, min(cap, base*2^n)].

    Full jitter spreads the retries of parallel tasks that failed together, so they do not
    hit a recovering server in lockstep.
    """
    return rand() * min(cap, base * 2**attempt)


def backoff(attempt: int, settings: OneFileSettings) -> float:
    """:func:`full_jitter_backoff` with the hook's base and cap."""
    return full_jitter_backoff(attempt, settings.backoff_base_seconds, settings.backoff_max_seconds)


def delay_after_no_answer(
    attempt: int, settings: OneFileSettings, retry_ambiguous: bool
) -> float | None:
    """Seconds before repeating a call that got no answer (timeout, dropped connection), or
    None when it must not be repeated (a create OneFile may already have made)."""
    if not retry_ambiguous:
        return None
    return backoff(attempt, settings)


def delay_after_refusal(
    response: requests.Response,
    attempt: int,
    settings: OneFileSettings,
    limiter: CallLimiter,
    retry_ambiguous: bool,
) -> float | None:
    """Seconds before repeating a call OneFile refused (status 400 or more, not a 401 the
    hook renews its token for), or None when it must not be repeated.

    A 429 pauses ``limiter`` for that long, so whoever shares the budget (other threads,
    tasks, processes) waits too."""
    status = response.status_code
    if status == 429:
        delay = retry_after(response)
        if delay is None:
            delay = limiter.seconds_until_clear()
        limiter.pause(delay)
        return delay
    if status >= 500 and retry_ambiguous:
        return backoff(attempt, settings)
    return None


def retry_after(response: requests.Response) -> float | None:
    """Seconds from a numeric Retry-After header, or None when absent or not a number."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None
