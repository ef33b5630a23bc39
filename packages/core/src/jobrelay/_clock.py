"""Time as a dependency, so that routing, runners and the mock can run on simulated time."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from typing import Protocol

import attrs

__all__ = ["Clock", "ManualClock", "SystemClock"]


class Clock(Protocol):
    """Where jobrelay reads the time and waits.

    ``time()`` is seconds since the epoch (like :func:`time.time`); ``sleep`` waits.
    """

    def time(self) -> float:
        """Return seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``."""
        ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        """Return :func:`time.time`."""
        return time.time()

    def sleep(self, seconds: float) -> None:
        """Sleep for real."""
        if seconds > 0:
            time.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


@attrs.define
class ManualClock:
    """Simulated time: ``sleep`` advances the clock at once, nothing ever waits.

    Thread-safe. Tests and the mock executor use it to make hours pass in microseconds.

    Args:
        now: the starting time (seconds since the epoch).
        follow_real_time: also let real time flow, so that simulated durations end
            on their own when nobody waits; waits still jump ahead instantly. Off,
            time stands still between ``sleep``/``advance`` calls (fully deterministic).
    """

    now: float = attrs.field(factory=time.time)
    follow_real_time: bool = False
    _origin: float = attrs.field(factory=time.monotonic, repr=False, eq=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def time(self) -> float:
        """Return the simulated time."""
        if self.follow_real_time:
            return self.now + (time.monotonic() - self._origin)
        return self.now

    def sleep(self, seconds: float) -> None:
        """Advance the simulated time by ``seconds`` without waiting."""
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        """Move the simulated time forward."""
        if seconds > 0:
            with self._lock:
                self.now += seconds


def to_datetime(epoch: float) -> datetime:
    """Convert epoch seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc)
