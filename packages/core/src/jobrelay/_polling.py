"""What polling backends share: waiting for the end, following logs, paging, results, health."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timezone
from typing import TypeVar

from jobrelay._clock import Clock
from jobrelay._models import Cost, Execution, Health, JobResult, JobStatus, LogLine, Logs
from jobrelay.errors import ExecutorError

__all__ = [
    "RateLimiter",
    "duration_of",
    "follow_logs",
    "make_result",
    "paginate",
    "probe_health",
    "utc_from_epoch",
    "wait_until_terminal",
]

T = TypeVar("T")
C = TypeVar("C")


def utc_from_epoch(seconds: float) -> datetime:
    """Return an aware UTC datetime for epoch ``seconds`` (e.g. ``clock.time()``)."""
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def wait_until_terminal(
    get_status: Callable[[], JobStatus],
    *,
    clock: Clock,
    poll_interval: float,
    first_interval: float | None = None,
) -> JobStatus:
    """Call ``get_status`` until it reports a terminal state; return that status.

    The first waits are short (``first_interval``, doubling up to ``poll_interval``)
    so that quick jobs do not pay a whole poll interval. Errors from ``get_status``
    propagate: the caller (a Runner) decides how long to keep trying.
    """
    interval = min(first_interval if first_interval is not None else 0.05, poll_interval)
    status = get_status()
    while not status.is_terminal:
        clock.sleep(interval)
        interval = min(interval * 2, poll_interval)
        status = get_status()
    return status


def follow_logs(
    fetch: Callable[[C | None], tuple[Sequence[LogLine], C | None]],
    is_done: Callable[[], bool],
    *,
    clock: Clock,
    poll_interval: float,
) -> Iterator[LogLine]:
    """Yield lines from ``fetch(cursor)`` until the job ends, then drain once more.

    ``fetch`` takes the cursor it returned last (None the first time) and returns
    the new lines and the next cursor. Whether the job is done is asked *before*
    each fetch, so the fetch after the end sees everything written up to it.
    """
    cursor: C | None = None
    while True:
        finished = is_done()
        lines, cursor = fetch(cursor)
        yield from lines
        if finished:
            return
        clock.sleep(poll_interval)


def paginate(
    fetch: Callable[[T | None], tuple[Iterable[C], T | None]],
    *,
    max_pages: int = 10_000,
) -> Iterator[C]:
    """Yield the items of every page: ``fetch(token) -> (items, next_token)``.

    Stops at a falsy token; a token seen before (a server that loops) or more than
    ``max_pages`` pages is an :class:`ExecutorError`, never an endless loop.
    """
    token: T | None = None
    seen: set[object] = set()
    for _ in range(max_pages):
        items, token = fetch(token)
        yield from items
        if not token:
            return
        if token in seen:
            raise ExecutorError(f"the backend repeated page token {token!r}")
        seen.add(token)
    raise ExecutorError(f"more than {max_pages} pages; giving up")


def probe_health(
    probe: Callable[[], object],
    *,
    answered: str,
    errors: type[BaseException] | tuple[type[BaseException], ...] = ExecutorError,
) -> Health:
    """Time one call to the backend and say whether it answered; never raises ``errors``.

    ``probe`` is the cheapest call that proves the backend takes work (a list of one
    item, with a short deadline). Healthy with ``answered`` as the detail, or unhealthy
    with the error's text; either way with the call's latency.
    """
    started = time.monotonic()
    try:
        probe()
    except errors as exc:
        return Health(healthy=False, latency=time.monotonic() - started, detail=str(exc))
    return Health(healthy=True, latency=time.monotonic() - started, detail=answered)


def duration_of(status: JobStatus) -> float | None:
    """Return seconds from ``started_at`` to ``finished_at``, or None if either is unknown."""
    if status.started_at is None or status.finished_at is None:
        return None
    return max(0.0, (status.finished_at - status.started_at).total_seconds())


def make_result(
    execution: Execution, status: JobStatus, logs: Logs, *, cost: Cost | None = None
) -> JobResult:
    """Return the :class:`JobResult` of a harvest, its duration taken from ``status``."""
    return JobResult(execution, status, logs, duration_of(status), cost)


class RateLimiter:
    """Keeps calls within a quota of ``calls`` per ``period`` seconds, across threads.

    A sliding window: :meth:`acquire` waits (on ``clock``) until fewer than ``calls``
    calls were made in the last ``period`` seconds, then records one. Cloud quotas are
    written this way (Cloud Logging's ``entries.list``: 60 per minute per project), so
    sharing one limiter between every poller of an executor keeps all of them inside.

    Example::

        limiter = RateLimiter(60, 60.0, clock=SystemClock())
        for page in pages:
            limiter.acquire()
            client.list_entries(...)
    """

    def __init__(self, calls: int, period: float, *, clock: Clock) -> None:
        if calls < 1:
            raise ValueError(f"RateLimiter.calls must be 1 or more, got {calls}")
        if not period > 0:
            raise ValueError(f"RateLimiter.period must be greater than 0, got {period}")
        self.calls = calls
        self.period = period
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def acquire(self) -> float:
        """Wait until a call is allowed and record it; return the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                now = self._clock.time()
                while self._times and now - self._times[0] >= self.period:
                    self._times.popleft()
                if len(self._times) < self.calls:
                    self._times.append(now)
                    return waited
                pause = self.period - (now - self._times[0])
            self._clock.sleep(pause)
            waited += pause

    def __repr__(self) -> str:
        return f"RateLimiter({self.calls} per {self.period:g}s)"
