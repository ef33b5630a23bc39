"""RateLimiter: the sliding-window quota helper (added for Cloud Run's log polling)."""

from __future__ import annotations

import threading

import pytest

from jobrelay import ManualClock
from jobrelay.backend import RateLimiter


def test_calls_within_quota_do_not_wait() -> None:
    clock = ManualClock(now=1000.0)
    limiter = RateLimiter(3, 60.0, clock=clock)
    assert [limiter.acquire() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert clock.time() == 1000.0


def test_call_over_quota_waits_for_the_oldest_to_leave_the_window() -> None:
    clock = ManualClock(now=1000.0)
    limiter = RateLimiter(2, 60.0, clock=clock)
    limiter.acquire()
    clock.advance(10.0)
    limiter.acquire()
    assert limiter.acquire() == pytest.approx(50.0)
    assert clock.time() == pytest.approx(1060.0)
    # 70 s of calls: never more than 2 in any 60 s window.
    assert limiter.acquire() == pytest.approx(10.0)


def test_rate_holds_across_threads() -> None:
    clock = ManualClock(now=0.0)
    limiter = RateLimiter(5, 1.0, clock=clock)
    stamps: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(4):
            limiter.acquire()
            with lock:
                stamps.append(clock.time())

    threads = [threading.Thread(target=work) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stamps.sort()
    assert len(stamps) == 20
    for index in range(len(stamps) - 5):
        assert stamps[index + 5] - stamps[index] >= 1.0 - 1e-9


@pytest.mark.parametrize(("calls", "period"), [(0, 1.0), (1, 0.0), (1, float("nan"))])
def test_bad_quota_is_refused(calls: int, period: float) -> None:
    with pytest.raises(ValueError, match="RateLimiter"):
        RateLimiter(calls, period, clock=ManualClock())
