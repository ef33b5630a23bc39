"""Finding runs: newest first, back to a moment; and one lock per job id."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

from jobrelay.backend import paginate

__all__ = ["PAGE_SIZE", "KeyedLocks", "next_page", "runs_since"]

PAGE_SIZE = 100


def runs_since(
    api: Any,
    project_id: str,
    definition_id: str | None,
    since: datetime,
    *,
    call: Callable[..., Any],
) -> Iterator[Any]:
    """Yield runs (of one definition, or the project's), newest first, back to ``since``.

    ``call(action, method, **kwargs)`` makes each ListJobRuns call (100 runs a page);
    paging stops at the first run created before ``since`` or at the last page.
    """

    def fetch(page: int | None) -> tuple[list[Any], int | None]:
        number = page or 1
        kwargs: dict[str, Any] = {
            "project_id": project_id,
            "page": number,
            "page_size": PAGE_SIZE,
            "order_by": "created_at_desc",
        }
        if definition_id is not None:
            kwargs["job_definition_id"] = definition_id
        answer = call("ListJobRuns", api.list_job_runs, **kwargs)
        items = list(answer.job_runs or [])
        return items, next_page(number, len(items), answer)

    for run in paginate(fetch):
        created = run.created_at
        if created is not None and _utc(created) < since:
            return
        yield run


def next_page(page: int, count: int, answer: Any) -> int | None:
    """The page after ``page``, or None when ``answer`` (with ``count`` items) was the last."""
    if count < PAGE_SIZE or page * PAGE_SIZE >= int(answer.total_count or 0):
        return None
    return page + 1


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class KeyedLocks:
    """One lock per key (a job id), dropped again once nobody holds or waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        """Hold ``key``'s lock for the block."""
        with self._lock:
            lock, users = self._locks.get(key, (threading.Lock(), 0))
            self._locks[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._lock:
                lock, users = self._locks[key]
                if users <= 1:
                    del self._locks[key]
                else:
                    self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        with self._lock:
            return len(self._locks)
