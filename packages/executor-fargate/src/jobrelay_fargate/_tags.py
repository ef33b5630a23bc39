"""Tags on tasks, and the per-job identifiers that make a launch idempotent.

AWS tag rules: at most 50 tags; keys 1-128 characters, values 0-256; letters,
digits, spaces and ``_ . : / = + - @`` only; ``aws:`` is reserved as a prefix of keys
and values. jobrelay's own tags always win over a job label with the same key.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Mapping

from jobrelay import JobSpec

__all__ = [
    "MANAGED_KEY",
    "STARTED_BY_PREFIX",
    "client_token",
    "managed_job_id",
    "started_by",
    "tags_to_dict",
    "task_tags",
]

logger = logging.getLogger("jobrelay.fargate")

MANAGED_KEY = "jobrelay.managed"
JOB_ID_KEY = "jobrelay.job-id"
JOB_NAME_KEY = "jobrelay.job-name"
EXECUTOR_KEY = "jobrelay.executor"
STARTED_BY_PREFIX = "jobrelay-"

MAX_TAGS = 50
# One slot stays free for the task definition tag that RunTask's propagateTags copies.
_RESERVED_SLOTS = 1
_KEY_MAX = 128
_VALUE_MAX = 256
_PUNCTUATION = frozenset("_.:/=+-@")
_RESERVED_PREFIX = re.compile(r"^aws:", re.IGNORECASE)


def _allowed(ch: str) -> bool:
    # AWS's pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]
    return unicodedata.category(ch)[0] in "LZN" or ch in _PUNCTUATION


def _clean(text: str, limit: int) -> str:
    cleaned = "".join(ch if _allowed(ch) else "_" for ch in text)
    if _RESERVED_PREFIX.match(cleaned):
        cleaned = "x-" + cleaned
    return cleaned[:limit]


def sanitise_key(key: str) -> str:
    """Return ``key`` made into a valid AWS tag key."""
    return _clean(key, _KEY_MAX) or "_"


def sanitise_value(value: str) -> str:
    """Return ``value`` made into a valid AWS tag value."""
    return _clean(value, _VALUE_MAX)


def task_tags(job: JobSpec, executor: str) -> list[dict[str, str]]:
    """Return the RunTask ``tags``: jobrelay's labels, then the job's, sanitised.

    Job labels that do not fit in the 50-tag limit are dropped with a warning,
    in sorted key order so the same job always gets the same tags.
    """
    ours = {
        MANAGED_KEY: "true",
        JOB_ID_KEY: job.job_id,
        JOB_NAME_KEY: sanitise_value(job.name),
        EXECUTOR_KEY: sanitise_value(executor),
    }
    room = MAX_TAGS - _RESERVED_SLOTS - len(ours)
    theirs: dict[str, str] = {}
    dropped: list[str] = []
    for key in sorted(job.labels):
        clean_key = sanitise_key(key)
        if clean_key in ours or clean_key in theirs:
            dropped.append(key)
            continue
        if len(theirs) >= room:
            dropped.append(key)
            continue
        theirs[clean_key] = sanitise_value(job.labels[key])
    if dropped:
        logger.warning(
            "job %s: %d label(s) not put on the task (clash after sanitising, or over "
            "AWS's %d-tag limit): %s",
            job.job_id,
            len(dropped),
            MAX_TAGS,
            ", ".join(dropped),
        )
    return [{"key": k, "value": v} for k, v in {**ours, **theirs}.items()]


def tags_to_dict(tags: object) -> dict[str, str]:
    """Return an ECS ``tags`` list as a mapping (tolerates a missing or odd value)."""
    out: dict[str, str] = {}
    if isinstance(tags, list):
        for tag in tags:
            if isinstance(tag, Mapping) and "key" in tag:
                out[str(tag["key"])] = str(tag.get("value", ""))
    return out


def managed_job_id(task: Mapping[str, object], executor: str) -> str | None:
    """Return the job id of a DescribeTasks task jobrelay started as ``executor``.

    None unless its ``startedBy`` is ours and it is tagged ``jobrelay.managed=true``
    and ``jobrelay.executor=<executor>``: reconcile never adopts anything else.
    """
    if not str(task.get("startedBy", "")).startswith(STARTED_BY_PREFIX):
        return None
    tags = tags_to_dict(task.get("tags"))
    if tags.get(MANAGED_KEY) != "true" or tags.get(EXECUTOR_KEY) != executor:
        return None
    return tags.get(JOB_ID_KEY) or None


def _digest(kind: str, job_id: str) -> str:
    return hashlib.sha256(f"{kind}\0{job_id}".encode()).hexdigest()


def started_by(job_id: str) -> str:
    """Return the task's ``startedBy``: fixed for a job id, within ECS's charset.

    Job ids may hold ``.``, which ``startedBy`` does not allow, so a digest is used.
    """
    return STARTED_BY_PREFIX + _digest("startedBy", job_id)[:40]


def client_token(job_id: str) -> str:
    """Return RunTask's ``clientToken``: the same job id always gives the same token."""
    return STARTED_BY_PREFIX + _digest("clientToken", job_id)[:48]
