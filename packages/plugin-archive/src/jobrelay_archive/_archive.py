"""The archive: a bounded queue in front of one writer thread."""

from __future__ import annotations

import atexit
import concurrent.futures.thread  # noqa: F401 - its exit hook must be registered before ours
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import attrs

from jobrelay import ConfigError, RetryPolicy, TransientExecutorError
from jobrelay_archive._record import render
from jobrelay_archive._storage import Storage, is_transient, segment

if TYPE_CHECKING:
    from jobrelay import Execution, JobResult, JobSpec

__all__ = ["DEFAULT_RETRY", "Archive", "ArchiveStats"]

logger = logging.getLogger("jobrelay.archive")

DEFAULT_RETRY = RetryPolicy(attempts=10, timeout=120.0, initial=0.5, maximum=15.0)
"""Per object: up to 10 tries within two minutes, waits doubling from 0.5 s to 15 s."""

_ONCE = RetryPolicy(attempts=1)
_WHEN_FULL = ("block", "drop")
_WARN_EVERY = 1.0  # seconds between two "queue full" warnings

_Item = tuple["Execution", "JobResult", "JobSpec | None"]


_open: weakref.WeakSet[Archive] = weakref.WeakSet()
_exit_lock = threading.Lock()
_exit_hooked = False


def _flush_open_archives() -> None:
    for archive in list(_open):
        archive.drain(archive.exit_timeout)


def _watch_exit(archive: Archive) -> None:
    """Flush ``archive`` at interpreter exit, early enough for its filesystem to work.

    ``atexit`` is too late for async filesystems (s3fs, gcsfs): by then
    ``concurrent.futures`` has shut its pools, and aiohttp cannot resolve a host
    name any more. Functions registered with ``threading._register_atexit`` run
    before that (last registered first), which is what ``concurrent.futures`` itself
    uses. ``atexit`` then closes the archive, for what came in after.
    """
    global _exit_hooked  # noqa: PLW0603 - one hook for every archive
    _open.add(archive)
    with _exit_lock:
        register = getattr(threading, "_register_atexit", None)
        if not _exit_hooked and register is not None:
            with contextlib.suppress(RuntimeError):  # already shutting down: atexit only
                register(_flush_open_archives)
                _exit_hooked = True


@attrs.frozen
class ArchiveStats:
    """Counters of an :class:`Archive` (a snapshot).

    Attributes:
        accepted: jobs taken into the queue.
        written: jobs whose three objects were all written.
        dropped: jobs refused: queue full under ``when_full="drop"`` (or a
            ``block_timeout`` that ran out), or archive closed.
        failed: accepted jobs given up on: a permanent storage error, or transient
            ones past the retry policy.
        transient_errors: failed write attempts that were (or would have been) retried.
        pending: accepted jobs not yet written or failed.
    """

    accepted: int = 0
    written: int = 0
    dropped: int = 0
    failed: int = 0
    transient_errors: int = 0
    pending: int = 0


class Archive:
    """Writes finished jobs under an fsspec URL from a background thread.

    :meth:`submit` only appends to a bounded queue; one writer thread renders and
    writes ``<url>/<executor>/<job_id>/stdout.log``, ``stderr.log`` and, last,
    ``result.json``. Each object is written whole (one PUT on object stores, a
    temporary file renamed into place elsewhere), and each write is retried on
    transient errors per ``retry``. At interpreter exit the queue is drained
    (for up to ``exit_timeout`` seconds).

    Example::

        archive = Archive("s3://ci-logs/jobs", when_full="block")
        archive.submit(execution, result, job)
        archive.close()  # waits until everything accepted is written

    Args:
        url: fsspec URL or local path of the archive root.
        storage_options: filesystem options (credentials, endpoint, timeouts).
        queue_size: most jobs waiting to be written.
        when_full: ``"drop"``: refuse the job, warn and count it in
            ``stats().dropped`` (the Runner never waits); ``"block"``: wait for room,
            up to ``block_timeout`` seconds (None: as long as it takes).
        block_timeout: with ``"block"``, seconds to wait before dropping.
        retry: retry policy for each object written.
        exit_timeout: seconds the interpreter-exit flush may take (None: no limit).
        shutdown_timeout: seconds a Runner's shutdown waits for the archive to write
            what it accepted (None: no limit); the rest goes on in the background.

    Raises:
        ConfigError: a bad argument, named, before any storage call.
    """

    def __init__(
        self,
        url: str,
        *,
        storage_options: Mapping[str, Any] | None = None,
        queue_size: int = 1000,
        when_full: Literal["block", "drop"] = "drop",
        block_timeout: float | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        exit_timeout: float | None = 120.0,
        shutdown_timeout: float | None = 30.0,
    ) -> None:
        if type(queue_size) is not int or queue_size < 1:
            raise ConfigError(f"queue_size: must be an int of 1 or more, got {queue_size!r}")
        if when_full not in _WHEN_FULL:
            raise ConfigError(f"when_full: must be 'block' or 'drop', got {when_full!r}")
        for field, value in (
            ("block_timeout", block_timeout),
            ("exit_timeout", exit_timeout),
            ("shutdown_timeout", shutdown_timeout),
        ):
            if value is not None and not value >= 0:
                raise ConfigError(f"{field}: must be None or 0 or more seconds, got {value!r}")
        if not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry: must be a jobrelay.RetryPolicy, got {retry!r}")
        self.storage = Storage(url, storage_options)
        self.queue_size = queue_size
        self.when_full = when_full
        self.block_timeout = block_timeout
        self.retry = retry
        self.exit_timeout = exit_timeout
        self.shutdown_timeout = shutdown_timeout
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._in_flight = 0
        self._closing = False
        self._draining = False  # exiting or closing: no retry budget on a dead store
        self._reachable = True
        self._counts = dict.fromkeys(("accepted", "written", "dropped", "failed", "transient"), 0)
        self._last_warning = float("-inf")
        self._unwarned_drops = 0
        self._thread = threading.Thread(target=self._run, name="jobrelay-archive", daemon=True)
        self._thread.start()
        _watch_exit(self)
        atexit.register(self._at_exit)

    @property
    def url(self) -> str:
        """The archive root URL."""
        return self.storage.url

    def stats(self) -> ArchiveStats:
        """A snapshot of the counters."""
        with self._cond:
            c = self._counts
            return ArchiveStats(
                accepted=c["accepted"],
                written=c["written"],
                dropped=c["dropped"],
                failed=c["failed"],
                transient_errors=c["transient"],
                pending=len(self._queue) + self._in_flight,
            )

    # -- producer side (the Runner's threads) ------------------------------------------

    def submit(self, execution: Execution, result: JobResult, job: JobSpec | None = None) -> bool:
        """Queue one finished job; return False when it was dropped.

        ``job`` (default ``result.job``) gives the secrets to scrub from everything
        written. Never raises and, under ``when_full="drop"``, never waits.
        """
        item: _Item = (execution, result, job if job is not None else result.job)
        with self._cond:
            full = not self._closing and len(self._queue) >= self.queue_size
            if full and self.when_full == "block":
                self._cond.wait_for(
                    lambda: self._closing or len(self._queue) < self.queue_size,
                    self.block_timeout,
                )
            if self._closing or len(self._queue) >= self.queue_size:
                self._drop(execution, "archive closed" if self._closing else "queue full")
                return False
            self._queue.append(item)
            self._counts["accepted"] += 1
            self._cond.notify_all()
        return True

    def _drop(self, execution: Execution, why: str) -> None:
        # Called with the lock held. Warn at most once a second, with the tally since.
        self._counts["dropped"] += 1
        self._unwarned_drops += 1
        now = time.monotonic()
        if now - self._last_warning >= _WARN_EVERY:
            logger.warning(
                "archive %s: %s, job %s on %s not archived (%d dropped since last warning, "
                "%d in all)",
                self.url,
                why,
                execution.job_id,
                execution.executor,
                self._unwarned_drops,
                self._counts["dropped"],
            )
            self._last_warning = now
            self._unwarned_drops = 0

    # -- flushing and closing ----------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every accepted job is written (or failed); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._queue and not self._in_flight, timeout)

    def drain(self, timeout: float | None = None) -> bool:
        """Like :meth:`flush`, but for the last moments of a process.

        Once a write has used up its retry budget on a storage that is down, each
        remaining object gets a single try, so a dead store cannot hold the exit for
        a whole budget per queued job. Jobs are still accepted meanwhile.
        """
        with self._cond:
            self._draining = True
        return self.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Refuse new jobs, write every accepted one, stop the writer thread.

        Returns False when ``timeout`` ran out first (what is left is logged).
        Idempotent.
        """
        with self._cond:
            self._closing = self._draining = True
            self._cond.notify_all()
        atexit.unregister(self._at_exit)
        _open.discard(self)
        done = self.flush(timeout)
        if done:
            self._thread.join(timeout)
        else:
            with self._cond:
                left = [execution.job_id for execution, _, _ in self._queue]
                count = len(left) + self._in_flight
            logger.error(
                "archive %s: closed with %d jobs not written: %s",
                self.url,
                count,
                ", ".join(left[:20]) + (" ..." if len(left) > 20 else ""),
            )
        return done

    def _at_exit(self) -> None:
        self.close(self.exit_timeout)

    def __enter__(self) -> Archive:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Archive({self.url!r}, when_full={self.when_full!r})"

    # -- the writer thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._queue or self._closing)
                if not self._queue:
                    return
                item = self._queue.popleft()
                self._in_flight += 1
                self._cond.notify_all()
            ok = self._write(*item)
            with self._cond:
                self._in_flight -= 1
                self._counts["written" if ok else "failed"] += 1
                self._cond.notify_all()

    def _write(self, execution: Execution, result: JobResult, job: JobSpec | None) -> bool:
        where = (segment(execution.executor), segment(execution.job_id))
        try:
            for name, data in render(execution, result, job):
                self._put(self.storage.path(*where, name), data)
        except Exception as exc:  # noqa: BLE001 - counted and logged; the thread goes on
            # The message names the path and the storage error, never the job's data.
            logger.error(  # noqa: TRY400 - the error text is the story; no traceback noise
                "archive %s: job %s on %s not archived: %s: %s",
                self.url,
                execution.job_id,
                execution.executor,
                type(exc).__name__,
                exc,
            )
            return False
        return True

    def _put(self, path: str, data: bytes) -> None:
        def attempt() -> None:
            try:
                self.storage.write(path, data)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                with self._cond:
                    self._counts["transient"] += 1
                raise TransientExecutorError(
                    f"writing {path}: {type(exc).__name__}: {exc}"
                ) from exc

        # Draining (exit, close) while the storage is down: one try per object, so that
        # exit is not held for a whole retry budget per queued job.
        policy = _ONCE if self._draining and not self._reachable else self.retry
        try:
            policy.call(attempt)
        except TransientExecutorError:
            self._reachable = False
            raise
        self._reachable = True
