"""Pure pieces: container state mapping, log demultiplexing, error translation.

These run on data shaped like the daemon's answers (recorded from Docker 20.10) and on
real exception classes; the behaviour end to end is in the daemon tests.
"""

from __future__ import annotations

import io
import ssl
import struct
from datetime import datetime, timedelta, timezone
from typing import Any

import docker.errors
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from jobrelay import JobState
from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError
from jobrelay_docker._errors import translate
from jobrelay_docker._launch import scrub
from jobrelay_docker._logs import demultiplex, lines
from jobrelay_docker._state import (
    cancelled_name,
    parse_time,
    status_from_inspect,
    status_from_summary,
)

CID = "9f" * 32
STARTED = "2026-11-21T22:39:36.393912962Z"
FINISHED = "2026-11-21T22:39:38.463167889Z"


def inspect_data(
    status: str,
    *,
    exit_code: int = 0,
    oom: bool = False,
    cancelled: bool = False,
    error: str = "",
    started: str = STARTED,
    finished: str = FINISHED,
) -> dict[str, Any]:
    name = cancelled_name(CID) if cancelled else "jobrelay-job-1"
    return {
        "Id": CID,
        "Name": f"/{name}",
        "State": {
            "Status": status,
            "Running": status in {"running", "paused", "restarting"},
            "OOMKilled": oom,
            "ExitCode": exit_code,
            "Error": error,
            "StartedAt": started if status != "created" else "0001-01-01T00:00:00Z",
            "FinishedAt": finished if status in {"exited", "dead"} else "0001-01-01T00:00:00Z",
        },
    }


def summary(status: str, *, exit_code: int = 0, cancelled: bool = False) -> dict[str, Any]:
    text = {
        "created": "Created",
        "running": "Up 2 seconds",
        "paused": "Up 2 seconds (Paused)",
        "restarting": f"Restarting ({exit_code}) 1 second ago",
        "removing": "Removal In Progress",
        "exited": f"Exited ({exit_code}) 3 seconds ago",
        "dead": "Dead",
    }[status]
    name = cancelled_name(CID) if cancelled else "jobrelay-job-1"
    return {"Id": CID, "Names": [f"/{name}"], "State": status, "Status": text}


@pytest.mark.parametrize(
    ("data", "state", "code", "reason"),
    [
        (inspect_data("created"), JobState.PENDING, None, None),
        (
            inspect_data("created", cancelled=True),
            JobState.CANCELLED,
            None,
            "cancelled before it started",
        ),
        (inspect_data("running"), JobState.RUNNING, None, None),
        (inspect_data("running", cancelled=True), JobState.RUNNING, None, "cancel requested"),
        (inspect_data("paused"), JobState.RUNNING, None, "paused"),
        (inspect_data("restarting"), JobState.RUNNING, None, "restarting"),
        (inspect_data("exited"), JobState.SUCCEEDED, 0, None),
        (inspect_data("exited", exit_code=3), JobState.FAILED, 3, None),
        (inspect_data("exited", exit_code=137), JobState.FAILED, 137, None),
        (
            inspect_data("exited", exit_code=137, cancelled=True),
            JobState.CANCELLED,
            137,
            "cancelled",
        ),
        (inspect_data("exited", exit_code=0, cancelled=True), JobState.CANCELLED, 0, "cancelled"),
        (inspect_data("exited", exit_code=137, oom=True), JobState.FAILED, 137, "oom-killed"),
        (
            inspect_data("exited", exit_code=127, error="exec: not found"),
            JobState.FAILED,
            127,
            "exec: not found",
        ),
        (inspect_data("dead", error="rm failed"), JobState.FAILED, None, "dead: rm failed"),
        (inspect_data("removing"), JobState.LOST, None, "container is being removed"),
    ],
)
def test_status_from_inspect(
    data: dict[str, Any], state: JobState, code: int | None, reason: str | None
) -> None:
    status = status_from_inspect(data)
    assert (status.state, status.exit_code, status.reason) == (state, code, reason)


def test_times_from_inspect() -> None:
    status = status_from_inspect(inspect_data("exited"))
    assert status.started_at == datetime(2026, 11, 21, 22, 39, 36, 393912, tzinfo=timezone.utc)
    assert status.finished_at == datetime(2026, 11, 21, 22, 39, 38, 463167, tzinfo=timezone.utc)
    running = status_from_inspect(inspect_data("running"))
    assert running.started_at is not None
    assert running.finished_at is None
    # The daemon can stamp the start after a very short job already finished.
    quick = status_from_inspect(
        inspect_data(
            "exited",
            started="2026-11-21T22:44:49.810654722Z",
            finished="2026-11-21T22:44:49.810003166Z",
        )
    )
    assert quick.started_at == quick.finished_at


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0001-01-01T00:00:00Z", None),
        ("", None),
        (None, None),
        ("garbage", None),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)),
        ("2026-01-02T03:04:05.5Z", datetime(2026, 1, 2, 3, 4, 5, 500000, tzinfo=timezone.utc)),
        (
            "2026-01-02T03:04:05.123456789+02:00",
            datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            "2026-01-02T03:04:05-05:30",
            datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(-timedelta(hours=5, minutes=30))),
        ),
    ],
)
def test_parse_time(text: object, expected: datetime | None) -> None:
    assert parse_time(text) == expected


@given(
    phase=st.sampled_from(["created", "running", "paused", "restarting", "removing", "exited"]),
    exit_code=st.integers(min_value=0, max_value=255),
    cancelled=st.booleans(),
)
def test_summary_agrees_with_inspect(phase: str, exit_code: int, cancelled: bool) -> None:
    # statuses() (list summaries) and status() (inspect) must tell the same story.
    full = status_from_inspect(inspect_data(phase, exit_code=exit_code, cancelled=cancelled))
    brief = status_from_summary(summary(phase, exit_code=exit_code, cancelled=cancelled))
    assert brief.state is full.state
    assert brief.exit_code == full.exit_code
    assert brief.reason == full.reason


def test_a_job_id_cannot_fake_the_cancel_mark() -> None:
    # Job "cancelled-<id>" is named jobrelay-cancelled-<id>: cancelled only if <id> is its own.
    other = "ab" * 32
    data = inspect_data("exited", exit_code=137)
    data["Name"] = f"/{cancelled_name(other)}"
    assert status_from_inspect(data).state is JobState.FAILED


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


class Trickle(io.BytesIO):
    """A response body that hands out at most three bytes per read."""

    def read(self, amt: int | None = -1) -> bytes:
        return super().read(min(3, amt if amt is not None and amt >= 0 else 3))


def test_demultiplex_by_header_not_content() -> None:
    body = b"".join(
        [
            frame(1, b"Warning: x\n"),
            frame(2, b"ok\n"),
            frame(1, b"half a "),
            frame(2, b"err"),
            frame(1, b"line\nnext\n"),
            frame(0, b"stdin is ignored\n"),
            frame(2, b"or\n"),
            frame(1, b"no newline at the end"),
        ]
    )
    got = [(line.stream, line.text) for line in lines(demultiplex(Trickle(body)))]
    assert [text for stream, text in got if stream == "stdout"] == [
        "Warning: x",
        "half a line",
        "next",
        "no newline at the end",
    ]
    assert [text for stream, text in got if stream == "stderr"] == ["ok", "error"]


def test_demultiplex_stops_on_a_cut_frame() -> None:
    body = frame(1, b"whole\n") + frame(2, b"cut short\n")[:-4]
    assert list(demultiplex(io.BytesIO(body))) == [("stdout", b"whole\n"), ("stderr", b"cut sh")]


def test_invalid_utf8_is_replaced() -> None:
    assert [line.text for line in lines(iter([("stdout", b"caf\xe9\n")]))] == ["caf\ufffd"]


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    response.url = "http+docker://localhost/v1.41/containers/create"
    return docker.errors.APIError("failed", response=response, explanation=explanation)


@pytest.mark.parametrize(
    ("exc", "launching", "kind"),
    [
        (api_error(500, "driver failed"), True, TransientExecutorError),
        (api_error(503, "busy"), False, TransientExecutorError),
        (api_error(429, "slow down"), True, TransientExecutorError),
        (api_error(400, "bad parameter"), True, LaunchError),
        (api_error(400, "bad parameter"), False, ExecutorError),
        (requests.exceptions.ConnectionError("refused"), True, TransientExecutorError),
        (requests.exceptions.ReadTimeout("slow"), False, TransientExecutorError),
        (ConnectionResetError(104, "reset"), True, TransientExecutorError),
        (docker.errors.DockerException("odd"), True, LaunchError),
    ],
)
def test_translate(exc: BaseException, launching: bool, kind: type[ExecutorError]) -> None:
    error = translate(
        exc, action="do it", where="here", executor="d", job_id="j", launching=launching
    )
    assert type(error) is kind
    assert (error.executor, error.job_id) == ("d", "j")
    assert str(error).startswith("do it")


def test_translate_tls_is_permanent_even_inside_a_connection_error() -> None:
    inner = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] certificate required")
    outer = requests.exceptions.ConnectionError(inner)
    error = translate(outer, action="connect", where="tcp://h:2376", executor="d", launching=True)
    assert type(error) is LaunchError
    assert "TLS" in str(error)
    assert "tls.client_cert" in str(error)


def test_scrub() -> None:
    assert scrub("token=abc123 and abc", ["abc123", "abc", ""]) == "token=*** and ***"
    assert scrub("nothing here", ["secret"]) == "nothing here"
