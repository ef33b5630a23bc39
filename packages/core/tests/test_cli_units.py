"""The command line's value parsers, error text and progress line, in process."""

from __future__ import annotations

import argparse
import io
import os
import signal
from decimal import Decimal

import pytest

from jobrelay import Cost, Progress
from jobrelay._cli_args import docker_memory, duration_or_zero, parse_duration, whole_seconds
from jobrelay._cli_progress import CLEAR, ProgressDisplay, clock_text, cost_text
from jobrelay._cli_signals import Interrupted, SignalGuard
from jobrelay._cli_text import failure_text, one_line, secret_scrubber
from jobrelay.errors import NoExecutorAvailableError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("1.5h", 5400),
     ("500ms", 0.5), ("2d", 172800), (" 10M ", 600)],
)  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5x", "-5s", "0", "1h-", "m5", "9" * 400 + "s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="expected a duration"):
        parse_duration(text)


def test_zero_durations_where_they_make_sense() -> None:
    assert duration_or_zero("0") == 0
    assert whole_seconds("0s") == 0
    assert whole_seconds("1.2s") == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512m", 512), ("1g", 1024), ("1.5g", 1536), ("2048k", 2), ("1b", 1),
     ("512", "512"), ("512Mi", "512Mi"), ("1G", "1G"), ("lots", "lots")],
)  # fmt: skip
def test_docker_memory(text: str, expected: int | str) -> None:
    assert docker_memory(text) == expected


def test_one_line_drops_http_internals_and_class_names() -> None:
    text = (
        "docker: unhealthy: connect: no answer from tcp://127.0.0.1:1: ConnectionError: "
        "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: /version "
        "(Caused by NewConnectionError('<urllib3.connection.HTTPConnection object>: "
        "Failed to establish a new connection: [Errno 111] Connection refused'))"
    )
    assert one_line(text) == (
        "docker: unhealthy: connect: no answer from tcp://127.0.0.1:1 (connection refused)"
    )
    assert one_line("a\n  b\tc") == "a b c"
    assert len(one_line("x" * 1000)) == 400


def test_failure_text_from_the_error_or_the_reason() -> None:
    error = NoExecutorAvailableError(
        "j1", [("docker", "launch failed: LaunchError: no such image"), ("mock", "disabled")]
    )
    assert failure_text(error, None) == "docker: LaunchError: no such image; mock: disabled"
    reason = "launch failed: no executor available for job 'j1' (docker: launch failed: boom)"
    assert failure_text(None, reason) == "docker: boom"


def test_scrubber_covers_malformed_secret_arguments() -> None:
    scrub = secret_scrubber(["run", "--secret", "hunter2", "--secret=K=v4lue", "img"])
    assert scrub("hunter2 and v4lue and K=v4lue") == "*** and *** and ***"


def test_clock_and_cost_text() -> None:
    assert clock_text(75) == "1:15"
    assert clock_text(3725) == "1:02:05"
    costs = [Cost(Decimal("0.5"), "EUR", Decimal(1)), Cost(Decimal("0.25"), "EUR", Decimal(1))]
    assert cost_text([*costs, Cost(Decimal(1), "USD", Decimal(1))]) == "0.7500 EUR + 1.0000 USD"


def test_progress_line_eta_and_spend() -> None:
    now = [0.0]
    display = ProgressDisplay(io.StringIO(), 10, live=False, clock=lambda: now[0])
    now[0] = 20.0
    display.update(
        Progress(queued=4, running=2, succeeded=3, failed=1, total=10,
                 spent=Cost(Decimal("0.12"), "USD", Decimal(1)))
    )  # fmt: skip
    assert display.line() == (
        "10 jobs: 4 done, 2 running, 4 queued, 1 failed | elapsed 0:20, ETA 0:30 | spent 0.1200 USD"
    )


def test_live_display_clears_before_every_draw_and_message() -> None:
    stream = io.StringIO()
    display = ProgressDisplay(stream, 2, live=True)
    display.start()
    display.update(Progress(queued=1, running=1, total=2))
    display.message("jobrelay: something")
    display.close()
    text = stream.getvalue()
    assert text.startswith(CLEAR)
    assert CLEAR + "jobrelay: something\n" + CLEAR + "2 jobs:" in text
    assert text.endswith("\n")
    assert text.count("\n") == 2


def test_second_signal_during_cleanup_is_only_counted() -> None:
    read, write = os.pipe()
    try:
        with SignalGuard(lambda name: f"stop {name}\n", fd=write) as guard:
            with pytest.raises(Interrupted) as stopped:
                signal.raise_signal(signal.SIGTERM)
            signal.raise_signal(signal.SIGINT)  # cleanup goes on
            assert (stopped.value.exit_code, guard.extra) == (143, 1)
        assert os.read(read, 100) == b"stop SIGTERM\n"
    finally:
        os.close(read)
        os.close(write)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
