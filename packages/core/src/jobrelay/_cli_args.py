"""The ``jobrelay`` argument parser and the parsers of flag values (durations, memory).

Values are checked here, so a bad flag is one line and exit code 2 before anything
is loaded or launched. No message ever repeats the value given to ``--secret``.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import NoReturn

__all__ = [
    "PULL_CHOICES",
    "UsageError",
    "build_parser",
    "docker_memory",
    "key_value",
    "parse_duration",
    "secret_key_value",
]

DEFAULT_EXECUTOR = "mock"
# docker's --pull words, plus the executor's own spelling of "missing".
PULL_CHOICES = {"always": "always", "missing": "if-not-present", "never": "never"}
PULL_CHOICES["if-not-present"] = "if-not-present"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)?")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
# docker's memory spelling: a number and one lowercase binary unit letter (512m, 1g).
_DOCKER_MEMORY = re.compile(r"(\d{1,12}(?:\.\d{1,6})?)([bkmg])")
_DOCKER_UNIT_MIB = {"b": 1 / 2**20, "k": 1 / 1024, "m": 1, "g": 1024}
_MAX_TEXT = 64  # longer values are not parsed (and not quoted back in full)


class UsageError(Exception):
    """Bad command-line input: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _shown(text: str) -> str:
    return repr(text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + "...")


def key_value(text: str) -> tuple[str, str]:
    """Parse ``KEY=VALUE``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {_shown(text)}")
    return key, value


def secret_key_value(text: str) -> tuple[str, str]:
    """Parse ``NAME=VALUE`` for ``--secret``; the error never shows what was given."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError("expected NAME=VALUE (the value given is not shown)")
    return key, value


def parse_duration(text: str) -> float:
    """Parse ``90``, ``90s``, ``5m``, ``1h``, ``1h30m``, ``500ms``, ``2d`` into seconds."""
    compact = text.strip().lower()
    position, total = 0, 0.0
    while position < len(compact) and len(compact) <= _MAX_TEXT:
        match = _DURATION_PART.match(compact, position)
        if match is None:
            break
        total += float(match[1]) * _UNIT_SECONDS[match[2]]
        position = match.end()
    if not compact or position != len(compact) or not math.isfinite(total) or total <= 0:
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 90s, 5m, 1h or 1h30m, got {_shown(text)}"
        )
    return total


def duration_or_zero(text: str) -> float:
    """Parse a duration like :func:`parse_duration`, also admitting ``0`` (``--older-than``)."""
    if text.strip().lower() in {"0", "0s", "0m", "0h"}:
        return 0.0
    return parse_duration(text)


def whole_seconds(text: str) -> int:
    """Parse a duration (``--stop-grace``) and round it up to whole seconds; 0 allowed."""
    return math.ceil(duration_or_zero(text))


def docker_memory(text: str) -> int | str:
    """Return memory as docker writes it (``512m``, ``1g``: binary units) in MiB.

    Other spellings (``512``, ``512Mi``, ``2Gi``, ``1G``) are returned unchanged for
    :class:`~jobrelay.Resources`, which reads a bare number as MiB and ``G``/``M``
    as decimal units.
    """
    match = _DOCKER_MEMORY.fullmatch(text.strip())
    if match is None or float(match[1]) == 0:
        return text  # Resources says what is wrong with it
    return math.ceil(float(match[1]) * _DOCKER_UNIT_MIB[match[2]])


def _pull(text: str) -> str:
    policy = PULL_CHOICES.get(text)
    if policy is None:
        raise argparse.ArgumentTypeError(f"expected always, missing or never, got {_shown(text)}")
    return policy


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"expected a whole number of 1 or more, got {_shown(text)}"
        )
    return value


def _add_where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--executor", help="executor name (default: $JOBRELAY_CONFIG, ./jobrelay.toml, else mock)"
    )
    where.add_argument("--config", type=Path, help="router config (TOML)")


def _add_executor_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("executor settings (an error where unsupported)")
    group.add_argument("--pull", type=_pull, help="image pull policy: always, missing, never")
    group.add_argument("--stop-grace", type=whole_seconds, metavar="DURATION",
                       help="time between the stop signal and the kill on cancel")  # fmt: skip
    group.add_argument("--network", help="network the job's container joins")
    group.add_argument("-v", "--volume", action="append", default=[], metavar="SRC:DEST[:ro]",
                       help="mount a volume (repeatable)")  # fmt: skip
    group.add_argument("--user", help="user (name or uid[:gid]) the job runs as")


def _add_job_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", "-e", action="append", type=key_value, default=[], metavar="K=V")
    parser.add_argument(
        "--secret", action="append", type=secret_key_value, default=[], metavar="NAME=VALUE"
    )
    parser.add_argument("--label", action="append", type=key_value, default=[], metavar="K=V")
    parser.add_argument("--cpu", type=float, help="cores, e.g. 0.5")
    parser.add_argument(
        "--memory", "-m", type=docker_memory, help="512m or 1g (docker), 512Mi, 2Gi, or MiB"
    )
    parser.add_argument("--gpu", type=int)
    parser.add_argument("--timeout", type=parse_duration, help="running time: 90s, 5m, 1h")
    parser.add_argument("--workdir", "-w", help="absolute working directory in the container")
    parser.add_argument("--name", help="job name (default: the image's repository)")
    parser.add_argument("--job-id", help="the job's idempotency key (default: a new id)")
    parser.add_argument("--entrypoint", help="override the image's entrypoint")
    parser.add_argument("image", help="image reference")
    parser.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command")


class _Version(argparse.Action):
    """``--version``: reads the installed version only when asked."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:  # noqa: ARG002
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> NoReturn:  # noqa: ARG002
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            found = version("jobrelay")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            found = "unknown"
        sys.stdout.write(f"jobrelay {found}\n")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of every ``jobrelay`` command."""
    parser = _Parser(prog="jobrelay", description="Run container jobs on any backend.")
    parser.add_argument("--version", action=_Version)
    parser.add_argument(
        "--debug", action="store_true", help="show the library's log messages on stderr"
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    executors = sub.add_parser("executors", help="list installed executors")
    executors.add_argument("--config", type=Path, help="router config (TOML): also check health")

    run = sub.add_parser("run", help="run one job, stream its output, exit with its code")
    _add_where(run)
    _add_executor_flags(run)
    run.add_argument("--quiet", "-q", action="store_true", help="no status line at the end")
    _add_job_flags(run)

    route = sub.add_parser("route", help="print where a job would go")
    route.add_argument("--config", type=Path, help="router config (TOML)")
    route.add_argument("--context", action="append", type=key_value, default=[], metavar="K=V")
    route.add_argument("--explain", action="store_true", help="every candidate, why, and cost")
    _add_job_flags(route)

    batch = sub.add_parser("batch", help="run the jobs listed in a TOML file")
    batch.add_argument("file", type=Path, help="TOML file with [[jobs]] tables")
    _add_where(batch)
    _add_executor_flags(batch)
    batch.add_argument("--max-workers", type=_positive_int, default=None, help="default 8")
    batch.add_argument("--max-running", type=_positive_int, help="jobs running at once")
    batch.add_argument("--budget", help="stop launching past this estimated spend: '25 EUR'")
    batch.add_argument("--json", action="store_true", help="results as JSON lines on stdout")
    batch.add_argument("--fail-fast", action="store_true", help="cancel the rest on a failure")
    batch.add_argument("--quiet", "-q", action="store_true", help="no progress display")

    ps = sub.add_parser("ps", help="list managed workloads on the configured executors")
    _add_where(ps)
    ps.add_argument("--all-owners", action="store_true", help="also other owners' workloads")

    logs = sub.add_parser("logs", help="print a job's output (found by id on any executor)")
    _add_where(logs)
    logs.add_argument("job_id", metavar="JOB_ID")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the job ends")

    cancel = sub.add_parser("cancel", help="cancel a job (found by id on any executor)")
    _add_where(cancel)
    cancel.add_argument("job_id", metavar="JOB_ID")

    gc = sub.add_parser("gc", help="remove finished managed workloads")
    _add_where(gc)
    gc.add_argument("--older-than", type=duration_or_zero, default=3600.0, metavar="DURATION",
                    help="finished at least this long ago (default 1h)")  # fmt: skip
    gc.add_argument("--all-owners", action="store_true", help="also other owners' workloads")
    return parser
