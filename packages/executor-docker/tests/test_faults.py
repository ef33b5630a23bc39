"""Faults as an operator meets them, against a private dockerd the tests kill and restart.

Each scenario is judged against what the daemon itself saw: a watcher follows the
daemon's event stream (reconnecting across restarts) and records which containers
started for each job and the exit code of each container that died. Then every job
is one of:

- correct: its result has the exit code the container died with, a state that
  matches it, and logs that are complete unless they say ``truncated``;
- not launched: the launch failed and no container of the job ever started (an
  honest failure);
- lost: a container of the job ran but the job got no result, or a wrong one;
- hung: its handle did not finish within a bounded wait.

And across the scenario: no job id with two started containers, no managed
container left after a final reconcile, and the canary secret in none of jobrelay's
outputs (exceptions, statuses, log records).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import docker
import docker.errors
import pytest
import requests

from conftest import IMAGE, RUN_LABELS, make_executor, unavailable, wait_running
from jobrelay import JobHandle, JobResult, JobSpec, JobState, Router, Runner
from jobrelay.backend import secret_forms
from jobrelay.errors import LaunchError, NoExecutorAvailableError
from jobrelay_docker import DockerExecutor
from private_dockerd import PrivateDockerd, private_dockerd

pytestmark = pytest.mark.docker

# Quotes and a backslash: repr, JSON and Go each escape them their own way.
CANARY = f'canary-{uuid.uuid4().hex[:10]}-"q\\b'
START_GRACE = 2.0
JOBS = 20


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def daemon() -> Iterator[PrivateDockerd]:
    """A private dockerd with the test image, for this module."""
    missing = [
        tool for tool in ("dockerd", "containerd", "ip", "busybox") if not shutil.which(tool)
    ]
    if missing or os.geteuid() != 0:
        unavailable("a private dockerd", f"needs root and {missing or 'nothing else'}")
    stack = contextlib.ExitStack()
    try:
        started = stack.enter_context(private_dockerd())
    except RuntimeError as exc:
        unavailable("a private dockerd", exc)
    with stack:
        yield started


@pytest.fixture
def fresh(daemon: PrivateDockerd) -> Iterator[PrivateDockerd]:
    """The private daemon, running and with no container, before and after the test."""
    if daemon.pid is None:
        daemon.start()
    remove_all(daemon)
    yield daemon
    if daemon.pid is None:
        daemon.start()
    remove_all(daemon)


@pytest.fixture
def events(fresh: PrivateDockerd) -> Iterator[EventLog]:
    """What the daemon saw, recorded for the test's judgement."""
    log = EventLog(fresh)
    log.start()
    yield log
    log.stop()


@pytest.fixture
def jobrelay_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="jobrelay")
    return caplog


def remove_all(daemon: PrivateDockerd) -> None:
    with daemon.api() as api:
        for summary in api.containers(all=True):
            with contextlib.suppress(docker.errors.NotFound):
                api.remove_container(summary["Id"], force=True, v=True)


def managed_containers(daemon: PrivateDockerd) -> list[dict[str, Any]]:
    with daemon.api() as api:
        found: list[dict[str, Any]] = api.containers(
            all=True, filters={"label": "jobrelay.managed=true"}
        )
    return found


class EventLog:
    """Container start and die events of the private daemon, across its restarts."""

    def __init__(self, daemon: PrivateDockerd) -> None:
        self.daemon = daemon
        self.started: dict[str, set[str]] = collections.defaultdict(set)  # job id -> ids
        self.exit_codes: dict[str, int] = {}  # container id -> exit code it died with
        self._stop = threading.Event()
        self._stream: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._follow, name="test-events", daemon=True)
        self._since = int(time.time()) - 1

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while self._stream is None and time.monotonic() < deadline:
            time.sleep(0.01)

    def stop(self) -> None:
        # Let the stream deliver what happened last, then stop following.
        time.sleep(0.3)
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.close()
        self._thread.join(10)

    def _follow(self) -> None:
        while not self._stop.is_set():
            api = self.daemon.api(timeout=5)
            try:
                stream = api.events(
                    since=self._since,
                    filters={"type": "container", "event": ["start", "die"]},
                    decode=True,
                )
                with self._lock:
                    self._stream = stream
                for event in stream:
                    self._record(event)
            except (docker.errors.DockerException, requests.RequestException, OSError, ValueError):
                time.sleep(0.05)
            finally:
                api.close()

    def _record(self, event: dict[str, Any]) -> None:
        self._since = max(self._since, int(event.get("time", 0)))
        actor = event.get("Actor") or {}
        attributes = actor.get("Attributes") or {}
        container_id = str(actor.get("ID") or event.get("id"))
        if event.get("status") == "start" or event.get("Action") == "start":
            job_id = attributes.get("jobrelay.job-id")
            if job_id:
                self.started[job_id].add(container_id)
        elif (event.get("status") or event.get("Action")) == "die":
            with contextlib.suppress(KeyError, ValueError):
                self.exit_codes[container_id] = int(attributes["exitCode"])


# -- judging ------------------------------------------------------------------------------


def script_job(index: int, tag: str) -> JobSpec:
    """Job ``index``: says begin, works 1-3 s, says end, exits with ``index % 4``."""
    return JobSpec(
        IMAGE,
        [
            "sh",
            "-c",
            f"echo begin-{index}; sleep {1 + index % 3}; echo end-{index}; exit {index % 4}",
        ],
        job_id=f"{tag}-{index}",
        name=f"fault-{index}",
        secrets={"CANARY": CANARY},
        labels=RUN_LABELS,
    )


def judge_result(result: JobResult, index: int, events: EventLog) -> str:
    """Return "correct" when ``result`` says what job ``index``'s container really did."""
    died_with = events.exit_codes.get(result.execution.execution_id)
    code, logs, state = result.exit_code, result.logs, result.state
    if state is JobState.LOST and "the daemon forgot this run" in (result.status.reason or ""):
        # A daemon killed mid-start can restore a container whose run had begun as
        # never started: its exit code is gone, and starting it again would run the
        # job twice. Truthful only if the container did start and never died.
        began = result.execution.execution_id in (events.started.get(result.execution.job_id) or ())
        return "forgotten by the daemon" if began and died_with in (None, 255) else "lost"
    if result.status.reason and "never started" in result.status.reason:
        ran = events.started.get(result.execution.job_id)
        return "not launched" if state is JobState.FAILED and not ran else "lost"
    # 255 is what a restarted dockerd puts in the die event of a container that
    # exited while it was down; the exit code it records (and reports) is the real one.
    if died_with not in (None, 255, code):
        return "lost"
    expected = index % 4
    if code == expected:
        right_state = JobState.SUCCEEDED if expected == 0 else JobState.FAILED
        complete = logs.stdout == f"begin-{index}\nend-{index}\n"
        return "correct" if state is right_state and (complete or logs.truncated) else "lost"
    # Killed by the daemon's restart (no live restore), 137; or ended early by the
    # daemon going down under it with another code (seen once: started as a SIGTERM'd
    # daemon shut down, exit 2 within 0.1 s, no output), the code its own die event
    # has. Either way it never said end, and the logs say they cannot be vouched for.
    ended_by_daemon = code == 137 or (code is not None and code == died_with)
    killed = state is JobState.FAILED and f"end-{index}" not in logs.stdout and logs.truncated
    return "correct" if ended_by_daemon and killed else "lost"


def error_of(handle: JobHandle) -> BaseException | None:
    """The error a finished handle ended with (a cancellation counts), else None."""
    try:
        return handle.exception(0)
    except BaseException as exc:  # noqa: BLE001 - CancelledError is an outcome here
        return exc


def settle(handles: Sequence[JobHandle], timeout: float) -> None:
    """Wait for every handle, all within ``timeout`` seconds in total."""
    deadline = time.monotonic() + timeout
    for handle in handles:
        with contextlib.suppress(Exception):
            handle.exception(max(deadline - time.monotonic(), 0.01))


def judge(handles: Sequence[JobHandle], events: EventLog) -> collections.Counter[str]:
    """Count the verdicts, and what the results said (exit codes, truncated logs, errors)."""
    verdicts: collections.Counter[str] = collections.Counter()
    for index, handle in enumerate(handles):
        if handle.done() and error_of(handle) is None:
            result = handle.result(0)
            verdicts[f"exit {result.exit_code}{' truncated' if result.logs.truncated else ''}"] += 1
        elif handle.done():
            verdicts[f"error {type(error_of(handle)).__name__}"] += 1
        if not handle.done():
            verdicts["hung"] += 1
            continue
        error = error_of(handle)
        if error is None:
            verdict = judge_result(handle.result(0), index, events)
        elif handle.execution is None and not events.started.get(handle.job_id):
            verdict = "not launched"
        else:
            verdict = "lost"  # it ran (or was launched) and has no result
        verdicts[verdict] += 1
        if verdict == "lost":
            # Say what the daemon saw and what jobrelay said, for the failure message.
            started = events.started.get(handle.job_id) or set()
            died = {cid[:12]: events.exit_codes.get(cid) for cid in started}
            said = (
                (handle.result(0).status, handle.result(0).logs)
                if error is None
                else repr(error)[:300]
            )
            verdicts[f"lost {handle.job_id}: daemon saw {died}; jobrelay said {said}"] += 1
    return verdicts


def texts_of(handles: Sequence[JobHandle], caplog: pytest.LogCaptureFixture) -> list[str]:
    """Everything jobrelay said: errors with their chains, statuses, log records."""
    texts = [caplog.text]
    texts.extend(record.getMessage() for record in caplog.records)
    for handle in handles:
        texts.append(str(handle.status()))
        error = error_of(handle) if handle.done() else None
        if handle.done() and error is None:
            texts.append(str(handle.result(0)))
        while error is not None:
            texts.extend((str(error), repr(error)))
            error = error.__cause__ or error.__context__
    return texts


def assert_no_canary(texts: Sequence[str], canary: str = CANARY) -> None:
    forms = secret_forms(canary)
    leaks = [(form, text[:200]) for text in texts for form in forms if form in text]
    assert leaks == [], "the canary secret leaked"


def final_reconcile(executor: DockerExecutor) -> list[JobHandle]:
    """What an operator runs after the faults: reconcile, let it finish, look again."""
    router = Router({"docker": {"instance": executor}}, default="docker")
    runner = Runner(router, max_workers=8, poll_interval=0.2)
    handles = runner.reconcile()
    settle(handles, 60)
    runner.shutdown(wait=all(handle.done() for handle in handles), cancel=True)
    return handles


def report(title: str, verdicts: collections.Counter[str], leaked: int, duplicated: int) -> None:
    print(  # the figures the fault work reports
        f"\n{title}: correct {verdicts['correct']} / lost {verdicts['lost']} / "
        f"hung {verdicts['hung']} / leaked {leaked} / duplicated {duplicated} "
        f"(not launched, honestly: {verdicts['not launched']}; "
        f"forgotten by a killed daemon: {verdicts['forgotten by the daemon']})\n  details: "
        + ", ".join(
            f"{key}: {n}" for key, n in sorted(verdicts.items()) if key[0] in "el" and key != "lost"
        )
    )


# -- the daemon goes away mid-run --------------------------------------------------------


@pytest.mark.parametrize(
    ("down", "sig"),
    [(3, signal.SIGKILL), (11, signal.SIGKILL), (3, signal.SIGTERM)],
    ids=["kill-3s", "kill-11s", "term-3s"],
)
def test_daemon_down_mid_run(
    fresh: PrivateDockerd,
    events: EventLog,
    jobrelay_logs: pytest.LogCaptureFixture,
    down: float,
    sig: signal.Signals,
) -> None:
    tag = f"d{down}-{uuid.uuid4().hex[:6]}"
    jobs = [script_job(index, tag) for index in range(JOBS)]
    with make_executor(
        base_url=fresh.url, name="docker", timeout=5, start_grace=START_GRACE
    ) as executor:
        router = Router({"docker": {"instance": executor, "max_concurrent": 8}}, default="docker")
        runner = Runner(router, max_workers=8, poll_interval=0.2)
        handles = [runner.submit(job) for job in jobs]
        # Strike while the first jobs run and the next are being launched.
        deadline = time.monotonic() + 15
        while len(events.started) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        started_before = len(events.started)
        fresh.restart(down=down, sig=sig)
        settle(handles, 90)
        events.stop()
        verdicts = judge(handles, events)
        texts = texts_of(handles, jobrelay_logs)
        runner.shutdown(wait=all(handle.done() for handle in handles), cancel=True)
        final_reconcile(executor)
    leaked = len(managed_containers(fresh))
    duplicated = sum(1 for ids in events.started.values() if len(ids) > 1)
    title = f"daemon {sig.name} down {down}s, {JOBS} jobs ({started_before} started before)"
    report(title, verdicts, leaked, duplicated)
    assert (verdicts["lost"], verdicts["hung"], leaked, duplicated) == (0, 0, 0, 0), verdicts
    assert verdicts["correct"] >= JOBS // 2, verdicts  # most jobs got through
    assert_no_canary(texts)


def test_daemon_gone_past_the_budget_ends_jobs_lost_then_reconcile_finds_them(
    fresh: PrivateDockerd,
) -> None:
    tag = f"gone-{uuid.uuid4().hex[:6]}"
    jobs = [
        JobSpec(
            IMAGE,
            ["sh", "-c", "echo begin; sleep 120"],
            job_id=f"{tag}-{index}",
            name=f"gone-{index}",
            labels=RUN_LABELS,
        )
        for index in range(3)
    ]
    with make_executor(
        base_url=fresh.url, name="docker", timeout=2, start_grace=START_GRACE
    ) as executor:
        router = Router({"docker": {"instance": executor}}, default="docker")
        runner = Runner(router, max_workers=4, poll_interval=0.2, harvest_timeout=4)
        handles = [runner.submit(job) for job in jobs]
        for handle in handles:
            execution = handle.wait_launched(30)
            assert execution is not None
            wait_running(executor, execution)
        fresh.kill(signal.SIGKILL)  # and it stays down past the budget
        settle(handles, 60)
        assert all(handle.done() for handle in handles), "a job waits for ever on a dead daemon"
        for handle in handles:
            status = handle.status()
            assert status.state is JobState.LOST, status
            assert "status unreadable for 4s, workload left for reconcile" in str(status.reason)
            assert error_of(handle) is not None
        runner.shutdown(wait=True)
        fresh.start()
        adopted = final_reconcile(executor)
    # Nothing was removed or lost meanwhile: the restarted daemon's record of each run
    # (killed with it: 137, logs not vouched for) is what reconcile reports.
    assert sorted(handle.job_id for handle in adopted) == sorted(job.job_id for job in jobs)
    for handle in adopted:
        result = handle.result(0)
        assert (result.state, result.exit_code) == (JobState.FAILED, 137), result.status
        assert result.logs.truncated
    assert managed_containers(fresh) == []


# -- the launching process dies --------------------------------------------------------

LAUNCHER = textwrap.dedent(
    """
    import sys, time
    from jobrelay import JobSpec, Router, Runner
    from jobrelay_docker import DockerExecutor

    url, tag, canary, image, label, value = sys.argv[1:7]
    executor = DockerExecutor(url, name="docker", pull_policy="never", stop_grace=1)
    router = Router({"docker": {"instance": executor, "max_concurrent": 8}}, default="docker")
    runner = Runner(router, max_workers=8, poll_interval=0.2)
    for index in range(20):
        script = f"echo begin-{index}; sleep {1 + index % 3}; echo end-{index}; exit {index % 4}"
        runner.submit(JobSpec(image, ["sh", "-c", script], job_id=f"{tag}-{index}",
                              secrets={"CANARY": canary}, labels={label: value}))
    print("submitted", flush=True)
    time.sleep(600)
    """
)


def test_launcher_killed_then_another_process_reconciles(
    fresh: PrivateDockerd, events: EventLog, jobrelay_logs: pytest.LogCaptureFixture
) -> None:
    tag = f"k-{uuid.uuid4().hex[:6]}"
    [(label, value)] = RUN_LABELS.items()
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, fresh.url, tag, CANARY, IMAGE, label, value],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert launcher.stdout is not None
        assert launcher.stdout.readline().strip() == b"submitted"
        # Kill it while its launches are in flight: as soon as the daemon has some
        # of its containers.
        deadline = time.monotonic() + 30
        while len(managed_containers(fresh)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(30)
        if launcher.stdout is not None:
            launcher.stdout.close()
    left = {summary["Id"]: summary["State"] for summary in managed_containers(fresh)}
    assert left, "the launcher died before the daemon had any of its containers"

    with make_executor(base_url=fresh.url, name="docker", start_grace=START_GRACE) as executor:
        handles = final_reconcile(executor)
    events.stop()
    assert set(left) <= {handle.execution.execution_id for handle in handles if handle.execution}
    verdicts: collections.Counter[str] = collections.Counter()
    for handle in handles:
        if not handle.done():
            verdicts["hung"] += 1
        elif error_of(handle) is not None:
            verdicts["lost"] += 1
        else:
            result = handle.result(0)
            index = int(result.execution.job_id.rsplit("-", 1)[1])
            verdicts[judge_result(result, index, events)] += 1
    leaked = len(managed_containers(fresh))
    duplicated = sum(1 for ids in events.started.values() if len(ids) > 1)
    report(f"launcher SIGKILLed with {len(left)} containers", verdicts, leaked, duplicated)
    assert (verdicts["lost"], verdicts["hung"], leaked, duplicated) == (0, 0, 0, 0), verdicts
    assert_no_canary(texts_of(handles, jobrelay_logs))


# -- cancel under concurrency ---------------------------------------------------------


def race(*calls: Callable[[], object]) -> list[BaseException]:
    """Run ``calls`` in threads released at the same instant; return what they raised."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            call()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_concurrent_cancels_race_cleanly(fresh: PrivateDockerd) -> None:
    with make_executor(base_url=fresh.url) as executor:
        for _ in range(3):
            execution = executor.launch(JobSpec(IMAGE, ["sleep", "600"], labels=RUN_LABELS))
            wait_running(executor, execution)
            cancel = functools.partial(executor.cancel, execution)
            assert race(cancel, cancel, cancel) == []
            assert executor.status(execution).state is JobState.CANCELLED
            executor.cleanup(execution)
        with fresh.api() as api:
            assert api.containers(all=True, filters={"name": "jobrelay-cancelled-"}) == []


def test_cancel_racing_cleanup_leaves_nothing(fresh: PrivateDockerd) -> None:
    # What a second Ctrl-C does: the cleanup starts while the cancel still runs.
    with make_executor(base_url=fresh.url) as executor:
        execution = executor.launch(JobSpec(IMAGE, ["sleep", "600"], labels=RUN_LABELS))
        wait_running(executor, execution)
        errors = race(
            functools.partial(executor.cancel, execution),
            functools.partial(executor.cleanup, execution),
        )
        assert errors == []
        executor.cleanup(execution)
        assert managed_containers(fresh) == []


# -- what the daemon says back ---------------------------------------------------------


def test_a_go_quoted_secret_never_leaks(
    fresh: PrivateDockerd, jobrelay_logs: pytest.LogCaptureFixture
) -> None:
    # A NUL in a value makes runc refuse the environment, and the daemon quotes it
    # back Go-style ("TOKEN=...\\x00..."), where an exact match would miss it.
    secret = f"hun\x00ter-{CANARY}"
    with make_executor(base_url=fresh.url, name="docker") as executor:
        router = Router({"docker": {"instance": executor}}, default="docker")
        with Runner(router, max_workers=2, poll_interval=0.2) as runner:
            handle = runner.submit(
                JobSpec(IMAGE, ["true"], secrets={"TOKEN": secret}, labels=RUN_LABELS)
            )
            settle([handle], 30)
        assert handle.exception(0) is not None
        assert_no_canary(texts_of([handle], jobrelay_logs), secret)
        with pytest.raises(LaunchError, match="can't contain null") as info:
            executor.launch(JobSpec(IMAGE, ["true"], secrets={"TOKEN": secret}))
        assert 'TOKEN=***"' in str(info.value)  # masked in its Go-quoted form
        assert info.value.__cause__ is None  # the daemon's error, which holds it, is dropped
        assert_no_canary([str(info.value), repr(info.value)], secret)
    assert managed_containers(fresh) == []


def test_a_daemon_500_for_bad_input_is_a_launch_error_at_once(fresh: PrivateDockerd) -> None:
    # dockerd answers 500 for a working_dir that is a file: no retry can change that.
    with make_executor(base_url=fresh.url, name="docker") as executor:
        calls = 0
        real = executor._client().create_container

        def counted(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            return real(*args, **kwargs)

        executor._client().create_container = counted
        job = JobSpec(IMAGE, ["true"], working_dir="/bin/sh", labels=RUN_LABELS)
        with pytest.raises(LaunchError, match=r"the job's working_dir is not valid") as info:
            executor.launch(job)
        assert "answered 500" in str(info.value)
        assert calls == 1
        # Through the Router (which retries transient errors): one call, at once.
        router = Router({"docker": {"instance": executor}}, default="docker")
        started = time.monotonic()
        with pytest.raises(NoExecutorAvailableError, match="working_dir"):
            router.launch(job)
        assert time.monotonic() - started < 2
        assert calls == 2
    assert managed_containers(fresh) == []


# -- logs the daemon cannot vouch for --------------------------------------------------


def test_logs_of_a_container_that_outlived_its_daemon_say_truncated(
    fresh: PrivateDockerd,
) -> None:
    with make_executor(base_url=fresh.url, remove_on_harvest=False) as before:
        spanning = before.launch(
            JobSpec(
                IMAGE,
                ["sh", "-c", "echo one; sleep 2; echo two; sleep 30; echo three"],
                labels=RUN_LABELS,
            )
        )
        wait_running(before, spanning)
    time.sleep(0.5)
    fresh.restart(down=2, sig=signal.SIGKILL)
    # A new process that never saw the daemon go: the daemon's own records tell.
    with make_executor(base_url=fresh.url, remove_on_harvest=False) as after:
        result = after.harvest(spanning)
        assert result.state is JobState.FAILED  # killed by the restart: no live restore
        assert result.logs.truncated
        assert "three" not in result.logs.stdout
        assert after.logs(spanning).truncated
        calm = after.harvest(
            after.launch(JobSpec(IMAGE, ["sh", "-c", "echo all here"], labels=RUN_LABELS))
        )
        assert (calm.logs.stdout, calm.logs.truncated) == ("all here\n", False)
        after.cleanup(spanning)
        after.cleanup(calm.execution)
