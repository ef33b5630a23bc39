"""Tags on tasks, and the per-job identifiers that make a launch idempotent.

The tags are :func:`jobrelay.labels.workload_labels` translated to AWS's tag rules: at
most 50 tags; keys 1-128 characters, values 0-256; letters, digits, spaces and
``_ . : / = + - @`` only; ``aws:`` is reserved as a prefix of keys and values.
jobrelay's keys already fit those rules, so they are kept as they are (the job id
too: its charset is a subset of AWS's), and they always win over a job label that
sanitises to the same key.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Mapping

from jobrelay import JobSpec
from jobrelay import labels as jl

__all__ = [
    "STARTED_BY_PREFIX",
    "client_token",
    "managed_job_id",
    "started_by",
    "tags_to_dict",
    "task_tags",
]

logger = logging.getLogger("jobrelay.fargate")

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


def aws_tags(labels: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """Translate jobrelay labels to AWS tags; return ``(tags, dropped label keys)``.

    The ``jobrelay.*`` keys come first and win; the other labels follow in sorted key
    order (so the same job always gets the same tags) until the 50-tag limit, keeping
    one slot for the tag the task definition propagates.
    """
    ours = {key: _clean(labels[key], _VALUE_MAX) for key in jl.KEYS if key in labels}
    room = MAX_TAGS - _RESERVED_SLOTS - len(ours)
    theirs: dict[str, str] = {}
    dropped: list[str] = []
    for key in sorted(set(labels) - set(jl.KEYS)):
        clean_key = _clean(key, _KEY_MAX) or "_"
        if clean_key in ours or clean_key in theirs or len(theirs) >= room:
            dropped.append(key)
            continue
        theirs[clean_key] = _clean(labels[key], _VALUE_MAX)
    return {**ours, **theirs}, dropped


def task_tags(job: JobSpec, executor: str) -> list[dict[str, str]]:
    """Return the RunTask ``tags`` of ``job``: its workload labels under AWS's rules.

    Job labels that do not fit (a clash after sanitising, or over the tag limit) are
    dropped with a warning.
    """
    tags, dropped = aws_tags(jl.workload_labels(job, executor))
    if dropped:
        logger.warning(
            "job %s: %d label(s) not put on the task (clash after sanitising, or over "
            "AWS's %d-tag limit): %s",
            job.job_id,
            len(dropped),
            MAX_TAGS,
            ", ".join(dropped),
        )
    return [{"key": k, "value": v} for k, v in tags.items()]


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
    if not jl.is_managed(tags) or tags.get(jl.EXECUTOR) != executor:
        return None
    return tags.get(jl.JOB_ID) or None


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
