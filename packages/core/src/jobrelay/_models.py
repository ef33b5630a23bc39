"""What executors report back: states, statuses, executions, logs, results."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

import attrs

if TYPE_CHECKING:
    from jobrelay._spec import JobSpec

__all__ = [
    "ROUTE_METADATA_KEY",
    "Capabilities",
    "Cost",
    "Execution",
    "Health",
    "JobResult",
    "JobState",
    "JobStatus",
    "LogLine",
    "Logs",
]


ROUTE_METADATA_KEY = "jobrelay.route"
"""Key of the routing record (``RouteDecision.to_dict()``) that ``Router.launch`` adds to
``Execution.metadata``: the chosen executor, the reason, every hop and skipped candidate."""


class JobState(str, enum.Enum):
    """Where a job stands. ``LOST`` means the backend no longer knows the execution."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    LOST = "lost"

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change state."""
        return self not in _ACTIVE

    def __str__(self) -> str:
        return self.value


_ACTIVE = frozenset({JobState.PENDING, JobState.RUNNING})


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@attrs.frozen
class JobStatus:
    """A job's state at one moment, with its exit code once it has one."""

    state: JobState
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def is_terminal(self) -> bool:
        """True once the job can no longer change state."""
        return self.state.is_terminal


@attrs.frozen
class Execution:
    """A launched job: returned by ``launch``, passed back to every other method.

    Args:
        executor: name of the executor that launched it.
        execution_id: the backend's id (container id, task ARN, execution name).
        job_id: the job's idempotency key.
        launched_at: when it was launched (timezone-aware).
        metadata: backend data such as region, URLs, ARNs and routing hops.
    """

    executor: str
    execution_id: str
    job_id: str
    launched_at: datetime
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_mapping)


@attrs.frozen
class Logs:
    """A job's output.

    An executor whose backend does not keep stdout and stderr apart says so in
    :attr:`Capabilities.log_split` and puts everything in ``stdout``.
    """

    stdout: str = ""
    stderr: str = ""
    truncated: bool = False


@attrs.frozen
class LogLine:
    """One line of streamed output, tagged with the stream it came from."""

    stream: Literal["stdout", "stderr"]
    text: str
    timestamp: datetime | None = None


def _decimal(value: object) -> Decimal:
    if isinstance(value, float):
        raise TypeError("money is a Decimal (or an int or str), never a float")
    try:
        amount = Decimal(value)  # type: ignore[arg-type]
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"not an amount of money: {value!r}") from None
    if not amount.is_finite():
        raise ValueError(f"not an amount of money: {value!r}")
    return amount


@attrs.frozen
class Cost:
    """An estimated cost of a job on one backend.

    Args:
        amount: the estimate for the duration asked (``Decimal``; never a float).
        currency: ISO 4217 code, e.g. ``"USD"``, ``"EUR"``.
        rate_per_hour: what one hour of the job's billed resources costs.
        source: where the price came from (table file and its date, or ``"config"``).
    """

    amount: Decimal = attrs.field(converter=_decimal)
    currency: str
    rate_per_hour: Decimal = attrs.field(converter=_decimal)
    source: str = ""

    def __str__(self) -> str:
        return f"{self.amount:.4f} {self.currency}"


@attrs.frozen
class JobResult:
    """What ``harvest`` returns: the final status and logs of an execution.

    Args:
        execution: the execution harvested.
        status: its final status.
        logs: its output.
        duration: seconds it ran, when the backend tells.
        cost: the estimated cost of that run, when the executor can price it.
        attempts: how many launches the job took (1 without retries).
        job: the submitted spec (a Runner fills it; None for re-attached executions).
    """

    execution: Execution
    status: JobStatus
    logs: Logs
    duration: float | None = None
    cost: Cost | None = None
    attempts: int = 1
    job: JobSpec | None = None

    @property
    def state(self) -> JobState:
        """Shortcut for ``status.state``."""
        return self.status.state

    @property
    def exit_code(self) -> int | None:
        """Shortcut for ``status.exit_code``."""
        return self.status.exit_code

    @property
    def succeeded(self) -> bool:
        """True when the job ended in ``SUCCEEDED``."""
        return self.status.state is JobState.SUCCEEDED


@attrs.frozen
class Capabilities:
    """What an executor can do; routing and the conformance kit read it.

    Args:
        max_cpu: most cores one job may ask for, None for no known limit.
        max_memory_mb: most MiB one job may ask for, None for no known limit.
        max_gpu: most GPUs one job may ask for (0: no GPUs).
        resource_limits: cpu/memory limits are enforced on the workload.
        networking: jobs can reach the network.
        persistent_storage: volumes survive the job.
        secrets: secrets are passed through a secret store rather than plain env.
        log_split: stdout and stderr are kept apart.
        log_streaming: ``stream_logs`` follows a running job.
        cancel: ``cancel`` stops a running job.
        list_managed: the executor has ``list_managed()`` for reconcile.
        platform_retries: the backend retries a failed task itself
            (``JobSpec.max_retries`` is passed to it); otherwise a Runner relaunches.
        cost_estimate: the executor has ``estimate_cost()`` (see ``CostEstimator``).
        stdin: the executor can feed input to a job started with
            ``JobSpec(stdin=True)``, through ``send_stdin(execution, chunks)`` (see
            ``StdinFeeder``).
    """

    max_cpu: float | None = None
    max_memory_mb: int | None = None
    max_gpu: int = 0
    resource_limits: bool = True
    networking: bool = True
    persistent_storage: bool = False
    secrets: bool = False
    log_split: bool = True
    log_streaming: bool = True
    cancel: bool = True
    list_managed: bool = False
    platform_retries: bool = False
    cost_estimate: bool = False
    stdin: bool = False

    @property
    def gpu(self) -> bool:
        """True when jobs may ask for GPUs."""
        return self.max_gpu > 0


@attrs.frozen
class Health:
    """The answer of a cheap reachability check.

    Args:
        healthy: the backend answered and accepts work.
        latency: seconds the check took, when measured.
        detail: a short human explanation (error text when unhealthy).
        version: the backend's version, when it tells.
    """

    healthy: bool
    latency: float | None = None
    detail: str = ""
    version: str | None = None
