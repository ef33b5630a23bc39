"""`jobrelay batch` on the mock: summary, JSON lines, --fail-fast, the progress display.

The live display is read back from a real pseudo-terminal; signals go to the real
process.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from jobrelay._cli_progress import CLEAR
from test_cli import jobrelay

BATCH = """
[[jobs]]
image = "busybox"
name = "ok-1"
labels = { "mock.stdout" = "one", "mock.duration" = "1" }

[[jobs]]
image = "busybox"
name = "bad"
job_id = "bad-job"
labels = { "mock.exit-code" = "4", "mock.stderr" = "l1\\nl2\\nl3\\nl4\\nl5\\nl6\\nboom" }

[[jobs]]
image = "busybox"
name = "three"
command = "echo three"
timeout = "5m"
resources = { memory = "1g" }
"""


@pytest.fixture
def batch(tmp_path: Path) -> Path:
    path = tmp_path / "jobs.toml"
    path.write_text(BATCH)
    return path


def test_summary_table_names_state_exit_executor_and_stderr_tail(batch: Path) -> None:
    proc = jobrelay("batch", str(batch), "--executor", "mock")
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["JOB", "ID", "STATE", "EXIT", "EXECUTOR", "DURATION", "REASON"]
    rows = {line.split()[0]: line.split() for line in lines[1:4]}
    assert rows["bad"][1:5] == ["bad-job", "failed", "4", "mock"]
    assert rows["ok-1"][2:5] == ["succeeded", "0", "mock"]
    assert rows["ok-1"][5] == "1.0s"
    tail_at = lines.index("bad: last lines of stderr:")
    assert lines[tail_at + 1 : tail_at + 6] == [
        f"  | {x}" for x in ("l3", "l4", "l5", "l6", "boom")
    ]
    assert lines[-1].startswith("2 succeeded, 1 failed in 0:0")
    # Not a terminal: one line per finished job, in the order they finished.
    finished = [line for line in proc.stderr.splitlines() if line.startswith("[")]
    assert sorted(line.split()[1] for line in finished) == ["bad", "ok-1", "three"]
    assert [line.split()[0] for line in finished] == ["[1/3]", "[2/3]", "[3/3]"]
    assert "\r" not in proc.stderr


def test_all_succeed_exits_zero(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[jobs]]\nimage = "busybox"\n\n[[jobs]]\nimage = "alpine:3"\n')
    proc = jobrelay("batch", str(path), "--executor", "mock", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "2 succeeded, 0 failed" in proc.stdout
    assert proc.stderr == ""


def test_json_lines(batch: Path) -> None:
    proc = jobrelay("batch", str(batch), "--executor", "mock", "--json", "--quiet")
    assert proc.returncode == 1, proc.stderr
    records = {record["name"]: record for record in map(json.loads, proc.stdout.splitlines())}
    assert set(records) == {"ok-1", "bad", "three"}
    bad = records["bad"]
    assert (bad["job_id"], bad["state"], bad["exit_code"], bad["executor"]) == (
        "bad-job", "failed", 4, "mock",
    )  # fmt: skip
    assert bad["stderr"].endswith("boom")
    assert records["ok-1"]["stdout"] == "one"
    assert records["ok-1"]["duration"] == 1.0


def test_fail_fast_cancels_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(
        '[[jobs]]\nimage = "busybox"\nname = "boom"\nlabels = { "mock.exit-code" = "1" }\n'
        + "".join(
            f'\n[[jobs]]\nimage = "busybox"\nname = "slow-{i}"\n'
            'labels = { "mock.duration" = "30" }\n'
            for i in range(3)
        )
    )
    started = time.monotonic()
    proc = jobrelay("batch", str(path), "--executor", "mock", "--fail-fast", "--max-workers", "1")
    assert time.monotonic() - started < 20
    assert proc.returncode == 1, proc.stderr
    assert "cancelling the rest (--fail-fast)" in proc.stderr
    states = {line.split()[0]: line.split()[2] for line in proc.stdout.splitlines()[1:5]}
    assert states["boom"] == "failed"
    assert all(states[f"slow-{i}"] == "cancelled" for i in range(3)), proc.stdout


def test_two_jobs_with_one_id_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(
        '[[jobs]]\nimage = "busybox"\njob_id = "x"\n\n[[jobs]]\nimage = "a"\njob_id = "x"\n'
    )
    proc = jobrelay("batch", str(path), "--executor", "mock")
    assert proc.returncode == 2
    expected = (
        f"jobrelay: error: {path}: jobs[1].job_id: 'x' is already the id of jobs[0]; "
        "a job id names one job"
    )
    assert proc.stderr.splitlines() == [expected]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('[[jobs]]\nimage = "busybox"\ntimeout = "soon"\n', "jobs[0].timeout"),
        ('[[jobs]]\nimage = "busybox"\nresources = { memory = "lots" }\n', "jobs[0].resources"),
        ('[[jobs]]\nimage = "busybox"\ncolour = "red"\n', "jobs[0]"),
        ('[[jobs]]\nname = "x"\n', "needs an 'image'"),
        ('[[jobs]]\nimage = "busybox"\n[[jobs]]\nimage = "b"\nstdin = true\n', "jobs[1].stdin"),
        ("jobs = 3\n", "[[jobs]]"),
    ],
)
def test_bad_batch_file_is_one_line_and_exit_2(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(body)
    proc = jobrelay("batch", str(path), "--executor", "mock")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    assert needle in proc.stderr


def _spawn_on_pty(args: list[str], columns: int = 100) -> tuple[subprocess.Popen[bytes], int]:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrelay", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
    )
    os.close(slave)
    return proc, master


def _read_all(proc: subprocess.Popen[bytes], master: int, timeout: float = 60) -> str:
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 65536)
            except OSError:  # the other side closed: everything is read
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    os.close(master)
    return b"".join(chunks).decode()


def test_progress_line_on_a_terminal_is_redrawn_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(
        "".join(
            f'[[jobs]]\nimage = "busybox"\nname = "j{i}"\n'
            f'labels = {{ "mock.duration" = "{1 + i % 3}", "mock.exit-code" = "{i % 4 == 3:d}" }}\n'
            for i in range(8)
        )
    )
    proc, master = _spawn_on_pty(["batch", str(path), "--executor", "mock", "--max-workers", "3"])
    screen = _read_all(proc, master)
    stdout = proc.stdout.read().decode() if proc.stdout else ""
    assert proc.wait(timeout=30) == 1
    proc.stdout and proc.stdout.close()
    assert screen.startswith(CLEAR), screen[:200]
    pieces = screen.split(CLEAR)[1:]
    progress = [p for p in pieces if p.startswith("8 jobs: ")]
    messages = [p for p in pieces if not p.startswith("8 jobs: ")]
    assert len(progress) >= 5, screen
    for piece in progress[:-1]:
        assert "\n" not in piece, piece  # a progress line is never ended by a log line
        assert len(piece) <= 99
    assert progress[-1].startswith("8 jobs: 8 done, 0 running, 0 queued, 2 failed")
    assert progress[-1].endswith("\n")
    # Failures are whole lines of their own, never glued to a progress line.
    assert sorted(m.split()[0] for m in messages) == ["j3", "j7"]
    assert all(m.endswith("\n") and m.count("\n") == 1 for m in messages)
    counts = [p.split(" | ")[0] for p in progress]
    assert any("running" in c and " 0 running" not in c for c in counts)
    assert "6 succeeded, 2 failed" in stdout


def test_progress_cut_to_a_narrow_terminal(tmp_path: Path) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text('[[jobs]]\nimage = "busybox"\nlabels = { "mock.duration" = "1" }\n')
    proc, master = _spawn_on_pty(["batch", str(path), "--executor", "mock"], columns=30)
    screen = _read_all(proc, master)
    assert proc.wait(timeout=30) == 0
    proc.stdout and proc.stdout.close()
    for piece in screen.split(CLEAR)[1:]:
        assert len(piece.rstrip("\r\n")) <= 29, piece


def wait_for_handlers(pid: int, timeout: float = 30) -> None:
    """Wait until the process catches SIGTERM (its SigCgt mask in /proc says so)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.02)
    pytest.fail(f"process {pid} installed no SIGTERM handler within {timeout}s")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_cancels_the_batch_and_prints_one_line(
    tmp_path: Path, signum: signal.Signals, code: int
) -> None:
    path = tmp_path / "jobs.toml"
    path.write_text(
        "".join(
            f'[[jobs]]\nimage = "busybox"\nname = "long-{i}"\nlabels = {{ "mock.duration" = "100000000" }}\n'
            for i in range(3)
        )
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "jobrelay", "batch", str(path), "--executor", "mock"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    wait_for_handlers(proc.pid)
    time.sleep(0.5)  # the jobs are being launched or run
    proc.send_signal(signum)
    time.sleep(0.1)
    proc.send_signal(signum)  # a second one during cleanup changes nothing
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == code, err
    name = "SIGINT" if signum == signal.SIGINT else "SIGTERM"
    assert err.splitlines() == [f"jobrelay: {name}: cancelling the batch's jobs"]
    assert out == ""
