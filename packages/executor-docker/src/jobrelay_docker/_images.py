"""Pulling an image with a deadline, and classifying what the registry said.

docker-py's ``pull`` sends its request without any timeout, so a stalled registry
would hang a launch for ever. Here the same request (same endpoint, same
``X-Registry-Auth`` header from the user's docker config) is read with a per-read
timeout and an overall deadline.
"""

from __future__ import annotations

import json
import time
from typing import Any

import docker.auth
import docker.errors
import docker.utils
import requests.exceptions

from jobrelay.errors import LaunchError, TransientExecutorError

__all__ = ["pull_image", "split_reference"]

# Registry answers that another attempt cannot change.
_PERMANENT_PULL_ERRORS = (
    "not found",
    "manifest unknown",
    "unauthorized",
    "denied",
    "invalid reference",
    "no matching manifest",
)


def split_reference(image: str) -> tuple[str, str]:
    """Return ``(repository, tag or digest)``; a bare name means ``latest``.

    An empty tag would make the daemon pull *every* tag of the repository.
    """
    repository, tag = docker.utils.parse_repository_tag(image)
    return repository, tag or "latest"


def pull_image(
    api: Any, image: str, *, deadline_seconds: float, executor: str, job_id: str, where: str
) -> None:
    """Pull ``image`` into the daemon, failing once ``deadline_seconds`` have passed.

    Raises:
        LaunchError: the registry refused for good (no such image or tag, denied).
        TransientExecutorError: the deadline passed, or the registry failed in a way
            that may pass.
        docker.errors.APIError: the daemon refused the request itself (the caller
            translates it).
    """
    repository, tag = split_reference(image)
    registry, _ = docker.auth.resolve_repository_name(repository)
    headers: dict[str, str] = {}
    auth_header = docker.auth.get_config_header(api, registry)
    if auth_header:
        headers["X-Registry-Auth"] = auth_header
    url = f"{api.base_url}/v{api.api_version}/images/create"
    started = time.monotonic()

    def overdue() -> TransientExecutorError:
        return TransientExecutorError(
            f"pull {image}: not finished after {deadline_seconds:g}s on {where}",
            executor=executor,
            job_id=job_id,
        )

    try:
        response = api.post(
            url,
            params={"fromImage": repository, "tag": tag},
            headers=headers,
            stream=True,
            timeout=(api.timeout, deadline_seconds),
        )
        try:
            try:
                response.raise_for_status()
            except requests.exceptions.HTTPError as exc:
                raise docker.errors.create_api_error_from_http_exception(exc) from exc
            for raw_line in response.iter_lines():
                if time.monotonic() - started > deadline_seconds:
                    raise overdue()
                if raw_line:
                    _check_progress(raw_line, image=image, executor=executor, job_id=job_id)
        finally:
            response.close()
    except requests.exceptions.RequestException as exc:
        # A read that outlived the deadline is the deadline, not a daemon failure.
        if time.monotonic() - started >= deadline_seconds:
            raise overdue() from exc
        raise


def _check_progress(raw_line: bytes, *, image: str, executor: str, job_id: str) -> None:
    try:
        message = json.loads(raw_line)
    except ValueError:
        return  # not a progress record: nothing to check
    error = message.get("error") if isinstance(message, dict) else None
    if error:
        _raise_pull_error(str(error), image=image, executor=executor, job_id=job_id)


def _raise_pull_error(error: str, *, image: str, executor: str, job_id: str) -> None:
    text = f"pull {image}: {error}"
    if any(marker in error.lower() for marker in _PERMANENT_PULL_ERRORS):
        raise LaunchError(text, executor=executor, job_id=job_id)
    raise TransientExecutorError(text, executor=executor, job_id=job_id)
