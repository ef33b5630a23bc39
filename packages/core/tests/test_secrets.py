"""A canary secret must never show: not in repr/str, logs, hook arguments, errors or events.

Each test plants a fresh canary value, drives everything a job passes through (spec
validation, the mock executor, retries, hooks, a Router when one exists) with DEBUG
logging on, collects every text that could carry it, and searches them all.
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

import jobrelay
from jobrelay import (
    ExecutorError,
    Hooks,
    JobSpec,
    JobState,
    ManualClock,
    RetryPolicy,
    SpecError,
    hookimpl,
    set_testing,
)
from jobrelay_mock import MockExecutor, MockOutcome

HOOK_NAMES = ("job_routed", "job_launched", "job_status_changed", "job_finished", "launch_failed")


@attrs.define
class Evidence:
    """Every text gathered during a test, tagged with where it came from."""

    canary: str
    texts: list[tuple[str, str]] = attrs.Factory(list)
    errors: list[BaseException] = attrs.Factory(list)

    def add(self, where: str, value: object) -> None:
        self.texts.append((where, value if isinstance(value, str) else repr(value)))
        if not isinstance(value, str):
            self.texts.append((f"str({where})", str(value)))

    def error(self, where: str, exc: BaseException) -> None:
        self.errors.append(exc)
        seen: set[int] = set()
        current: BaseException | None = exc
        while current is not None and id(current) not in seen:
            # The whole chain: a suppressed __context__ still holds the original error.
            seen.add(id(current))
            self.add(f"{where}: {type(current).__name__}", current)
            self.add(f"{where}: args", current.args)
            self.add(f"{where}: attrs", vars(current))
            current = current.__cause__ or current.__context__
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))

    def raises(self, where: str, fn: Any, *args: Any, **kwargs: Any) -> BaseException:
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - any error is evidence
            self.error(where, exc)
            return exc
        pytest.fail(f"{where} did not raise")

    def leaks(self) -> list[str]:
        return [where for where, text in self.texts if self.canary in text]


class HookSpy:
    """Records repr() and str() of every argument of every hook call."""

    def __init__(self, evidence: Evidence, *, fail: bool = False) -> None:
        self.evidence = evidence
        self.fail = fail
        self.calls: list[str] = []

    def _seen(self, hook: str, **kwargs: object) -> None:
        self.calls.append(hook)
        for name, value in kwargs.items():
            self.evidence.add(f"hook {hook}({name})", value)
        if self.fail:
            # The error message carries the arguments: a hook's error is logged.
            raise RuntimeError(f"spy hook {hook} failing on {kwargs!r}")

    @hookimpl
    def job_routed(self, job: object, decision: object) -> None:
        self._seen("job_routed", job=job, decision=decision)

    @hookimpl
    def job_launched(self, job: object, execution: object) -> None:
        self._seen("job_launched", job=job, execution=execution)

    @hookimpl
    def job_status_changed(self, execution: object, old: object, new: object) -> None:
        self._seen("job_status_changed", execution=execution, old=old, new=new)

    @hookimpl
    def job_finished(self, execution: object, result: object) -> None:
        self._seen("job_finished", execution=execution, result=result)

    @hookimpl
    def launch_failed(self, job: object, executor: object, error: object) -> None:
        self._seen("launch_failed", job=job, executor=executor, error=error)


@pytest.fixture
def canary() -> str:
    return f"canary-{uuid.uuid4().hex}"


@pytest.fixture
def evidence(canary: str, caplog: pytest.LogCaptureFixture) -> Iterator[Evidence]:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="jobrelay")
    found = Evidence(canary)
    yield found
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    records = [r for phase in ("setup", "call") for r in caplog.get_records(phase)]
    for record in records:
        where = f"log {record.name}:{record.lineno}"
        found.add(where, formatter.format(record))  # message, args and exception text
        found.add(f"{where} args", record.args)
        found.add(f"{where} fields", vars(record))
    assert not found.leaks(), f"canary leaked into: {found.leaks()}"


@pytest.fixture(autouse=True)
def _instant_retries() -> Iterator[None]:
    before = jobrelay.is_testing()
    set_testing(True)
    yield
    set_testing(before)


def _hide(canary: str) -> None:
    # Like a converter that hides a value: "from None" only hides it from tracebacks.
    nothing: dict[str, str] = {}
    try:
        nothing[canary]
    except KeyError:
        raise SpecError("secrets", "hidden") from None


def _secret_job(canary: str, **overrides: Any) -> JobSpec:
    fields: dict[str, Any] = {
        "env": {"PLAIN": "visible"},
        "secrets": {"API_TOKEN": canary, "DB_PASSWORD": f"pw-{canary}"},
        "labels": {"team": "data"},
        "name": "secret-job",
    }
    fields.update(overrides)
    return JobSpec("busybox:1.36", ["sh", "-c", "echo $API_TOKEN"], **fields)


def test_the_search_finds_a_planted_canary(canary: str, caplog: pytest.LogCaptureFixture) -> None:
    # Guards the guard: were the search broken, every test below would pass.
    found = Evidence(canary)
    caplog.set_level(logging.DEBUG, logger="jobrelay")
    logging.getLogger("jobrelay.test").debug("token is %s", canary)
    found.add("log", logging.Formatter("%(message)s").format(caplog.records[-1]))
    found.add("mapping", _secret_job(canary).secrets)  # a plain mapping shows its values
    found.raises("chained", _hide, canary)
    found.add("clean", "nothing to see")
    leaks = found.leaks()
    assert "log" in leaks
    assert "mapping" in leaks
    assert "chained: KeyError" in leaks
    assert "chained: SpecError" not in leaks
    assert "clean" not in leaks


def test_repr_and_str_of_a_spec(canary: str, evidence: Evidence) -> None:
    job = _secret_job(canary)
    assert job.secrets["API_TOKEN"] == canary  # the value is there, only never shown
    assert job.environment()["API_TOKEN"] == canary
    for where, value in {
        "repr": repr(job),
        "str": str(job),
        "format": f"{job}",
        "format!r": f"{job!r}",
        "evolved": repr(attrs.evolve(job, name="other")),
        "in a list": repr([job]),
        "in a dict": repr({"job": job}),
    }.items():
        evidence.add(where, value)
    assert "API_TOKEN" in repr(job)  # names are fine to show
    assert "visible" in repr(job)


@pytest.mark.parametrize(
    "secrets",
    [
        pytest.param({"API_TOKEN": b"{canary}"}, id="bytes"),
        pytest.param({"API_TOKEN": ["{canary}"]}, id="list"),
        pytest.param({"API_TOKEN": {"{canary}": "{canary}"}}, id="dict"),
        pytest.param({"bad-name": "{canary}"}, id="bad name"),
        pytest.param({"1BAD": "{canary}"}, id="leading digit"),
        pytest.param([("API_TOKEN", "{canary}")], id="not a mapping"),
        pytest.param("API_TOKEN={canary}", id="a string"),
    ],
)
def test_spec_errors_for_bad_secrets(canary: str, evidence: Evidence, secrets: object) -> None:
    planted = _plant(secrets, canary)
    exc = evidence.raises("JobSpec", JobSpec, "busybox", secrets=planted)
    assert isinstance(exc, SpecError)
    assert exc.field.startswith("secrets")


def test_spec_errors_elsewhere_in_a_spec_with_secrets(canary: str, evidence: Evidence) -> None:
    secrets = {"API_TOKEN": canary}
    cases: dict[str, dict[str, Any]] = {
        "image": {"image": "Bad Image"},
        "timeout": {"image": "busybox", "timeout": -1},
        "memory": {"image": "busybox", "resources": {"memory": "lots"}},
        "command": {"image": "busybox", "command": "echo 'open"},
        "env": {"image": "busybox", "env": {"X": 1}},
    }
    for where, kwargs in cases.items():
        exc = evidence.raises(where, JobSpec, secrets=secrets, **kwargs)
        assert isinstance(exc, SpecError)
    job = _secret_job(canary)
    evidence.raises("evolve", attrs.evolve, job, timeout=0)
    evidence.raises("evolve secrets", attrs.evolve, job, secrets={"API_TOKEN": 1})


def _plant(value: object, canary: str) -> object:
    if isinstance(value, str):
        return value.replace("{canary}", canary)
    if isinstance(value, bytes):
        return value.replace(b"{canary}", canary.encode())
    if isinstance(value, dict):
        return {_plant(k, canary): _plant(v, canary) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plant(item, canary) for item in value)
    return value


def test_mock_executor_events_and_results(canary: str, evidence: Evidence) -> None:
    clock = ManualClock(1_700_000_000.0)
    executor = MockExecutor(clock=clock)
    jobs = [
        _secret_job(canary, labels={"mock.stdout": "out\n", "mock.stderr": "err\n"}),
        _secret_job(canary, labels={"mock.exit-code": "3"}),
        _secret_job(canary, labels={"mock.duration": "60"}),
        _secret_job(canary, labels={"mock.lost": "true"}),
    ]
    executions = [executor.launch(job) for job in jobs]
    executor.launch(jobs[0])  # idempotent relaunch
    executor.cancel(executions[2])
    for execution in executions:
        evidence.add("execution", execution)
        evidence.add("status", executor.status(execution))
        evidence.add("logs", executor.logs(execution))
        evidence.add("labels", executor.labels_of(execution))
        evidence.add("stream", list(executor.stream_logs(execution)))
    evidence.add("statuses", executor.statuses(executions))
    evidence.add("managed", executor.list_managed())
    results = [executor.harvest(execution) for execution in executions]
    evidence.add("results", results)
    assert [r.state for r in results] == [
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.LOST,
    ]
    for execution in executions:
        executor.cleanup(execution)
    evidence.add("health", executor.health())
    evidence.add("capabilities", executor.capabilities())
    evidence.add("executor", executor)
    evidence.add("events", executor.events)
    for event in executor.events:
        evidence.add("event", event)
        evidence.add("event fields", attrs.asdict(event))
    assert len(executor.events) > 20


def test_mock_launch_errors_and_retries(canary: str, evidence: Evidence) -> None:
    executor = MockExecutor(
        behavior=lambda job: MockOutcome(
            launch_error=None if job.name != "refused" else "quota exceeded",
            transient_failures=2 if job.name == "flaky" else 0,
            duration=10 if job.name == "flaky" else 0,
        ),
        capacity=1,
    )
    refused = _secret_job(canary, name="refused")
    exc = evidence.raises("launch refused", executor.launch, refused)
    assert isinstance(exc, ExecutorError)
    flaky = _secret_job(canary, name="flaky")
    execution = RetryPolicy(attempts=3).call(executor.launch, flaky)
    evidence.add("retried execution", execution)
    exc = evidence.raises("launch over capacity", executor.launch, _secret_job(canary))
    assert isinstance(exc, ExecutorError)
    evidence.raises(
        "retry gives up",
        RetryPolicy(attempts=2).call,
        MockExecutor(behavior=lambda _: MockOutcome(transient_failures=5)).launch,
        _secret_job(canary),
    )
    evidence.raises(
        "bad mock label",
        MockExecutor().launch,
        _secret_job(canary, labels={"mock.exit-code": "three"}),
    )
    evidence.add("events", executor.events)


@pytest.mark.parametrize("failing", [False, True], ids=["quiet hooks", "raising hooks"])
def test_hook_arguments(canary: str, evidence: Evidence, failing: bool) -> None:
    hooks = Hooks(load_entry_points=False)
    spy = HookSpy(evidence, fail=failing)
    hooks.register(spy)
    executor = MockExecutor()
    job = _secret_job(canary)
    execution = executor.launch(job)
    result = executor.harvest(execution)
    error = evidence.raises(
        "launch",
        MockExecutor(behavior=lambda _: MockOutcome(launch_error="no")).launch,
        job,
    )
    hooks.emit("job_routed", job=job, decision={"executor": "mock", "job": job})
    hooks.emit("job_launched", job=job, execution=execution)
    hooks.emit("job_status_changed", execution=execution, old=None, new=JobState.RUNNING)
    hooks.emit("job_finished", execution=execution, result=result)
    hooks.emit("launch_failed", job=job, executor="mock", error=error)
    assert spy.calls == list(HOOK_NAMES)


def test_router(canary: str, evidence: Evidence) -> None:
    # The Router logs and raises with the job in hand: no secret may reach either.
    _exercise_router(jobrelay.Router, jobrelay.RoutingRule, canary, evidence)


def _exercise_router(router_class: Any, rule_class: Any, canary: str, evidence: Evidence) -> None:
    good = MockExecutor("good")
    refusing = MockExecutor("refusing", behavior=lambda _: MockOutcome(launch_error="full"))
    flaky = MockExecutor("flaky", behavior=lambda _: MockOutcome(transient_failures=1))
    rules = [
        # Conditions that reach for the secrets must fail without quoting them.
        rule_class('job.secrets.API_TOKEN == "x"', "good", reason="secret probe"),
        rule_class('job.secrets["API_TOKEN"].startswith("c")', "good", reason="secret probe"),
        rule_class('name == "secret-job"', "refusing", reason="by name"),
    ]
    spy = HookSpy(evidence)
    router = router_class(
        {"refusing": refusing, "flaky": flaky, "good": good},
        rules=rules,
        default="flaky",
        fallback=("good",),
        hooks=Hooks(load_entry_points=False),
    )
    router.hooks.register(spy)
    job = _secret_job(canary)
    evidence.add("decision", router.route(job))
    execution = router.launch(job)
    evidence.add("router launch", execution)
    evidence.add("router", router)
    result = good.harvest(execution) if execution.executor == "good" else None
    evidence.add("router result", result)
    for executor in (refusing, flaky, good):
        evidence.add(f"{executor.name} events", executor.events)
    assert "launch_failed" in spy.calls
    assert "job_routed" in spy.calls
    nowhere = router_class({"refusing": refusing}, default="refusing")
    nowhere.hooks.register(spy)
    evidence.raises("no executor", nowhere.launch, _secret_job(canary))
    preferred = router.route(_secret_job(canary, preferred_executor="good"))
    assert preferred.executor == "good"
    evidence.add("preferred", preferred)


def test_runner(canary: str, evidence: Evidence) -> None:
    # The Runner emits every hook and logs each step: check it too.
    router_class = jobrelay.Router
    runner_class = jobrelay.Runner
    clock = ManualClock(1_700_000_000.0)
    mock = MockExecutor(clock=clock)
    spy = HookSpy(evidence)
    router = router_class({"mock": mock}, default="mock", clock=clock)
    router.hooks.register(spy)
    with router, runner_class(router, clock=clock, poll_interval=0.01) as runner:
        handles = [
            runner.submit(_secret_job(canary, labels=labels))
            for labels in (
                {"mock.stdout": "ok\n"},
                {"mock.exit-code": "5", "mock.duration": "3"},
                {"mock.fail-launch": "refused"},
            )
        ]
        for handle in handles:
            try:
                evidence.add("runner result", handle.result(30))
            except Exception as exc:  # noqa: BLE001 - a refused job's error is evidence too
                evidence.error("runner error", exc)
            evidence.add("handle", handle)
    evidence.add("mock events", mock.events)
    assert spy.calls, "the runner emitted no hooks"
