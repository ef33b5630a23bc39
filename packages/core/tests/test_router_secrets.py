"""A backend that echoes a job's secret in its error text: the Router never passes it on."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

import pytest

from jobrelay import (
    Execution,
    Hooks,
    JobSpec,
    LaunchError,
    ManualClock,
    NoExecutorAvailableError,
    RetryPolicy,
    Router,
    TransientExecutorError,
    hookimpl,
)
from jobrelay_mock import MockExecutor, MockOutcome

SECRET = "hunter2\x00canary"
FAST_RETRY = RetryPolicy(attempts=2, initial=0, maximum=0, jitter=0)


def echoes(job: JobSpec) -> str:
    """Error text the way daemons echo an environment: raw, repr, JSON, URL-encoded."""
    value = job.secrets["TOKEN"]
    return f"bad env TOKEN={value} {value!r} {json.dumps(value)} {quote(value)}"


class EchoingTransient(MockExecutor):
    """A backend whose launch fails transiently, quoting the secret."""

    def launch(self, job: JobSpec) -> Execution:
        raise TransientExecutorError(echoes(job), executor=self.name, job_id=job.job_id)


class Recorder:
    def __init__(self) -> None:
        self.errors: list[Exception] = []

    @hookimpl
    def launch_failed(self, job: JobSpec, executor: str, error: Exception) -> None:
        self.errors.append(error)


def assert_clean(*texts: object) -> None:
    for text in texts:
        for form in (SECRET, repr(SECRET)[1:-1], json.dumps(SECRET)[1:-1], quote(SECRET)):
            assert form not in str(text)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(now=1_700_000_000.0)


def router_of(executors: dict[str, Any], clock: ManualClock, recorder: Recorder) -> Router:
    hooks = Hooks(load_entry_points=False)
    hooks.register(recorder)
    return Router(
        executors, default="a", fallback=["b"], clock=clock, retry=FAST_RETRY, hooks=hooks
    )


def test_refusals_are_masked_in_logs_hops_hooks_and_errors(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    refuse = MockOutcome
    executors = {
        name: MockExecutor(name, clock=clock, behavior=lambda j: refuse(launch_error=echoes(j)))
        for name in ("a", "b")
    }
    recorder = Recorder()
    router = router_of(executors, clock, recorder)
    spec = JobSpec("busybox", "true", secrets={"TOKEN": SECRET})
    with caplog.at_level(logging.DEBUG), pytest.raises(NoExecutorAvailableError) as caught:
        router.launch(spec)
    assert "bad env TOKEN=***" in str(caught.value)
    assert_clean(caught.value, caught.value.skipped, caplog.text, *recorder.errors)
    assert [type(error) for error in recorder.errors] == [LaunchError, LaunchError]
    assert recorder.errors[0].job_id == spec.job_id  # type: ignore[attr-defined]


def test_an_unknown_outcome_is_raised_masked(
    clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    executors = {"a": EchoingTransient("a", clock=clock), "b": MockExecutor("b", clock=clock)}
    recorder = Recorder()
    router = router_of(executors, clock, recorder)
    spec = JobSpec("busybox", "true", secrets={"TOKEN": SECRET})
    with caplog.at_level(logging.DEBUG), pytest.raises(TransientExecutorError) as caught:
        router.launch(spec)
    error = caught.value
    assert (error.executor, error.job_id) == ("a", spec.job_id)
    assert error.__cause__ is None
    assert error.__context__ is None
    assert_clean(error, caplog.text, *recorder.errors)
    assert executors["b"].calls("launch") == []


def test_errors_without_a_secret_are_passed_on_as_they_are(clock: ManualClock) -> None:
    flaky = MockExecutor("a", clock=clock, behavior=lambda _j: MockOutcome(transient_failures=5))
    recorder = Recorder()
    router = router_of({"a": flaky, "b": MockExecutor("b", clock=clock)}, clock, recorder)
    spec = JobSpec("busybox", "true", secrets={"TOKEN": SECRET})
    with pytest.raises(TransientExecutorError, match="mock transient failure 2/5") as caught:
        router.launch(spec)
    assert recorder.errors[0] is caught.value  # nothing to mask: the very same error


class OddError(LaunchError):
    """A third-party error whose constructor takes more than a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class OddExecutor(MockExecutor):
    def launch(self, job: JobSpec) -> Execution:
        raise OddError(400, echoes(job))


def test_an_error_class_that_cannot_be_copied_is_masked_as_its_kind(
    clock: ManualClock,
) -> None:
    recorder = Recorder()
    executors = {"a": OddExecutor("a", clock=clock), "b": OddExecutor("b", clock=clock)}
    router = router_of(executors, clock, recorder)
    with pytest.raises(NoExecutorAvailableError) as caught:
        router.launch(JobSpec("busybox", "true", secrets={"TOKEN": SECRET}))
    assert_clean(caught.value, *recorder.errors)
    assert [type(error) for error in recorder.errors] == [LaunchError, LaunchError]
