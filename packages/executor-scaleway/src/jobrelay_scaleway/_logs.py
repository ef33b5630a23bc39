"""Reading a run's output from Cockpit's Loki API (``/loki/api/v1/query_range``).

Scaleway documents no label telling stdout from stderr on Serverless Jobs log
streams, so every line is returned as stdout, in timestamp order.
"""

from __future__ import annotations

import logging
import string
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay import Clock, Execution, LogLine, Logs
from jobrelay.backend import follow_logs
from jobrelay_scaleway._transport import EmptyReplyError

if TYPE_CHECKING:
    import requests

__all__ = ["DEFAULT_SELECTOR", "Cursor", "LogLineAt", "LokiReader", "RunOutput"]

logger = logging.getLogger("jobrelay.scaleway")

DEFAULT_SELECTOR = '{resource_type="serverless_job", job_run_id="$run_id"}'
PAGE = 5000
MAX_PAGES = 20
SLACK = timedelta(minutes=2)


@attrs.frozen
class LogLineAt:
    """One line and its Loki timestamp (nanoseconds since the epoch)."""

    ns: int
    text: str


@attrs.frozen
class Cursor:
    """Where a follow stopped: the last timestamp, and how many lines at it were seen."""

    ns: int
    seen_at_ns: int


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


class LokiReader:
    """Queries one Loki endpoint with a Cockpit token, through a session with deadlines.

    Args:
        session: the pooled session (the transport's).
        url: the Loki data source URL (no trailing slash).
        token: a Cockpit token allowed to query logs.
        timeout: seconds a query may wait.
        selector: LogQL stream selector; ``$run_id``, ``$definition_id`` and
            ``$definition_name`` are replaced.
        call: wraps each HTTP query (error translation, retries).
    """

    def __init__(
        self,
        *,
        session: requests.Session,
        url: str,
        token: str,
        timeout: float,
        selector: str,
        call: Callable[[Callable[[], Any]], Any],
    ) -> None:
        self._session = session
        self._url = f"{url}/loki/api/v1/query_range"
        self._token = token
        self._timeout = timeout
        self._selector = string.Template(selector)
        self._call = call

    def _query(
        self, expression: str, *, start_ns: int, end_ns: int, limit: int, direction: str
    ) -> list[LogLineAt]:
        def send() -> Any:
            response = self._session.get(
                self._url,
                params={
                    "query": expression,
                    "start": str(start_ns),
                    "end": str(end_ns),
                    "limit": str(limit),
                    "direction": direction,
                },
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=self._timeout,
            )
            response.raise_for_status()
            try:
                return response.json()
            except ValueError:
                raise EmptyReplyError(
                    "GET", "/loki/api/v1/query_range", response.status_code
                ) from None

        answer = self._call(send)
        lines: list[LogLineAt] = []
        result = answer.get("data", {}).get("result", []) if isinstance(answer, dict) else []
        for stream in result:
            for ns, text in stream.get("values", []):
                lines.append(LogLineAt(int(ns), str(text)))
        lines.sort(key=lambda line: line.ns, reverse=direction == "backward")
        return lines

    def expression(self, *, run_id: str, definition_id: str, definition_name: str) -> str:
        """The LogQL selector of one run."""
        return self._selector.safe_substitute(
            run_id=_quote(run_id),
            definition_id=_quote(definition_id),
            definition_name=_quote(definition_name),
        )

    def read(
        self, expression: str, *, start_ns: int, end_ns: int, tail: int | None
    ) -> tuple[list[LogLineAt], bool]:
        """Return the lines in ``[start_ns, end_ns]`` oldest first, and whether cut short.

        With ``tail``, only the last ``tail`` lines.
        """
        if tail is not None:
            if tail <= 0:
                return [], False
            lines = self._query(
                expression, start_ns=start_ns, end_ns=end_ns, limit=tail, direction="backward"
            )
            return list(reversed(lines[:tail])), False
        everything: list[LogLineAt] = []
        cursor = Cursor(start_ns, 0)
        for _ in range(MAX_PAGES):
            page, cursor, full = self.follow(expression, cursor, end_ns=end_ns)
            everything.extend(page)
            if not full:
                return everything, False
        return everything, True

    def follow(
        self, expression: str, cursor: Cursor, *, end_ns: int
    ) -> tuple[Sequence[LogLineAt], Cursor, bool]:
        """Return the lines after ``cursor``, the next cursor, and whether the page was full.

        Loki's ``start`` is inclusive: the lines at the cursor's timestamp come back
        and the ones already seen are skipped.
        """
        lines = self._query(
            expression, start_ns=cursor.ns, end_ns=end_ns, limit=PAGE, direction="forward"
        )
        if not lines:
            return [], cursor, False
        skip = cursor.seen_at_ns
        fresh: list[LogLineAt] = []
        for line in lines:
            if line.ns == cursor.ns and skip > 0:
                skip -= 1
                continue
            fresh.append(line)
        last = lines[-1].ns
        following = Cursor(last, sum(1 for line in lines if line.ns == last))
        return fresh, following, len(lines) >= PAGE


class RunOutput:
    """A run's output: the Loki reader made on first use, then read or followed.

    Args:
        session: the pooled session (the transport's).
        url: the Loki URL, or None to ``discover`` it (Cockpit's data sources).
        discover: returns the Loki URL when none was given.
        token: the Cockpit token; None means no output can be read (said once).
        timeout: seconds a query may wait.
        selector: LogQL selector template (see :class:`LokiReader`).
        call: wraps each HTTP query (error translation, retries).
        clock: where ``stream`` waits.
        poll_interval: seconds between polls in ``stream``.
    """

    def __init__(
        self,
        *,
        session: requests.Session,
        url: str | None,
        discover: Callable[[], str],
        token: str | None,
        timeout: float,
        selector: str,
        call: Callable[[Callable[[], Any]], Any],
        clock: Clock,
        poll_interval: float,
    ) -> None:
        self._session = session
        self._url = url
        self._discover = discover
        self._token = token
        self._timeout = timeout
        self._selector = selector
        self._call = call
        self._clock = clock
        self._poll_interval = poll_interval
        self._reader: LokiReader | None = None
        self._warned = False
        self._lock = threading.Lock()

    def _get_reader(self) -> LokiReader | None:
        if self._token is None:
            if not self._warned:
                logger.warning("no logs_token: Serverless Jobs output cannot be read")
                self._warned = True
            return None
        with self._lock:
            if self._reader is not None:
                return self._reader
        reader = LokiReader(
            session=self._session,
            url=self._url or self._discover(),
            token=self._token,
            timeout=self._timeout,
            selector=self._selector,
            call=self._call,
        )
        with self._lock:
            self._reader = reader
        return reader

    @staticmethod
    def _window(execution: Execution) -> tuple[int, int]:
        start = execution.launched_at - SLACK
        end = datetime.now(timezone.utc) + SLACK
        return int(start.timestamp() * 1e9), int(end.timestamp() * 1e9)

    @staticmethod
    def _expression(reader: LokiReader, execution: Execution) -> str:
        return reader.expression(
            run_id=execution.execution_id,
            definition_id=str(execution.metadata.get("job_definition_id", "")),
            definition_name="",
        )

    def logs(self, execution: Execution, *, tail: int | None = None) -> Logs:
        """Return the run's output so far, all in ``stdout``."""
        reader = self._get_reader()
        if reader is None:
            return Logs()
        start, end = self._window(execution)
        lines, truncated = reader.read(
            self._expression(reader, execution), start_ns=start, end_ns=end, tail=tail
        )
        text = "".join(
            line.text if line.text.endswith("\n") else f"{line.text}\n" for line in lines
        )
        return Logs(stdout=text, truncated=truncated)

    def stream(self, execution: Execution, is_done: Callable[[], bool]) -> Iterator[LogLine]:
        """Yield the run's lines as Loki receives them until ``is_done()``, then drain."""
        reader = self._get_reader()
        if reader is None:
            return
        expression = self._expression(reader, execution)
        start, _ = self._window(execution)

        def fetch(cursor: Cursor | None) -> tuple[list[LogLine], Cursor | None]:
            _, end = self._window(execution)
            lines, following, _ = reader.follow(expression, cursor or Cursor(start, 0), end_ns=end)
            return [
                LogLine(
                    "stdout",
                    line.text.rstrip("\n"),
                    datetime.fromtimestamp(line.ns / 1e9, tz=timezone.utc),
                )
                for line in lines
            ], following

        yield from follow_logs(fetch, is_done, clock=self._clock, poll_interval=self._poll_interval)
