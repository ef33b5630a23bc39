"""jobrelay-archive: each finished job's stdout, stderr and result, under any fsspec URL.

Installed, it is the ``jobrelay.plugins`` entry point ``archive``: every Runner's
``job_finished`` hook queues the job, and a writer thread puts
``<url>/<executor>/<job_id>/stdout.log``, ``stderr.log`` and ``result.json`` there.
It does nothing until a URL is given, by ``JOBRELAY_ARCHIVE_URL`` or:

Example::

    import jobrelay_archive

    jobrelay_archive.configure("s3://ci-logs/jobs", when_full="block")
    with Runner(router) as runner:
        runner.run(jobs)
    jobrelay_archive.flush()  # also done at interpreter exit
"""

from jobrelay_archive._archive import DEFAULT_RETRY, Archive, ArchiveStats
from jobrelay_archive._plugin import (
    ENV_QUEUE_SIZE,
    ENV_URL,
    ENV_WHEN_FULL,
    ArchivePlugin,
    close,
    configure,
    current,
    flush,
    plugin,
)
from jobrelay_archive._record import FORMAT

__all__ = [
    "DEFAULT_RETRY",
    "ENV_QUEUE_SIZE",
    "ENV_URL",
    "ENV_WHEN_FULL",
    "FORMAT",
    "Archive",
    "ArchivePlugin",
    "ArchiveStats",
    "close",
    "configure",
    "current",
    "flush",
    "plugin",
]
