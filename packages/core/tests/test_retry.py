"""RetryPolicy: only transient errors are retried, within an attempt and a time cap."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import pytest
import tenacity

from jobrelay import (
    ExecutorError,
    LaunchError,
    RetryPolicy,
    SpecError,
    TransientExecutorError,
    _retry,
    is_testing,
    set_testing,
)


@pytest.fixture(autouse=True)
def _testing_switch_restored() -> Iterator[None]:
    before = is_testing()
    yield
    set_testing(before)


class Flaky:
    """Raises the scripted errors in turn, then returns ``"done"``; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        self.calls.append((args, kwargs))
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def _transient(n: int) -> list[Exception]:
    return [TransientExecutorError(f"blip {i + 1}", executor="mock") for i in range(n)]


class Always:
    """Raises a new TransientExecutorError on every call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1
        raise TransientExecutorError(f"blip {self.calls}")


@pytest.fixture
def fake_time(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record every wait instead of waiting; a fake monotonic clock moves by the waits."""
    waits: list[float] = []
    now = [1000.0]

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    class FakeTime:
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(tenacity.nap, "sleep", sleep)
    monkeypatch.setattr(_retry, "time", FakeTime)
    set_testing(False)
    return waits


def test_success_needs_one_call() -> None:
    fn = Flaky()
    assert RetryPolicy().call(fn, 1, key="v") == "done"
    assert fn.calls == [((1,), {"key": "v"})]


def test_transient_errors_are_retried() -> None:
    set_testing(True)
    fn = Flaky(*_transient(3))
    assert RetryPolicy(attempts=4).call(fn, "job") == "done"
    assert len(fn.calls) == 4
    assert all(args == ("job",) for args, _ in fn.calls)


@pytest.mark.parametrize(
    "error",
    [
        LaunchError("quota", executor="mock"),
        ExecutorError("refused"),
        SpecError("image", "bad"),
        ValueError("plain"),
        KeyError("x"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_other_errors_are_raised_at_once(error: Exception) -> None:
    set_testing(True)
    fn = Flaky(error)
    with pytest.raises(type(error)) as info:
        RetryPolicy(attempts=5).call(fn)
    assert info.value is error
    assert len(fn.calls) == 1


def test_a_permanent_error_after_transient_ones_stops_retrying() -> None:
    set_testing(True)
    refusal = LaunchError("quota")
    fn = Flaky(*_transient(2), refusal, *_transient(2))
    with pytest.raises(LaunchError) as info:
        RetryPolicy(attempts=10).call(fn)
    assert info.value is refusal
    assert len(fn.calls) == 3


def test_base_exceptions_pass_through() -> None:
    set_testing(True)
    fn = Flaky(*_transient(1), KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        RetryPolicy(attempts=5).call(fn)
    assert len(fn.calls) == 2


@pytest.mark.parametrize("attempts", [1, 2, 3, 7])
def test_attempt_cap(attempts: int) -> None:
    set_testing(True)
    fn = Always()
    with pytest.raises(TransientExecutorError, match=f"blip {attempts}$") as info:
        RetryPolicy(attempts=attempts).call(fn)
    assert fn.calls == attempts
    assert not isinstance(info.value, tenacity.RetryError)  # tenacity stays hidden


def test_backoff_is_exponential_and_capped(fake_time: list[float]) -> None:
    fn = Always()
    with pytest.raises(TransientExecutorError):
        RetryPolicy(attempts=7, timeout=1000, initial=1, maximum=5, jitter=0).call(fn)
    assert fn.calls == 7
    assert fake_time == [1, 2, 4, 5, 5, 5]


def test_jitter_stays_within_bounds(fake_time: list[float]) -> None:
    fn = Always()
    with pytest.raises(TransientExecutorError):
        RetryPolicy(attempts=40, timeout=10**6, initial=0.5, maximum=60, jitter=0.25).call(fn)
    assert len(fake_time) == 39
    for n, wait in enumerate(fake_time):
        base = min(0.5 * 2**n, 60)
        assert base <= wait <= min(base + 0.25, 60)
    assert len(set(fake_time[:6])) > 1  # some randomness (not all on the lower bound)


def test_total_time_cap_on_a_fake_clock(fake_time: list[float]) -> None:
    fn = Always()
    with pytest.raises(TransientExecutorError):
        RetryPolicy(attempts=100, timeout=10, initial=1, maximum=4, jitter=0).call(fn)
    # 1 + 2 + 4 = 7 seconds, then the 4-second wait is cut to the 3 that are left.
    assert fake_time == [1, 2, 4, 3]
    assert fn.calls == 5


def test_no_wait_outlives_the_timeout(fake_time: list[float]) -> None:
    fn = Always()
    with pytest.raises(TransientExecutorError):
        RetryPolicy(attempts=5, timeout=0.5, initial=30, maximum=60, jitter=0).call(fn)
    assert fake_time == [0.5]
    assert fn.calls == 2


def test_zero_timeout_means_one_call(fake_time: list[float]) -> None:
    fn = Always()
    with pytest.raises(TransientExecutorError):
        RetryPolicy(attempts=5, timeout=0).call(fn)
    assert fn.calls == 1
    assert fake_time == []


def test_total_time_cap_in_real_time() -> None:
    set_testing(False)
    fn = Always()
    started = time.monotonic()
    with pytest.raises(TransientExecutorError):
        RetryPolicy(attempts=10_000, timeout=0.2, initial=0.01, maximum=0.02, jitter=0).call(fn)
    elapsed = time.monotonic() - started
    assert 0.2 <= elapsed < 10  # generous: only proves it stopped on time, not by attempts
    assert 2 < fn.calls < 10_000


def test_a_long_backoff_is_cut_to_the_timeout_in_real_time() -> None:
    set_testing(False)
    fn = Always()
    started = time.monotonic()
    with pytest.raises(TransientExecutorError):
        RetryPolicy(attempts=3, timeout=0.1, initial=30, maximum=30, jitter=0).call(fn)
    assert time.monotonic() - started < 10


def test_testing_switch_makes_retries_instant(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    monkeypatch.setattr(tenacity.nap, "sleep", waits.append)
    set_testing(True)
    assert is_testing()
    fn = Flaky(*_transient(4))
    started = time.monotonic()
    assert RetryPolicy(attempts=5, initial=30, maximum=60).call(fn) == "done"
    assert time.monotonic() - started < 10
    assert waits == []  # retries still happen, with no wait at all
    assert len(fn.calls) == 5
    set_testing(False)
    assert not is_testing()
    fn = Flaky(*_transient(2))
    policy = RetryPolicy(attempts=5, timeout=1000, initial=30, maximum=60, jitter=0)
    assert policy.call(fn) == "done"
    assert waits == [30, 60]


def test_retries_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    set_testing(True)
    with caplog.at_level(logging.WARNING, logger="jobrelay"):
        RetryPolicy(attempts=4).call(Flaky(*_transient(3)))
    messages = [r.getMessage() for r in caplog.records if r.name == "jobrelay.retry"]
    assert len(messages) == 3
    assert all("blip" in message for message in messages)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"attempts": -1},
        {"timeout": -1},
        {"timeout": math.nan},
        {"initial": -0.1},
        {"initial": math.nan},
        {"maximum": -1},
        {"maximum": math.nan},
        {"jitter": -1},
        {"jitter": math.nan},
    ],
)
def test_invalid_arguments(kwargs: dict[str, float]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ValueError, match=f"RetryPolicy.{name}"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_defaults_and_frozen() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.timeout) == (5, 60.0)
    with pytest.raises(AttributeError):
        policy.attempts = 3  # type: ignore[misc]
