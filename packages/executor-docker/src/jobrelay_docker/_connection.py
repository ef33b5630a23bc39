"""The connection to one Docker daemon, and the plumbing every operation shares.

Errors from docker-py and requests never leave this layer untranslated: they become
jobrelay's through Docker's :class:`~jobrelay.backend.ErrorTable` (see
:mod:`jobrelay_docker._errors`), with every form of the job's secret values masked.

The connection also remembers when the daemon did not answer it, so that logs read
later can say they may be incomplete (see :meth:`DockerConnection.may_have_missed`).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import docker
import docker.constants
import docker.errors

from jobrelay import Execution, Health, JobSpec
from jobrelay.backend import ExecutorBase, utc_from_epoch
from jobrelay.errors import ExecutorError
from jobrelay.labels import JOB_ID, OWNER, is_managed
from jobrelay_docker._config import Settings
from jobrelay_docker._errors import (
    DOCKER_ERRORS,
    api_status,
    error_table,
    is_not_found,
    no_answer,
)
from jobrelay_docker._state import LABEL_SECRET_ENV, MANAGED_FILTER, parse_time
from jobrelay_docker._transport import use_safe_unix_transport

__all__ = ["DockerConnection", "secret_values"]

# Outages remembered for truncation marks: enough for any job's lifetime in practice.
_OUTAGES_KEPT = 1000
_HEALTH_TIMEOUT = 5.0
_DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# The ping's Server header: "Docker/20.10.24+dfsg1 (linux)".
_ENGINE = re.compile(r"Docker/(\S+)")


def secret_values(data: Mapping[str, Any]) -> list[str]:
    """Return the secret values in a container's inspect data (named by our label)."""
    config = data.get("Config") or {}
    names = set(filter(None, ((config.get("Labels") or {}).get(LABEL_SECRET_ENV) or "").split(",")))
    values: list[str] = []
    for item in config.get("Env") or ():
        key, _, value = str(item).partition("=")
        if key in names and value:
            values.append(value)
    return values


class DockerConnection(ExecutorBase):
    """A lazily opened API client for one daemon, plus shared helpers (internal).

    Nothing touches the network before the first operation, so building an executor
    from a Router config never fails because a host is down.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.name: str = settings.name
        self._api: docker.APIClient | None = None
        self._lock = threading.Lock()
        self._errors = error_table(self._where)
        # Wall-clock spans (start, end or None while open) in which the daemon did not
        # answer us: output written then may never have reached its log.
        self._outages: list[tuple[float, float | None]] = []
        self._outage_lock = threading.Lock()

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
        use_safe_unix_transport(api)
        if self._settings.docker_tls is not None:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's
            # CA for every call docker-py makes; the daemon's own CA must win.
            api.trust_env = False
        return api

    def _client(self, *, probe_timeout: float | None = None) -> docker.APIClient:
        """Return the API client, connecting (and learning the API version) on first use."""
        return self._connect(probe_timeout)[0]

    def _connect(self, probe_timeout: float | None) -> tuple[docker.APIClient, _Ping | None]:
        """Return the API client, and the ping that opened it when this call did.

        One ``/_ping`` both proves the daemon there and names its API version (the
        ``Api-Version`` header, as the docker CLI negotiates it); only a daemon whose
        ping lacks the header is asked ``/version``.
        """
        with self._lock:
            if self._api is not None:
                return self._api, None
            timeout = probe_timeout or self._settings.timeout
            with self._translated("connect"):
                self._check_socket()
                probe = self._new_client(docker.constants.MINIMUM_DOCKER_API_VERSION, timeout)
                try:
                    ping = _ping(probe, timeout)
                    api_version = ping.api_version
                    if not api_version:
                        response = probe.get(f"{probe.base_url}/version", timeout=timeout)
                        response.raise_for_status()
                        api_version = response.json().get("ApiVersion")
                finally:
                    probe.close()
            if not isinstance(api_version, str) or not api_version:
                raise ExecutorError(
                    f"connect: {self._where} does not look like a Docker daemon "
                    "(neither its /_ping nor its /version names an API version)",
                    executor=self.name,
                )
            self._api = self._new_client(api_version, self._settings.timeout)
            return self._api, ping

    def _check_socket(self) -> None:
        """Fail fast (and without leaking a socket in docker-py) when no daemon socket exists."""
        address = self._settings.address or _DEFAULT_SOCKET
        if not address.startswith("unix://"):
            return
        path = Path(address.removeprefix("unix://") or "/")
        if not path.exists():
            raise FileNotFoundError(f"no socket at {path}")

    @contextlib.contextmanager
    def _translated(
        self,
        action: str,
        *,
        job: JobSpec | None = None,
        launching: bool = False,
        secrets: Iterable[str] = (),
    ) -> Iterator[None]:
        """Translate what docker-py raises in the block; note when the daemon was away."""
        values = [*secrets, *(job.secrets.values() if job is not None else ())]
        with self._errors.mapped(
            action,
            executor=self.name,
            job_id=job.job_id if job is not None else None,
            launching=launching,
            secrets=values,
        ):
            try:
                yield
            except DOCKER_ERRORS as exc:
                if no_answer(exc):
                    self._outage_begins()
                raise
        self._outage_ends()

    def _outage_begins(self) -> None:
        with self._outage_lock:
            if not self._outages or self._outages[-1][1] is not None:
                self._outages.append((time.time(), None))
                del self._outages[:-_OUTAGES_KEPT]

    def _outage_ends(self) -> None:
        if self._outages and self._outages[-1][1] is None:
            with self._outage_lock:
                if self._outages and self._outages[-1][1] is None:
                    self._outages[-1] = (self._outages[-1][0], time.time())

    def may_have_missed(self, started_at: datetime | None, finished_at: datetime | None) -> bool:
        """True when the daemon may have missed output written between the two times.

        That is when it did not answer us while the container ran, or when it was
        (re)started after the container started: between the stop and the start no
        daemon read the container's output, and what the daemon (re)started without
        live restore killed said nothing more. The daemon's start is the creation time
        of its default ``bridge`` network, which it makes anew at every start.
        """
        if started_at is None:
            return False
        begin = started_at.timestamp()
        end = finished_at.timestamp() if finished_at is not None else time.time()
        with self._outage_lock:
            outages = list(self._outages)
        if any(down <= end and (up is None or up >= begin) for down, up in outages):
            return True
        daemon_started = self._daemon_started_at()
        return daemon_started is not None and daemon_started > started_at

    def _daemon_started_at(self) -> datetime | None:
        with self._translated("inspect network bridge"):
            try:
                network: Mapping[str, Any] = self._client().inspect_network("bridge")
            except docker.errors.NotFound:
                return None  # dockerd --bridge=none: no such marker
        return parse_time(network.get("Created"))

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
            job_id=str(labels.get(JOB_ID, "")),
            launched_at=utc_from_epoch(created if isinstance(created, (int, float)) else 0),
            metadata={
                "container_name": str(names[0]).lstrip("/"),
                "image": summary.get("Image"),
                "daemon": self._where,
                "owner": labels.get(OWNER),
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
        """Ping the daemon with a short timeout; report latency and the engine version.

        The first call's ping is the one that opens the connection; the engine version
        comes from the ping's ``Server`` header (``/version`` only when it has none).
        """
        timeout = min(self._settings.timeout, _HEALTH_TIMEOUT)
        started = time.perf_counter()
        try:
            api, ping = self._connect(timeout)
            with self._translated("ping"):
                if ping is None:
                    ping = _ping(api, timeout)
                engine = ping.engine
                if engine is None:
                    version = api.get(f"{api.base_url}/version", timeout=timeout)
                    version.raise_for_status()
                    engine = version.json().get("Version")
        except (ExecutorError, ValueError) as exc:
            return Health(healthy=False, latency=time.perf_counter() - started, detail=str(exc))
        return Health(
            healthy=True,
            latency=ping.latency,
            detail=f"{self._where} answered",
            version=str(engine) if engine else None,
        )

    def close(self) -> None:
        """Close the API client; the next call opens a new one."""
        with self._lock:
            api, self._api = self._api, None
        if api is not None:
            api.close()


@attrs.frozen
class _Ping:
    """What one ``/_ping`` told: its round trip, the API version, the engine version."""

    latency: float
    api_version: str | None
    engine: str | None


def _ping(api: docker.APIClient, timeout: float) -> _Ping:
    """GET ``/_ping``; raise for an error status, as docker-py does for its own calls."""
    started = time.perf_counter()
    response = api.get(f"{api.base_url}/_ping", timeout=timeout)
    latency = time.perf_counter() - started
    response.raise_for_status()
    server = _ENGINE.match(response.headers.get("Server", ""))
    return _Ping(
        latency=latency,
        api_version=response.headers.get("Api-Version") or None,
        engine=server.group(1) if server else None,
    )
