"""Reading a container's output with stdout and stderr kept apart by the daemon.

Nothing here looks at the content to decide which stream a line belongs to: the logs
endpoint of a non-TTY container puts a header before every frame (``[stream, 0, 0,
0, size as 4 bytes big-endian]``; stream 1 is stdout, 2 is stderr), and
:func:`demultiplex` sorts frames by that header.

Both streams are read in one request. Asking for one stream at a time would not do
for ``tail``: the daemon counts the tail over *both* streams before it filters by
stream, so ``stdout=1&tail=1`` is empty when the last line went to stderr.
:func:`read_logs` therefore widens the tail until each stream has its lines.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterator
from typing import Any, Literal, Protocol

import docker.errors
import requests.exceptions

from jobrelay import LogLine, Logs

__all__ = ["demultiplex", "follow_logs", "lines", "read_logs"]

_HEADER = struct.Struct(">BxxxL")
# How many trailing log entries a finished follow re-reads to catch up (see follow_logs).
_CATCH_UP = 4
_STREAMS: dict[int, Literal["stdout", "stderr"]] = {1: "stdout", 2: "stderr"}


Frame = tuple[Literal["stdout", "stderr"], bytes]


class _Raw(Protocol):
    def read(self, amt: int) -> bytes: ...


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _read_exact(raw: _Raw, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = raw.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def demultiplex(raw: _Raw) -> Iterator[Frame]:
    """Yield ``(stream, payload)`` frames until the response ends."""
    while True:
        header = _read_exact(raw, _HEADER.size)
        if len(header) < _HEADER.size:
            return
        stream_id, size = _HEADER.unpack(header)
        payload = _read_exact(raw, size)
        stream = _STREAMS.get(stream_id)
        if stream is not None and payload:
            yield stream, payload
        if len(payload) < size:
            return


def lines(
    frames: Iterator[Frame],
) -> Iterator[LogLine]:
    """Reassemble frames into lines per stream; a last unterminated line is yielded too."""
    pending: dict[Literal["stdout", "stderr"], bytes] = {"stdout": b"", "stderr": b""}
    for stream, payload in frames:
        buffered = pending[stream] + payload
        *complete, pending[stream] = buffered.split(b"\n")
        for line in complete:
            yield LogLine(stream, _decode(line))
    for stream, rest in pending.items():
        if rest:
            yield LogLine(stream, _decode(rest))


def _frames_text(frames: list[Frame], stream: str) -> str:
    return _decode(b"".join(payload for name, payload in frames if name == stream))


def _last_lines(text: str, count: int) -> tuple[str, bool]:
    """Return the last ``count`` lines of ``text`` and whether any were dropped."""
    kept = text.splitlines(keepends=True)
    if len(kept) <= count:
        return text, False
    return "".join(kept[len(kept) - count :]), True


def read_logs(api: Any, container_id: str, *, tail: int | None, timeout: float) -> Logs:
    """Return the container's stdout and stderr, each limited to its last ``tail`` lines.

    ``truncated`` is True when ``tail`` left lines out.
    """
    if tail is None:
        frames = list(demultiplex_response(api, container_id, {"tail": "all"}, timeout))
        return Logs(stdout=_frames_text(frames, "stdout"), stderr=_frames_text(frames, "stderr"))
    if tail == 0:
        return Logs(truncated=bool(_fetch(api, container_id, 1, timeout)))
    window = tail
    while True:
        frames = _fetch(api, container_id, window, timeout)
        stdout, dropped_out = _last_lines(_frames_text(frames, "stdout"), tail)
        stderr, dropped_err = _last_lines(_frames_text(frames, "stderr"), tail)
        # The daemon counts one log entry per frame: fewer frames than asked for
        # means we have the whole log.
        whole = len(frames) < window
        enough = len(stdout.splitlines()) >= tail and len(stderr.splitlines()) >= tail
        if whole or enough:
            return Logs(
                stdout=stdout, stderr=stderr, truncated=dropped_out or dropped_err or not whole
            )
        window *= 4


def _fetch(api: Any, container_id: str, tail: int, timeout: float) -> list[Frame]:
    return list(demultiplex_response(api, container_id, {"tail": tail}, timeout))


def demultiplex_response(
    api: Any, container_id: str, params: dict[str, Any], read_timeout: float | None
) -> Iterator[Frame]:
    """Request the logs of both streams and yield their frames as they arrive.

    The response is closed when the caller stops iterating.
    """
    url = f"{api.base_url}/v{api.api_version}/containers/{container_id}/logs"
    query = {"stdout": 1, "stderr": 1, **params}
    response = api.get(url, params=query, stream=True, timeout=(api.timeout, read_timeout))
    try:
        try:
            response.raise_for_status()
        except requests.exceptions.HTTPError as exc:
            # The same NotFound/APIError docker-py raises for its own calls.
            raise docker.errors.create_api_error_from_http_exception(exc) from exc
        yield from demultiplex(response.raw)
    finally:
        response.close()


def follow_logs(api: Any, container_id: str) -> Iterator[LogLine]:
    """Yield the container's output line by line, from the start until it exits.

    No read timeout: a job may stay silent for hours.
    """
    recent: deque[Frame] = deque(maxlen=_CATCH_UP)

    def frames() -> Iterator[Frame]:
        for frame in demultiplex_response(api, container_id, {"follow": 1, "tail": "all"}, None):
            recent.append(frame)
            yield frame
        yield from _missed_at_exit(api, container_id, list(recent))

    yield from lines(frames())


def _missed_at_exit(api: Any, container_id: str, received: list[Frame]) -> list[Frame]:
    """Return the log entries written after a follow ended.

    The daemon (seen on 20.10) ends a follow when the container stops, before it
    writes the unterminated last line it flushes when the output pipe closes; so
    ``printf done`` would be lost. The last few entries, read again, are aligned
    with the last ones received: what follows the overlap is what was missed. A
    missed entry is such an unterminated line, which no received entry (a complete
    line) can equal, so the alignment cannot slip.
    """
    tail = _fetch(api, container_id, _CATCH_UP, api.timeout)
    for missing in range(len(tail) + 1):
        overlap = len(tail) - missing
        if overlap == 0 or (overlap <= len(received) and tail[:overlap] == received[-overlap:]):
            return tail[overlap:]
    return []  # pragma: no cover - overlap 0 always matches
