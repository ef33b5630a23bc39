"""The executor contract: a small :class:`typing.Protocol`, nothing to subclass."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

from jobrelay._models import (
    Capabilities,
    Cost,
    Execution,
    Health,
    JobResult,
    JobStatus,
    LogLine,
    Logs,
)
from jobrelay._spec import JobSpec

__all__ = [
    "REQUIRED_METHODS",
    "CostEstimator",
    "Executor",
    "ManagedLister",
    "StdinFeeder",
    "missing_methods",
]

REQUIRED_METHODS = (
    "launch",
    "status",
    "statuses",
    "logs",
    "stream_logs",
    "harvest",
    "cancel",
    "cleanup",
    "capabilities",
    "health",
    "close",
)


def missing_methods(obj: object) -> list[str]:
    """Return the protocol methods ``obj`` (a class or an instance) does not have."""
    return [method for method in REQUIRED_METHODS if not callable(getattr(obj, method, None))]


_E = TypeVar("_E", bound="Executor")


@runtime_checkable
class Executor(Protocol):
    """Runs container jobs on one backend.

    Any object with these methods is an executor; register its class under the
    ``jobrelay.executors`` entry-point group, or with
    :func:`jobrelay.register_executor`. Prove it with :mod:`jobrelay.testing`.

    Example::

        class MyExecutor:
            name = "mine"

            def launch(self, job: JobSpec) -> Execution: ...
            def status(self, execution: Execution) -> JobStatus: ...
            # ... the other methods below ...

        with get_executor("mine") as executor:
            execution = executor.launch(JobSpec("busybox", "echo hi"))
            result = executor.harvest(execution)

    Contract:
        - ``launch`` raises :class:`~jobrelay.errors.LaunchError` (permanent) or
          :class:`~jobrelay.errors.TransientExecutorError` (retried by the caller);
          launching the same ``job_id`` twice returns the existing execution and never
          creates a second workload. A failed launch leaves nothing behind.
        - ``status`` reports ``LOST`` when the backend has no such execution.
        - ``statuses`` makes as few backend calls as the backend allows.
        - ``harvest`` waits for the end, returns final status and logs, then cleans up
          per the executor's policy; an unknown execution is never reported a success.
        - ``cancel`` and ``cleanup`` are idempotent.
        - Workloads carry the ``jobrelay.*`` labels; cleanup only touches managed ones.
    """

    name: str

    def launch(self, job: JobSpec) -> Execution:
        """Start ``job``; return its execution (the existing one for a known job_id)."""
        ...

    def status(self, execution: Execution) -> JobStatus:
        """Return the execution's current status (``LOST`` if the backend forgot it)."""
        ...

    def statuses(self, executions: Iterable[Execution]) -> Mapping[str, JobStatus]:
        """Return statuses keyed by ``execution_id``, in as few calls as possible."""
        ...

    def logs(self, execution: Execution, *, tail: int | None = None) -> Logs:
        """Return the output so far (the last ``tail`` lines of each stream if given)."""
        ...

    def stream_logs(self, execution: Execution) -> Iterator[LogLine]:
        """Yield output lines as they come, until the job ends."""
        ...

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the end, collect status and logs, then clean up per policy."""
        ...

    def cancel(self, execution: Execution) -> None:
        """Stop the workload; calling it again, or on a finished job, is fine."""
        ...

    def cleanup(self, execution: Execution) -> None:
        """Remove what the execution left behind; idempotent."""
        ...

    def capabilities(self) -> Capabilities:
        """Describe what this executor can do."""
        ...

    def health(self) -> Health:
        """Check reachability cheaply, with a short timeout; never raise."""
        ...

    def close(self) -> None:
        """Release clients and connections; calling it twice is harmless."""
        ...

    def __enter__(self: _E) -> _E:
        """Return the executor itself (``jobrelay.backend.ExecutorBase`` supplies this)."""
        ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Call :meth:`close`."""
        ...


@runtime_checkable
class ManagedLister(Protocol):
    """Optional extra: executors that can list their live workloads (for reconcile).

    Announced by :attr:`Capabilities.list_managed`.
    """

    def list_managed(self) -> list[Execution]:
        """Return every workload carrying ``jobrelay.managed=true`` as an execution."""
        ...


@runtime_checkable
class CostEstimator(Protocol):
    """Optional extra: executors that can price a job. Announced by ``Capabilities.cost_estimate``.

    Example::

        if isinstance(executor, CostEstimator):
            cost = executor.estimate_cost(job, 600)
    """

    def estimate_cost(self, job: JobSpec, duration_seconds: float) -> Cost | None:
        """Return what ``job`` costs for ``duration_seconds``, or None if it cannot be priced."""
        ...


@runtime_checkable
class StdinFeeder(Protocol):
    r"""Optional extra: executors that can feed input to a job. Announced by ``Capabilities.stdin``.

    Only a job launched with ``JobSpec(stdin=True)`` has a standard input to feed; it
    reads what ``send_stdin`` writes, then end-of-file. Until then it waits for input,
    so whoever launches such a job should send it (an empty ``chunks`` is fine).

    Example::

        job = JobSpec("busybox", "wc -c", stdin=True)
        execution = executor.launch(job)
        if isinstance(executor, StdinFeeder) and executor.capabilities().stdin:
            executor.send_stdin(execution, [b"hello\n", b"world\n"])
        print(executor.harvest(execution).logs.stdout)  # 12
    """

    def send_stdin(self, execution: Execution, chunks: Iterable[bytes]) -> None:
        """Write every chunk to the job's standard input, then close it (the job reads EOF).

        Returns when all of it was handed over, or when the job ended before taking
        it all (what it did not read is dropped, as in a shell pipeline). A job's
        input can be sent once.

        Raises:
            ExecutorError: no such job, or it was not launched with ``stdin=True``.
        """
        ...
