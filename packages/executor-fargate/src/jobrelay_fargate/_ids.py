"""Task ARNs and batching: what the executor needs to read ECS identifiers."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from jobrelay_fargate._errors import error_code

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

__all__ = [
    "DESCRIBE_BATCH",
    "chunks",
    "is_already_exists",
    "is_task_not_found",
    "task_id_of",
]

DESCRIBE_BATCH = 100  # DescribeTasks takes at most 100 tasks per call
_TASK_ARN = re.compile(
    r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:\d{12}:task/(?:[A-Za-z0-9_-]+/)?([A-Za-z0-9-]+)"
)


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    """Yield ``items`` in slices of at most ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def task_id_of(execution_id: str) -> str | None:
    """Return the task id of an ECS task ARN, None for anything else."""
    match = _TASK_ARN.fullmatch(execution_id)
    return match.group(1) if match else None


def is_task_not_found(error: ClientError) -> bool:
    """Return whether StopTask was refused because the task does not exist."""
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) == "InvalidParameterException" and "not found" in message


def is_already_exists(error: ClientError) -> bool:
    """Return whether a create call found the resource already there."""
    return error_code(error) == "ResourceAlreadyExistsException"
