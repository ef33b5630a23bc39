"""Reading a task's output from its CloudWatch Logs stream.

The ``awslogs`` driver writes one event per line to ``<prefix>/<container>/<task id>``
and does not keep stdout and stderr apart, so everything is reported as ``stdout``.
``GetLogEvents`` pages end when the returned token equals the one sent.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay_fargate._errors import error_code

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

__all__ = ["LogReader", "is_missing_stream"]

_PAGE_LIMIT = 10_000  # GetLogEvents' own maximum
MAX_LOG_BYTES = 32 * 1024 * 1024


def is_missing_stream(error: ClientError) -> bool:
    """Return whether the log group or stream does not exist (yet)."""
    return error_code(error) == "ResourceNotFoundException"


@attrs.frozen
class Event:
    """One log event: a line of output and when CloudWatch stamped it."""

    message: str
    timestamp: datetime | None


def _event(raw: dict[str, Any]) -> Event:
    stamp = raw.get("timestamp")
    when = (
        datetime.fromtimestamp(stamp / 1000, tz=timezone.utc)
        if isinstance(stamp, (int, float))
        else None
    )
    return Event(str(raw.get("message", "")).rstrip("\n"), when)


@attrs.frozen
class LogReader:
    """Reads one task's log stream.

    Args:
        logs: a boto3 CloudWatch Logs client.
        group: the log group.
        stream: the log stream name.
        call: ``call(action, method, *, tolerate=None, **kwargs)``, as the executor's.
    """

    logs: Any
    group: str
    stream: str
    call: Callable[..., Any]

    def _page(self, **kwargs: Any) -> dict[str, Any] | None:
        answer: dict[str, Any] | None = self.call(
            "GetLogEvents",
            self.logs.get_log_events,
            tolerate=is_missing_stream,
            logGroupName=self.group,
            logStreamName=self.stream,
            **kwargs,
        )
        return answer

    def forward(self, token: str | None = None) -> tuple[list[Event], str | None]:
        """Return the events after ``token`` (from the start when None) and the new token.

        Reads pages until the forward token repeats. The token returned is where the
        next call should resume; it is None while the stream does not exist.
        """
        events: list[Event] = []
        while True:
            kwargs: dict[str, Any] = {"startFromHead": True, "limit": _PAGE_LIMIT}
            if token is not None:
                kwargs["nextToken"] = token
            answer = self._page(**kwargs)
            if answer is None:
                return events, token
            events.extend(_event(raw) for raw in answer.get("events", []))
            following = answer.get("nextForwardToken")
            if not following or following == token:
                return events, token if following is None else following
            token = following

    def read(self, tail: int | None = None) -> tuple[list[Event], bool]:
        """Return ``(events, truncated)``: all of them, or the last ``tail`` lines.

        ``truncated`` is True when earlier output exists that is not returned: lines
        before the tail, or anything past :data:`MAX_LOG_BYTES` of output.
        """
        if tail is not None:
            return self._tail(tail)
        events: list[Event] = []
        size = 0
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"startFromHead": True, "limit": _PAGE_LIMIT}
            if token is not None:
                kwargs["nextToken"] = token
            answer = self._page(**kwargs)
            if answer is None:
                return events, False
            for raw in answer.get("events", []):
                event = _event(raw)
                size += len(event.message) + 1
                if size > MAX_LOG_BYTES:
                    return events, True
                events.append(event)
            following = answer.get("nextForwardToken")
            if not following or following == token:
                return events, False
            token = following

    def _tail(self, tail: int) -> tuple[list[Event], bool]:
        if tail <= 0:
            return [], bool(self._backward_page(None, 1)[0])
        kept: deque[Event] = deque()
        token: str | None = None
        while len(kept) <= tail:
            page, following = self._backward_page(token, min(tail + 1 - len(kept), _PAGE_LIMIT))
            kept.extendleft(reversed(page))
            if following is None or following == token:
                break
            token = following
        truncated = len(kept) > tail
        while len(kept) > tail:
            kept.popleft()
        return list(kept), truncated

    def _backward_page(self, token: str | None, limit: int) -> tuple[list[Event], str | None]:
        kwargs: dict[str, Any] = {"startFromHead": False, "limit": limit}
        if token is not None:
            kwargs["nextToken"] = token
        answer = self._page(**kwargs)
        if answer is None:
            return [], None
        events = [_event(raw) for raw in answer.get("events", [])]
        return events, answer.get("nextBackwardToken")
