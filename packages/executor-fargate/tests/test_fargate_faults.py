"""50 jobs through Router + Runner while a fifth of all ECS and Logs calls fail.

moto sits behind :class:`~fargate_fakes.WireProxy` in chaos mode: about 20% of the
calls (health checks, launches, look-ups, status sweeps, log reads, stops) get a 500
that echoes the request, a throttling error, a dropped connection, or a reply lost
after the call took effect. A driver thread plays Fargate: it starts each task, writes
its output to CloudWatch and stops it with the exit code the job asked for.

Afterwards every job must have a truthful terminal state (its task's exit code and
output), no handle may hang (every wait is bounded), no task may be left untracked
after a final reconcile, no job id may have two tasks, and the canary secret may
appear in none of jobrelay's outputs.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from fargate_fakes import MakeExecutor, MotoFargate, WireProxy
from jobrelay import JobHandle, JobSpec, JobState, Router, Runner
from jobrelay import labels as jl
from jobrelay.backend import secret_forms
from jobrelay_fargate import FargateExecutor
from jobrelay_fargate._tags import tags_to_dict

JOBS = 50
FAULT_RATE = 0.2
DEADLINE = 90.0  # seconds for all 50 results; a handle still waiting then is hung
CANARY = 'canary-"Zq9"\\x00-s3cret'
FAIL_CODE = 3


def _exit_code(index: int) -> int:
    return FAIL_CODE if index % 4 == 0 else 0


def _jobs() -> list[JobSpec]:
    return [
        JobSpec(
            "busybox:1.36",
            ["sh", "-c", 'echo "job $N"; exit $CODE'],
            env={"N": str(i), "CODE": str(_exit_code(i))},
            secrets={"TOKEN": CANARY},
            resources={"cpu": 0.25, "memory": 512},
            job_id=f"fault-{i:02d}",
        )
        for i in range(JOBS)
    ]


def _tasks(moto: MotoFargate) -> list[Any]:
    """Every task moto holds, read while moto's server threads may be adding some."""
    while True:
        with contextlib.suppress(RuntimeError):  # a dict changed size under us: read again
            return list(moto.tasks())


def _environment(task: Any) -> dict[str, str]:
    for override in task.overrides.get("containerOverrides", []):
        return {e["name"]: e["value"] for e in override.get("environment", [])}
    return {}


class FargateDriver:
    """Plays Fargate for moto's tasks: run each for a moment, log, stop with its code."""

    def __init__(self, moto: MotoFargate, executor: FargateExecutor) -> None:
        self._moto = moto
        self._executor = executor
        self._seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fake-fargate", daemon=True)
        self.errors: list[BaseException] = []

    def __enter__(self) -> FargateDriver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self._step_once()

    def _step_once(self) -> None:
        try:
            self._step()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.errors.append(exc)

    def _step(self) -> None:
        now = time.monotonic()
        for task in _tasks(self._moto):
            if task.last_status == "STOPPED":
                continue
            arn = task.task_arn
            if arn not in self._seen:
                self._seen[arn] = now
                self._moto.set_status(arn, "RUNNING")
                continue
            if now - self._seen[arn] < 0.1:
                continue
            env = _environment(task)
            stream = f"{self._executor.log_stream_prefix}/main/{arn.rsplit('/', 1)[-1]}"
            self._moto.write_logs(self._executor.log_group, stream, [f"job {env.get('N')}"])
            self._moto.finish(arn, int(env.get("CODE", "0")))


@attrs.define
class Figures:
    """What the scenario counts."""

    correct: int = 0
    lost: int = 0
    hung: int = 0
    untracked: int = 0
    leaked: int = 0
    duplicated: int = 0
    canary_leaks: int = 0
    why: Counter[str] = attrs.Factory(Counter)

    def line(self) -> str:
        return (
            f"correct={self.correct} lost={self.lost} hung={self.hung} "
            f"leaked={self.leaked} (untracked before reconcile: {self.untracked}) "
            f"duplicated={self.duplicated} canary_leaks={self.canary_leaks}"
        )


def _wait_all(handles: list[JobHandle]) -> None:
    """Wait for every handle, all within :data:`DEADLINE`."""
    deadline = time.monotonic() + DEADLINE
    for handle in handles:
        with contextlib.suppress(TimeoutError, cf.CancelledError):
            handle.exception(timeout=max(0.0, deadline - time.monotonic()))


def _judge(
    handles: list[JobHandle], tasks_by_job: dict[str, list[Any]], figures: Figures
) -> list[str]:
    """Count each job as correct, lost or hung; return the texts jobrelay produced."""
    texts: list[str] = []
    deadline = time.monotonic() + DEADLINE
    for index, handle in enumerate(handles):
        try:
            result = handle.result(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError:
            figures.hung += 1
            figures.why["hung"] += 1
            texts.append(repr(handle.status()))
            continue
        except Exception as exc:  # noqa: BLE001 - the job ended without a result
            figures.lost += 1
            figures.why[f"raised {type(exc).__name__}"] += 1
            texts += [str(exc), repr(exc), repr(handle.status())]
            continue
        texts += [repr(result), result.logs.stdout, str(result.status.reason)]
        tasks = tasks_by_job.get(handle.job_id, [])
        expected = _exit_code(index)
        truthful = (
            [t.task_arn for t in tasks] == [result.execution.execution_id]
            and result.exit_code == expected
            and result.state is (JobState.SUCCEEDED if expected == 0 else JobState.FAILED)
            and result.logs.stdout == f"job {index}\n"
        )
        if truthful:
            figures.correct += 1
        else:
            figures.lost += 1
            figures.why[f"untruthful {result.state.value} exit={result.exit_code}"] += 1
    return texts


@pytest.fixture
def chaos(proxy: WireProxy) -> Iterator[WireProxy]:
    proxy.chaos(FAULT_RATE, seed=2026)
    yield proxy
    proxy.clear()


def test_fifty_jobs_with_a_fifth_of_all_calls_failing(
    make_executor: MakeExecutor,
    moto: MotoFargate,
    chaos: WireProxy,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="jobrelay")
    executor = make_executor()
    figures = Figures()
    router = Router({"fargate": executor}, default="fargate")
    with FargateDriver(moto, executor) as driver:
        runner = Runner(router, max_workers=8, poll_interval=0.05)
        handles = [runner.submit(job) for job in _jobs()]
        tasks_by_job: dict[str, list[Any]] = {}
        # wait first, then read moto: every task that will ever exist exists by then
        _wait_all(handles)
        for task in _tasks(moto):
            job_id = tags_to_dict(task.tags).get(jl.JOB_ID, "?")
            tasks_by_job.setdefault(job_id, []).append(task)
        texts = _judge(handles, tasks_by_job, figures)
        runner.shutdown(wait=figures.hung == 0, cancel=figures.hung > 0)

        tracked = {h.execution.execution_id for h in handles if h.execution is not None}
        every_task = {t.task_arn for t in _tasks(moto)}
        figures.untracked = len(every_task - tracked)
        # the final reconcile, faults still on: whatever nobody tracks gets adopted
        reconciler = Runner(router, max_workers=8, poll_interval=0.05)
        adopted = reconciler.reconcile()
        _wait_all(adopted)
        reconciler.shutdown(wait=all(h.done() for h in adopted), cancel=True)
        adopted_ids = {h.execution.execution_id for h in adopted if h.execution is not None}
        stopped = {t.task_arn for t in _tasks(moto) if t.last_status == "STOPPED"}
        settled = stopped & (tracked | adopted_ids)
        figures.leaked = len(every_task - settled)
    figures.duplicated = sum(1 for tasks in tasks_by_job.values() if len(tasks) > 1)
    jobrelay_logs = [r.getMessage() for r in caplog.records if r.name.startswith("jobrelay")]
    forms = secret_forms(CANARY)  # raw, repr, JSON-escaped, Go-quoted, URL-encoded
    figures.canary_leaks = sum(
        any(form in text for form in forms) for text in texts + jobrelay_logs
    )
    faults = dict(chaos.faults)
    router.close()

    print(f"\nfargate, {JOBS} jobs, {FAULT_RATE:.0%} of {chaos.count()} calls failed {faults}")
    print(f"  {figures.line()}")
    print(f"  faults by call: {sorted(chaos.faulted.items())}")
    if figures.why:
        print(f"  not correct: {dict(figures.why)}")

    assert not driver.errors, driver.errors
    assert sum(faults.values()) > 0, "no fault was injected"
    assert figures.hung == 0, figures.line()
    assert figures.duplicated == 0, figures.line()
    assert figures.canary_leaks == 0, figures.line()
    assert figures.leaked == 0, figures.line()
    assert figures.correct == JOBS, f"{figures.line()}; {dict(figures.why)}"


def test_a_launch_whose_outcome_stays_unknown_is_settled_not_forgotten(
    make_executor: MakeExecutor, moto: MotoFargate, proxy: WireProxy
) -> None:
    """RunTask's reply is lost, then every look-up fails past the Router's retries.

    The executor raises ``TransientExecutorError`` (never ``LaunchError``); the Runner
    must keep the job "outcome unknown" and ask again, find the task that did start,
    and report its real result: one task, the right exit code.
    """
    executor = make_executor()
    job = JobSpec("busybox:1.36", ["true"], env={"N": "7", "CODE": "0"}, job_id="unknown-1")
    proxy.lose_reply("RunTask")
    # 2 look-ups pass before RunTask; then 40 fail: more than the executor's 4 tries
    # times the Router's 5 attempts
    proxy.drop("ListTasks", times=40, skip=2)
    router = Router({"fargate": executor}, default="fargate")
    with (
        FargateDriver(moto, executor) as driver,
        Runner(
            router, max_workers=2, poll_interval=0.05, harvest_timeout=60, retry_backoff=0.05
        ) as runner,
    ):
        handle = runner.submit(job)
        result = handle.result(timeout=DEADLINE)
    router.close()
    tasks = _tasks(moto)
    assert not driver.errors, driver.errors
    assert proxy.count("RunTask") == 1
    assert proxy.count("ListTasks") > 42  # asked again after all 40 failures
    assert [t.task_arn for t in tasks] == [result.execution.execution_id]
    assert result.state is JobState.SUCCEEDED
    assert result.logs.stdout == "job 7\n"
