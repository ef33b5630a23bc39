"""How the `jobrelay` process ends: its exit code, and a fast exit that misses nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_exit_now_runs_atexit_handlers_flushes_and_keeps_the_code() -> None:
    proc = python(
        """
        import atexit, logging, sys
        from jobrelay._cli import exit_now
        logging.basicConfig(stream=sys.stderr, format="%(message)s")
        atexit.register(lambda: print("flushed at exit"))
        print("partial line, no newline", end="")
        sys.stderr.write("to stderr, unflushed")
        exit_now(7)
        """
    )
    assert proc.returncode == 7
    assert proc.stdout == "partial line, no newlineflushed at exit\n"
    assert proc.stderr == "to stderr, unflushed"


def test_exit_now_waits_for_a_running_non_daemon_thread() -> None:
    proc = python(
        """
        import threading, time
        from jobrelay._cli import exit_now
        def late():
            time.sleep(0.3)
            print("the thread finished", flush=True)
        threading.Thread(target=late).start()
        exit_now(3)
        """
    )
    assert proc.returncode == 3
    assert proc.stdout == "the thread finished\n"


def test_the_command_exits_with_mains_code_and_its_output() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jobrelay", "run", "--executor", "mock", "--label",
         "mock.exit-code=4", "--label", "mock.stdout=from the job", "busybox"],
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert proc.stdout == "from the job\n"
    assert "failed (exit 4)" in proc.stderr


def test_run_times_out_a_mock_job_with_124_and_keeps_its_output() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "jobrelay", "run", "--executor", "mock", "--timeout", "2s",
         "--label", "mock.duration=3600", "--label", "mock.stdout=partial", "busybox"],
        capture_output=True, text=True, check=False, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 124, proc.stderr
    assert proc.stdout == "partial\n"
    assert "timed_out on mock" in proc.stderr
    assert "timed out after 2.0s" in proc.stderr


def test_exit_now_runs_threadings_exit_hooks_then_atexit() -> None:
    # Where plugins flush: threading's hooks come first (async filesystems still work
    # there), atexit after, as at any interpreter exit.
    proc = python(
        """
        import atexit, threading
        from jobrelay._cli import exit_now
        atexit.register(lambda: print("atexit"))
        threading._register_atexit(lambda: print("threading hook"))
        exit_now(0)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "threading hook\natexit\n"
