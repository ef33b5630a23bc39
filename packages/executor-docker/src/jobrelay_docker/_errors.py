"""Docker's error table: which docker-py and requests failures are passing faults.

Core's :class:`~jobrelay.backend.ErrorTable` does the translation, the secret masking
and the chaining; this module only says, for Docker:

- No answer from the daemon (connection refused or reset, timeouts), throttling (429)
  and server errors (5xx) are transient: the core retry policy may try again.
- Except a 5xx the daemon gives for the job's own input (a number that does not fit
  its int64 fields, a NUL byte in a path or in the environment, an image the registry
  does not have or whose registry host does not resolve): the same request
  fails the same way however often it is sent, so it is permanent, and the message
  names the job's field.
- A TLS failure is permanent: retrying with the same certificates cannot help, and
  the message says which settings to check.
- Any other refusal is permanent: ``LaunchError`` during a launch, ``ExecutorError``
  otherwise.
"""

from __future__ import annotations

import functools
import re
import socket
import ssl
from collections.abc import Iterator

import docker.errors
import requests.exceptions
import urllib3.exceptions

from jobrelay.backend import ErrorTable

__all__ = [
    "DOCKER_ERRORS",
    "TLS_HINT",
    "api_status",
    "bad_input",
    "error_table",
    "is_not_found",
    "no_answer",
]

TLS_HINT = "check tls.ca_cert, tls.client_cert and tls.client_key"

DOCKER_ERRORS: tuple[type[BaseException], ...] = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)

_NO_ANSWER = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    urllib3.exceptions.ProtocolError,
    urllib3.exceptions.TimeoutError,
    socket.timeout,
    ConnectionError,
    TimeoutError,
    FileNotFoundError,  # the unix socket is not there (daemon down)
)

# Fields of the create request, as Go names them, and the JobSpec field behind each.
_GO_FIELDS = {
    "Memory": "resources.memory",
    "MemorySwap": "resources.memory",
    "MemoryReservation": "resources.memory",
    "NanoCpus": "resources.cpu",
    "CpuQuota": "resources.cpu",
    "WorkingDir": "working_dir",
    "Env": "env",
    "Cmd": "command",
    "Entrypoint": "entrypoint",
    "Labels": "labels",
}
_UNMARSHAL = re.compile(
    r"cannot unmarshal .+? into Go struct field (?:\w+\.)*(?P<field>\w+) of type"
)
# (pattern in the daemon's words, the job's field): 5xx answers caused by the input.
_BAD_INPUT = (
    # dockerd lstat()s the working directory inside the container's root filesystem.
    (re.compile(r"lstat /.*: invalid argument", re.DOTALL), "working_dir"),
    (re.compile(r"Cannot mkdir: .* is not a directory", re.DOTALL), "working_dir"),
    (re.compile(r"environment variable value can't contain null"), "env"),
    (re.compile(r"invalid reference format"), "image"),
    # A registry's refusal of the image comes back from the daemon as a 500 too: asking
    # again gives the same answer (the docker CLI gives up at once as well).
    (re.compile(r"manifest unknown|manifest for .* not found", re.IGNORECASE), "image"),
    (re.compile(r"pull access denied|repository does not exist", re.IGNORECASE), "image"),
    (re.compile(r"requested access to the resource is denied", re.IGNORECASE), "image"),
    (re.compile(r"lookup [^ ]+( on [^ ]+)?: no such host"), "image"),
)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """Yield ``exc`` and every exception it wraps (cause, context, args), once each."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = (*current.args, current.__cause__, current.__context__)
        reason = getattr(current, "reason", None)  # urllib3 wraps the cause there
        todo.extend(item for item in (*linked, reason) if isinstance(item, BaseException))


def api_status(exc: BaseException) -> int | None:
    """Return the HTTP status of a docker ``APIError``, else None."""
    if isinstance(exc, docker.errors.APIError):
        code = exc.status_code
        return code if isinstance(code, int) else None
    return None


def is_not_found(exc: BaseException) -> bool:
    """True when the daemon answered 404 (no such container, image or network)."""
    return isinstance(exc, docker.errors.NotFound) or api_status(exc) == 404


def _explanation(exc: BaseException) -> str:
    if isinstance(exc, docker.errors.APIError) and exc.explanation:
        return str(exc.explanation)
    return str(exc) or type(exc).__name__


def bad_input(exc: BaseException) -> str | None:
    """Return the job field a daemon error blames on the job's input, else None."""
    if api_status(exc) is None:
        return None
    text = _explanation(exc)
    match = _UNMARSHAL.search(text)
    if match is not None:
        return _GO_FIELDS.get(match["field"], match["field"])
    for pattern, field in _BAD_INPUT:
        if pattern.search(text):
            return field
    return None


def _tls_failure(exc: BaseException) -> BaseException | None:
    for linked in _chain(exc):
        if isinstance(linked, (ssl.SSLError, requests.exceptions.SSLError)):
            return linked
    return None


def no_answer(exc: BaseException) -> bool:
    return any(isinstance(linked, _NO_ANSWER) for linked in _chain(exc))


def is_transient(exc: BaseException) -> bool:
    """True for failures another attempt may not meet: no answer, 408, 429, 5xx."""
    if _tls_failure(exc) is not None:
        return False
    status = api_status(exc)
    if status is not None:
        return (status in (408, 429) or status >= 500) and bad_input(exc) is None
    return no_answer(exc)


def describe(exc: BaseException, *, where: str) -> str:
    """Say what went wrong in the daemon's words, with ``where`` it happened."""
    tls = _tls_failure(exc)
    if tls is not None:
        return (
            f"TLS with {where} failed ({tls}); the daemon refused us or we refused it: {TLS_HINT}"
        )
    status = api_status(exc)
    if status is not None:
        text = f"{where} answered {status}: {_explanation(exc)}"
        field = bad_input(exc)
        return text if field is None else f"{text} (the job's {field} is not valid for Docker)"
    if no_answer(exc):
        return f"no answer from {where}: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__} on {where}: {exc}"


def error_table(where: str) -> ErrorTable:
    """Return Docker's error table for the daemon at ``where`` (for the messages)."""
    return ErrorTable(
        backend="docker",
        catch=DOCKER_ERRORS,
        transient=is_transient,
        describe=functools.partial(describe, where=where),
    )
