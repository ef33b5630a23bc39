"""Hooks: every implementation runs, a failing one is logged, plugins come from entry points."""

from __future__ import annotations

import logging
import sys
import textwrap
from datetime import datetime, timezone
from typing import Any

import pytest

from conftest import Site
from jobrelay import (
    Execution,
    Hooks,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    LaunchError,
    Logs,
    hookimpl,
)

PLUGINS = "jobrelay.plugins"
JOB = JobSpec("busybox", job_id="job-1")
EXECUTION = Execution("mock", "mock-1", "job-1", datetime(2024, 1, 1, tzinfo=timezone.utc))
RESULT = JobResult(EXECUTION, JobStatus(JobState.SUCCEEDED, 0), Logs("out", "err"), 1.0)
ERROR = LaunchError("refused", executor="mock", job_id="job-1")

ALL_HOOKS: dict[str, dict[str, Any]] = {
    "job_routed": {"job": JOB, "decision": "decision"},
    "job_launched": {"job": JOB, "execution": EXECUTION},
    "job_status_changed": {"execution": EXECUTION, "old": None, "new": JobState.RUNNING},
    "job_finished": {"execution": EXECUTION, "result": RESULT},
    "launch_failed": {"job": JOB, "executor": "mock", "error": ERROR},
}


class Recorder:
    """Implements every hook and records (hook, arguments)."""

    def __init__(self, tag: str = "recorder", calls: list[Any] | None = None) -> None:
        self.tag = tag
        self.calls: list[Any] = calls if calls is not None else []

    @hookimpl
    def job_routed(self, job: JobSpec, decision: object) -> None:
        self.calls.append((self.tag, "job_routed", {"job": job, "decision": decision}))

    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        self.calls.append((self.tag, "job_launched", {"job": job, "execution": execution}))

    @hookimpl
    def job_status_changed(self, execution: Execution, old: JobState | None, new: JobState) -> None:
        args = {"execution": execution, "old": old, "new": new}
        self.calls.append((self.tag, "job_status_changed", args))

    @hookimpl
    def job_finished(self, execution: Execution, result: JobResult) -> None:
        self.calls.append((self.tag, "job_finished", {"execution": execution, "result": result}))

    @hookimpl
    def launch_failed(self, job: JobSpec, executor: str, error: Exception) -> None:
        args = {"job": job, "executor": executor, "error": error}
        self.calls.append((self.tag, "launch_failed", args))


class Exploding:
    """Raises from every hook it implements."""

    @hookimpl
    def job_launched(self, job: JobSpec, execution: Execution) -> None:
        raise RuntimeError(f"exploding hook saw {execution.execution_id}")

    @hookimpl
    def job_finished(self, execution: Execution, result: JobResult) -> None:
        raise KeyError("job_finished")


class Partial:
    """Takes only some of a hook's arguments, as pluggy allows."""

    def __init__(self) -> None:
        self.seen: list[JobState] = []

    @hookimpl
    def job_status_changed(self, new: JobState) -> None:
        self.seen.append(new)


def test_every_hook_fires_with_its_arguments() -> None:
    hooks = Hooks(load_entry_points=False)
    recorder = Recorder()
    hooks.register(recorder)
    for name, kwargs in ALL_HOOKS.items():
        hooks.emit(name, **kwargs)
    assert recorder.calls == [("recorder", name, kwargs) for name, kwargs in ALL_HOOKS.items()]


def test_hooks_run_in_pluggy_order() -> None:
    hooks = Hooks(load_entry_points=False)
    calls: list[Any] = []
    for tag in ("first", "second", "third"):
        hooks.register(Recorder(tag, calls))
    hooks.manager.hook.job_launched(job=JOB, execution=EXECUTION)
    pluggy_order = [tag for tag, _, _ in calls]
    calls.clear()
    hooks.emit("job_launched", job=JOB, execution=EXECUTION)
    assert [tag for tag, _, _ in calls] == pluggy_order
    assert sorted(pluggy_order) == ["first", "second", "third"]


def test_partial_arguments() -> None:
    hooks = Hooks(load_entry_points=False)
    partial = Partial()
    hooks.register(partial)
    hooks.emit("job_status_changed", execution=EXECUTION, old=None, new=JobState.RUNNING)
    assert partial.seen == [JobState.RUNNING]


def test_a_raising_hook_is_logged_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    hooks = Hooks(load_entry_points=False)
    calls: list[Any] = []
    hooks.register(Recorder("before", calls))
    hooks.register(Exploding(), name="exploding")
    hooks.register(Recorder("after", calls))
    with caplog.at_level(logging.DEBUG, logger="jobrelay"):
        hooks.emit("job_launched", job=JOB, execution=EXECUTION)
        hooks.emit("job_finished", execution=EXECUTION, result=RESULT)
    assert sorted((tag, name) for tag, name, _ in calls) == [
        ("after", "job_finished"),
        ("after", "job_launched"),
        ("before", "job_finished"),
        ("before", "job_launched"),
    ]
    errors = [r for r in caplog.records if r.name.startswith("jobrelay") and r.exc_info]
    assert len(errors) == 2
    assert errors[0].levelno == logging.ERROR
    assert "job_launched" in errors[0].getMessage()
    assert "exploding" in errors[0].getMessage()
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
    assert "job_finished" in errors[1].getMessage()


def test_unregister() -> None:
    hooks = Hooks(load_entry_points=False)
    recorder = Recorder()
    hooks.register(recorder)
    hooks.unregister(recorder)
    hooks.emit("job_launched", job=JOB, execution=EXECUTION)
    assert recorder.calls == []


def test_emit_without_implementations() -> None:
    hooks = Hooks(load_entry_points=False)
    for name, kwargs in ALL_HOOKS.items():
        hooks.emit(name, **kwargs)


# -- jobrelay.plugins entry points ----------------------------------------------------------

MODULE_PLUGIN = textwrap.dedent(
    """
    from jobrelay import hookimpl

    calls = []

    @hookimpl
    def job_finished(execution, result):
        calls.append((execution.execution_id, result.state.value))
    """
)


def _module(name: str) -> Any:
    return sys.modules[name]


def test_plugins_load_from_entry_points(site: Site) -> None:
    site.distribution(
        "jr-hook-plugin",
        entry_points={PLUGINS: {"jr-metrics": "jr_hook_plugin"}},
        modules={"jr_hook_plugin": MODULE_PLUGIN},
    )
    hooks = Hooks()
    assert site.imported() == []  # loaded on first use, not at construction
    hooks.emit("job_finished", execution=EXECUTION, result=RESULT)
    assert _module("jr_hook_plugin").calls == [("mock-1", "succeeded")]
    assert hooks.manager.get_plugin("jr-metrics") is _module("jr_hook_plugin")
    hooks.emit("job_finished", execution=EXECUTION, result=RESULT)
    assert len(_module("jr_hook_plugin").calls) == 2  # registered once


def test_load_entry_points_false_ignores_them(site: Site) -> None:
    site.distribution(
        "jr-hook-plugin",
        entry_points={PLUGINS: {"jr-metrics": "jr_hook_plugin"}},
        modules={"jr_hook_plugin": MODULE_PLUGIN},
    )
    Hooks(load_entry_points=False).emit("job_finished", execution=EXECUTION, result=RESULT)
    assert site.imported() == []


@pytest.mark.parametrize(
    ("source", "value"),
    [
        ('raise ImportError("jr_bad_plugin needs libaudit")\n', "jr_bad_plugin"),
        ("raise RuntimeError('plugin crashed at import')\n", "jr_bad_plugin"),
        ("x = 1\n", "jr_bad_plugin:missing_attribute"),
        (
            "from jobrelay import hookimpl\n\n@hookimpl\ndef job_finished(nonsense):\n    pass\n",
            "jr_bad_plugin",
        ),
    ],
    ids=["import error", "crash", "missing attribute", "bad hook signature"],
)
def test_a_broken_plugin_is_logged_and_breaks_nothing(
    site: Site, caplog: pytest.LogCaptureFixture, source: str, value: str
) -> None:
    # One distribution, the broken entry point first: loading must go on past it.
    site.distribution(
        "jr-hook-plugins",
        entry_points={PLUGINS: {"jr-broken": value, "jr-metrics": "jr_hook_plugin"}},
        modules={"jr_bad_plugin": source, "jr_hook_plugin": MODULE_PLUGIN},
    )
    hooks = Hooks()
    recorder = Recorder()
    hooks.register(recorder)
    with caplog.at_level(logging.DEBUG, logger="jobrelay"):
        hooks.emit("job_finished", execution=EXECUTION, result=RESULT)
        hooks.emit("job_launched", job=JOB, execution=EXECUTION)
    assert [name for _, name, _ in recorder.calls] == ["job_finished", "job_launched"]
    assert _module("jr_hook_plugin").calls == [("mock-1", "succeeded")]
    logged = [r for r in caplog.records if r.name.startswith("jobrelay") and r.exc_info]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "jr-broken" in logged[0].getMessage()
    assert "jr-hook-plugins" in logged[0].getMessage()
