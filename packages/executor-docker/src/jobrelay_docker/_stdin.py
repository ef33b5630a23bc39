"""Writing a job's standard input over the daemon's attach endpoint.

A container created with ``OpenStdin`` and ``StdinOnce`` keeps its stdin open until
the first attach that carries stdin ends: then the daemon closes it, and the job
reads end-of-file. The attach is an HTTP request the daemon upgrades to a raw
stream (``101 Switching Protocols``); we write to it and half-close our side.

docker-py's ``attach_socket`` sends that request without a deadline, and the daemon
holds an attach to a container that has exited without ever answering it; so the
request is sent here, with ``timeout`` for the connect and the answer.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import docker.errors
import requests.exceptions

__all__ = ["StreamSocket", "stdin_socket", "write_chunk"]

_UPGRADE = {"Connection": "Upgrade", "Upgrade": "tcp"}


class StreamSocket(Protocol):
    """What we use of a socket (``socket.socket``, ``ssl.SSLSocket``, a paramiko channel)."""

    def send(self, data: bytes | memoryview, /) -> int: ...
    def settimeout(self, value: float | None, /) -> None: ...
    def shutdown(self, how: int, /) -> None: ...
    def close(self) -> None: ...


@contextlib.contextmanager
def stdin_socket(api: Any, container_id: str, timeout: float) -> Iterator[StreamSocket]:
    """Attach to the container's stdin only; yield the raw socket, closed afterwards.

    Every socket operation on it has ``timeout`` as its deadline.
    """
    url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/attach"
    response = api.post(
        url, params={"stdin": 1, "stream": 1}, headers=_UPGRADE, stream=True, timeout=timeout
    )
    try:
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError as exc:
            # The same NotFound/APIError docker-py raises for its own calls.
            raise docker.errors.create_api_error_from_http_exception(exc) from exc
        # docker-py knows where each of its transports keeps the upgraded socket.
        raw = api._get_raw_response_socket(response)  # noqa: SLF001
        sock: StreamSocket = raw
        if isinstance(raw, socket.SocketIO):  # a plain socket: the file object around it
            sock = raw._sock  # type: ignore[attr-defined]  # noqa: SLF001
        try:
            sock.settimeout(timeout)
            yield sock
        finally:
            sock.close()
    finally:
        response.close()


def write_chunk(
    sock: StreamSocket, index: int, chunk: object, *, ended: Callable[[], bool]
) -> bool:
    """Write one chunk (``chunks[index]``) whole; False if the job ended before taking it.

    A write that times out (the job is not reading now) or fails asks ``ended``:
    a job that ended took what it wanted, and the rest is dropped; one still running
    is waited for, another ``timeout`` at a time, as a pipe waits for its reader.

    Raises:
        TypeError: the chunk is not bytes.
    """
    if not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise TypeError(f"chunks[{index}]: must be bytes, got {type(chunk).__name__}")
    view = memoryview(chunk).cast("B")
    while view:
        try:
            sent = sock.send(view)
        except TimeoutError:
            if ended():
                return False
            continue
        except (BrokenPipeError, ConnectionResetError):
            if ended():
                return False
            raise
        view = view[sent:]
    return True
