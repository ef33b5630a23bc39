"""The connection to one Docker daemon, and the plumbing every operation shares.

Errors from docker-py and requests never leave this layer untranslated: they become
jobrelay's (see :mod:`jobrelay_docker._errors`), with any secret value of the job
concerned masked.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

import docker
import docker.constants
import docker.errors
import requests.exceptions
import urllib3.exceptions

from jobrelay import Execution, Health, JobSpec
from jobrelay.errors import ExecutorError, TransientExecutorError
from jobrelay_docker._config import Settings
from jobrelay_docker._errors import api_status, is_not_found, translate
from jobrelay_docker._launch import scrub
from jobrelay_docker._state import LABEL_JOB_ID, MANAGED_FILTER, is_managed

__all__ = ["DockerConnection"]

_Self = TypeVar("_Self", bound="DockerConnection")

_DOCKER_ERRORS = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
    OSError,
)
_HEALTH_TIMEOUT = 5.0
_DEFAULT_SOCKET = "unix:///var/run/docker.sock"


class DockerConnection:
    """A lazily opened API client for one daemon, plus shared helpers (internal).

    Nothing touches the network before the first operation, so building an executor
    from a Router config never fails because a host is down.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.name: str = settings.name
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def _where(self) -> str:
        return self._settings.address or "the local Docker daemon"

    def _new_client(self, version: str, timeout: float) -> docker.APIClient:
        api = docker.APIClient(
            base_url=self._settings.address,
            version=version,
            timeout=timeout,
            tls=self._settings.docker_tls or False,
        )
        if self._settings.docker_tls is not None:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's
            # CA for every call docker-py makes; the daemon's own CA must win.
            api.trust_env = False
        return api

    def _client(self, *, probe_timeout: float | None = None) -> docker.APIClient:
        """Return the API client, connecting (and learning the API version) on first use."""
        with self._lock:
            if self._api is not None:
                return self._api
            timeout = probe_timeout or self._settings.timeout
            self._check_socket()
            with self._translated("connect"):
                probe = self._new_client(docker.constants.MINIMUM_DOCKER_API_VERSION, timeout)
                try:
                    response = probe.get(f"{probe.base_url}/version", timeout=timeout)
                    response.raise_for_status()
                    api_version = response.json().get("ApiVersion")
                finally:
                    probe.close()
            if not isinstance(api_version, str) or not api_version:
                raise ExecutorError(
                    f"connect: {self._where} does not look like a Docker daemon "
                    "(its /version has no ApiVersion)",
                    executor=self.name,
                )
            self._api = self._new_client(api_version, self._settings.timeout)
            return self._api

    def _check_socket(self) -> None:
        """Fail fast (and without leaking a socket in docker-py) when no daemon socket exists."""
        address = self._settings.address or _DEFAULT_SOCKET
        if not address.startswith("unix://"):
            return
        path = Path(address.removeprefix("unix://") or "/")
        if not path.exists():
            raise TransientExecutorError(
                f"connect: no answer from {self._where}: no socket at {path}", executor=self.name
            )

    def _error(
        self, exc: BaseException, action: str, *, job: JobSpec | None, launching: bool
    ) -> tuple[ExecutorError, bool]:
        """Translate ``exc``, and say whether a secret had to be masked in the message.

        When one was, the caller must not chain ``exc``: it still holds the secret.
        """
        error = translate(
            exc,
            action=action,
            where=self._where,
            executor=self.name,
            job_id=job.job_id if job is not None else None,
            launching=launching,
        )
        cleaned = scrub(str(error), job.secrets.values() if job is not None else ())
        if cleaned == str(error):
            return error, False
        return type(error)(cleaned, executor=error.executor, job_id=error.job_id), True

    @contextlib.contextmanager
    def _translated(
        self, action: str, *, job: JobSpec | None = None, launching: bool = False
    ) -> Iterator[None]:
        try:
            yield
        except _DOCKER_ERRORS as exc:
            error, leaked = self._error(exc, action, job=job, launching=launching)
            if leaked:
                raise error from None
            raise error from exc

    def _inspect(self, container_id: str) -> dict[str, Any] | None:
        """Inspect any container; None when the daemon does not know it."""
        with self._translated(f"inspect container {container_id}"):
            try:
                data: dict[str, Any] = self._client().inspect_container(container_id)
            except docker.errors.NotFound:
                return None
        return data

    def _inspect_managed(self, container_id: str) -> dict[str, Any] | None:
        """Inspect a container; None unless it exists and jobrelay manages it."""
        data = self._inspect(container_id)
        if data is None or not is_managed((data.get("Config") or {}).get("Labels")):
            return None
        return data

    def _refuse_unmanaged(self, data: Mapping[str, Any], action: str) -> None:
        if not is_managed((data.get("Config") or {}).get("Labels")):
            raise ExecutorError(
                f"refusing to {action} container {data.get('Id')}: it is not labelled "
                "jobrelay.managed=true",
                executor=self.name,
            )

    def _require(self, execution: Execution) -> dict[str, Any]:
        data = self._inspect_managed(execution.execution_id)
        if data is None:
            raise ExecutorError(
                f"no jobrelay container {execution.execution_id} on {self._where}",
                executor=self.name,
                job_id=execution.job_id,
            )
        return data

    def _list(self, *label_filters: str) -> list[dict[str, Any]]:
        with self._translated("list containers"):
            found: list[dict[str, Any]] = self._client().containers(
                all=True, filters={"label": [MANAGED_FILTER, *label_filters]}
            )
        return found

    def _execution_from_summary(self, summary: Mapping[str, Any]) -> Execution:
        labels = summary.get("Labels") or {}
        names = summary.get("Names") or ["/"]
        created = summary.get("Created")
        return Execution(
            executor=self.name,
            execution_id=str(summary["Id"]),
            job_id=str(labels.get(LABEL_JOB_ID, "")),
            launched_at=datetime.fromtimestamp(
                created if isinstance(created, (int, float)) else 0, timezone.utc
            ),
            metadata={
                "container_name": str(names[0]).lstrip("/"),
                "image": summary.get("Image"),
                "daemon": self._where,
            },
        )

    def _remove(self, container_id: str) -> None:
        """Force-remove a container; a missing one or a removal in progress is fine."""
        with self._translated(f"remove container {container_id}"):
            try:
                self._client().remove_container(container_id, force=True, v=True)
            except docker.errors.APIError as exc:
                if not (is_not_found(exc) or api_status(exc) == 409):
                    raise

    def health(self) -> Health:
        """Ping the daemon with a short timeout; report latency and the engine version."""
        timeout = min(self._settings.timeout, _HEALTH_TIMEOUT)
        started = time.perf_counter()
        try:
            api = self._client(probe_timeout=timeout)
            with self._translated("ping"):
                started = time.perf_counter()
                ping = api.get(f"{api.base_url}/_ping", timeout=timeout)
                ping.raise_for_status()
                latency = time.perf_counter() - started
                version = api.get(f"{api.base_url}/version", timeout=timeout)
                version.raise_for_status()
                engine = version.json().get("Version")
        except (ExecutorError, ValueError) as exc:
            return Health(healthy=False, latency=time.perf_counter() - started, detail=str(exc))
        return Health(
            healthy=True,
            latency=latency,
            detail=f"{self._where} answered",
            version=str(engine) if engine else None,
        )

    def close(self) -> None:
        """Close the API client; the next call opens a new one."""
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()
