"""Hooks go through pluggy's hook caller: wrappers run, specs are enforced, failures isolated."""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import pluggy
import pytest

from jobrelay import Execution, Hooks, JobSpec, ManualClock, Router, Runner, hookimpl
from jobrelay_mock import MockExecutor


class Wrapper:
    def __init__(self) -> None:
        self.around: list[str] = []

    @hookimpl(wrapper=True)
    def job_launched(self, job: JobSpec, execution: Execution) -> Generator[None, Any, Any]:
        self.around.append("before")
        result = yield
        self.around.append("after")
        return result


class Raises:
    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        raise RuntimeError("plugin bug")


class Records:
    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        self.seen.append(execution.execution_id)


def test_wrappers_run_around_plain_implementations_and_failures_are_isolated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(now=1_700_000_000.0)
    mock = MockExecutor(clock=clock)
    router = Router({"mock": {"instance": mock}}, default="mock", clock=clock)
    hooks = router.hooks
    wrapper, records = Wrapper(), Records()
    hooks.register(records)
    hooks.register(Raises())
    hooks.register(wrapper)
    with (
        caplog.at_level(logging.ERROR, logger="jobrelay.hooks"),
        router,
        Runner(router, clock=clock) as runner,
    ):
        result = runner.submit(JobSpec("busybox")).result(10)
    assert result.succeeded
    assert wrapper.around == ["before", "after"]
    assert records.seen == [result.execution.execution_id]
    assert "plugin bug" in caplog.text


def test_a_call_that_misses_an_argument_is_a_programming_error() -> None:
    hooks = Hooks(load_entry_points=False)
    hooks.register(Records())
    with pytest.raises(pluggy.HookCallError):
        hooks.emit("job_launched", job=JobSpec("busybox"))


def test_an_unknown_hook_name_is_a_programming_error() -> None:
    hooks = Hooks(load_entry_points=False)
    with pytest.raises(AttributeError):
        hooks.emit("job_exploded", job=JobSpec("busybox"))


class Shutdowns:
    def __init__(self) -> None:
        self.finished_before: list[int] = []
        self.finished = 0

    @hookimpl
    def job_finished(self, execution: Execution, result: Any) -> None:
        self.finished += 1

    @hookimpl
    def runner_shutdown(self, runner: Runner) -> None:
        self.finished_before.append(self.finished)


@pytest.mark.parametrize("wait", [True, False])
def test_runner_shutdown_is_told_once_after_every_job_finished(wait: bool) -> None:
    clock = ManualClock(now=1_700_000_000.0)
    router = Router({"mock": {"instance": MockExecutor(clock=clock)}}, default="mock", clock=clock)
    seen = Shutdowns()
    router.hooks.register(seen)
    runner = Runner(router, clock=clock)
    handles = [runner.submit(JobSpec("busybox", labels={"mock.duration": "5"})) for _ in range(3)]
    runner.shutdown(wait=wait)
    for handle in handles:
        handle.result(10)
    runner.shutdown(wait=True)
    assert seen.finished_before == [3]
