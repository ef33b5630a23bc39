"""The ``jobrelay`` command line: list executors, run one job, explain a route, run a batch.

Bad input prints one line and exits 2; a job's own exit code passes through ``run``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from jobrelay._config import load_toml
from jobrelay._models import JobResult, JobState
from jobrelay._registry import describe_executors, load_executor_class
from jobrelay._runner import JobHandle, Progress, Runner
from jobrelay._spec import JobSpec
from jobrelay.errors import (
    ConfigError,
    ExecutorLoadError,
    ExecutorNotFoundError,
    JobrelayError,
    RuleError,
    SpecError,
)

if TYPE_CHECKING:
    from jobrelay._router import Router

__all__ = ["main"]

DEFAULT_EXECUTOR = "mock"
_USAGE_ERRORS = (
    SpecError,
    ConfigError,
    RuleError,
    ExecutorNotFoundError,
    ExecutorLoadError,
    FileNotFoundError,
)
_EXIT_FOR_STATE = {
    JobState.SUCCEEDED: 0,
    JobState.FAILED: 1,
    JobState.CANCELLED: 130,
    JobState.TIMED_OUT: 124,
    JobState.LOST: 1,
}


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _add_job_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", action="append", type=_key_value, default=[], metavar="K=V")
    parser.add_argument("--secret", action="append", type=_key_value, default=[], metavar="K=V")
    parser.add_argument("--label", action="append", type=_key_value, default=[], metavar="K=V")
    parser.add_argument("--cpu", type=float, help="cores, e.g. 0.5")
    parser.add_argument("--memory", help="MiB or a unit: 512Mi, 2Gi, 1G")
    parser.add_argument("--gpu", type=int)
    parser.add_argument("--timeout", type=float, help="seconds of running time")
    parser.add_argument("--workdir", help="absolute working directory in the container")
    parser.add_argument("--name", help="job name (default: the image's repository)")
    parser.add_argument("--entrypoint", help="override the image's entrypoint")
    parser.add_argument("image", help="image reference")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")


def _build_parser() -> _Parser:
    parser = _Parser(prog="jobrelay", description="Run container jobs on any backend.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    executors = sub.add_parser("executors", help="list installed executors")
    executors.add_argument("--config", type=Path, help="router config (TOML): also check health")

    run = sub.add_parser("run", help="run one job, stream its output, exit with its code")
    where = run.add_mutually_exclusive_group()
    where.add_argument("--executor", help=f"executor name (default: {DEFAULT_EXECUTOR})")
    where.add_argument("--config", type=Path, help="router config (TOML)")
    _add_job_flags(run)

    route = sub.add_parser("route", help="print where a job would go")
    route.add_argument("--config", type=Path, required=True, help="router config (TOML)")
    route.add_argument("--context", action="append", type=_key_value, default=[], metavar="K=V")
    route.add_argument("--explain", action="store_true", help="show every candidate and why")
    _add_job_flags(route)

    batch = sub.add_parser("batch", help="run the jobs listed in a TOML file")
    batch.add_argument("file", type=Path, help="TOML file with [[jobs]] tables")
    bwhere = batch.add_mutually_exclusive_group()
    bwhere.add_argument("--executor", help=f"executor name (default: {DEFAULT_EXECUTOR})")
    bwhere.add_argument("--config", type=Path, help="router config (TOML)")
    batch.add_argument("--max-workers", type=int, default=8)
    return parser


def _job_from_args(args: argparse.Namespace) -> JobSpec:
    cmd = list(args.cmd)
    if cmd and cmd[0] == "--":
        cmd = cmd[1:]
    resources: dict[str, Any] = {}
    for field in ("cpu", "memory", "gpu"):
        value = getattr(args, field)
        if value is not None:
            resources[field] = value
    fields: dict[str, Any] = {
        "env": dict(args.env),
        "secrets": dict(args.secret),
        "labels": dict(args.label),
        "resources": resources,
        "timeout": args.timeout,
        "working_dir": args.workdir,
        "entrypoint": args.entrypoint,
    }
    if args.name:
        fields["name"] = args.name
    return JobSpec(args.image, cmd or None, **fields)


def _router(config: Path | None, executor: str | None) -> Router:
    from jobrelay._router import Router  # noqa: PLC0415 - keeps `jobrelay --help` light

    if config is not None:
        if not config.is_file():
            raise FileNotFoundError(f"config file not found: {config}")
        return Router.from_toml(config)
    name = executor or DEFAULT_EXECUTOR
    load_executor_class(name)  # an unknown or broken executor is a usage error, now
    return Router({name: {"type": name}}, default=name)


# -- commands -------------------------------------------------------------------------


def _cmd_executors(args: argparse.Namespace, out: IO[str]) -> int:
    rows = [("NAME", "DISTRIBUTION", "VERSION", "TARGET")]
    rows += [
        (info.name, info.distribution or "-", info.version or "-", info.target)
        for info in describe_executors()
    ]
    _table(rows, out)
    if args.config is not None:
        router = _router(args.config, None)
        with router:
            out.write("\n")
            health_rows = [("CONFIGURED", "AVAILABLE", "DETAIL")]
            for name in router.names:
                ok, why = router.is_available(name)
                health_rows.append((name, "yes" if ok else "no", why))
            _table(health_rows, out)
    return 0


def _cmd_route(args: argparse.Namespace, out: IO[str]) -> int:
    job = _job_from_args(args)
    with _router(args.config, None) as router:
        decision = router.route(job, context=dict(args.context) or None)
        out.write(f"{decision.executor}\t{decision.reason}\n")
        if args.explain:
            rule = decision.rule
            out.write(f"  chosen: {decision.executor} ({decision.reason})\n")
            if rule is not None:
                out.write(f"  rule: {rule.condition}\n")
            for name, why in decision.skipped:
                out.write(f"  skipped: {name}: {why}\n")
    return 0


def _cmd_run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    job = _job_from_args(args)
    router = _router(args.config, args.executor)
    with router, Runner(router, max_workers=2, poll_interval=0.5) as runner:
        handle = runner.submit(job)
        try:
            result = _follow(runner, handle, out, err)
        except KeyboardInterrupt:
            err.write("jobrelay: interrupted; cancelling the job\n")
            handle.cancel()
            runner.shutdown(wait=True, cancel=True)
            return 130
    status = result.status
    summary = f"jobrelay: {status.state.value}"
    if status.exit_code is not None:
        summary += f" (exit {status.exit_code})"
    if status.reason and status.state is not JobState.SUCCEEDED:
        summary += f": {status.reason}"
    err.write(f"{summary} on {result.execution.executor} [{result.execution.execution_id}]\n")
    if status.state is JobState.FAILED and status.exit_code is not None:
        return status.exit_code
    return _EXIT_FOR_STATE[status.state]


def _follow(runner: Runner, handle: JobHandle, out: IO[str], err: IO[str]) -> JobResult:
    """Stream the job's lines to our stdout/stderr live, then return its result."""
    execution = handle.wait_launched()
    streamed = 0
    if execution is not None:
        executor = runner.router.executor(execution.executor)
        if executor.capabilities().log_streaming:
            try:
                for line in executor.stream_logs(execution):
                    _write_lines(err if line.stream == "stderr" else out, line.text)
                    streamed += 1
            except JobrelayError as exc:
                err.write(f"jobrelay: log streaming stopped: {exc}\n")
    result = handle.result()
    if not streamed:
        # Nothing came through the stream (no streaming, or the job was harvested
        # before the stream began): print the harvested output the same way instead.
        # After a partial stream, reprinting would repeat lines.
        _write_lines(out, result.logs.stdout)
        _write_lines(err, result.logs.stderr)
    return result


def _write_lines(target: IO[str], text: str) -> None:
    """Write ``text`` as whole lines: a last line without a newline gets one."""
    if text:
        target.write(text if text.endswith("\n") else text + "\n")
        target.flush()


def _cmd_batch(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    jobs = _load_batch(args.file)
    router = _router(args.config, args.executor)
    live = err.isatty()

    def show(progress: Progress) -> None:
        line = (
            f"queued {progress.queued} / running {progress.running} / "
            f"succeeded {progress.succeeded} / failed "
            f"{progress.failed + progress.timed_out + progress.lost + progress.cancelled}"
        )
        err.write(f"\r{line}" if live else f"{line}\n")
        err.flush()

    with router, Runner(router, max_workers=args.max_workers, progress=show) as runner:
        handles = [runner.submit(job) for job in jobs]
        for _ in runner.as_completed(handles):
            pass
    if live:
        err.write("\n")
    rows = [("JOB", "EXECUTOR", "STATE", "EXIT", "SECONDS")]
    failed = 0
    for handle in handles:
        error = handle.exception()
        if error is not None:
            failed += 1
            rows.append((handle.job_id, "-", "launch-failed", "-", "-"))
            err.write(f"jobrelay: {handle.job_id}: {error}\n")
            continue
        result = handle.result()
        if not result.succeeded:
            failed += 1
        seconds = f"{result.duration:.1f}" if result.duration is not None else "-"
        exit_code = "-" if result.exit_code is None else str(result.exit_code)
        rows.append(
            (handle.job_id, result.execution.executor, result.state.value, exit_code, seconds)
        )
    _table(rows, out)
    out.write(f"{len(handles) - failed} succeeded, {failed} failed\n")
    return 1 if failed else 0


def _load_batch(path: Path) -> list[JobSpec]:
    if not path.is_file():
        raise FileNotFoundError(f"batch file not found: {path}")
    data = load_toml(path)
    entries = data.get("jobs") if isinstance(data, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected one or more [[jobs]] tables")
    jobs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping) or "image" not in entry:
            raise ConfigError(f"{path}: jobs[{index}] needs an 'image'")
        fields = dict(entry)
        image = fields.pop("image")
        try:
            jobs.append(JobSpec(image, **fields))
        except TypeError as exc:
            raise ConfigError(f"{path}: jobs[{index}]: {exc}") from None
        except SpecError as exc:
            raise SpecError(f"jobs[{index}].{exc.field}", str(exc).split(": ", 1)[-1]) from None
    return jobs


def _table(rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
            + "\n"
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jobrelay`` command; returns the process exit code."""
    out, err = sys.stdout, sys.stderr
    parser = _build_parser()
    commands = {
        "executors": lambda a: _cmd_executors(a, out),
        "route": lambda a: _cmd_route(a, out),
        "run": lambda a: _cmd_run(a, out, err),
        "batch": lambda a: _cmd_batch(a, out, err),
    }
    try:
        args = parser.parse_args(argv)
        return commands[args.command](args)
    except (UsageError, *_USAGE_ERRORS) as exc:
        err.write(f"jobrelay: error: {exc}\n")
        return 2
    except JobrelayError as exc:
        err.write(f"jobrelay: {type(exc).__name__}: {exc}\n")
        return 1
    except BrokenPipeError:  # pragma: no cover - e.g. `jobrelay executors | head`
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return 1
