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
"""

from __future__ import annotations

import enum
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from jobrelay._models import Capabilities, Execution, JobState, JobStatus
from jobrelay._protocol import Executor, ManagedLister
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
        for execution in executions:
            try:
                executor.cancel(execution)
            finally:
                executor.cleanup(execution)

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
        assert execution.executor == executor.name
        assert execution.job_id == job.job_id
        assert execution.execution_id
        assert execution.launched_at.tzinfo is not None

    def test_same_job_id_launches_once(
        self, executor: Executor, make_job: MakeJob, launched: list[Execution]
    ) -> None:
        job = make_job(Scenario.LONG)
        first = self._launch(executor, launched, job)
        second = self._launch(executor, launched, job)
        assert second.execution_id == first.execution_id
        if isinstance(executor, ManagedLister):
            mine = [e for e in executor.list_managed() if e.job_id == job.job_id]
            assert len(mine) == 1, mine

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
        assert labels.get("jobrelay.managed") == "true"
        assert labels.get("jobrelay.job-id") == job.job_id
        assert labels.get("jobrelay.job-name") == job.name
        assert labels.get("jobrelay.executor") == executor.name
        assert labels.get("team") == "data"

    def test_capabilities(self, executor: Executor) -> None:
        caps = executor.capabilities()
        assert isinstance(caps, Capabilities)
        assert caps.list_managed == isinstance(executor, ManagedLister)

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
    if capabilities.log_split:
        assert OUT_MARKER in stdout
        assert ERR_MARKER in stderr
        assert ERR_MARKER not in stdout
        assert OUT_MARKER not in stderr
    else:
        assert OUT_MARKER in stdout
        assert ERR_MARKER in stdout
