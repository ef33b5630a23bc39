"""Pure pieces: container state mapping, log demultiplexing, error translation.

These run on data shaped like the daemon's answers (recorded from Docker 20.10) and on
real exception classes; the behaviour end to end is in the daemon tests.
"""

from __future__ import annotations

import io
import ssl
import struct
import types
from datetime import datetime, timedelta, timezone
from typing import Any

import docker.errors
import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from jobrelay import JobState
from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError
from jobrelay_docker._container_spec import _limits
from jobrelay_docker._errors import bad_input, error_table
from jobrelay_docker._logs import demultiplex, lines
from jobrelay_docker._state import (
    cancelled_name,
    forgotten_name,
    parse_time,
    status_from_inspect,
    status_from_summary,
)

CID = "9f" * 32
GRACE = 1e6  # created containers in these tests are never stale, unless made so
JUST_NOW = datetime.now(timezone.utc)
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
    created: datetime = JUST_NOW,
) -> dict[str, Any]:
    name = cancelled_name(CID) if cancelled else "jobrelay-job-1"
    return {
        "Id": CID,
        "Created": created.isoformat().replace("+00:00", "Z"),
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


def summary(
    status: str, *, exit_code: int = 0, cancelled: bool = False, created: datetime = JUST_NOW
) -> dict[str, Any]:
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
    return {
        "Id": CID,
        "Names": [f"/{name}"],
        "State": status,
        "Status": text,
        "Created": int(created.timestamp()),
    }


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
    status = status_from_inspect(data, start_grace=GRACE)
    assert (status.state, status.exit_code, status.reason) == (state, code, reason)


def test_times_from_inspect() -> None:
    status = status_from_inspect(start_grace=GRACE, data=inspect_data("exited"))
    assert status.started_at == datetime(2026, 11, 21, 22, 39, 36, 393912, tzinfo=timezone.utc)
    assert status.finished_at == datetime(2026, 11, 21, 22, 39, 38, 463167, tzinfo=timezone.utc)
    running = status_from_inspect(start_grace=GRACE, data=inspect_data("running"))
    assert running.started_at is not None
    assert running.finished_at is None
    # The daemon can stamp the start after a very short job already finished.
    quick = status_from_inspect(
        inspect_data(
            "exited",
            started="2026-11-21T22:44:49.810654722Z",
            finished="2026-11-21T22:44:49.810003166Z",
        ),
        start_grace=GRACE,
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
    full = status_from_inspect(
        start_grace=GRACE, data=inspect_data(phase, exit_code=exit_code, cancelled=cancelled)
    )
    brief = status_from_summary(
        start_grace=GRACE, summary=summary(phase, exit_code=exit_code, cancelled=cancelled)
    )
    assert brief.state is full.state
    assert brief.exit_code == full.exit_code
    assert brief.reason == full.reason


def test_a_job_id_cannot_fake_the_cancel_mark() -> None:
    # Job "cancelled-<id>" is named jobrelay-cancelled-<id>: cancelled only if <id> is its own.
    other = "ab" * 32
    data = inspect_data("exited", exit_code=137)
    data["Name"] = f"/{cancelled_name(other)}"
    assert status_from_inspect(data, start_grace=GRACE).state is JobState.FAILED


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


TABLE = error_table("here")


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
        (FileNotFoundError(2, "no socket"), True, TransientExecutorError),
        (docker.errors.DockerException("odd"), True, LaunchError),
    ],
)
def test_translate(exc: BaseException, launching: bool, kind: type[ExecutorError]) -> None:
    error = TABLE.translate(exc, "do it", executor="d", job_id="j", launching=launching)
    assert type(error) is kind
    assert (error.executor, error.job_id) == ("d", "j")
    assert str(error).startswith("docker do it failed: ")


NO_SUCH_HOST = (
    'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io '
    "on 10.0.0.2:53: no such host"
)
# What dockerd 20.10 answers (500) for input it cannot take, recorded from the daemon.
UNMARSHAL = (
    "json: cannot unmarshal number 36893488147419103232 into Go struct field "
    "HostConfig.HostConfig.{} of type int64"
)
LSTAT = "lstat /var/lib/docker/overlay2/53ff/merged/tmp\x00x: invalid argument"
ENV_NUL = (
    "failed to create shim task: OCI runtime create failed: runc create failed: unable to "
    "start container process: error during container init: environment variable value "
    'can\'t contain null(\\x00): "TOKEN=hun\\x00ter2": unknown'
)


@pytest.mark.parametrize(
    ("explanation", "field"),
    [
        (UNMARSHAL.format("Memory"), "resources.memory"),
        (UNMARSHAL.format("NanoCpus"), "resources.cpu"),
        (UNMARSHAL.format("Sysctls"), "Sysctls"),
        (LSTAT, "working_dir"),
        (ENV_NUL, "env"),
        ("driver failed programming external connectivity", None),
        # What a pull of an image a registry does not have answers (dockerd 20.10).
        ("manifest for jobrelay-test/nope:latest not found: manifest unknown", "image"),
        ("pull access denied for nope, repository does not exist or may require login", "image"),
        (NO_SUCH_HOST, "image"),
        ("Get https://registry:5000/v2/: net/http: request canceled", None),
    ],
)
def test_bad_input_500_is_permanent_and_names_the_field(
    explanation: str, field: str | None
) -> None:
    exc = api_error(500, explanation)
    assert bad_input(exc) == field
    error = TABLE.translate(exc, "create container jobrelay-x", executor="d", launching=True)
    if field is None:
        assert type(error) is TransientExecutorError
    else:
        assert type(error) is LaunchError
        assert f"the job's {field} is not valid for Docker" in str(error)


def test_go_quoted_secret_is_masked() -> None:
    exc = api_error(500, ENV_NUL)
    error = TABLE.translate(exc, "start", executor="d", launching=True, secrets=["hun\x00ter2"])
    assert "ter2" not in str(error)
    assert "TOKEN=***" in str(error)


def test_translate_tls_is_permanent_even_inside_a_connection_error() -> None:
    inner = ssl.SSLError(1, "[SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] certificate required")
    outer = requests.exceptions.ConnectionError(inner)
    error = error_table("tcp://h:2376").translate(outer, "connect", executor="d", launching=True)
    assert type(error) is LaunchError
    assert "TLS" in str(error)
    assert "tls.client_cert" in str(error)


def test_created_and_never_started_fails_after_the_grace() -> None:
    old = JUST_NOW - timedelta(seconds=GRACE + 5)
    for status in (
        status_from_inspect(inspect_data("created", created=old), start_grace=GRACE),
        status_from_summary(summary("created", created=old), start_grace=GRACE),
    ):
        assert status.state is JobState.FAILED
        assert status.reason is not None
        assert "never started" in status.reason
    cancelled = inspect_data("created", created=old, cancelled=True)
    assert status_from_inspect(cancelled, start_grace=GRACE).state is JobState.CANCELLED


def test_a_run_the_daemon_forgot_is_lost_never_pending_or_failed() -> None:
    data = {**inspect_data("created"), "Name": f"/{forgotten_name(CID)}"}
    brief = {**summary("created"), "Names": [f"/{forgotten_name(CID)}"]}
    for status in (
        status_from_inspect(data, start_grace=GRACE),
        status_from_summary(brief, start_grace=GRACE),
    ):
        assert status.state is JobState.LOST
        assert "the daemon forgot this run" in str(status.reason)


@pytest.mark.parametrize(
    ("cpu", "memory", "field"),
    [(1.0, 2**44, "resources.memory"), (1e300, 512, "resources.cpu"), (1e10, 512, "resources.cpu")],
)
def test_limits_docker_cannot_express_are_launch_errors(
    cpu: float, memory: int, field: str
) -> None:
    # JobSpec bounds these today; the executor still refuses what overflows int64.
    job = types.SimpleNamespace(resources=types.SimpleNamespace(cpu=cpu, memory=memory), job_id="j")
    settings = types.SimpleNamespace(name="d")
    with pytest.raises(LaunchError, match=field):
        _limits(job, settings)  # type: ignore[arg-type]


def test_a_list_entry_is_never_judged_older_than_it_is() -> None:
    # The list's whole seconds are cut down: 0.9 s after creation it may already show
    # the previous second. Staleness must not start early on that account.
    # Created 0.9 s into a second, GRACE - 1 + (now's fraction) seconds ago: younger
    # than the grace, though its listed whole second is GRACE + (now's fraction) ago.
    second = int(datetime.now(timezone.utc).timestamp()) - int(GRACE) + 1
    created = second - 0.1
    entry = {**summary("created"), "Created": int(created)}
    assert status_from_summary(entry, start_grace=GRACE).state is JobState.PENDING
