"""``jobrelay batch FILE``: run the jobs of a TOML file, show progress, print a summary.

Exit codes: 0 every job succeeded; 1 one or more did not; 2 bad file or flags;
130/143 interrupted (every job cancelled and cleaned up first).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import queue
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from jobrelay._cli_args import docker_memory, parse_duration
from jobrelay._cli_progress import CLEAR, ProgressDisplay, clock_text, cost_text
from jobrelay._cli_setup import (
    build_router,
    is_launch_failure,
)
from jobrelay._cli_signals import Interrupted, SignalGuard
from jobrelay._cli_text import failure_text, one_line, secret_scrubber
from jobrelay._config import load_toml
from jobrelay._models import Execution, JobResult, JobState, JobStatus, Logs
from jobrelay._runner import Runner
from jobrelay._spec import JobSpec
from jobrelay.errors import ConfigError, SpecError

if TYPE_CHECKING:
    from jobrelay._runner import JobHandle
    from jobrelay._scrub import Scrubber

__all__ = ["cmd_batch", "load_batch"]

_TAIL_LINES = 5
# A batch made with --executor rides out a short daemon hiccup; a run does not wait.
BATCH_UNHEALTHY_WAIT = 30.0
_REASON_WIDTH = 60


def load_batch(path: Path) -> list[JobSpec]:
    """Read ``[[jobs]]`` tables (JobSpec fields; ``timeout = "5m"``, ``memory = "1g"`` too).

    Raises:
        ConfigError: the file is missing, malformed, or two jobs share a ``job_id``.
        SpecError: a job field is invalid (named ``jobs[i].field``), or a job asks for
            ``stdin``, which nothing in a batch could feed.
    """
    if not path.is_file():
        raise ConfigError(f"batch file not found: {path}")
    data = load_toml(path)
    entries = data.get("jobs") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected one or more [[jobs]] tables")
    jobs: list[JobSpec] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "image" not in entry:
            raise ConfigError(f"{path}: jobs[{index}] needs an 'image'")
        if entry.get("stdin") is True:
            # Nothing would ever feed it: `cat` would wait until its timeout.
            raise SpecError(
                f"jobs[{index}].stdin",
                "a batch job has no input to read; stdin is for `jobrelay run` with a pipe",
            )
        job = _job(path, index, dict(entry))
        if job.job_id in seen:
            raise ConfigError(
                f"{path}: jobs[{index}].job_id: {job.job_id!r} is already the id of "
                f"jobs[{seen[job.job_id]}]; a job id names one job"
            )
        seen[job.job_id] = index
        jobs.append(job)
    return jobs


def _job(path: Path, index: int, fields: dict[str, Any]) -> JobSpec:
    image = fields.pop("image")
    try:
        if isinstance(fields.get("timeout"), str):
            fields["timeout"] = parse_duration(fields["timeout"])
        resources = fields.get("resources")
        if isinstance(resources, Mapping) and isinstance(resources.get("memory"), str):
            fields["resources"] = {**resources, "memory": docker_memory(resources["memory"])}
        return JobSpec(image, **fields)
    except argparse.ArgumentTypeError as exc:
        raise SpecError(f"jobs[{index}].timeout", str(exc)) from None
    except TypeError as exc:
        raise ConfigError(f"{path}: jobs[{index}]: {exc}") from None
    except SpecError as exc:
        raise SpecError(f"jobs[{index}].{exc.field}", str(exc).split(": ", 1)[-1]) from None


def _as_completed(handles: Sequence[JobHandle]) -> Iterator[JobHandle]:
    """Yield each distinct handle as its job ends (waits are interruptible by signals)."""
    ended: queue.Queue[JobHandle] = queue.Queue()
    unique = list({id(handle): handle for handle in handles}.values())
    for handle in unique:
        handle.add_done_callback(ended.put)
    for _ in unique:
        yield ended.get()


def result_of(handle: JobHandle) -> tuple[JobResult, BaseException | None]:
    """The job's result; a terminal stand-in for a job that was never launched."""
    now = datetime.now(timezone.utc)
    execution = handle.execution or Execution("", "", handle.job_id, now)
    try:
        error = handle.exception()
    except cf.CancelledError:
        status = JobStatus(JobState.CANCELLED, reason="cancelled before launch")
        return JobResult(execution, status, Logs(), job=handle.job), None
    if error is None:
        result = handle.result()
        if result.job is None and handle.job is not None:
            result = JobResult(
                result.execution, result.status, result.logs, result.duration, result.cost,
                result.attempts, handle.job,
            )  # fmt: skip
        return result, None
    what = "launch failed" if handle.execution is None else "harvest failed"
    status = JobStatus(JobState.FAILED, reason=f"{what}: {error}")
    return JobResult(execution, status, Logs(), job=handle.job), error


def _name(result: JobResult) -> str:
    return result.job.name if result.job is not None else result.execution.job_id


def _reason(result: JobResult, error: BaseException | None, scrub: Scrubber) -> str:
    if is_launch_failure(result):
        return "could not launch: " + one_line(failure_text(error, result.status.reason), scrub)
    reason = result.status.reason or ""
    if result.state is JobState.SUCCEEDED or reason == f"exit code {result.exit_code}":
        return ""  # the EXIT column says it
    return one_line(reason, scrub)


def _state(result: JobResult) -> str:
    return "not-launched" if is_launch_failure(result) else result.state.value


def _summary(result: JobResult, error: BaseException | None, scrub: Scrubber) -> str:
    """One line for a finished job."""
    text = f"{_name(result)} {_state(result)}"
    if result.exit_code is not None:
        text += f" (exit {result.exit_code})"
    if result.execution.executor:
        text += f" on {result.execution.executor}"
    if result.duration is not None:
        text += f" in {result.duration:.1f}s"
    reason = _reason(result, error, scrub)
    return f"{text}: {reason}" if reason else text


def _json_line(result: JobResult, error: BaseException | None, scrub: Scrubber) -> str:
    cost = result.cost
    record = {
        "job_id": result.job.job_id if result.job is not None else result.execution.job_id,
        "name": _name(result),
        "state": _state(result),
        "exit_code": result.exit_code,
        "executor": result.execution.executor or None,
        "execution_id": result.execution.execution_id or None,
        "duration": result.duration,
        "attempts": result.attempts,
        "reason": _reason(result, error, scrub) or None,
        "cost": None
        if cost is None
        else {"amount": str(cost.amount), "currency": cost.currency, "source": cost.source},
        "stdout": scrub(result.logs.stdout),
        "stderr": scrub(result.logs.stderr),
        "truncated": result.logs.truncated,
    }
    return json.dumps(record, ensure_ascii=False)


def table(rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    """Write ``rows`` as left-aligned columns, the first row the header."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            + "\n"
        )


def _print_summary(
    outcomes: Sequence[tuple[JobResult, BaseException | None]],
    out: IO[str],
    scrub: Scrubber,
    elapsed: float,
) -> None:
    rows = [("JOB", "ID", "STATE", "EXIT", "EXECUTOR", "DURATION", "REASON")]
    for result, error in outcomes:
        reason = _reason(result, error, scrub)
        if len(reason) > _REASON_WIDTH:
            reason = reason[: _REASON_WIDTH - 3] + "..."
        rows.append(
            (
                _name(result),
                result.job.job_id if result.job is not None else result.execution.job_id,
                _state(result),
                "-" if result.exit_code is None else str(result.exit_code),
                result.execution.executor or "-",
                "-" if result.duration is None else f"{result.duration:.1f}s",
                reason or "-",
            )
        )
    table(rows, out)
    for result, _ in outcomes:
        tail = scrub(result.logs.stderr).rstrip("\n").splitlines()[-_TAIL_LINES:]
        if result.state is not JobState.SUCCEEDED and tail:
            out.write(f"\n{_name(result)}: last lines of stderr:\n")
            out.write("".join(f"  | {line}\n" for line in tail))
    by_state: dict[str, int] = {}
    for result, _ in outcomes:
        by_state[_state(result)] = by_state.get(_state(result), 0) + 1
    line = f"{by_state.pop('succeeded', 0)} succeeded, {by_state.pop('failed', 0)} failed"
    line += "".join(
        f", {count} {state.replace('_', ' ').replace('-', ' ')}"
        for state, count in by_state.items()
    )
    line += f" in {clock_text(elapsed)}"
    costs = [result.cost for result, _ in outcomes if result.cost is not None]
    if costs:
        line += f"; spent {cost_text(costs)}"
    out.write(("\n" if len(rows) > 1 else "") + line + "\n")


def cmd_batch(args: argparse.Namespace, argv: Sequence[str], out: IO[str], err: IO[str]) -> int:
    """Run a batch file; return the exit code (see the module docstring)."""
    jobs = load_batch(args.file)
    scrub = secret_scrubber(argv, jobs)
    router = build_router(args, err, unhealthy_wait=BATCH_UNHEALTHY_WAIT)
    # With --debug, log lines share stderr: no line redrawn in place among them.
    live = err.isatty() and not getattr(args, "debug", False)
    display = ProgressDisplay(err, len(jobs), live=live, enabled=not args.quiet)
    guard = SignalGuard(
        lambda name: (
            (CLEAR if display.live else "") + f"jobrelay: {name}: cancelling the batch's jobs\n"
        )
    )
    outcomes: dict[int, tuple[JobResult, BaseException | None]] = {}
    interrupted: Interrupted | None = None
    with router, guard:
        table: dict[str, Any] = getattr(args, "runner_settings", None) or {}
        runner = Runner(
            router,
            max_workers=args.max_workers or table.get("max_workers") or 8,
            max_running=args.max_running or table.get("max_running"),
            budget=args.budget or table.get("budget"),
            progress=display.update,
        )
        try:
            display.start()
            handles = [runner.submit(job) for job in jobs]
            stopping = False
            for handle in _as_completed(handles):
                result, error = result_of(handle)
                outcomes[id(handle)] = (result, error)
                display.finished(result, _summary(result, error, scrub))
                if args.json:
                    out.write(_json_line(result, error, scrub) + "\n")
                    out.flush()
                if args.fail_fast and not result.succeeded and not stopping:
                    stopping = True
                    display.message(
                        f"jobrelay: job {_name(result)!r} did not succeed; "
                        "cancelling the rest (--fail-fast)"
                    )
                    for other in handles:
                        other.cancel()
            runner.shutdown(wait=True)
        except Interrupted as stop:
            interrupted = stop
            runner.shutdown(wait=True, cancel=True)
        except BaseException:
            runner.shutdown(wait=True, cancel=True)
            raise
        finally:
            display.close()
    if interrupted is not None:
        return interrupted.exit_code
    ordered = [outcomes[id(handle)] for handle in handles]
    if not args.json:
        _print_summary(ordered, out, scrub, display.elapsed())
    return 0 if all(result.succeeded for result, _ in ordered) else 1
