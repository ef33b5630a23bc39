"""The helpers every backend shares: scrubbing, error mapping, polling, paging, results."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobrelay import (
    ConfigError,
    Execution,
    ExecutorError,
    JobSpec,
    JobState,
    JobStatus,
    LaunchError,
    LogLine,
    Logs,
    ManualClock,
    TransientExecutorError,
)
from jobrelay.backend import (
    ErrorTable,
    ExecutorBase,
    Scrubber,
    billed_seconds,
    duration_of,
    follow_logs,
    load_price_document,
    make_result,
    paginate,
    parse_price,
    probe_health,
    scrub,
    utc_from_epoch,
    wait_until_terminal,
)
from jobrelay.labels import MANAGED, OWNER, default_owner, is_managed, workload_labels

SECRET = 'hun"ter\x00 2/é\\'


def go_quote(value: str) -> str:
    # strconv.Quote as Go writes it, for the characters this test uses.
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\x00", "\\x00")


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        repr(SECRET)[1:-1],
        ascii(SECRET)[1:-1],
        json.dumps(SECRET)[1:-1],
        json.dumps(SECRET, ensure_ascii=False)[1:-1],
        go_quote(SECRET),
        urllib.parse.quote(SECRET, safe=""),
        urllib.parse.quote_plus(SECRET),
    ],
)
def test_every_echoed_form_of_a_secret_is_masked(form: str) -> None:
    text = f'daemon: invalid env "TOKEN={form}" in request'
    cleaned = scrub(text, [SECRET])
    assert form not in cleaned
    assert "***" in cleaned
    assert cleaned.startswith("daemon: invalid env")


@given(st.text(min_size=1, max_size=20), st.text(max_size=20), st.text(max_size=20))
def test_scrubbed_text_never_contains_the_secret(secret: str, before: str, after: str) -> None:
    cleaned = Scrubber([secret])(before + secret + after)
    assert secret not in cleaned or secret in "***"


def test_longer_secrets_are_masked_whole_and_empty_ones_ignored() -> None:
    scrubber = Scrubber(["abc", "abcdef", ""])
    assert scrubber("x abcdef y abc") == "x *** y ***"
    assert not Scrubber([""])
    assert Scrubber([""])("unchanged") == "unchanged"


class BackendDownError(Exception):
    pass


class RefusedError(Exception):
    pass


TABLE = ErrorTable(
    backend="fake",
    catch=(BackendDownError, RefusedError),
    transient=lambda exc: isinstance(exc, BackendDownError),
)


def test_error_table_maps_transient_permanent_and_launch_errors() -> None:
    with pytest.raises(TransientExecutorError) as transient, TABLE.mapped("Run", executor="x"):
        raise BackendDownError("503")
    assert str(transient.value) == "fake Run failed: BackendDownError: 503"
    assert isinstance(transient.value.__cause__, BackendDownError)
    with pytest.raises(LaunchError), TABLE.mapped("Run", executor="x", launching=True):
        raise RefusedError("400 bad image")
    with pytest.raises(ExecutorError) as permanent, TABLE.mapped("Get", executor="x", job_id="j"):
        raise RefusedError("403")
    assert not isinstance(permanent.value, (LaunchError, TransientExecutorError))
    assert (permanent.value.executor, permanent.value.job_id) == ("x", "j")
    with pytest.raises(KeyError), TABLE.mapped("Get", executor="x"):
        raise KeyError("a bug is not a backend failure")


def test_error_table_catch_may_be_named_at_the_first_failure() -> None:
    # The SDK classes of a lazily imported backend: read only when something is raised.
    asked: list[int] = []

    def catch() -> tuple[type[BaseException], ...]:
        asked.append(1)
        return (BackendDownError, RefusedError)

    lazy = ErrorTable(
        backend="fake", catch=catch, transient=lambda e: isinstance(e, BackendDownError)
    )
    with lazy.mapped("Run", executor="x"):
        pass
    assert asked == []
    with pytest.raises(TransientExecutorError), lazy.mapped("Run", executor="x"):
        raise BackendDownError("503")
    with pytest.raises(KeyError), lazy.mapped("Run", executor="x"):
        raise KeyError("a bug is not a backend failure")
    assert len(asked) == 2
    assert lazy.caught() == (BackendDownError, RefusedError)


def test_error_table_masks_secrets_and_drops_the_cause_that_held_one() -> None:
    with (
        pytest.raises(LaunchError) as info,
        TABLE.mapped("Run", executor="x", launching=True, secrets=["s3cr3t"]),
    ):
        raise RefusedError('env "TOKEN=s3cr3t" refused')
    assert "s3cr3t" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_wait_until_terminal_polls_with_growing_waits() -> None:
    clock = ManualClock(now=0.0)
    states = iter([JobState.PENDING, JobState.RUNNING, JobState.RUNNING, JobState.SUCCEEDED])
    status = wait_until_terminal(
        lambda: JobStatus(next(states)), clock=clock, poll_interval=5.0, first_interval=1.0
    )
    assert status.state is JobState.SUCCEEDED
    assert clock.time() == 1.0 + 2.0 + 4.0


def test_follow_logs_drains_once_after_the_end() -> None:
    clock = ManualClock(now=0.0)
    pages = {None: (["a"], 1), 1: (["b"], 2), 2: (["c"], 3)}
    done = iter([False, False, True])

    def fetch(cursor: int | None) -> tuple[list[LogLine], int | None]:
        lines, nxt = pages[cursor]
        return [LogLine("stdout", text) for text in lines], nxt

    lines = list(follow_logs(fetch, lambda: next(done), clock=clock, poll_interval=2.0))
    assert [line.text for line in lines] == ["a", "b", "c"]
    assert clock.time() == 4.0


def test_paginate_follows_tokens_and_refuses_a_loop() -> None:
    pages = {None: ([1, 2], "t1"), "t1": ([3], "t2"), "t2": ([4], "")}
    assert list(paginate(lambda token: pages[token])) == [1, 2, 3, 4]
    looping = {None: ([1], "t1"), "t1": ([2], "t1")}
    with pytest.raises(ExecutorError, match="repeated page token"):
        list(paginate(lambda token: looping[token]))

    def endless(token: int | None) -> tuple[list[int], int]:
        return [0], (token or 0) + 1

    items: Iterator[int] = paginate(endless, max_pages=5)
    with pytest.raises(ExecutorError, match="more than 5 pages"):
        list(items)


def test_results_take_their_duration_from_the_status() -> None:
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    status = JobStatus(JobState.FAILED, 3, None, start, start + timedelta(seconds=90))
    execution = Execution("x", "id", "job", start)
    result = make_result(execution, status, Logs("out"))
    assert (result.duration, result.exit_code, result.logs.stdout) == (90.0, 3, "out")
    assert duration_of(JobStatus(JobState.RUNNING, started_at=start)) is None
    assert utc_from_epoch(0).tzinfo is timezone.utc


def test_workload_labels_ours_win_and_owner_comes_from_the_job() -> None:
    job = JobSpec("busybox", labels={MANAGED: "false", "team": "data", OWNER: "runner-a"})
    labels = workload_labels(job, "docker")
    assert labels[MANAGED] == "true"
    assert labels["team"] == "data"
    assert labels[OWNER] == "runner-a"
    assert workload_labels(JobSpec("busybox"), "docker")[OWNER] == default_owner()
    assert workload_labels(job, "docker", owner="explicit")[OWNER] == "explicit"
    assert is_managed(labels)
    assert not is_managed({MANAGED: "yes"})
    assert not is_managed(None)


def test_executor_base_is_a_context_manager_that_closes() -> None:
    closed: list[bool] = []

    class Thing(ExecutorBase):
        def close(self) -> None:
            closed.append(True)

    with Thing() as thing:
        assert isinstance(thing, Thing)
    assert closed == [True]


def test_price_helpers_parse_amounts_files_and_billed_time(tmp_path: Path) -> None:
    assert parse_price("0.000018", "x") == Decimal("0.000018")
    assert parse_price(3, "x") == 3
    for bad in (0.1, "-1", "abc", "NaN", True, None):
        with pytest.raises(ConfigError, match=r"prices: tiers\.a"):
            parse_price(bad, "tiers.a")
    document, origin = load_price_document({"a": 1}, package="jobrelay", resource="x")
    assert (dict(document), origin) == ({"a": 1}, "configured prices")
    path = tmp_path / "p.toml"
    path.write_text('currency = "EUR"\n', encoding="utf-8")
    document, origin = load_price_document(path, package="jobrelay", resource="x")
    assert (dict(document), origin) == ({"currency": "EUR"}, str(path))
    path.write_text("currency = [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_price_document(path, package="jobrelay", resource="x")
    with pytest.raises(ConfigError, match="a mapping or a TOML file path"):
        load_price_document(3, package="jobrelay", resource="x")  # type: ignore[arg-type]
    tenth = Decimal("0.1")
    assert billed_seconds(0.05, granularity=tenth) == tenth
    assert billed_seconds(10.01, granularity=tenth) == Decimal("10.1")
    assert billed_seconds(3, minimum=Decimal(60)) == 60
    assert billed_seconds(-4) == 0
    assert billed_seconds(61.2) == 62


def test_probe_health_times_one_call_and_never_raises_what_it_catches() -> None:
    healthy = probe_health(lambda: None, answered="the API answered")
    assert (healthy.healthy, healthy.detail) == (True, "the API answered")
    assert healthy.latency is not None
    assert healthy.latency >= 0

    def down() -> None:
        raise TransientExecutorError("ListJobs failed: connection refused")

    unhealthy = probe_health(down, answered="unused")
    assert (unhealthy.healthy, unhealthy.detail) == (False, "ListJobs failed: connection refused")

    def bug() -> None:
        raise KeyError("not an executor error")

    with pytest.raises(KeyError):  # only ``errors`` become an unhealthy answer
        probe_health(bug, answered="unused")
    assert not probe_health(bug, answered="unused", errors=Exception).healthy
