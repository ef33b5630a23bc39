"""Launching a job's container exactly once, whatever the daemon does meanwhile.

A container is named ``jobrelay-<job_id>``: the daemon refuses a second container of
that name (409), so two launches of one job never make two containers. What a launch
finds under the name decides what it does:

- nothing: it creates the container and starts it;
- the job's container, started (running or ended): it returns it;
- the job's container, ``created`` and never started, made by this executor (an
  earlier attempt whose start got no answer): it starts it, since this launch owns it
  (unless it already wrote output: its start took effect, then a daemon killed
  mid-start restored it as never started; it is renamed ``jobrelay-forgotten-<id>``
  and reported ``LOST``, never started a second time);
- the same, made by someone else and younger than ``start_grace``: another launcher is
  about to start it, so it waits for that (up to ``timeout``);
- the same, older than ``start_grace``: abandoned (its launcher died or lost the
  daemon, and ``status`` already reports it ``FAILED``): it removes it and creates a
  fresh one;
- a container that is not this job's: ``LaunchError``.

A launch that fails for good removes what it created; one that got no answer removes
its never-started container when the daemon lets it, and otherwise leaves it for the
retried launch to adopt (or for ``status`` to report once ``start_grace`` has passed).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import docker
import docker.errors

from jobrelay import Execution, JobSpec
from jobrelay.backend import Scrubber
from jobrelay.errors import ExecutorError, LaunchError, TransientExecutorError
from jobrelay.labels import JOB_ID, OWNER, is_managed, workload_labels
from jobrelay_docker._container_spec import container_spec
from jobrelay_docker._errors import api_status
from jobrelay_docker._images import pull_image
from jobrelay_docker._managed import ManagedContainers
from jobrelay_docker._state import (
    container_name,
    forgotten_name,
    is_cancelled,
    is_forgotten,
    is_stale,
    summary_created_at,
)

__all__ = ["ContainerLauncher"]

logger = logging.getLogger("jobrelay.docker")

# What the daemon answers when its runtime still holds a task for the container.
_STALE_TASK = re.compile(r"task [0-9a-f]+: already exists")


class ContainerLauncher(ManagedContainers):
    """The launch half of the executor (internal)."""

    def _init_launcher(self) -> None:
        # Two threads of this process never launch the same job at once, so "created
        # by us" below is never another thread's container being started right now.
        self._job_locks: dict[str, tuple[threading.Lock, list[int]]] = {}
        self._job_locks_guard = threading.Lock()
        self._created_here: set[str] = set()

    @contextlib.contextmanager
    def _job_lock(self, job_id: str) -> Iterator[None]:
        with self._job_locks_guard:
            lock, users = self._job_locks.setdefault(job_id, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._job_locks_guard:
                users[0] -= 1
                if not users[0]:
                    del self._job_locks[job_id]

    def launch(self, job: JobSpec) -> Execution:
        """Create and start the job's container; return the existing one for a known job_id.

        Raises:
            LaunchError: the job cannot run here (image missing with ``never``, the
                daemon refused the container or its input, the command does not start).
            TransientExecutorError: the daemon or registry did not answer; retry.
        """
        if not isinstance(job, JobSpec):
            raise LaunchError(f"launch expects a JobSpec, got {type(job).__name__}")
        try:
            api = self._client()
            if self._settings.pull_policy == "always":
                self._pull(api, job)
            with self._job_lock(job.job_id):
                return self._launch_pulling(api, job)
        except (LaunchError, TransientExecutorError) as exc:
            if exc.job_id is None:
                exc.job_id = job.job_id
            raise
        except ExecutorError as exc:
            raise LaunchError(str(exc), executor=self.name, job_id=job.job_id) from None

    def _launch_pulling(self, api: docker.APIClient, job: JobSpec) -> Execution:
        """Launch; when the daemon has no such image, pull it (per policy) and launch again."""
        execution = self._launch(api, job)
        if execution is None:
            self._image_missing(api, job)
            execution = self._launch(api, job)
        if execution is None:
            raise LaunchError(
                f"image {job.image!r} is still missing on {self._where} after it was pulled",
                executor=self.name,
                job_id=job.job_id,
            )
        return execution

    def _launch(self, api: docker.APIClient, job: JobSpec) -> Execution | None:
        """Create and start the job's container; None when the daemon has no such image.

        The image is not looked up first: the create says when it is missing (as
        the docker CLI learns it), which spares every launch of a present image a
        round trip.
        """
        name = container_name(job.job_id)
        spec = container_spec(api, job, self._settings)
        deadline = time.monotonic() + self._settings.timeout
        pause = 0.02
        while True:
            if time.monotonic() > deadline:
                raise TransientExecutorError(
                    f"docker launch: the container of job {job.job_id!r} did not settle "
                    f"within {self._settings.timeout:g}s on {self._where}",
                    executor=self.name,
                    job_id=job.job_id,
                )
            try:
                with self._translated(f"create container {name}", job=job, launching=True):
                    try:
                        container_id = str(api.create_container(name=name, **spec)["Id"])
                    except docker.errors.ImageNotFound:
                        return None
                    except docker.errors.APIError as exc:
                        if api_status(exc) != 409:
                            raise
                        found = self._adopt(api, job, name, deadline)
                        if found is not None:
                            return found
                        time.sleep(pause)
                        pause = min(pause * 2, 0.5)
                        continue
            except TransientExecutorError:
                # The daemon may have created it before the answer got lost.
                self._discard_unstarted(name, job)
                raise
            self._created_here.add(container_id)
            started = self._start(api, job, name, container_id)
            if started is not None:
                return started

    def _adopt(
        self, api: docker.APIClient, job: JobSpec, name: str, deadline: float
    ) -> Execution | None:
        """Settle a name conflict: the execution to return, or None to try creating again."""
        summary = self._existing(job.job_id)
        if summary is None:
            self._check_name_holder(name, job, deadline)
            return None  # being created (named before it is listed), or just freed
        container_id = str(summary["Id"])
        if summary.get("State") != "created" or _cancelled(summary) or _forgotten(summary):
            return self._execution_from_summary(summary)
        if container_id in self._created_here:
            if self._ran_before(api, container_id, job):
                return self._forget_run(api, summary, job)
            logger.info("starting container %s that an earlier launch created", container_id)
            return self._start(api, job, name, container_id)
        if is_stale(summary_created_at(summary), self._settings.start_grace):
            logger.warning(
                "removing container %s of job %s: created and never started within %gs",
                container_id,
                job.job_id,
                self._settings.start_grace,
            )
            self._remove(container_id)
            return None
        if time.monotonic() > deadline:
            raise TransientExecutorError(
                f"docker launch: container {container_id} of job {job.job_id!r} is being "
                "launched elsewhere and has not started yet",
                executor=self.name,
                job_id=job.job_id,
            )
        return None

    def _ran_before(self, api: docker.APIClient, container_id: str, job: JobSpec) -> bool:
        """True when a ``created`` container already wrote output.

        Its start then took effect before the daemon lost track of it (a daemon
        killed mid-start restores such a container as never started).
        """
        with self._translated(f"read logs of {container_id}", job=job, launching=True):
            output: bytes = api.logs(container_id, stdout=True, stderr=True, tail=1)
        return bool(output)

    def _forget_run(
        self, api: docker.APIClient, summary: Mapping[str, Any], job: JobSpec
    ) -> Execution:
        """Mark a run the daemon forgot, so that nobody starts it a second time."""
        container_id = str(summary["Id"])
        logger.warning(
            "container %s of job %s began before the daemon restarted and is restored "
            "as never started; not starting it again (it would run the job twice)",
            container_id,
            job.job_id,
        )
        with self._translated(f"rename container {container_id}", job=job, launching=True):
            api.rename(container_id, forgotten_name(container_id))
        self._created_here.discard(container_id)
        return self._execution_from_summary(
            {**summary, "Names": [f"/{forgotten_name(container_id)}"]}
        )

    def _existing(self, job_id: str, *, exclude: str | None = None) -> dict[str, Any] | None:
        """Return the list entry of the job's managed container, preferring the oldest cancelled.

        After ``cancel`` renamed a container, the job's name is free again and a second
        launch can create a container under it; every launcher then settles on the
        same, older, cancelled container, and the new one is discarded.
        """
        candidates = [
            summary for summary in self._list(f"{JOB_ID}={job_id}") if summary.get("Id") != exclude
        ]
        if not candidates:
            return None

        def rank(summary: Mapping[str, Any]) -> tuple[bool, float, str]:
            created = summary.get("Created")
            return (
                not _cancelled(summary),
                created if isinstance(created, (int, float)) else 0,
                str(summary.get("Id")),
            )

        return min(candidates, key=rank)

    def _check_name_holder(self, name: str, job: JobSpec, deadline: float) -> None:
        """Raise ``LaunchError`` if ``name`` belongs to something else than this job."""
        holder = self._inspect(name)
        labels = ((holder or {}).get("Config") or {}).get("Labels") or {}
        foreign = holder is not None and not (
            is_managed(labels) and labels.get(JOB_ID) == job.job_id
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

    def _start(
        self, api: docker.APIClient, job: JobSpec, name: str, container_id: str
    ) -> Execution | None:
        """Start the container; None when it had to be removed for a fresh one."""
        action = f"start container {name}"
        try:
            with self._translated(action, job=job, launching=True):
                existing = self._existing(job.job_id, exclude=container_id)
                if existing is not None:
                    self._discard(container_id)
                    return self._execution_from_summary(existing)
                try:
                    api.start(container_id)
                except docker.errors.APIError as exc:
                    if _STALE_TASK.search(str(exc.explanation or "")):
                        # A daemon killed during an earlier start left the runtime's
                        # task behind: this container can never start, a fresh one can.
                        logger.warning(
                            "replacing container %s: %s",
                            container_id,
                            Scrubber(job.secrets.values())(str(exc.explanation)),
                        )
                        self._discard(container_id)
                        return None
                    # Whatever else the daemon answered (a 500 included), a container
                    # that does not start will not start on a retry either.
                    error = self._errors.translate(
                        exc,
                        action,
                        executor=self.name,
                        job_id=job.job_id,
                        secrets=job.secrets.values(),
                    )
                    failure = LaunchError(str(error), executor=self.name, job_id=job.job_id)
                    raise failure from (None if job.secrets else exc)
        except TransientExecutorError:
            started = self._settle_lost_start(container_id, job)
            if started is not None:
                return started
            raise
        except ExecutorError:
            self._discard(container_id)  # a failed launch leaves nothing behind
            raise
        self._created_here.discard(container_id)
        return self._launched(job, container_id, name)

    def _launched(self, job: JobSpec, container_id: str, name: str) -> Execution:
        return Execution(
            executor=self.name,
            execution_id=container_id,
            job_id=job.job_id,
            launched_at=datetime.now(timezone.utc),
            metadata={
                "container_name": name,
                "image": job.image,
                "daemon": self._where,
                "owner": workload_labels(job, self.name)[OWNER],
            },
        )

    def _settle_lost_start(self, container_id: str, job: JobSpec) -> Execution | None:
        """After a start that got no answer: the execution if it started, else clean up.

        A container still ``created`` is removed if the daemon answers now; if it does
        not, the container stays for the retried launch, which starts it.
        """
        try:
            data = self._inspect(container_id)
        except ExecutorError:
            return None
        if data is None:
            self._created_here.discard(container_id)
            return None
        if (data.get("State") or {}).get("Status") == "created":
            if self._try_remove(container_id) is None:
                self._created_here.discard(container_id)
            return None
        self._created_here.discard(container_id)
        return self._launched(job, container_id, str(data.get("Name", "")).lstrip("/"))

    def _discard_unstarted(self, name: str, job: JobSpec) -> None:
        """Remove this job's never-started container named ``name``, if the daemon answers."""
        try:
            holder = self._inspect(name)
        except ExecutorError:
            return  # still no answer: the retried launch adopts it, or status reports it
        if holder is None:
            return
        labels = (holder.get("Config") or {}).get("Labels") or {}
        state = (holder.get("State") or {}).get("Status")
        if is_managed(labels) and labels.get(JOB_ID) == job.job_id and state == "created":
            container_id = str(holder.get("Id"))
            if self._try_remove(container_id) is None:
                self._created_here.discard(container_id)
            else:
                self._created_here.add(container_id)  # ours: the retried launch starts it

    def _discard(self, container_id: str) -> None:
        """Remove a container a failed launch created, trying a few times."""
        for attempt in range(1, 4):
            problem = self._try_remove(container_id)
            if problem is None:
                self._created_here.discard(container_id)
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

    def _image_missing(self, api: docker.APIClient, job: JobSpec) -> None:
        """The create found no image: pull it, or refuse under ``pull_policy="never"``."""
        if self._settings.pull_policy == "never":
            raise LaunchError(
                f"image {job.image!r} is not present on {self._where} and pull_policy "
                "is 'never'; pull it first or use 'if-not-present'",
                executor=self.name,
                job_id=job.job_id,
            )
        self._pull(api, job)

    def _pull(self, api: docker.APIClient, job: JobSpec) -> None:
        with self._translated(f"pull {job.image}", job=job, launching=True):
            pull_image(
                api,
                job.image,
                deadline_seconds=self._settings.pull_timeout,
                executor=self.name,
                job_id=job.job_id,
                where=self._where,
            )


def _forgotten(summary: Mapping[str, Any]) -> bool:
    container_id = str(summary.get("Id", ""))
    return any(is_forgotten(str(name), container_id) for name in summary.get("Names") or ())


def _cancelled(summary: Mapping[str, Any]) -> bool:
    container_id = str(summary.get("Id"))
    return any(is_cancelled(str(name), container_id) for name in summary.get("Names") or ())
