"""Cloud Run names and labels for a jobrelay job.

A job id becomes one Cloud Run Job, ``<job_prefix>-<id>``, and its single execution
``<job>-<token>`` (the ``startExecutionToken``, derived from the id): both names are
known before any call, which is what makes the launch idempotent. Google's rules:
job names are lowercase letters, digits and hyphens, start with a letter, and job
name + ``-`` + token stay under 63 characters; label keys are ``[a-z][a-z0-9_-]``,
values ``[a-z0-9_-]``, both at most 63 characters.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from jobrelay.labels import EXECUTOR, JOB_ID, JOB_NAME, MANAGED, OWNER

__all__ = [
    "ANNOTATED",
    "MAX_PREFIX",
    "execution_token",
    "google_label",
    "google_labels",
    "job_name",
    "label_key",
]

TOKEN_LENGTH = 8
# Execution names are "<job>-<token>" and must stay under 63 characters.
MAX_JOB_NAME = 62 - 1 - TOKEN_LENGTH
MAX_PREFIX = 20
_SAFE_ID = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_LABEL_TEXT = re.compile(r"[^a-z0-9_-]")
_HASH = 10
# The jobrelay labels whose exact value is also kept as an annotation (free text).
ANNOTATED = (JOB_ID, JOB_NAME, EXECUTOR, OWNER)


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def execution_token(job_id: str) -> str:
    """Return the ``startExecutionToken`` for ``job_id``: same id, same token."""
    return f"x{_digest(job_id, TOKEN_LENGTH - 1)}"


def job_name(prefix: str, job_id: str) -> str:
    """Return the Cloud Run job name (the last part of its resource name) for ``job_id``.

    ``<prefix>-<id>`` when the id is already lowercase letters, digits and single
    hyphens and fits; otherwise a readable part of the id and a hash of the exact id,
    so ids differing only in case or punctuation never share a job.
    """
    room = MAX_JOB_NAME - len(prefix) - 1
    if _SAFE_ID.fullmatch(job_id) and len(job_id) <= room:
        return f"{prefix}-{job_id}"
    readable = re.sub(r"[^a-z0-9]+", "-", job_id.lower()).strip("-")
    readable = readable[: max(0, room - _HASH - 1)].rstrip("-")
    digest = _digest(job_id, _HASH)
    return f"{prefix}-{readable}-{digest}" if readable else f"{prefix}-{digest}"


def label_key(key: str) -> str:
    """Return ``key`` under Google's label rules (``jobrelay.managed`` -> ``jobrelay-managed``)."""
    text = _LABEL_TEXT.sub("_", key.lower().replace(".", "-"))
    if not text or not text[0].isalpha():
        text = f"l{text}"
    return text[:63]


def google_label(key: str, value: str) -> tuple[str, str]:
    """Return one label under Google's rules.

    ``.`` becomes ``-``, anything else outside ``[a-z0-9_-]`` becomes ``_``, all
    lowercase, 63 characters at most; a key starts with a letter.
    """
    return label_key(key), _LABEL_TEXT.sub("_", value.lower().replace(".", "-"))[:63]


def google_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Return ``labels`` (``workload_labels`` output) translated for Cloud Run.

    jobrelay's own keys are applied last, so a job label that translates to one of
    them cannot overwrite it.
    """
    ours = {label_key(key) for key in (MANAGED, JOB_ID, JOB_NAME, EXECUTOR, OWNER)}
    out: dict[str, str] = {}
    for key, value in sorted(labels.items(), key=lambda item: label_key(item[0]) in ours):
        google_key, google_value = google_label(key, value)
        if google_key in ours and not key.startswith("jobrelay."):
            continue
        out[google_key] = google_value
    return dict(list(out.items())[:64])
