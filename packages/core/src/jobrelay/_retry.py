"""Retrying transient backend errors, with tenacity kept behind our own policy object.

tenacity is imported at the first retry: a call that succeeds at once (nearly every
launch) never needs it, and a one-job command does not pay for importing it.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import attrs

from jobrelay.errors import TransientExecutorError

if TYPE_CHECKING:
    import tenacity

__all__ = ["RetryPolicy", "is_testing", "set_testing"]

logger = logging.getLogger("jobrelay.retry")
T = TypeVar("T")

_testing = threading.Event()


def set_testing(enabled: bool = True) -> None:
    """Make every :class:`RetryPolicy` wait zero seconds between attempts.

    For users' test suites: retries still happen (the attempt cap still holds) but
    instantly. Call ``set_testing(False)`` to restore real backoff.
    """
    if enabled:
        _testing.set()
    else:
        _testing.clear()


def is_testing() -> bool:
    """Return whether :func:`set_testing` made retries instant."""
    return _testing.is_set()


def _sleep(seconds: float) -> None:
    if not _testing.is_set():
        import tenacity  # noqa: PLC0415 - see the module docstring

        tenacity.nap.sleep(seconds)


def _positive(_: object, attribute: attrs.Attribute[float], value: float) -> None:
    # NaN compares false with everything: it would silently disable a cap.
    if math.isnan(value) or value < 0:
        raise ValueError(f"RetryPolicy.{attribute.name} must be 0 or more, got {value}")


@attrs.frozen
class RetryPolicy:
    """Exponential backoff with jitter that retries only ``TransientExecutorError``.

    Args:
        attempts: most calls in all (1 means no retry).
        timeout: most seconds spent in all, retries included.
        initial: first wait in seconds.
        maximum: cap on one wait.
        jitter: up to this many random seconds added to each wait.

    Example::

        policy = RetryPolicy(attempts=5, timeout=30)
        execution = policy.call(executor.launch, job)
    """

    attempts: int = attrs.field(default=5)
    timeout: float = attrs.field(default=60.0, validator=_positive)
    initial: float = attrs.field(default=0.2, validator=_positive)
    maximum: float = attrs.field(default=10.0, validator=_positive)
    jitter: float = attrs.field(default=0.5, validator=_positive)

    @attempts.validator
    def _check_attempts(self, _: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError(f"RetryPolicy.attempts must be 1 or more, got {value}")

    def call(self, fn: Callable[..., T], /, *args: object, **kwargs: object) -> T:
        """Call ``fn``, retrying it on ``TransientExecutorError`` per this policy.

        The last error is re-raised once attempts or time run out; any other
        exception is raised at once. No wait runs past ``timeout``.
        """
        deadline = time.monotonic() + self.timeout
        try:
            return fn(*args, **kwargs)
        except TransientExecutorError as first:
            if self.attempts == 1 or time.monotonic() >= deadline:
                raise
            logger.warning("transient error, retrying: %s", first)
        import tenacity  # noqa: PLC0415 - see the module docstring

        def sleep(seconds: float) -> None:
            _sleep(min(seconds, max(0.0, deadline - time.monotonic())))

        def stop(state: tenacity.RetryCallState) -> bool:
            # attempt_number counts the retries; the fast path above made one call.
            return state.attempt_number >= self.attempts - 1 or time.monotonic() >= deadline

        def wait(state: tenacity.RetryCallState) -> float:
            backoff = self.initial * 2.0 ** min(state.attempt_number, 64)
            jitter = random.uniform(0.0, self.jitter)  # noqa: S311 - spreading load, not crypto
            return min(backoff + jitter, self.maximum)

        def before(state: tenacity.RetryCallState) -> None:
            # The fast path already spent one attempt; wait before the first retry too.
            if state.attempt_number == 1:
                sleep(min(self.initial + random.uniform(0.0, self.jitter), self.maximum))  # noqa: S311

        retrying = tenacity.Retrying(
            stop=stop,
            wait=wait,
            retry=tenacity.retry_if_exception_type(TransientExecutorError),
            sleep=sleep,
            before=before,
            before_sleep=_log_retry,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    logger.warning(
        "transient error on attempt %d, retrying in %.2fs: %s",
        state.attempt_number + 1,
        state.next_action.sleep if state.next_action else 0.0,
        exc,
    )
