"""What gets archived for one finished job: two log files and a JSON result, scrubbed."""

from __future__ import annotations

import enum
import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay import ROUTE_METADATA_KEY
from jobrelay.backend import Scrubber

if TYPE_CHECKING:
    from jobrelay import Execution, JobResult, JobSpec

__all__ = ["FORMAT", "RESULT", "STDERR", "STDOUT", "render"]

FORMAT = "jobrelay-archive/1"
STDOUT = "stdout.log"
STDERR = "stderr.log"
RESULT = "result.json"


def render(
    execution: Execution, result: JobResult, job: JobSpec | None, *, now: datetime | None = None
) -> list[tuple[str, bytes]]:
    """Return ``(file name, content)`` for one job, ``result.json`` last.

    Every string that goes out (log text, reasons, route hops, metadata, the command)
    passes through a :class:`~jobrelay.backend.Scrubber` built from the job's
    secrets, so no secret value is written in any of the forms it may be echoed in.
    ``env`` and ``secrets`` themselves are never written.
    """
    scrub = Scrubber(job.secrets.values() if job is not None else ())
    document = _document(execution, result, job, now or datetime.now(timezone.utc))
    text = json.dumps(_plain(document, scrub), indent=2, sort_keys=True, allow_nan=False)
    return [
        (STDOUT, scrub(result.logs.stdout).encode("utf-8", "replace")),
        (STDERR, scrub(result.logs.stderr).encode("utf-8", "replace")),
        (RESULT, (text + "\n").encode("utf-8")),
    ]


def _document(
    execution: Execution, result: JobResult, job: JobSpec | None, now: datetime
) -> dict[str, Any]:
    status = result.status
    metadata = dict(execution.metadata)
    route = metadata.pop(ROUTE_METADATA_KEY, None)
    return {
        "format": FORMAT,
        "job_id": execution.job_id,
        "executor": execution.executor,
        "execution_id": execution.execution_id,
        "state": status.state,
        "exit_code": status.exit_code,
        "reason": status.reason,
        "launched_at": execution.launched_at,
        "started_at": status.started_at,
        "finished_at": status.finished_at,
        "archived_at": now,
        "duration": result.duration,
        "attempts": result.attempts,
        "cost": _cost(result.cost),
        "route": route,
        "logs": {"stdout": STDOUT, "stderr": STDERR, "truncated": result.logs.truncated},
        "job": _job(job),
        "execution_metadata": metadata,
    }


def _cost(cost: object) -> object:
    if cost is None or not attrs.has(type(cost)):
        return cost
    return attrs.asdict(cost, recurse=False)  # type: ignore[arg-type]


def _job(job: JobSpec | None) -> dict[str, Any] | None:
    if job is None:
        return None
    # Not env (it may hold credentials nobody declared secret) and never secrets.
    return {
        "name": job.name,
        "image": job.image,
        "command": job.command,
        "entrypoint": job.entrypoint,
        "labels": job.labels,
        "resources": {
            "cpu": job.resources.cpu,
            "memory_mb": job.resources.memory,
            "gpu": job.resources.gpu,
        },
        "timeout": job.timeout,
        "max_retries": job.max_retries,
        "preferred_executor": job.preferred_executor,
    }


def _plain(value: object, scrub: Scrubber) -> Any:  # noqa: PLR0911 - one branch per JSON type
    """Turn ``value`` into JSON data, scrubbing every string (keys included)."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _plain(value.value, scrub)
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {scrub(str(key)): _plain(item, scrub) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(item, scrub) for item in value]
    return scrub(str(value))
