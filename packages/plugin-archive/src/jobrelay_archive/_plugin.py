"""The hook implementation, and the process-wide archive the entry point writes to."""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING, Any

from jobrelay import ConfigError, hookimpl
from jobrelay_archive._archive import Archive

if TYPE_CHECKING:
    from jobrelay import Execution, JobResult

__all__ = [
    "ENV_QUEUE_SIZE",
    "ENV_URL",
    "ENV_WHEN_FULL",
    "ArchivePlugin",
    "close",
    "configure",
    "current",
    "flush",
    "plugin",
]

logger = logging.getLogger("jobrelay.archive")

ENV_URL = "JOBRELAY_ARCHIVE_URL"
"""Environment variable: the archive URL used when :func:`configure` was not called."""
ENV_WHEN_FULL = "JOBRELAY_ARCHIVE_WHEN_FULL"
"""Environment variable: ``block`` or ``drop`` (default ``drop``)."""
ENV_QUEUE_SIZE = "JOBRELAY_ARCHIVE_QUEUE_SIZE"
"""Environment variable: most jobs waiting to be written (default 1000)."""

_lock = threading.Lock()
_archive: Archive | None = None
_env_tried = False


def configure(url: str | None = None, **options: Any) -> Archive:
    """Set the archive that the installed plugin writes every finished job to.

    Replaces (and closes, after writing what it holds) the archive configured
    before. ``options`` are :class:`Archive`'s keyword arguments (``storage_options``,
    ``queue_size``, ``when_full``, ``block_timeout``, ``retry``, ``exit_timeout``).

    Args:
        url: fsspec URL or local path; None reads ``JOBRELAY_ARCHIVE_URL``.
        **options: :class:`Archive` keyword arguments.

    Raises:
        ConfigError: no URL, or a bad option, before any storage call.
    """
    global _archive, _env_tried
    if url is None:
        url = os.environ.get(ENV_URL, "")
        if not url:
            raise ConfigError(f"url: not given and {ENV_URL} is not set")
    archive = Archive(url, **options)
    with _lock:
        previous, _archive, _env_tried = _archive, archive, True
    if previous is not None:
        previous.close()
    return archive


def current() -> Archive | None:
    """The process-wide archive: the configured one, else one from the environment.

    None when neither :func:`configure` was called nor ``JOBRELAY_ARCHIVE_URL`` is set
    (the plugin then does nothing). A bad environment is logged once.
    """
    global _archive, _env_tried  # noqa: PLW0603 - the one process-wide archive
    with _lock:
        if _archive is not None or _env_tried:
            return _archive
        _env_tried = True
        url = os.environ.get(ENV_URL, "")
        if not url:
            return None
        try:
            _archive = Archive(url, **_env_options())
        except ConfigError as exc:
            logger.error("jobrelay-archive disabled: %s (from %s)", exc, ENV_URL)  # noqa: TRY400
        return _archive


def _env_options() -> dict[str, Any]:
    options: dict[str, Any] = {}
    when_full = os.environ.get(ENV_WHEN_FULL, "")
    if when_full:
        options["when_full"] = when_full
    size = os.environ.get(ENV_QUEUE_SIZE, "")
    if size:
        try:
            options["queue_size"] = int(size)
        except ValueError:
            raise ConfigError(f"{ENV_QUEUE_SIZE}: must be an integer, got {size!r}") from None
    return options


def flush(timeout: float | None = None) -> bool:
    """Wait until the process-wide archive wrote everything it accepted."""
    archive = _archive
    return archive.flush(timeout) if archive is not None else True


def close(timeout: float | None = None) -> bool:
    """Write what the process-wide archive holds and close it.

    A later finished job opens a new one from ``JOBRELAY_ARCHIVE_URL`` if it is set.
    """
    global _archive, _env_tried
    with _lock:
        archive, _archive, _env_tried = _archive, None, False
    return archive.close(timeout) if archive is not None else True


class ArchivePlugin:
    """Hook implementations that hand each finished job to an :class:`Archive`.

    The installed entry point is ``plugin``, an instance writing to the process-wide
    archive (:func:`configure` or ``JOBRELAY_ARCHIVE_URL``). For one Router only,
    register your own: ``router.hooks.register(ArchivePlugin(Archive(url)))``.

    Args:
        archive: the archive to write to; None for the process-wide one.
    """

    def __init__(self, archive: Archive | None = None) -> None:
        self.archive = archive

    @hookimpl
    def job_finished(self, execution: Execution, result: JobResult) -> None:
        """Queue the job for writing (never waits under ``when_full="drop"``).

        The secrets scrubbed are those of ``result.job`` (which the Runner fills).
        """
        archive = self.archive if self.archive is not None else current()
        if archive is not None:
            archive.submit(execution, result)

    @hookimpl
    def runner_shutdown(self) -> None:
        """Write what was accepted before the Runner's shutdown returns.

        Waits at most the archive's ``shutdown_timeout``: a store that is down cannot
        hold a Runner's shutdown; what is left is written in the background and at
        interpreter exit.
        """
        archive = self.archive if self.archive is not None else _archive
        if archive is not None:
            archive.flush(archive.shutdown_timeout)


plugin = ArchivePlugin()
"""The ``jobrelay.plugins`` entry point ``archive``."""
