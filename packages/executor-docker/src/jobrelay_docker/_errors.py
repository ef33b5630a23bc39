"""Turning docker-py and requests exceptions into jobrelay's error tree.

- No answer from the daemon (connection refused or reset, timeouts), throttling (429)
  and server errors (5xx) are :class:`~jobrelay.errors.TransientExecutorError`: the
  core retry policy may try again.
- A TLS failure is permanent: retrying with the same certificates cannot help, and
  the message says which settings to check.
- Any other refusal is permanent: :class:`~jobrelay.errors.LaunchError` during a
  launch, :class:`~jobrelay.errors.ExecutorError` otherwise.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator

import docker.errors
import requests.exceptions
import urllib3.exceptions

from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError

__all__ = ["TLS_HINT", "api_status", "is_not_found", "translate"]

TLS_HINT = "check tls.ca_cert, tls.client_cert and tls.client_key"

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


def _tls_failure(exc: BaseException) -> BaseException | None:
    for linked in _chain(exc):
        if isinstance(linked, (ssl.SSLError, requests.exceptions.SSLError)):
            return linked
    return None


def _no_answer(exc: BaseException) -> bool:
    return any(isinstance(linked, _NO_ANSWER) for linked in _chain(exc))


def translate(
    exc: BaseException,
    *,
    action: str,
    where: str,
    executor: str,
    job_id: str | None = None,
    launching: bool = False,
) -> ExecutorError:
    """Return the jobrelay error to raise for ``exc`` (the caller raises it ``from exc``).

    Args:
        exc: what docker-py or requests raised.
        action: what was being done, e.g. ``"create container jobrelay-abc"``.
        where: the daemon address, for the message.
        executor: the executor's name (set on the error).
        job_id: the job concerned, if any (set on the error).
        launching: permanent failures become ``LaunchError`` rather than ``ExecutorError``.
    """
    permanent = LaunchError if launching else ExecutorError
    tls = _tls_failure(exc)
    if tls is not None:
        return permanent(
            f"{action}: TLS with {where} failed ({tls}); the daemon refused us or we "
            f"refused it: {TLS_HINT}",
            executor=executor,
            job_id=job_id,
        )
    status = api_status(exc)
    if status is not None:
        detail = _explanation(exc)
        if status in (408, 429) or status >= 500:
            return TransientExecutorError(
                f"{action}: {where} answered {status}: {detail}", executor=executor, job_id=job_id
            )
        return permanent(
            f"{action}: {where} answered {status}: {detail}", executor=executor, job_id=job_id
        )
    if _no_answer(exc):
        return TransientExecutorError(
            f"{action}: no answer from {where}: {type(exc).__name__}: {exc}",
            executor=executor,
            job_id=job_id,
        )
    return permanent(
        f"{action} on {where} failed: {type(exc).__name__}: {exc}",
        executor=executor,
        job_id=job_id,
    )
