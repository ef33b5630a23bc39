"""Behaviour tests every executor must pass, as pytest classes to inherit.

A backend's conformance file is a few lines::

    import pytest
    from jobrelay.testing import ExecutorConformance

    class TestMyConformance(ExecutorConformance):
        @pytest.fixture
        def executor(self):
            with MyExecutor(...) as executor:
                yield executor

        @pytest.fixture
        def workload_labels(self, executor):
            return lambda execution: my_backend_labels(execution)

Fixtures a subclass may override:

- ``executor`` (required): the executor under test.
- ``workload_labels`` (required): ``execution -> Mapping[str, str]``, the labels or
  tags the backend holds for the workload, read from the backend itself.
- ``image``: the image the default ``make_job`` runs (needs ``sh``, ``echo``,
  ``sleep``); default ``"busybox:latest"``.
- ``make_job``: ``(Scenario, **overrides) -> JobSpec``. The default runs ``sh -c``
  scripts in ``image``; backends whose jobs do not run shell (a mock) build their own.
- ``settle``: ``(execution, job) -> None``, brings a finite job to its end. Default:
  poll ``status`` until terminal. Backends whose fakes do not run containers (moto)
  drive the task to the end the scenario implies.
- ``capabilities``: defaults to ``executor.capabilities()``.
- ``unknown_execution``: an execution the backend never had.
- ``wait_timeout``: seconds any wait may take (default 120).

Labels the kit checks on every workload (the keys of :mod:`jobrelay.labels`, as read
back through ``workload_labels`` — which returns them under jobrelay's spelling even
where the backend stores them translated):

- ``jobrelay.managed`` = ``"true"``;
- ``jobrelay.job-id`` = the job's id, exactly;
- ``jobrelay.job-name`` = the job's name;
- ``jobrelay.executor`` = the executor's name;
- ``jobrelay.owner`` = present and not empty;
- the job's own labels (``team=data``).

Beyond single calls, the kit checks that ``harvest`` waits for the end, that an
executor is a context manager whose ``close()`` may be called twice, and its
teardown cancels and cleans up every execution a test launched even when one of
those calls raises.
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobrelay import labels as jr_labels
from jobrelay._models import Capabilities, Execution, JobResult, JobState, JobStatus
from jobrelay._protocol import Executor, ManagedLister, StdinFeeder
from jobrelay._spec import JobSpec

__all__ = [
    "ERR_MARKER",
    "FAIL_EXIT_CODE",
    "OUT_MARKER",
    "ExecutorConformance",
    "Scenario",
    "wait_for_state",
]

OUT_MARKER = "jobrelay-conformance-out"
ERR_MARKER = "jobrelay-conformance-err"
FAIL_EXIT_CODE = 3

MakeJob = Callable[..., JobSpec]
Settle = Callable[[Execution, JobSpec], None]
LabelReader = Callable[[Execution], Mapping[str, str]]


class Scenario(enum.Enum):
    """What a conformance job must do.

    - ``SUCCEED``: print ``OUT_MARKER`` on stdout and ``ERR_MARKER`` on stderr, exit 0.
    - ``FAIL``: the same output, then exit ``FAIL_EXIT_CODE`` (3).
    - ``LONG``: keep running for at least five minutes (until cancelled).
    """

    SUCCEED = "succeed"
    FAIL = "fail"
    LONG = "long"


_SCRIPTS = {
    Scenario.SUCCEED: f"echo {OUT_MARKER}; echo {ERR_MARKER} >&2",
    Scenario.FAIL: f"echo {OUT_MARKER}; echo {ERR_MARKER} >&2; exit {FAIL_EXIT_CODE}",
    Scenario.LONG: "sleep 600",
}


def wait_for_state(
    executor: Executor,
    execution: Execution,
    accept: Callable[[JobStatus], bool],
    *,
    timeout: float = 120.0,
    interval: float = 0.05,
) -> JobStatus:
    """Poll ``executor.status`` until ``accept(status)`` holds; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    status = executor.status(execution)
    while not accept(status):
        if time.monotonic() > deadline:
            pytest.fail(f"{execution.execution_id} still {status} after {timeout}s")
        time.sleep(interval)
        interval = min(interval * 1.5, 1.0)
        status = executor.status(execution)
    return status


class ExecutorConformance:
    """Inherit in a test class and supply the ``executor`` and ``workload_labels`` fixtures."""

    # -- fixtures a backend supplies or overrides -------------------------------------

    @pytest.fixture
    def executor(self) -> Iterator[Executor]:
        """The executor under test. Required."""
        raise NotImplementedError("override the 'executor' fixture")

    @pytest.fixture
    def workload_labels(self) -> LabelReader:
        """Read a workload's labels or tags from the backend. Required."""
        raise NotImplementedError("override the 'workload_labels' fixture")

    @pytest.fixture
    def image(self) -> str:
        """Image for the default ``make_job``: must have ``sh``, ``echo`` and ``sleep``."""
        return "busybox:latest"

    @pytest.fixture
    def wait_timeout(self) -> float:
        """Seconds any wait in the kit may take."""
        return 120.0

    @pytest.fixture
    def make_job(self, image: str) -> MakeJob:
        """Build the job for a scenario; keyword overrides go to ``JobSpec``."""

        def make(scenario: Scenario, **overrides: Any) -> JobSpec:
            fields: dict[str, Any] = {
                "name": f"conformance-{scenario.value}",
                "labels": {"conformance": scenario.value},
                "job_id": f"conf-{uuid.uuid4().hex[:20]}",
            }
            fields.update(overrides)
            return JobSpec(image, ["sh", "-c", _SCRIPTS[scenario]], **fields)

        return make

    @pytest.fixture
    def settle(self, executor: Executor, wait_timeout: float) -> Settle:
        """Bring a finite job to its end (default: wait for a terminal status)."""

        def settle(execution: Execution, job: JobSpec) -> None:  # noqa: ARG001
            wait_for_state(executor, execution, _terminal, timeout=wait_timeout)

        return settle

    @pytest.fixture
    def capabilities(self, executor: Executor) -> Capabilities:
        """The executor's declared capabilities."""
        return executor.capabilities()

    @pytest.fixture
    def unknown_execution(self, executor: Executor) -> Execution:
        """An execution the backend never had, launched long ago."""
        return Execution(
            executor=executor.name,
            execution_id=f"jobrelay-unknown-{uuid.uuid4().hex}",
            job_id=f"unknown-{uuid.uuid4().hex[:12]}",
            launched_at=datetime.now(timezone.utc) - timedelta(days=1),
        )

    @pytest.fixture
    def launched(self, executor: Executor) -> Iterator[list[Execution]]:
        """Executions a test launched; cancelled and cleaned up afterwards."""
        executions: list[Execution] = []
        yield executions
        errors: list[str] = []
        for execution in executions:
            for step in (executor.cancel, executor.cleanup):
                try:
                    step(execution)
                except Exception as exc:  # noqa: BLE001, PERF203 - every execution is cleaned
                    errors.append(f"{step.__name__}({execution.execution_id}): {exc!r}")
        assert not errors, f"teardown could not cancel/clean up: {errors}"

    # -- helpers ----------------------------------------------------------------------

    @staticmethod
    def _launch(executor: Executor, launched: list[Execution], job: JobSpec) -> Execution:
        execution = executor.launch(job)
        launched.append(execution)
        return execution

    # -- launch -----------------------------------------------------------------------

    def test_launch_returns_execution(
        self, executor: Executor, make_job: MakeJob, launched: list[Execution]
    ) -> None:
        job = make_job(Scenario.SUCCEED)
        execution = self._launch(executor, launched, job)
        assert execution.executor == executor.name, "execution.executor must be the executor's name"
        assert execution.job_id == job.job_id, "execution.job_id must be the job's id"
        assert execution.execution_id, "execution_id must not be empty"
        assert execution.launched_at.tzinfo is not None, "launched_at must be timezone-aware"

    def test_same_job_id_launches_once(
        self, executor: Executor, make_job: MakeJob, launched: list[Execution]
    ) -> None:
        job = make_job(Scenario.LONG)
        first = self._launch(executor, launched, job)
        second = self._launch(executor, launched, job)
        assert second.execution_id == first.execution_id, (
            "launching the same job_id twice must return the first execution"
        )
        if isinstance(executor, ManagedLister):
            mine = [e for e in executor.list_managed() if e.job_id == job.job_id]
            assert len(mine) == 1, f"expected one managed workload for the job id, got {mine}"

    # -- status and harvest -----------------------------------------------------------

    def test_success_harvest(
        self,
        executor: Executor,
        make_job: MakeJob,
        settle: Settle,
        capabilities: Capabilities,
        launched: list[Execution],
    ) -> None:
        job = make_job(Scenario.SUCCEED)
        execution = self._launch(executor, launched, job)
        settle(execution, job)
        assert executor.status(execution).state is JobState.SUCCEEDED
        result = executor.harvest(execution)
        assert result.status.state is JobState.SUCCEEDED
        assert result.status.exit_code == 0
        assert result.execution.execution_id == execution.execution_id
        _assert_output(result.logs.stdout, result.logs.stderr, capabilities)

    def test_failure_harvest(
        self,
        executor: Executor,
        make_job: MakeJob,
        settle: Settle,
        capabilities: Capabilities,
        launched: list[Execution],
    ) -> None:
        job = make_job(Scenario.FAIL)
        execution = self._launch(executor, launched, job)
        settle(execution, job)
        status = executor.status(execution)
        assert status.state is JobState.FAILED
        assert status.exit_code == FAIL_EXIT_CODE
        result = executor.harvest(execution)
        assert result.status.state is JobState.FAILED
        assert result.status.exit_code == FAIL_EXIT_CODE
        _assert_output(result.logs.stdout, result.logs.stderr, capabilities)

    def test_harvest_waits_for_the_end(
        self,
        executor: Executor,
        make_job: MakeJob,
        settle: Settle,
        capabilities: Capabilities,
        wait_timeout: float,
        launched: list[Execution],
    ) -> None:
        job = make_job(Scenario.FAIL)
        execution = self._launch(executor, launched, job)
        results: list[JobResult] = []
        errors: list[BaseException] = []

        def harvest() -> None:
            try:
                results.append(executor.harvest(execution))
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        # Harvest first, right after launch; ``settle`` then brings the job to its end
        # (a fake backend needs that push). A harvest that does not wait sees it unfinished.
        worker = threading.Thread(target=harvest, daemon=True)
        worker.start()
        settle(execution, job)
        worker.join(wait_timeout)
        assert not worker.is_alive(), f"harvest did not return within {wait_timeout}s"
        assert not errors, f"harvest raised {errors[0]!r}"
        result = results[0]
        assert result.status.is_terminal, (
            f"harvest must wait for the end, but returned {result.status}"
        )
        assert result.status.state is JobState.FAILED, f"expected FAILED, got {result.status}"
        assert result.status.exit_code == FAIL_EXIT_CODE, (
            f"expected exit code {FAIL_EXIT_CODE}, got {result.status.exit_code}"
        )
        _assert_output(result.logs.stdout, result.logs.stderr, capabilities)

    def test_status_times(
        self, executor: Executor, make_job: MakeJob, settle: Settle, launched: list[Execution]
    ) -> None:
        job = make_job(Scenario.SUCCEED)
        execution = self._launch(executor, launched, job)
        settle(execution, job)
        status = executor.status(execution)
        assert status.is_terminal
        if status.started_at is not None and status.finished_at is not None:
            assert status.finished_at >= status.started_at

    def test_logs_before_cleanup(
        self,
        executor: Executor,
        make_job: MakeJob,
        settle: Settle,
        capabilities: Capabilities,
        launched: list[Execution],
    ) -> None:
        job = make_job(Scenario.SUCCEED)
        execution = self._launch(executor, launched, job)
        settle(execution, job)
        logs = executor.logs(execution)
        _assert_output(logs.stdout, logs.stderr, capabilities)
        tailed = executor.logs(execution, tail=1)
        if capabilities.log_split:
            assert tailed.stdout.strip() == OUT_MARKER
            assert tailed.stderr.strip() == ERR_MARKER
        else:
            # Interleaving of the two streams is the backend's: either line may be last.
            assert tailed.stdout.strip() in {OUT_MARKER, ERR_MARKER}

    def test_stream_logs(
        self,
        executor: Executor,
        make_job: MakeJob,
        settle: Settle,
        capabilities: Capabilities,
        launched: list[Execution],
    ) -> None:
        if not capabilities.log_streaming:
            pytest.skip("executor declares no log streaming")
        job = make_job(Scenario.SUCCEED)
        execution = self._launch(executor, launched, job)
        settle(execution, job)
        lines = list(executor.stream_logs(execution))
        by_stream = {(line.stream, line.text.strip()) for line in lines}
        if capabilities.log_split:
            assert ("stdout", OUT_MARKER) in by_stream
            assert ("stderr", ERR_MARKER) in by_stream
        else:
            assert {text for _, text in by_stream} >= {OUT_MARKER, ERR_MARKER}

    def test_unknown_execution_is_lost(
        self, executor: Executor, unknown_execution: Execution
    ) -> None:
        assert executor.status(unknown_execution).state is JobState.LOST
        statuses = executor.statuses([unknown_execution])
        assert statuses[unknown_execution.execution_id].state is JobState.LOST

    def test_harvest_unknown_is_not_success(
        self, executor: Executor, unknown_execution: Execution
    ) -> None:
        result = executor.harvest(unknown_execution)
        assert result.status.state is JobState.LOST
        assert not result.succeeded

    def test_statuses_agree_with_status(
        self,
        executor: Executor,
        make_job: MakeJob,
        settle: Settle,
        unknown_execution: Execution,
        launched: list[Execution],
    ) -> None:
        jobs = [make_job(Scenario.SUCCEED), make_job(Scenario.FAIL)]
        executions = [self._launch(executor, launched, job) for job in jobs]
        for execution, job in zip(executions, jobs, strict=True):
            settle(execution, job)
        everything = [*executions, unknown_execution]
        batch = executor.statuses(everything)
        assert set(batch) == {e.execution_id for e in everything}
        for execution in everything:
            single = executor.status(execution)
            assert batch[execution.execution_id].state is single.state
            assert batch[execution.execution_id].exit_code == single.exit_code
        assert executor.statuses([]) == {}

    # -- cancel and cleanup -----------------------------------------------------------

    def test_cancel_running_job(
        self,
        executor: Executor,
        make_job: MakeJob,
        capabilities: Capabilities,
        wait_timeout: float,
        launched: list[Execution],
    ) -> None:
        if not capabilities.cancel:
            pytest.skip("executor declares no cancel")
        execution = self._launch(executor, launched, make_job(Scenario.LONG))
        executor.cancel(execution)
        status = wait_for_state(executor, execution, _terminal, timeout=wait_timeout)
        assert status.state is JobState.CANCELLED
        executor.cancel(execution)  # idempotent
        assert executor.status(execution).state is JobState.CANCELLED
        result = executor.harvest(execution)
        assert result.status.state is JobState.CANCELLED

    def test_cancel_finished_job_is_harmless(
        self, executor: Executor, make_job: MakeJob, settle: Settle, launched: list[Execution]
    ) -> None:
        job = make_job(Scenario.SUCCEED)
        execution = self._launch(executor, launched, job)
        settle(execution, job)
        executor.cancel(execution)
        assert executor.status(execution).state is JobState.SUCCEEDED

    def test_cleanup_is_idempotent(
        self, executor: Executor, make_job: MakeJob, settle: Settle, launched: list[Execution]
    ) -> None:
        job = make_job(Scenario.SUCCEED)
        execution = self._launch(executor, launched, job)
        settle(execution, job)
        executor.harvest(execution)
        executor.cleanup(execution)
        executor.cleanup(execution)

    def test_cancel_and_cleanup_unknown_are_harmless(
        self, executor: Executor, unknown_execution: Execution
    ) -> None:
        executor.cancel(unknown_execution)
        executor.cleanup(unknown_execution)

    # -- labels, capabilities, health ---------------------------------------------------

    def test_labels_on_workload(
        self,
        executor: Executor,
        make_job: MakeJob,
        workload_labels: LabelReader,
        launched: list[Execution],
    ) -> None:
        job = make_job(Scenario.LONG, labels={"team": "data"}, name="conformance-labels")
        execution = self._launch(executor, launched, job)
        labels = workload_labels(execution)
        expected = {
            jr_labels.MANAGED: "true",
            jr_labels.JOB_ID: job.job_id,
            jr_labels.JOB_NAME: job.name,
            jr_labels.EXECUTOR: executor.name,
            "team": "data",
        }
        for key, value in expected.items():
            assert labels.get(key) == value, (
                f"label {key}: expected {value!r}, got {labels.get(key)!r}"
            )
        assert labels.get(jr_labels.OWNER), f"label {jr_labels.OWNER} missing: {dict(labels)}"

    def test_context_manager_and_close(self, executor: Executor) -> None:
        with executor as entered:
            assert entered is executor, "__enter__ must return the executor itself"
        executor.close()  # a second close is harmless

    def test_capabilities(self, executor: Executor) -> None:
        caps = executor.capabilities()
        assert isinstance(caps, Capabilities)
        assert caps.list_managed == isinstance(executor, ManagedLister)
        if caps.stdin:
            assert isinstance(executor, StdinFeeder), (
                "capabilities().stdin is True, so the executor must have "
                "send_stdin(execution, chunks)"
            )

    def test_health(self, executor: Executor) -> None:
        health = executor.health()
        assert health.healthy, health.detail
        if health.latency is not None:
            assert health.latency >= 0

    def test_is_an_executor(self, executor: Executor) -> None:
        assert isinstance(executor, Executor)
        assert isinstance(executor.name, str)
        assert executor.name


def _terminal(status: JobStatus) -> bool:
    return status.is_terminal


def _assert_output(stdout: str, stderr: str, capabilities: Capabilities) -> None:
    seen = f"stdout={stdout!r}, stderr={stderr!r}"
    if capabilities.log_split:
        assert OUT_MARKER in stdout, f"{OUT_MARKER!r} expected in stdout; {seen}"
        assert ERR_MARKER in stderr, f"{ERR_MARKER!r} expected in stderr; {seen}"
        assert ERR_MARKER not in stdout, f"stderr line leaked into stdout; {seen}"
        assert OUT_MARKER not in stderr, f"stdout line leaked into stderr; {seen}"
    else:
        assert OUT_MARKER in stdout, f"{OUT_MARKER!r} expected in stdout; {seen}"
        assert ERR_MARKER in stdout, f"merged logs: {ERR_MARKER!r} expected in stdout; {seen}"
