"""Every exception jobrelay raises, in one place.

The tree::

    JobrelayError
    ├── SpecError (ValueError)            bad JobSpec / Resources input; names the field
    ├── RuleError                         a routing condition that does not compile or evaluate
    ├── ConfigError                       bad Router / executor configuration
    ├── ExecutorNotFoundError (LookupError)  no executor registered under that name
    ├── ExecutorLoadError                 an executor plugin failed to import or is not one
    ├── ExecutorError                     a backend refused or failed an operation
    │   ├── LaunchError                   the job could not be launched (permanent)
    │   └── TransientExecutorError        a passing fault: retried by RetryPolicy
    ├── NoExecutorAvailableError          routing found no usable candidate
    └── JobTimeoutError (TimeoutError)    a job or a wait ran past its deadline

Errors carry context as attributes (``executor``, ``job_id``, ``field``) so callers
need not parse messages. No message ever contains a secret value.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ConfigError",
    "ExecutorError",
    "ExecutorLoadError",
    "ExecutorNotFoundError",
    "JobTimeoutError",
    "JobrelayError",
    "LaunchError",
    "NoExecutorAvailableError",
    "RuleError",
    "SpecError",
    "TransientExecutorError",
]


class JobrelayError(Exception):
    """Base class of every error raised by jobrelay and its executors."""


class SpecError(JobrelayError, ValueError):
    """A job specification or resource value is invalid.

    Attributes:
        field: dotted name of the offending field, e.g. ``"resources.memory"``.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class RuleError(JobrelayError):
    """A routing condition could not be compiled or evaluated.

    Attributes:
        text: the condition text (possibly shortened).
        column: 1-based column of the offending token, or None when not positional.
    """

    def __init__(self, message: str, *, text: str = "", column: int | None = None) -> None:
        self.text = text
        self.column = column
        where = f" (column {column})" if column is not None else ""
        super().__init__(f"{message}{where}")


class ConfigError(JobrelayError):
    """Router or executor configuration is invalid."""


class ExecutorNotFoundError(JobrelayError, LookupError):
    """No executor is registered under the requested name.

    Attributes:
        executor: the name asked for.
        alternatives: the names that are available.
    """

    def __init__(self, executor: str, alternatives: Sequence[str]) -> None:
        self.executor = executor
        self.alternatives = tuple(alternatives)
        avail = ", ".join(self.alternatives) or "none"
        super().__init__(f"no executor named {executor!r}; available: {avail}")


class ExecutorLoadError(JobrelayError):
    """An executor plugin could not be loaded.

    Attributes:
        executor: the executor name.
        entry_point: the entry point value (``module:attr``) or dotted path.
        distribution: the distribution that declared it, if known.
        alternatives: other executor names that are available.
    """

    def __init__(
        self,
        executor: str,
        *,
        entry_point: str,
        distribution: str | None,
        reason: str,
        alternatives: Sequence[str] = (),
    ) -> None:
        self.executor = executor
        self.entry_point = entry_point
        self.distribution = distribution
        self.alternatives = tuple(alternatives)
        source = f" from distribution {distribution!r}" if distribution else ""
        avail = ", ".join(self.alternatives) or "none"
        super().__init__(
            f"executor {executor!r} (entry point {entry_point!r}{source}) failed to load: "
            f"{reason}; other installed executors: {avail}"
        )


class ExecutorError(JobrelayError):
    """A backend failed an operation.

    Attributes:
        executor: name of the executor that failed, if known.
        job_id: the job concerned, if known.
    """

    def __init__(
        self, message: str, *, executor: str | None = None, job_id: str | None = None
    ) -> None:
        self.executor = executor
        self.job_id = job_id
        super().__init__(message)


class LaunchError(ExecutorError):
    """A job could not be launched and retrying the same call will not help."""


class TransientExecutorError(ExecutorError):
    """A passing backend fault (connection reset, throttling, 5xx): safe to retry."""


class NoExecutorAvailableError(JobrelayError):
    """Routing found no available executor.

    Attributes:
        job_id: the job that could not be placed.
        skipped: ``(executor, why)`` pairs for every candidate considered.
        capacity_only: the job waits for a slot: a candidate at capacity stopped the
            routing (its entry does not overflow to the next), or every candidate was
            at capacity, so trying again once an execution ends can succeed.
        retry_after: None when waiting cannot help; otherwise seconds after which
            trying again may succeed (0 when waiting for capacity; else until the next
            health check of the candidates that are unhealthy for now).
    """

    def __init__(
        self,
        job_id: str,
        skipped: Sequence[tuple[str, str]],
        *,
        capacity_only: bool = False,
        retry_after: float | None = None,
    ) -> None:
        self.job_id = job_id
        self.skipped = tuple(skipped)
        self.capacity_only = capacity_only
        self.retry_after = retry_after
        detail = "; ".join(f"{name}: {why}" for name, why in self.skipped) or "no candidates"
        super().__init__(f"no executor available for job {job_id!r} ({detail})")


class JobTimeoutError(JobrelayError, TimeoutError):
    """A job, or a wait on one, ran past its deadline.

    Attributes:
        job_id: the job concerned, if known.
        timeout: the deadline in seconds.
    """

    def __init__(
        self, message: str, *, job_id: str | None = None, timeout: float | None = None
    ) -> None:
        self.job_id = job_id
        self.timeout = timeout
        super().__init__(message)
