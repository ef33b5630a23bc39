"""Reading a Cloud Run execution's output from Cloud Logging's ``entries:list``.

Entries are read as JSON through the logging client's connection and parsed here:
the client's own entry objects create a ``Logger`` per log name, which probes the GCE
metadata server off Google Cloud (two requests, 5 s timeout each) -- a stall no
harvest should pay. Every filter bounds ``timestamp`` (without a bound the service
searches only the last 24 hours) and names the execution, so one read returns one
execution's entries; stdout and stderr come from their own log names.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

from jobrelay import ExecutorError, LogLine

__all__ = ["Cursor", "ExecutionRef", "LogReader"]

STREAMS = ("stdout", "stderr")
PAGE_SIZE = 1000
MAX_PAGES = 100
# Entries are stamped by the container's clock; look a little before the launch.
SKEW = timedelta(minutes=5)

Request = Callable[[dict[str, Any]], Mapping[str, Any]]


@attrs.frozen
class ExecutionRef:
    """The parts of an execution's resource name the log filter needs."""

    project: str
    region: str
    job: str
    execution: str

    @classmethod
    def parse(cls, name: str) -> ExecutionRef | None:
        """Parse ``projects/P/locations/R/jobs/J/executions/X``; None for anything else."""
        parts = name.split("/")
        if len(parts) != 8 or parts[::2] != ["projects", "locations", "jobs", "executions"]:
            return None
        if not all(parts[1::2]):
            return None
        return cls(parts[1], parts[3], parts[5], parts[7])

    @property
    def job_name(self) -> str:
        return f"projects/{self.project}/locations/{self.region}/jobs/{self.job}"

    @property
    def name(self) -> str:
        return f"{self.job_name}/executions/{self.execution}"


@attrs.frozen
class Cursor:
    """Where a follower stands: the newest timestamp seen and the entries seen at it."""

    timestamp: str
    seen: frozenset[str]


def _quote(text: str) -> str:
    return json.dumps(text)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _stamp(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _text(entry: Mapping[str, Any]) -> str:
    if "textPayload" in entry:
        return str(entry["textPayload"]).rstrip("\n")
    payload = entry.get("jsonPayload")
    if isinstance(payload, Mapping):
        message = payload.get("message")
        return str(message) if message is not None else json.dumps(payload, sort_keys=True)
    return ""


@attrs.frozen
class LogReader:
    """Reads one project's Cloud Run job logs through ``request`` (one entries:list call).

    ``request`` takes the request body and returns the decoded answer; the executor's
    version carries the deadline, the rate limit, retries and error mapping.
    """

    request: Request
    project: str

    def _log_name(self, stream: str) -> str:
        return f"projects/{self.project}/logs/run.googleapis.com%2F{stream}"

    def _filter(self, ref: ExecutionRef, since: datetime, streams: Iterable[str]) -> str:
        names = " OR ".join(_quote(self._log_name(stream)) for stream in streams)
        return " AND ".join(
            [
                'resource.type = "cloud_run_job"',
                f"resource.labels.job_name = {_quote(ref.job)}",
                f"resource.labels.location = {_quote(ref.region)}",
                f'labels."run.googleapis.com/execution_name" = {_quote(ref.execution)}',
                f"logName = ({names})",
                f"timestamp >= {_quote(_stamp(since))}",
            ]
        )

    def _lines(self, entries: Iterable[Mapping[str, Any]]) -> list[LogLine]:
        lines: list[LogLine] = []
        for entry in entries:
            stream = str(entry.get("logName", "")).rsplit("%2F", 1)[-1]
            if stream not in STREAMS:
                continue
            timestamp = entry.get("timestamp")
            moment = _instant(timestamp) if isinstance(timestamp, str) else None
            lines.append(
                LogLine("stderr" if stream == "stderr" else "stdout", _text(entry), moment)
            )
        return lines

    def _pages(
        self, text: str, *, order: str, page_size: int, max_pages: int
    ) -> tuple[list[Mapping[str, Any]], bool]:
        """Return the entries of up to ``max_pages`` pages, and whether more remained."""
        entries: list[Mapping[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        for _ in range(max_pages):
            body: dict[str, Any] = {
                "resourceNames": [f"projects/{self.project}"],
                "filter": text,
                "orderBy": order,
                "pageSize": page_size,
            }
            if token:
                body["pageToken"] = token
            answer = self.request(body)
            entries.extend(answer.get("entries", []))
            token = answer.get("nextPageToken") or None
            if token is None:
                return entries, False
            if token in seen:
                raise ExecutorError(f"Cloud Logging repeated page token {token!r}")
            seen.add(token)
        return entries, True

    def read(
        self, ref: ExecutionRef, since: datetime, *, tail: int | None = None
    ) -> tuple[list[LogLine], bool]:
        """Return the execution's lines in order, and whether they were cut short.

        With ``tail``, the last ``tail`` lines of each stream (one call per stream).
        """
        since = since - SKEW
        if tail is not None:
            lines: list[LogLine] = []
            for stream in STREAMS:
                if tail <= 0:
                    break
                found, _ = self._pages(
                    self._filter(ref, since, [stream]),
                    order="timestamp desc",
                    page_size=min(tail, PAGE_SIZE),
                    max_pages=1,
                )
                lines += reversed(self._lines(found[:tail]))
            return lines, False
        found, more = self._pages(
            self._filter(ref, since, STREAMS),
            order="timestamp asc",
            page_size=PAGE_SIZE,
            max_pages=MAX_PAGES,
        )
        return self._lines(found), more

    def fetch(
        self, ref: ExecutionRef, since: datetime, cursor: Cursor | None
    ) -> tuple[list[LogLine], Cursor | None]:
        """Return the lines after ``cursor`` (all of them for None) and the next cursor.

        The filter starts at the cursor's timestamp (inclusive), so entries sharing
        it are read again and dropped by ``insertId``: none is lost, none repeated.
        """
        start = _instant(cursor.timestamp) if cursor is not None else since - SKEW
        # A backlog beyond MAX_PAGES is read by the next fetch, from the new cursor.
        entries, _ = self._pages(
            self._filter(ref, start, STREAMS),
            order="timestamp asc",
            page_size=PAGE_SIZE,
            max_pages=MAX_PAGES,
        )
        if cursor is not None:
            entries = [
                e
                for e in entries
                if _instant(e["timestamp"]) > start or str(e.get("insertId")) not in cursor.seen
            ]
        if not entries:
            return [], cursor
        newest = max(_instant(e["timestamp"]) for e in entries)
        seen = {str(e.get("insertId")) for e in entries if _instant(e["timestamp"]) == newest}
        if cursor is not None and newest == start:
            seen |= cursor.seen
        return self._lines(entries), Cursor(_stamp(newest), frozenset(seen))
