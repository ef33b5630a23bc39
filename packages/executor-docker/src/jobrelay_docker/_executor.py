"""The Docker executor: jobs as containers on a local or remote Docker daemon."""

from __future__ import annotations

import contextlib
import logging
import math
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

import docker
import docker.errors
import requests.exceptions

from jobrelay import (
    Capabilities,
    Cost,
    Execution,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    LogLine,
    Logs,
)
from jobrelay.backend import Scrubber, duration_of, make_result
from jobrelay.errors import ExecutorError, TransientExecutorError
from jobrelay_docker._config import PullPolicy, TLSConfig, build_settings
from jobrelay_docker._connection import secret_values
from jobrelay_docker._errors import api_status, is_not_found
from jobrelay_docker._launching import ContainerLauncher
from jobrelay_docker._logs import follow_logs, read_logs
from jobrelay_docker._state import (
    cancelled_name,
    is_cancelled,
    status_from_inspect,
    status_from_summary,
)
from jobrelay_docker._stdin import StreamSocket, stdin_socket, write_chunk

__all__ = ["DockerExecutor"]

logger = logging.getLogger("jobrelay.docker")

_FINISHED = frozenset({"exited", "dead", "removing"})
_MIB = 1024 * 1024
_SECONDS_PER_HOUR = Decimal(3600)


def _finished(data: Mapping[str, Any]) -> bool:
    return (data.get("State") or {}).get("Status") in _FINISHED


def _lost(reason: str = "no such container") -> JobStatus:
    return JobStatus(JobState.LOST, reason=reason)


class DockerExecutor(ContainerLauncher):
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

    Logs say ``truncated=True`` when the daemon cannot vouch for them: when this
    executor could not reach the daemon while the container ran, or when the daemon
    was (re)started after the container started (output written while no daemon
    read it may be missing).

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
        start_grace: seconds a created container may wait for its launch to start
            it; one still not started after that is reported ``FAILED`` (its
            launcher died or lost the daemon) instead of ``PENDING`` for ever.
        cost_per_hour: what an hour of a job costs here (default 0: your machine);
            ``estimate_cost`` and ``JobResult.cost`` use it.
        currency: ISO 4217 code of ``cost_per_hour``.
        volumes: bind mounts for every job, as docker writes them (``"/data:/data:ro"``).
        user: the user jobs run as (``"1000"``, ``"1000:1000"``, ``"nobody"``).

    Raises:
        ConfigError: a setting is invalid (the message names it).
    """

    def __init__(
        self,
        base_url: str | None = None,
        *,
        tls: TLSConfig | Mapping[str, Any] | bool | None = None,
        timeout: float = 30,
        pull_policy: PullPolicy = "if-not-present",
        network: str | None = None,
        labels: Mapping[str, str] | None = None,
        remove_on_harvest: bool = True,
        keep_failed: bool = False,
        stop_grace: int = 10,
        name: str = "docker",
        pull_timeout: float = 600,
        start_grace: float = 60,
        cost_per_hour: Decimal | float | str = 0,
        currency: str = "USD",
        volumes: Sequence[str] | None = None,
        user: str | None = None,
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
            start_grace=start_grace,
            cost_per_hour=cost_per_hour,
            currency=currency,
            volumes=volumes,
            user=user,
        )
        super().__init__(settings)
        self._init_launcher()
        self._capabilities: Capabilities | None = None

    def __repr__(self) -> str:
        return f"DockerExecutor(name={self.name!r}, base_url={self._settings.base_url!r})"

    # -- status ---------------------------------------------------------------------

    def status(self, execution: Execution) -> JobStatus:
        """Return the container's status; ``LOST`` if it is gone (or not jobrelay's).

        A container created and never started is ``PENDING`` for ``start_grace``
        seconds, then ``FAILED`` with the reason.
        """
        data = self._inspect_managed(execution.execution_id)
        return _lost() if data is None else self._status_of(data)

    def _status_of(self, data: Mapping[str, Any]) -> JobStatus:
        status = status_from_inspect(data, start_grace=self._settings.start_grace)
        if status.reason:
            # The daemon's error text (State.Error) may quote the environment.
            scrub = Scrubber(secret_values(data))
            if scrub:
                return JobStatus(
                    status.state,
                    exit_code=status.exit_code,
                    reason=scrub(status.reason),
                    started_at=status.started_at,
                    finished_at=status.finished_at,
                )
        return status

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
        grace = self._settings.start_grace
        return {
            execution_id: (
                status_from_summary(summaries[execution_id], start_grace=grace)
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
        data = self._require(execution)
        return self._vouched(data, self._read_logs(execution.execution_id, tail))

    def _vouched(self, data: Mapping[str, Any], logs: Logs) -> Logs:
        """Mark ``logs`` truncated when the daemon may have missed some of the output."""
        if logs.truncated:
            return logs
        status = status_from_inspect(data, start_grace=self._settings.start_grace)
        if self.may_have_missed(status.started_at, status.finished_at):
            return Logs(stdout=logs.stdout, stderr=logs.stderr, truncated=True)
        return logs

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

    # -- stdin ----------------------------------------------------------------------

    def send_stdin(self, execution: Execution, chunks: Iterable[bytes]) -> None:
        """Write every chunk to the job's stdin, then close it: the job reads EOF.

        The job must have been launched with ``JobSpec(stdin=True)``. Until input
        is sent it waits for it: ``cat`` reads until someone attaches and closes,
        for ever if nobody does (but for the job's ``timeout``), so whoever
        launches such a job sends its input, if only ``[]``; a job that does not
        read its stdin is not held up. The container's stdin closes when the first
        ``send_stdin`` ends, so a job's input is sent once.

        Every socket operation has ``timeout`` as its deadline. A write the job does
        not take within it is retried while the job runs, as a pipe waits for its
        reader; a job that ended before it read everything has the rest dropped
        (like ``yes | head -1``), and this returns normally.

        Raises:
            ExecutorError: no such jobrelay container, or it has no open stdin.
            TransientExecutorError: the daemon stopped answering.
            TypeError: a chunk is not bytes.
        """
        container_id = execution.execution_id
        data = self._require(execution)
        if not (data.get("Config") or {}).get("OpenStdin"):
            raise ExecutorError(
                f"send_stdin: job {execution.job_id} was not launched with "
                f"JobSpec(stdin=True), so container {container_id} has no stdin to write to",
                executor=self.name,
                job_id=execution.job_id,
            )
        if _finished(data):
            return
        secrets = secret_values(data)
        with contextlib.ExitStack() as attached:
            with self._translated(f"attach to stdin of container {container_id}", secrets=secrets):
                try:
                    sock = attached.enter_context(
                        stdin_socket(self._client(), container_id, self._settings.timeout)
                    )
                except (requests.exceptions.ReadTimeout, docker.errors.NotFound):
                    # It ended since: the daemon holds an attach to an exited
                    # container without answering, and a removed one is not found.
                    if self._has_ended(container_id):
                        return
                    raise
            self._write_all(sock, container_id, chunks, secrets)

    def _write_all(
        self, sock: StreamSocket, container_id: str, chunks: Iterable[bytes], secrets: list[str]
    ) -> None:
        """Write the chunks, then half-close; stop early if the job ended."""
        action = f"write to stdin of container {container_id}"
        # Our input (the chunks) is read outside the translation: an OSError there
        # is the caller's, not the daemon's.
        for index, chunk in enumerate(chunks):
            with self._translated(action, secrets=secrets):
                if not write_chunk(sock, index, chunk, ended=lambda: self._has_ended(container_id)):
                    return
        with self._translated(action, secrets=secrets):
            sock.shutdown(socket.SHUT_WR)

    def _has_ended(self, container_id: str) -> bool:
        """True when the container is gone or finished (a created one may yet start)."""
        data = self._inspect(container_id)
        return data is None or _finished(data)

    # -- harvest, cancel, cleanup -----------------------------------------------------

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the end, collect status and logs, then remove the container per policy.

        An execution whose container is gone (or not jobrelay's) is ``LOST``, never a
        success; its container, if any, is left alone. Every call to the daemon has
        a deadline; while the container runs, harvest waits in ``timeout``-long
        rounds. If the daemon stops answering, the error propagates and the
        container stays as it is, so a later harvest still finds its result.
        """
        container_id = execution.execution_id
        data = self._inspect_managed(container_id)
        interval = 0.1
        while data is not None:
            status = self._status_of(data)
            if status.is_terminal:
                break
            if status.state is JobState.RUNNING:
                self._wait_exit(container_id)
            else:  # created: its launch is about to start it, or start_grace runs out
                time.sleep(interval)
                interval = min(interval * 2, 2.0)
            data = self._inspect_managed(container_id)
        if data is None:
            return make_result(execution, _lost(), Logs())
        try:
            logs = self._vouched(data, self._read_logs(container_id, None))
        except TransientExecutorError:
            raise
        except ExecutorError as exc:
            logger.warning("logs of container %s are gone: %s", container_id, exc)
            logs = Logs(truncated=True)
        if self._settings.remove_on_harvest and not (
            self._settings.keep_failed and status.state is JobState.FAILED
        ):
            try:
                self._remove(container_id)
            except ExecutorError as exc:
                # The result is what the caller needs; cleanup_orphans takes the rest.
                logger.warning("harvested container %s could not be removed: %s", container_id, exc)
        return make_result(execution, status, logs, cost=self._cost(duration_of(status)))

    def _wait_exit(self, container_id: str) -> None:
        """Block until the container stops or one ``timeout`` passes, whichever is first."""
        with (
            self._translated(f"wait for container {container_id}"),
            contextlib.suppress(docker.errors.NotFound, requests.exceptions.ReadTimeout),
        ):
            self._client().wait(container_id, timeout=self._settings.timeout)

    def cancel(self, execution: Execution) -> None:
        """Mark the container cancelled, then stop it (kill after ``stop_grace``).

        Idempotent, also when several threads or processes cancel at once; a
        finished or missing container is left as it is.

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
        if not is_cancelled(str(data.get("Name", "")), container_id) and not self._mark_cancelled(
            container_id
        ):
            return
        api = self._client()
        with self._translated(f"stop container {container_id}"):
            try:
                api.stop(container_id, timeout=self._settings.stop_grace)
            except docker.errors.NotFound:
                return
            except (requests.exceptions.Timeout, docker.errors.APIError) as exc:
                scrub = Scrubber(secret_values(data))
                logger.warning(
                    "stop of container %s failed, killing it: %s", container_id, scrub(str(exc))
                )
            self._kill_if_running(container_id)

    def _mark_cancelled(self, container_id: str) -> bool:
        """Rename the container to its cancelled name; False if it is gone meanwhile.

        A concurrent canceller may rename it first: the daemon then answers 400
        ("same name as its current name") or 409, and the container is marked as
        wanted, which is checked rather than assumed.
        """
        with self._translated(f"mark container {container_id} cancelled"):
            try:
                self._client().rename(container_id, cancelled_name(container_id))
            except docker.errors.APIError as exc:
                if is_not_found(exc):
                    return False
                if api_status(exc) not in (400, 409):
                    raise
                data = self._inspect(container_id)
                if data is None:
                    return False
                if not is_cancelled(str(data.get("Name", "")), container_id):
                    raise
        return True

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

    def estimate_cost(self, job: JobSpec, duration_seconds: float) -> Cost | None:  # noqa: ARG002
        """Price ``duration_seconds`` of a job at ``cost_per_hour`` (any job: one machine).

        Raises:
            ValueError: ``duration_seconds`` is negative or not a finite number.
        """
        given: object = duration_seconds
        if (
            isinstance(given, bool)
            or not isinstance(given, (int, float))
            or not math.isfinite(given)
            or given < 0
        ):
            raise ValueError("duration_seconds: must be a finite number of seconds, 0 or more")
        return self._cost(duration_seconds)

    def _cost(self, duration_seconds: float | None) -> Cost | None:
        if duration_seconds is None:
            return None
        rate = self._settings.cost_per_hour
        seconds = (
            Decimal(duration_seconds)
            if isinstance(duration_seconds, int)
            else Decimal(repr(float(duration_seconds)))
        )
        return Cost(
            amount=rate * seconds / _SECONDS_PER_HOUR,
            currency=self._settings.currency,
            rate_per_hour=rate,
            source="config: cost_per_hour",
        )

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
            platform_retries=False,
            cost_estimate=True,
            stdin=True,
        )
        if info:
            self._capabilities = capabilities
        return capabilities
