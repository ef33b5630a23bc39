"""Hook specifications (pluggy project ``"jobrelay"``).

Implement any of these in a plugin object decorated with :data:`jobrelay.hookimpl`
and register it with ``router.hooks.register(obj)``, or publish it under the
``jobrelay.plugins`` entry-point group. Hooks observe; their return values are
ignored, and a hook that raises is logged and never breaks a job.

Example::

    from jobrelay import hookimpl

    class Metrics:
        @hookimpl
        def job_finished(self, execution, result):
            histogram.observe(result.duration)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from jobrelay._models import Execution, JobResult, JobState
    from jobrelay._runner import Runner
    from jobrelay._spec import JobSpec
    from jobrelay.errors import ExecutorError

PROJECT = "jobrelay"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def job_routed(job: JobSpec, decision: object) -> None:
    """A routing decision was made for ``job`` (``decision`` is a ``RouteDecision``)."""


@hookspec
def job_launched(job: JobSpec, execution: Execution) -> None:
    """``job`` was launched as ``execution``."""


@hookspec
def job_status_changed(execution: Execution, old: JobState | None, new: JobState) -> None:
    """An execution moved from ``old`` (None when first seen) to ``new``."""


@hookspec
def job_finished(execution: Execution, result: JobResult) -> None:
    """An execution reached a terminal state and was harvested."""


@hookspec
def launch_failed(job: JobSpec, executor: str, error: ExecutorError) -> None:
    """Launching ``job`` on ``executor`` failed with ``error`` (routing may go on)."""


@hookspec
def runner_shutdown(runner: Runner) -> None:
    """A Runner finished shutting down: every ``job_finished`` it will emit was emitted.

    The moment for plugins that buffer (archives, exporters) to flush.
    """
