"""Text for people: one-line errors without HTTP internals or class names, no secrets.

Kept apart from the rest of the command line so that ``jobrelay --version`` and
usage errors load nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from jobrelay._scrub import Scrubber
from jobrelay.errors import NoExecutorAvailableError

if TYPE_CHECKING:
    from jobrelay._spec import JobSpec

__all__ = ["failure_text", "one_line", "secret_scrubber"]

_MAX_LINE = 400

_LAUNCH_FAILED = re.compile(r"^(?:launch failed: )+")
_NO_EXECUTOR = re.compile(r"^no executor available for job '[^']*' \((.*)\)$", re.DOTALL)
_CLASS_PREFIX = re.compile(r"\b[A-Z][A-Za-z]*(?:Error|Exception|Failure): ")
_POOL = re.compile(r"(?:\b[A-Z]\w*(?:Error|Exception): )?\(?HTTPS?ConnectionPool\(.*", re.DOTALL)
_ERRNO = re.compile(r"\[Errno -?\d+\] ([^'\")\]]+)")


def one_line(text: str, scrub: Scrubber | None = None) -> str:
    """Return ``text`` as one line for people: no urllib3 reprs, no class names, no secrets."""
    if scrub is not None:
        text = scrub(text)
    pool = _POOL.search(text)
    if pool is not None:
        errno = _ERRNO.search(pool.group(0))
        cause = errno.group(1).strip().lower() if errno else "no connection"
        text = text[: pool.start()].rstrip(" :") + f" ({cause})"
    text = _CLASS_PREFIX.sub("", text)
    text = " ".join(text.split())
    return text if len(text) <= _MAX_LINE else text[: _MAX_LINE - 3] + "..."


def failure_text(error: BaseException | None, reason: str | None) -> str:
    """Why a job could not be launched, from its error (preferred) or its result's reason."""
    if isinstance(error, NoExecutorAvailableError) and error.skipped:
        parts = [f"{name}: {_LAUNCH_FAILED.sub('', why)}" for name, why in error.skipped]
        return "; ".join(parts)
    text = str(error) if error is not None else (reason or "unknown reason")
    text = _LAUNCH_FAILED.sub("", text)
    inner = _NO_EXECUTOR.match(text)
    if inner is not None:
        text = re.sub(r"(?<=: )launch failed: ", "", inner.group(1))
    return text


def secret_scrubber(argv: Sequence[str], jobs: Sequence[JobSpec] = ()) -> Scrubber:
    """A scrubber for every secret on the command line (well-formed or not) and in ``jobs``."""
    values: list[str] = []
    for index, arg in enumerate(argv):
        given = None
        if arg == "--secret" and index + 1 < len(argv):
            given = argv[index + 1]
        elif arg.startswith("--secret="):
            given = arg.removeprefix("--secret=")
        if given:
            values.append(given)
            _, sep, value = given.partition("=")
            if sep and value:
                values.append(value)
    for job in jobs:
        values.extend(job.secrets.values())
    return Scrubber(values)
