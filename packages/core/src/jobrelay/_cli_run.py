"""``jobrelay run``: one job, its output live, its exit code as ours.

Exit codes: the job's own; 124 timed out; 125 could not launch; 130/143 interrupted
by SIGINT/SIGTERM (the job is cancelled and cleaned up first); 130 also when the job
was cancelled from elsewhere; 1 lost or failed without an exit code.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any

from jobrelay._cli_setup import (
    build_router,
    is_launch_failure,
    job_from_args,
)
from jobrelay._cli_signals import Interrupted, SignalGuard
from jobrelay._cli_text import failure_text, one_line, secret_scrubber
from jobrelay._models import Execution, JobResult, JobState, JobStatus
from jobrelay._protocol import StdinFeeder
from jobrelay._runner import Runner
from jobrelay.errors import JobrelayError

if TYPE_CHECKING:
    from jobrelay._protocol import Executor
    from jobrelay._runner import JobHandle
    from jobrelay._scrub import Scrubber
    from jobrelay._spec import JobSpec

__all__ = ["EXIT_FOR_STATE", "cmd_run", "write_lines"]

EXIT_LAUNCH_FAILED = 125
EXIT_FOR_STATE = {
    JobState.SUCCEEDED: 0,
    JobState.FAILED: 1,
    JobState.CANCELLED: 130,
    JobState.TIMED_OUT: 124,
    JobState.LOST: 1,
}
# Longest wait between status sweeps of the one job (and so the granularity of its
# timeout); when its output stream ends, a sweep is asked for at once.
RUN_POLL_INTERVAL = 0.5
_STDIN_CHUNK = 65536
LAUNCH_NOTICE_AFTER = 10.0


def write_lines(target: IO[str], text: str, scrub: Scrubber) -> None:
    """Write ``text`` as whole lines (a last line without newline gets one), scrubbed."""
    if text:
        text = scrub(text)
        target.write(text if text.endswith("\n") else text + "\n")
        target.flush()


def stdin_has_input() -> bool:
    """Whether our stdin is a pipe, socket or non-empty file (not a terminal, not /dev/null)."""
    try:
        if os.isatty(0):
            return False
        info = os.fstat(0)
    except OSError:
        return False
    mode = info.st_mode
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or (stat.S_ISREG(mode) and info.st_size > 0)


def _stdin_chunks() -> Iterator[bytes]:
    while chunk := os.read(0, _STDIN_CHUNK):
        yield chunk


def _pass_stdin(
    executor: Executor, execution: Execution, job: JobSpec, err: IO[str], scrub: Scrubber
) -> None:
    """Feed our stdin to the job where the executor can take it; otherwise say so."""
    if isinstance(executor, StdinFeeder) and executor.capabilities().stdin:
        threading.Thread(
            target=_send_stdin,
            args=(executor, execution, job, err, scrub),
            name="jobrelay-stdin",
            daemon=True,
        ).start()
        return
    err.write(
        f"jobrelay: warning: stdin is not passed to job {job.name!r}: the "
        f"{execution.executor} executor cannot attach input to a job\n"
    )


def _send_stdin(
    feeder: StdinFeeder, execution: Execution, job: JobSpec, err: IO[str], scrub: Scrubber
) -> None:
    """Send our stdin to the job; a failure is one warning line (the job then reads EOF)."""
    try:
        feeder.send_stdin(execution, _stdin_chunks())
    except (JobrelayError, OSError) as exc:
        err.write(
            f"jobrelay: warning: stdin of job {job.name!r} was cut short: "
            f"{one_line(str(exc), scrub)}\n"
        )


def _preload_plugins(router: Any) -> None:
    """Import the ``jobrelay.plugins`` hook implementations while the job launches.

    The first hook fires right after the launch; importing a plugin's dependencies
    (OpenTelemetry, fsspec) then would delay the job's output by that much.
    """
    threading.Thread(
        target=router.hooks.load_entry_points, name="jobrelay-plugins", daemon=True
    ).start()


def _sweep_now(runner: Runner) -> None:
    """Ask the Runner for a status sweep now: the output stream ended, so the job did."""
    runner.wake()


def _follow(
    runner: Runner, handle: JobHandle, io: tuple[IO[str], IO[str]], scrub: Scrubber, *,
    stdin: bool,
) -> tuple[JobResult | None, BaseException | None]:  # fmt: skip
    """Stream the job's lines live, then return its result (or the error it ended with)."""
    out, err = io
    execution = handle.wait_launched(LAUNCH_NOTICE_AFTER)
    if execution is None and not handle.done():
        # Retried launches (a daemon that does not answer, a reply lost) can take
        # minutes: say that we wait, once, rather than sit silent.
        reason = handle.status().reason
        why = f" ({one_line(reason, scrub)})" if reason and reason != "queued" else ""
        name = handle.job.name if handle.job is not None else handle.job_id
        err.write(f"jobrelay: job {name!r} is not launched yet{why}; still trying (Ctrl-C stops)\n")
        execution = handle.wait_launched()
    streamed = 0
    if execution is not None and handle.job is not None:
        executor = runner.router.executor(execution.executor)
        if stdin:
            _pass_stdin(executor, execution, handle.job, err, scrub)
        if executor.capabilities().log_streaming and not handle.done():
            try:
                for line in executor.stream_logs(execution):
                    write_lines(err if line.stream == "stderr" else out, line.text, scrub)
                    streamed += 1
                _sweep_now(runner)
            except JobrelayError as exc:
                # Before the first line this is the race with a quick job's harvest:
                # the harvested output below is complete. After it, say what was cut.
                if streamed:
                    err.write(f"jobrelay: output stream stopped: {one_line(str(exc), scrub)}\n")
    try:
        error = handle.exception()
    except cf.CancelledError:
        return None, None
    if error is not None:
        return None, error
    result = handle.result()
    if not streamed:
        # Nothing came through the stream (no streaming, or the job was harvested
        # before it began): print the harvested output instead. After a partial
        # stream, reprinting would repeat lines.
        write_lines(out, result.logs.stdout, scrub)
        write_lines(err, result.logs.stderr, scrub)
    return result, None


def _exit_reason(status: JobStatus) -> str:
    return f"exit code {status.exit_code}"


def _report(
    job: JobSpec,
    handle: JobHandle,
    outcome: tuple[JobResult | None, BaseException | None],
    err: IO[str],
    scrub: Scrubber,
    *,
    quiet: bool,
) -> int:
    result, error = outcome
    if result is None and error is None:
        err.write(f"jobrelay: job {job.name!r} was cancelled before it was launched\n")
        return EXIT_FOR_STATE[JobState.CANCELLED]
    if result is None or is_launch_failure(result):
        reason = result.status.reason if result is not None else None
        if error is not None and handle.execution is not None:
            err.write(f"jobrelay: job {job.name!r}: {one_line(str(error), scrub)}\n")
            return 1
        why = one_line(failure_text(error, reason), scrub)
        err.write(f"jobrelay: job {job.name!r} could not be launched: {why}\n")
        return EXIT_LAUNCH_FAILED
    status = result.status
    if not quiet:
        summary = f"jobrelay: job {job.name!r} {status.state.value}"
        if status.exit_code is not None:
            summary += f" (exit {status.exit_code})"
        summary += f" on {result.execution.executor} [{result.execution.execution_id[:12]}]"
        reason = status.reason or ""
        if reason and status.state is not JobState.SUCCEEDED and reason != _exit_reason(status):
            summary += f": {one_line(reason, scrub)}"
        err.write(summary + "\n")
    if status.state is JobState.FAILED and status.exit_code:
        return status.exit_code
    return EXIT_FOR_STATE[status.state]


def cmd_run(args: argparse.Namespace, argv: Sequence[str], out: IO[str], err: IO[str]) -> int:
    """Run one job; return the exit code (see the module docstring)."""
    stdin = stdin_has_input()
    job = job_from_args(args, stdin=stdin)
    scrub = secret_scrubber(argv, [job])
    router = build_router(args, err)
    guard = SignalGuard(lambda name: f"jobrelay: {name}: cancelling job {job.name!r}\n")
    with router, guard:
        runner = Runner(router, max_workers=2, poll_interval=RUN_POLL_INTERVAL)
        try:
            handle = runner.submit(job)
            _preload_plugins(router)
            outcome = _follow(runner, handle, (out, err), scrub, stdin=stdin)
            runner.shutdown(wait=True)
        except Interrupted as stop:
            runner.shutdown(wait=True, cancel=True)
            return stop.exit_code
        except BaseException:
            runner.shutdown(wait=True, cancel=True)
            raise
    return _report(job, handle, outcome, err, scrub, quiet=args.quiet)
