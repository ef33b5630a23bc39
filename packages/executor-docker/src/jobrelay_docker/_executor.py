"""The Docker executor: jobs as containers on a local or remote Docker daemon."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import docker
import docker.errors
import requests.exceptions

from jobrelay import (
    Capabilities,
    Execution,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    LogLine,
    Logs,
)
from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError
from jobrelay_docker._config import PullPolicy, TLSConfig, build_settings
from jobrelay_docker._errors import api_status, is_not_found
from jobrelay_docker._images import pull_image
from jobrelay_docker._launch import container_spec
from jobrelay_docker._logs import follow_logs, read_logs
from jobrelay_docker._managed import ManagedContainers
from jobrelay_docker._state import (
    LABEL_JOB_ID,
    cancelled_name,
    container_name,
    is_cancelled,
    is_managed,
    status_from_inspect,
    status_from_summary,
)

__all__ = ["DockerExecutor"]

logger = logging.getLogger("jobrelay.docker")

_FINISHED = frozenset({"exited", "dead", "removing"})
_MIB = 1024 * 1024


def _lost(reason: str = "no such container") -> JobStatus:
    return JobStatus(JobState.LOST, reason=reason)


class DockerExecutor(ManagedContainers):
    """Run jobs as containers on a Docker daemon, through the official ``docker`` SDK.

    Example::

        from jobrelay import JobSpec
        from jobrelay_docker import DockerExecutor

        with DockerExecutor(pull_policy="if-not-present", stop_grace=5) as docker:
            execution = docker.launch(JobSpec("busybox:1.36", "echo hello"))
            result = docker.harvest(execution)
            print(result.state, result.logs.stdout)

    A job's container is named ``jobrelay-<job_id>``: the daemon refuses a second
    container of that name, which makes ``launch`` idempotent across threads and
    processes. It carries the ``jobrelay.*`` labels, and only containers labelled
    ``jobrelay.managed=true`` are ever listed, cancelled or removed.

    Cancellation is recorded in the daemon, not in this process: ``cancel`` first
    renames the container to ``jobrelay-cancelled-<container id>``, then stops it
    (``stop_grace`` seconds after the stop signal, the daemon kills it). Any process
    reading the container, including the single list call behind ``statuses()``,
    sees the name and reports ``CANCELLED``, while a job that killed itself with the
    same exit code (137) stays ``FAILED``. The rename is atomic, survives daemon
    restarts, and cannot happen to a container we did not cancel.

    Args:
        base_url: daemon address (``unix://...``, ``tcp://host:2376``, ``ssh://...``);
            None means the environment (``DOCKER_HOST`` etc.) or the local socket.
        tls: :class:`TLSConfig`, or a mapping of its keys (``ca_cert``,
            ``client_cert``, ``client_key``, ``verify``), or ``True`` for system CAs.
        timeout: seconds any single API call may take.
        pull_policy: ``"always"``, ``"if-not-present"`` or ``"never"``.
        network: network the containers join (``"none"`` cuts them off).
        labels: extra labels put on every container (``jobrelay.`` is reserved).
        remove_on_harvest: remove the container once harvested.
        keep_failed: keep containers of failed jobs even when ``remove_on_harvest``.
        stop_grace: whole seconds between the stop signal and the kill on cancel.
        name: the executor's name (the ``jobrelay.executor`` label).
        pull_timeout: seconds an image pull may take in all.

    Raises:
        ConfigError: a setting is invalid (the message names it).
    """

    def __init__(
        self,
        base_url: str | None = None,
        tls: TLSConfig | Mapping[str, Any] | bool | None = None,
        timeout: float = 30,
        pull_policy: PullPolicy = "if-not-present",
        network: str | None = None,
        labels: Mapping[str, str] | None = None,
        remove_on_harvest: bool = True,
        keep_failed: bool = False,
        stop_grace: int = 10,
        name: str = "docker",
        *,
        pull_timeout: float = 600,
    ) -> None:
        settings = build_settings(
            base_url=base_url,
            tls=tls,
            timeout=timeout,
            pull_policy=pull_policy,
            pull_timeout=pull_timeout,
            network=network,
            labels=labels,
            remove_on_harvest=remove_on_harvest,
            keep_failed=keep_failed,
            stop_grace=stop_grace,
            name=name,
        )
        super().__init__(settings)
        self._capabilities: Capabilities | None = None

    def __repr__(self) -> str:
        return f"DockerExecutor(name={self.name!r}, base_url={self._settings.base_url!r})"

    # -- launch ---------------------------------------------------------------------

    def launch(self, job: JobSpec) -> Execution:
        """Create and start the job's container; return the existing one for a known job_id.

        Raises:
            LaunchError: the job cannot run here (image missing with ``never``, the
                daemon refused the container, the command does not start).
            TransientExecutorError: the daemon or registry did not answer; retry.
        """
        if not isinstance(job, JobSpec):
            raise LaunchError(f"launch expects a JobSpec, got {type(job).__name__}")
        try:
            return self._launch(job)
        except (LaunchError, TransientExecutorError) as exc:
            if exc.job_id is None:
                exc.job_id = job.job_id
            raise
        except ExecutorError as exc:
            raise LaunchError(str(exc), executor=self.name, job_id=job.job_id) from exc

    def _launch(self, job: JobSpec) -> Execution:
        api = self._client()
        self._ensure_image(api, job)
        name = container_name(job.job_id)
        spec = container_spec(api, job, self._settings)
        deadline = time.monotonic() + self._settings.timeout
        pause = 0.02
        while True:
            try:
                with self._translated(f"create container {name}", job=job, launching=True):
                    try:
                        container_id = str(api.create_container(name=name, **spec)["Id"])
                    except docker.errors.APIError as exc:
                        if api_status(exc) != 409:
                            raise
                        existing = self._existing(job.job_id)
                        if existing is not None:
                            return existing
                        self._check_name_holder(name, job, deadline)
                        # Another launcher's container is still being created (its
                        # name is taken before it is listed), or the name was just freed.
                        time.sleep(pause)
                        pause = min(pause * 2, 0.5)
                        continue
            except TransientExecutorError:
                # The daemon may have created it before the answer got lost.
                self._discard_unstarted(name, job)
                raise
            return self._start(api, job, name, container_id)

    def _discard_unstarted(self, name: str, job: JobSpec) -> None:
        """Remove this job's never-started container named ``name``, if there is one."""
        try:
            holder = self._inspect(name)
        except ExecutorError:
            return  # still no answer: cleanup_orphans will sweep it
        if holder is None:
            return
        labels = (holder.get("Config") or {}).get("Labels") or {}
        state = (holder.get("State") or {}).get("Status")
        if is_managed(labels) and labels.get(LABEL_JOB_ID) == job.job_id and state == "created":
            self._discard(str(holder.get("Id")))

    def _check_name_holder(self, name: str, job: JobSpec, deadline: float) -> None:
        """Raise ``LaunchError`` if ``name`` belongs to something else than this job."""
        holder = self._inspect(name)
        labels = ((holder or {}).get("Config") or {}).get("Labels") or {}
        foreign = holder is not None and not (
            is_managed(labels) and labels.get(LABEL_JOB_ID) == job.job_id
        )
        if foreign:
            raise LaunchError(
                f"container name {name!r} on {self._where} is taken by a container that "
                f"is not jobrelay's container for job {job.job_id!r}; remove or rename it",
                executor=self.name,
                job_id=job.job_id,
            )
        if time.monotonic() > deadline:
            raise TransientExecutorError(
                f"container name {name!r} on {self._where} stayed taken by a container "
                "the daemon does not list yet",
                executor=self.name,
                job_id=job.job_id,
            )

    def _existing(self, job_id: str, *, exclude: str | None = None) -> Execution | None:
        """Return the job's managed container, preferring the oldest cancelled one.

        After ``cancel`` renamed a container, the job's name is free again and a second
        launch can create a container under it; every launcher then settles on the
        same, older, cancelled container, and the new one is discarded.
        """
        candidates = [
            summary
            for summary in self._list(f"{LABEL_JOB_ID}={job_id}")
            if summary.get("Id") != exclude
        ]
        if not candidates:
            return None

        def rank(summary: Mapping[str, Any]) -> tuple[bool, float, str]:
            container_id = str(summary.get("Id"))
            cancelled = any(is_cancelled(str(n), container_id) for n in summary.get("Names", ()))
            created = summary.get("Created")
            return (
                not cancelled,
                created if isinstance(created, (int, float)) else 0,
                container_id,
            )

        return self._execution_from_summary(min(candidates, key=rank))

    def _start(
        self, api: docker.APIClient, job: JobSpec, name: str, container_id: str
    ) -> Execution:
        action = f"start container {name}"
        try:
            with self._translated(action, job=job, launching=True):
                existing = self._existing(job.job_id, exclude=container_id)
                if existing is not None:
                    self._discard(container_id)
                    return existing
                try:
                    api.start(container_id)
                except docker.errors.APIError as exc:
                    # Whatever the daemon answered (a 500 included), a container that
                    # does not start will not start on a retry either.
                    error, leaked = self._error(exc, action, job=job, launching=True)
                    failure = LaunchError(str(error), executor=self.name, job_id=job.job_id)
                    if leaked:
                        raise failure from None
                    raise failure from exc
        except ExecutorError:
            self._discard(container_id)  # a failed launch leaves nothing behind
            raise
        return Execution(
            executor=self.name,
            execution_id=container_id,
            job_id=job.job_id,
            launched_at=datetime.now(timezone.utc),
            metadata={"container_name": name, "image": job.image, "daemon": self._where},
        )

    def _discard(self, container_id: str) -> None:
        """Remove a container a failed launch created, trying a few times."""
        for attempt in range(1, 4):
            problem = self._try_remove(container_id)
            if problem is None:
                return
            logger.warning(
                "could not remove container %s after a failed launch (attempt %d): %s",
                container_id,
                attempt,
                problem,
            )
            time.sleep(0.2 * attempt)

    def _try_remove(self, container_id: str) -> ExecutorError | None:
        try:
            self._remove(container_id)
        except ExecutorError as exc:
            return exc
        return None

    def _ensure_image(self, api: docker.APIClient, job: JobSpec) -> None:
        policy = self._settings.pull_policy
        if policy != "always":
            with self._translated(f"inspect image {job.image}", job=job, launching=True):
                try:
                    api.inspect_image(job.image)
                except docker.errors.NotFound:
                    pass
                else:
                    return
            if policy == "never":
                raise LaunchError(
                    f"image {job.image!r} is not present on {self._where} and pull_policy "
                    "is 'never'; pull it first or use 'if-not-present'",
                    executor=self.name,
                    job_id=job.job_id,
                )
        with self._translated(f"pull {job.image}", job=job, launching=True):
            pull_image(
                api,
                job.image,
                deadline_seconds=self._settings.pull_timeout,
                executor=self.name,
                job_id=job.job_id,
                where=self._where,
            )

    # -- status ---------------------------------------------------------------------

    def status(self, execution: Execution) -> JobStatus:
        """Return the container's status; ``LOST`` if it is gone (or not jobrelay's)."""
        data = self._inspect_managed(execution.execution_id)
        return _lost() if data is None else status_from_inspect(data)

    def statuses(self, executions: Iterable[Execution]) -> dict[str, JobStatus]:
        """Return statuses from ONE list call, whatever the number of executions.

        The list carries state, exit code and the cancellation name, but not the OOM
        flag nor start/finish times: an OOM-killed job shows as ``FAILED`` with its
        exit code here, and :meth:`status` adds the ``oom-killed`` reason and times.
        """
        wanted = [execution.execution_id for execution in executions]
        if not wanted:
            return {}
        summaries = {str(summary.get("Id")): summary for summary in self._list()}
        return {
            execution_id: (
                status_from_summary(summaries[execution_id])
                if execution_id in summaries
                else _lost()
            )
            for execution_id in wanted
        }

    # -- logs -----------------------------------------------------------------------

    def logs(self, execution: Execution, *, tail: int | None = None) -> Logs:
        """Return stdout and stderr, each read from its own stream (last ``tail`` lines).

        Raises:
            ValueError: ``tail`` is not None or an int of 0 or more.
            ExecutorError: no such jobrelay container.
        """
        given: object = tail
        if given is not None and (
            isinstance(given, bool) or not isinstance(given, int) or given < 0
        ):
            raise ValueError(f"tail: must be None or an int of 0 or more, got {tail!r}")
        self._require(execution)
        return self._read_logs(execution.execution_id, tail)

    def _read_logs(self, container_id: str, tail: int | None) -> Logs:
        with self._translated(f"read logs of container {container_id}"):
            return read_logs(
                self._client(), container_id, tail=tail, timeout=self._settings.timeout
            )

    def stream_logs(self, execution: Execution) -> Iterator[LogLine]:
        """Yield output lines tagged ``stdout``/``stderr`` until the container exits."""
        self._require(execution)
        action = f"follow logs of container {execution.execution_id}"
        with self._translated(action):
            yield from follow_logs(self._client(), execution.execution_id)

    # -- harvest, cancel, cleanup -----------------------------------------------------

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the end, collect status and logs, then remove the container per policy.

        An execution whose container is gone (or not jobrelay's) is ``LOST``, never a
        success; its container, if any, is left alone. A container that was created
        but never started is waited for until it starts or is cancelled.
        """
        container_id = execution.execution_id
        data = self._inspect_managed(container_id)
        status = _lost() if data is None else status_from_inspect(data)
        interval = 0.1
        while data is not None and not status.is_terminal:
            if status.state is JobState.RUNNING:
                with (
                    self._translated(f"wait for container {container_id}"),
                    contextlib.suppress(docker.errors.NotFound),
                ):
                    self._client().wait(container_id, timeout=None)
            else:  # created, not started yet
                time.sleep(interval)
                interval = min(interval * 2, 2.0)
            data = self._inspect_managed(container_id)
            status = _lost() if data is None else status_from_inspect(data)
        if data is None:
            return JobResult(execution, status, Logs())
        try:
            logs = self._read_logs(container_id, None)
        except ExecutorError as exc:
            logger.warning("logs of container %s are gone: %s", container_id, exc)
            logs = Logs(truncated=True)
        duration = None
        if status.started_at is not None and status.finished_at is not None:
            duration = max((status.finished_at - status.started_at).total_seconds(), 0.0)
        if self._settings.remove_on_harvest and not (
            self._settings.keep_failed and status.state is JobState.FAILED
        ):
            try:
                self._remove(container_id)
            except ExecutorError as exc:
                # The result is what the caller needs; cleanup_orphans takes the rest.
                logger.warning("harvested container %s could not be removed: %s", container_id, exc)
        return JobResult(execution, status, logs, duration=duration)

    def cancel(self, execution: Execution) -> None:
        """Mark the container cancelled, then stop it (kill after ``stop_grace``).

        Idempotent; a finished or missing container is left as it is.

        Raises:
            ExecutorError: the container exists but is not jobrelay's.
        """
        container_id = execution.execution_id
        data = self._inspect(container_id)
        if data is None:
            return
        self._refuse_unmanaged(data, "cancel")
        if (data.get("State") or {}).get("Status") in _FINISHED:
            return
        api = self._client()
        if not is_cancelled(str(data.get("Name", "")), container_id):
            with self._translated(f"mark container {container_id} cancelled"):
                try:
                    api.rename(container_id, cancelled_name(container_id))
                except docker.errors.APIError as exc:
                    if is_not_found(exc):
                        return
                    if api_status(exc) != 409:  # 409: another canceller renamed it first
                        raise
        with self._translated(f"stop container {container_id}"):
            try:
                api.stop(container_id, timeout=self._settings.stop_grace)
            except docker.errors.NotFound:
                return
            except (requests.exceptions.Timeout, docker.errors.APIError) as exc:
                logger.warning("stop of container %s failed, killing it: %s", container_id, exc)
            self._kill_if_running(container_id)

    def _kill_if_running(self, container_id: str) -> None:
        data = self._inspect(container_id)
        if data is None or not (data.get("State") or {}).get("Running"):
            return
        try:
            self._client().kill(container_id)
        except docker.errors.APIError as exc:
            if not (is_not_found(exc) or api_status(exc) == 409):  # 409: not running now
                raise

    def cleanup(self, execution: Execution) -> None:
        """Force-remove the container; idempotent, a missing container is fine.

        Raises:
            ExecutorError: the container exists but is not jobrelay's.
        """
        data = self._inspect(execution.execution_id)
        if data is None:
            return
        self._refuse_unmanaged(data, "remove")
        self._remove(execution.execution_id)

    # -- describe -------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Describe this executor; limits come from the daemon when it answers (cached)."""
        if self._capabilities is not None:
            return self._capabilities
        info: Mapping[str, Any] = {}
        with contextlib.suppress(ExecutorError), self._translated("read daemon info"):
            info = self._client().info()
        cpus = info.get("NCPU")
        memory = info.get("MemTotal")
        runtimes = info.get("Runtimes") or {}
        capabilities = Capabilities(
            max_cpu=float(cpus) if isinstance(cpus, int) and cpus > 0 else None,
            max_memory_mb=memory // _MIB if isinstance(memory, int) and memory > 0 else None,
            # The API cannot count GPUs; an NVIDIA runtime means at least one.
            max_gpu=1 if "nvidia" in runtimes else 0,
            resource_limits=True,
            networking=self._settings.network != "none",
            persistent_storage=False,
            secrets=False,
            log_split=True,
            log_streaming=True,
            cancel=True,
            list_managed=True,
        )
        if info:
            self._capabilities = capabilities
        return capabilities
