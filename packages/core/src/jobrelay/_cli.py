"""The ``jobrelay`` command line.

Commands: ``executors``, ``run``, ``route``, ``batch``, ``ps``, ``logs``, ``cancel``,
``gc``; ``--version``. Exit codes: the job's own for ``run``; 1 a batch job (or an
operation) failed; 2 bad usage or configuration; 124 timed out; 125 the job could not
be launched; 130 SIGINT and 143 SIGTERM (jobs cancelled and cleaned up first).

Every error is one line on stderr: no traceback, no HTTP library internals, never a
secret (even one given malformed to ``--secret``). The library's own log messages
stay quiet unless ``--debug``.
"""

from __future__ import annotations

import atexit
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from typing import IO, NoReturn

from jobrelay._cli_args import UsageError, build_parser
from jobrelay._cli_signals import Interrupted
from jobrelay._cli_text import one_line, secret_scrubber
from jobrelay.errors import (
    ConfigError,
    ExecutorLoadError,
    ExecutorNotFoundError,
    JobrelayError,
    RuleError,
    SpecError,
)

__all__ = ["command", "exit_now", "main"]

EXIT_USAGE = 2
_USAGE_ERRORS = (SpecError, ConfigError, RuleError, ExecutorNotFoundError, ExecutorLoadError)


def _quiet_logging(debug: bool) -> None:
    """Library warnings (retries, router hops) go to stderr only with ``--debug``."""
    root = logging.getLogger()
    if debug:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("jobrelay: %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.DEBUG)
    elif not root.handlers:
        root.addHandler(logging.NullHandler())  # and so no "last resort" printing


# command -> (module, function); a command's module is imported when it runs, so
# `jobrelay --version` and usage errors load none of them.
_COMMANDS = {
    "executors": ("_cli_ops", "cmd_executors"),
    "run": ("_cli_run", "cmd_run"),
    "route": ("_cli_ops", "cmd_route"),
    "batch": ("_cli_batch", "cmd_batch"),
    "ps": ("_cli_ops", "cmd_ps"),
    "logs": ("_cli_ops", "cmd_logs"),
    "cancel": ("_cli_ops", "cmd_cancel"),
    "gc": ("_cli_ops", "cmd_gc"),
}
_TAKES_ARGV = frozenset({"run", "route", "batch"})


def _run(command: str, args: object, argv: Sequence[str], out: IO[str], err: IO[str]) -> int:
    module, name = _COMMANDS[command]
    function: Callable[..., int] = getattr(importlib.import_module(f"jobrelay.{module}"), name)
    if command in _TAKES_ARGV:
        return function(args, argv, out, err)
    return function(args, out, err)


def _wants_debug(arguments: Sequence[str]) -> bool:
    """Whether ``--debug`` comes before the command (not in a job's own arguments)."""
    for arg in arguments:
        if arg in _COMMANDS:
            return False
        if arg == "--debug":
            return True
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jobrelay`` command; returns the process exit code."""
    out, err = sys.stdout, sys.stderr
    arguments = list(sys.argv[1:] if argv is None else argv)
    scrub = secret_scrubber(arguments)
    debug = _wants_debug(arguments)
    try:
        args = build_parser().parse_args(arguments)
        _quiet_logging(args.debug)
        return _run(args.command, args, arguments, out, err)
    except (UsageError, *_USAGE_ERRORS) as exc:
        err.write(f"jobrelay: error: {one_line(str(exc), scrub)}\n")
        return EXIT_USAGE
    except JobrelayError as exc:
        err.write(f"jobrelay: {one_line(str(exc), scrub)}\n")
        return 1
    except KeyboardInterrupt as stop:  # before any job was submitted: nothing to clean up
        return stop.exit_code if isinstance(stop, Interrupted) else 130
    except BrokenPipeError:  # pragma: no cover - e.g. `jobrelay ps | head`
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        return 1
    except Exception as exc:
        if debug:
            raise
        # A bug, or a backend error nobody translated: still one line (jobs were
        # cancelled and cleaned up on the way out).
        err.write(
            f"jobrelay: unexpected {type(exc).__name__}: {one_line(str(exc), scrub)} "
            "(--debug shows the traceback)\n"
        )
        return 1


def command() -> NoReturn:
    """The ``jobrelay`` executable: run :func:`main` on ``sys.argv``, then exit fast."""
    exit_now(main())


def exit_now(code: int) -> NoReturn:
    """End the process with ``code``, as Python's own exit does, minus the module teardown.

    With docker-py and its HTTP stack loaded, tearing down every module at exit takes
    longer than a short job's whole bookkeeping (70 ms here). What matters of the
    exit still happens, in Python's order: threading's exit hooks run and non-daemon
    threads are waited for (``threading._shutdown``, as the interpreter calls it),
    then the ``atexit`` handlers (plugins flush their archives and telemetry in
    either), stdout and stderr are flushed, and only then the process ends.
    """
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:  # another Python's threading: the ordinary exit
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()  # noqa: SLF001 - what interpreter exit calls, exactly
    flushed = [_flushed(stream) for stream in (sys.stdout, sys.stderr)]
    os._exit(code if all(flushed) else code or 1)


def _flushed(stream: IO[str]) -> bool:
    try:
        stream.flush()
    except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
        return False
    return True
