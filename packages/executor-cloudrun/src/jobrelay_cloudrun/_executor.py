"""The Cloud Run executor: one Cloud Run Job per jobrelay job, output from Cloud Logging."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jobrelay import (
    Capabilities,
    Clock,
    ConfigError,
    Cost,
    Execution,
    Health,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    LaunchError,
    LogLine,
    Logs,
    RetryPolicy,
    SystemClock,
    TransientExecutorError,
)
from jobrelay.backend import (
    ExecutorBase,
    duration_of,
    follow_logs,
    make_result,
    probe_health,
    wait_until_terminal,
)
from jobrelay.labels import EXECUTOR, JOB_ID, MANAGED, OWNER
from jobrelay_cloudrun._api import Api
from jobrelay_cloudrun._config import Clients, Settings
from jobrelay_cloudrun._logs import Cursor, ExecutionRef, LogReader
from jobrelay_cloudrun._names import execution_token, job_name, label_key
from jobrelay_cloudrun._prices import PriceRow, estimate, load_prices, price_for
from jobrelay_cloudrun._sizing import MAX_CPU, MAX_MEMORY_MB, Size, SizeError, fit
from jobrelay_cloudrun._spec import build_job
from jobrelay_cloudrun._status import is_finished, status_of

if TYPE_CHECKING:  # the SDK is imported when the executor builds its clients
    from google.auth.credentials import Credentials
    from google.cloud import run_v2

__all__ = ["CloudRunExecutor"]

logger = logging.getLogger("jobrelay.cloudrun")

_FINAL_CACHE = 10_000


class CloudRunExecutor(ExecutorBase):
    """Runs jobs as Google Cloud Run Jobs, one Cloud Run Job per jobrelay job.

    The job is created together with its single execution (``startExecutionToken``
    derived from the job id), so both names are known before the call and a retried
    or repeated launch finds the job instead of starting a second execution.

    Example::

        with CloudRunExecutor("my-project", "europe-west1") as cloudrun:
            execution = cloudrun.launch(JobSpec("busybox", "echo hi"))
            print(cloudrun.harvest(execution).logs.stdout)

    Args:
        project: Google Cloud project id.
        region: Cloud Run region, e.g. ``"europe-west1"``.
        credentials: google-auth credentials; default: google-auth's default chain.
        api_endpoint: Cloud Run Admin API endpoint (``http://host:port`` for fakes).
        logging_endpoint: Cloud Logging endpoint (same).
        service_account: email of the service account the jobs run as.
        vpc_connector: Serverless VPC Access connector (name or resource name).
        vpc_egress: ``"all-traffic"`` or ``"private-ranges-only"`` (needs a connector).
        job_prefix: Cloud Run job names are ``<job_prefix>-<job id>``.
        delete_jobs: delete the Cloud Run Job at cleanup (keep under 1000 jobs/region).
        poll_interval: seconds between status polls in ``harvest`` and ``stream_logs``.
        name: this executor's name (labels, routing).
        clock: where time is read and waited (tests).
        prices: a price table (mapping or TOML path) replacing the shipped one.
        gpu_type: accelerator for jobs that ask for a GPU (e.g. ``"nvidia-l4"``);
            without it a GPU job is refused.
        retry: policy for retrying idempotent calls (default: 3 attempts in 30 s).
        request_timeout: deadline of every API call, in seconds.
        log_grace: seconds after an execution ends that entries may still arrive;
            ``harvest`` reads until then and says ``truncated`` if they still came.
        missing_grace: seconds after launch that an execution the API does not show
            yet is ``PENDING`` rather than ``LOST``.
        logs_per_minute: ``entries.list`` calls all of this executor's readers share
            per minute (the API allows 60 per project).
        reads_per_minute: Admin API reads per minute (stay inside the region's quota).
    """

    def __init__(
        self,
        project: str,
        region: str,
        *,
        credentials: Credentials | None = None,
        api_endpoint: str | None = None,
        logging_endpoint: str | None = None,
        service_account: str | None = None,
        vpc_connector: str | None = None,
        vpc_egress: str | None = None,
        job_prefix: str = "jobrelay",
        delete_jobs: bool = True,
        poll_interval: float = 5.0,
        name: str = "cloudrun",
        clock: Clock | None = None,
        prices: Mapping[str, Any] | str | os.PathLike[str] | None = None,
        gpu_type: str | None = None,
        retry: RetryPolicy | None = None,
        request_timeout: float = 30.0,
        log_grace: float = 10.0,
        missing_grace: float = 60.0,
        logs_per_minute: int = 60,
        reads_per_minute: int = 600,
    ) -> None:
        settings = Settings.build(
            project=project,
            region=region,
            name=name,
            job_prefix=job_prefix,
            service_account=service_account,
            vpc_connector=vpc_connector,
            vpc_egress=vpc_egress,
            gpu_type=gpu_type,
            delete_jobs=delete_jobs,
            poll_interval=poll_interval,
            request_timeout=request_timeout,
            log_grace=log_grace,
            missing_grace=missing_grace,
            logs_per_minute=logs_per_minute,
            reads_per_minute=reads_per_minute,
        )
        rows, origin = load_prices(prices)
        self._price: PriceRow | None
        try:
            self._price = price_for(rows, settings.region)
        except ConfigError:
            if prices is not None:
                raise
            # A region newer than the shipped table: run jobs, just do not price them.
            logger.warning("no shipped Cloud Run price for %s; costs are not estimated", region)
            self._price = None
        self._price_origin = origin
        self.name = settings.name
        self.project = settings.project
        self.region = settings.region
        self._settings = settings
        self._clock: Clock = clock if clock is not None else SystemClock()
        clients = Clients.create(
            settings.project,
            credentials=credentials,
            api_endpoint=api_endpoint,
            logging_endpoint=logging_endpoint,
        )
        self._api = Api.create(
            clients,
            parent=settings.parent,
            executor=settings.name,
            timeout=settings.request_timeout,
            retry=retry if retry is not None else RetryPolicy(attempts=3, timeout=30.0),
            clock=self._clock,
            reads_per_minute=settings.reads_per_minute,
            logs_per_minute=settings.logs_per_minute,
        )
        self._reader = LogReader(request=self._api.list_entries, project=settings.project)
        self._final: OrderedDict[str, JobStatus] = OrderedDict()
        self._list_pages = 1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CloudRunExecutor(name={self.name!r}, project={self.project!r}, region={self.region!r})"

    # -- plumbing ------------------------------------------------------------------

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), tz=timezone.utc)

    def _job_path(self, job_id: str) -> str:
        return f"{self._settings.parent}/jobs/{job_name(self._settings.job_prefix, job_id)}"

    def _execution_of(
        self, job_id: str, job_path: str, launched_at: datetime, extra: Mapping[str, Any]
    ) -> Execution:
        short = job_path.rsplit("/", 1)[1]
        name = f"{job_path}/executions/{short}-{execution_token(job_id)}"
        return Execution(
            executor=self.name,
            execution_id=name,
            job_id=job_id,
            launched_at=launched_at,
            metadata={
                "project": self.project,
                "region": self.region,
                "job": job_path,
                "execution": name,
                "console_url": (
                    f"https://console.cloud.google.com/run/jobs/executions/details/{self.region}/"
                    f"{name.rsplit('/', 1)[1]}?project={self.project}"
                ),
                **extra,
            },
        )

    # -- launch --------------------------------------------------------------------

    def size_of(self, job: JobSpec) -> Size:
        """Return the Cloud Run size ``job`` gets (rounded up).

        Raises:
            LaunchError: the job asks for more than a Cloud Run task can have.
        """
        try:
            return fit(job.resources, gpu_type=self._settings.gpu_type)
        except SizeError as exc:
            raise LaunchError(f"resources: {exc}", executor=self.name, job_id=job.job_id) from None

    def launch(self, job: JobSpec) -> Execution:
        """Create the job's Cloud Run Job and its execution; the existing one if it exists.

        Raises:
            LaunchError: the job does not fit Cloud Run (before any call), Google
                refused it (400/403), or its name belongs to another job.
            TransientExecutorError: throttling, 5xx, connection trouble after retries.
        """
        size = self.size_of(job)
        body = build_job(job, executor=self.name, size=size, settings=self._settings)
        job_path = self._job_path(job.job_id)
        secrets = [value for value in job.secrets.values() if value]
        launched_at = self._now()
        extra = {"cpu": size.cpu, "memory_mb": size.memory_mb, "gpu": size.gpu}

        def create_or_find() -> Execution:
            if self._api.create_job(job_path, body, job_id=job.job_id, secrets=secrets):
                logger.info(
                    "launched job %s as %s (%d vCPU, %d MiB)",
                    job.job_id,
                    job_path,
                    size.cpu,
                    size.memory_mb,
                )
                return self._execution_of(job.job_id, job_path, launched_at, extra)
            return self._existing(job, job_path, extra)

        return self._api.retry.call(create_or_find)

    def _existing(self, job: JobSpec, job_path: str, extra: Mapping[str, Any]) -> Execution:
        """Return the execution of the job that already holds ``job``'s name (409)."""
        found = self._api.get_job(job_path, job_id=job.job_id, launching=True)
        if found is None:
            # Deleted between our 409 and this read: the next attempt creates it.
            raise TransientExecutorError(
                f"cloudrun job {job_path} vanished while launching",
                executor=self.name,
                job_id=job.job_id,
            )
        owner_id = found.annotations.get(JOB_ID)
        managed = found.labels.get(label_key(MANAGED)) == "true"
        if not managed or owner_id != job.job_id:
            holder = f"job {owner_id!r}" if managed else "something jobrelay does not manage"
            raise LaunchError(
                f"cloudrun job {job_path} already exists and belongs to {holder}",
                executor=self.name,
                job_id=job.job_id,
            )
        created = found.create_time if isinstance(found.create_time, datetime) else self._now()
        logger.info("job %s already runs as %s", job.job_id, job_path)
        return self._execution_of(job.job_id, job_path, created.astimezone(timezone.utc), extra)

    # -- status --------------------------------------------------------------------

    def status(self, execution: Execution) -> JobStatus:
        """Return the execution's status (``LOST`` once Cloud Run no longer has it)."""
        return self.statuses([execution])[execution.execution_id]

    def statuses(self, executions: Iterable[Execution]) -> Mapping[str, JobStatus]:
        """Return statuses keyed by execution id, in as few Admin API reads as possible.

        Finished executions are remembered (they cannot change). Of the rest, as many
        as one listing of the region's executions takes pages are read one by one
        (GetExecution); more than that are found by listing executions across every
        job (``jobs/-``), one call per 1000. A failed execution costs one ListTasks
        call, once, for its exit code.
        """
        wanted = {execution.execution_id: execution for execution in executions}
        answers: dict[str, JobStatus] = {}
        pending: dict[str, Execution] = {}
        with self._lock:
            for execution_id, execution in wanted.items():
                if execution_id in self._final:
                    answers[execution_id] = self._final[execution_id]
                elif ExecutionRef.parse(execution_id) is None:
                    answers[execution_id] = JobStatus(
                        JobState.LOST, reason="not a Cloud Run execution"
                    )
                else:
                    pending[execution_id] = execution
            list_pages = self._list_pages
        ours = {e for e in pending if e.startswith(f"{self._settings.parent}/jobs/")}
        found: dict[str, run_v2.Execution] = {}
        singles = list(pending)
        if len(ours) > list_pages:
            found, pages = self._api.list_executions()
            with self._lock:
                self._list_pages = max(1, pages)
            singles = [e for e in pending if e not in ours]
        for execution_id in singles:
            answer = self._api.get_execution(execution_id, job_id=pending[execution_id].job_id)
            if answer is not None:
                found[execution_id] = answer
        for execution_id, execution in pending.items():
            record = found.get(execution_id)
            if record is None:
                answers[execution_id] = self._missing(execution)
                continue
            status = status_of(record, functools.partial(self._api.list_tasks, record.name))
            answers[execution_id] = status
            if status.is_terminal:
                self._remember(execution_id, status)
        return answers

    def _remember(self, execution_id: str, status: JobStatus) -> None:
        with self._lock:
            self._final[execution_id] = status
            while len(self._final) > _FINAL_CACHE:
                self._final.popitem(last=False)

    def _missing(self, execution: Execution) -> JobStatus:
        age = self._clock.time() - execution.launched_at.timestamp()
        if age < self._settings.missing_grace:
            return JobStatus(JobState.PENDING, reason="not yet visible in the Admin API")
        return JobStatus(JobState.LOST, reason="Cloud Run has no such execution")

    # -- logs and harvest ----------------------------------------------------------------

    def logs(self, execution: Execution, *, tail: int | None = None) -> Logs:
        """Return the output so far from Cloud Logging, stdout and stderr apart."""
        ref = ExecutionRef.parse(execution.execution_id)
        if ref is None:
            return Logs()
        lines, truncated = self._reader.read(ref, execution.launched_at, tail=tail)
        return _split(lines, truncated)

    def stream_logs(self, execution: Execution) -> Iterator[LogLine]:
        """Yield output lines as Cloud Logging receives them, until the execution ends.

        REST has no tail: each poll asks for the entries after a cursor, through the
        executor's shared ``entries.list`` rate limit.
        """
        ref = ExecutionRef.parse(execution.execution_id)
        if ref is None:
            return

        def fetch(cursor: Cursor | None) -> tuple[list[LogLine], Cursor | None]:
            return self._reader.fetch(ref, execution.launched_at, cursor)

        yield from follow_logs(
            fetch,
            lambda: self.status(execution).is_terminal,
            clock=self._clock,
            poll_interval=self._settings.poll_interval,
        )

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the end, collect status, output and cost, then clean up.

        Output is read until ``log_grace`` after the end (entries arrive late); the
        Cloud Run Job is deleted afterwards with ``delete_jobs``.
        """
        status = wait_until_terminal(
            lambda: self.status(execution),
            clock=self._clock,
            poll_interval=self._settings.poll_interval,
        )
        ref = ExecutionRef.parse(execution.execution_id)
        logs = Logs() if ref is None else self._final_logs(ref, execution, status)
        result = make_result(execution, status, logs, cost=self._cost_of(execution, status))
        if self._settings.delete_jobs:
            self.cleanup(execution)
        return result

    def _final_logs(self, ref: ExecutionRef, execution: Execution, status: JobStatus) -> Logs:
        lines, cursor = self._reader.fetch(ref, execution.launched_at, None)
        ended = status.finished_at.timestamp() if status.finished_at else self._clock.time()
        deadline = ended + self._settings.log_grace
        still_coming = False
        while self._clock.time() < deadline:
            self._clock.sleep(min(self._settings.poll_interval, deadline - self._clock.time()))
            more, cursor = self._reader.fetch(ref, execution.launched_at, cursor)
            lines += more
            still_coming = bool(more)
        return _split(lines, still_coming)

    # -- cancel and cleanup ------------------------------------------------------------

    def cancel(self, execution: Execution) -> None:
        """Cancel the execution; nothing to do when it ended or is unknown."""
        ref = ExecutionRef.parse(execution.execution_id)
        if ref is None:
            return
        record = self._api.get_execution(ref.name, job_id=execution.job_id)
        if record is None or is_finished(record):
            return
        self._api.cancel_execution(ref.name, job_id=execution.job_id)
        logger.info("cancelled %s", ref.name)

    def cleanup(self, execution: Execution) -> None:
        """Delete the execution's Cloud Run Job (with ``delete_jobs``); idempotent.

        Only a job carrying ``jobrelay-managed=true`` and this executor's name is
        deleted; one still running is cancelled first.
        """
        ref = ExecutionRef.parse(execution.execution_id)
        if ref is None or not self._settings.delete_jobs:
            return
        found = self._api.get_job(ref.job_name, job_id=execution.job_id)
        if found is None:
            return
        if not _is_ours(found, self.name):
            logger.warning("not deleting %s: jobrelay does not manage it", ref.job_name)
            return
        # Read (and remember) the final status first: once deleted it is gone.
        status = self.status(execution)
        if not status.is_terminal:
            self.cancel(execution)
        self._api.delete_job(ref.job_name, job_id=execution.job_id)
        if not status.is_terminal:
            self._remember(
                execution.execution_id,
                JobStatus(JobState.CANCELLED, reason="cancelled and deleted by cleanup"),
            )
        logger.info("deleted %s", ref.job_name)

    # -- reconcile -----------------------------------------------------------------------

    def list_managed(self) -> list[Execution]:
        """Return the execution of every Cloud Run Job this executor manages.

        ListJobs has no label filter: every job of the region is listed and those
        labelled ``jobrelay-managed=true`` with this executor's name are kept; the
        exact job id and owner come from the job's annotations.
        """
        executions = []
        for found in self._api.list_jobs():
            if not _is_ours(found, self.name):
                continue
            job_id = found.annotations.get(JOB_ID) or found.labels.get(label_key(JOB_ID), "")
            created = found.create_time if isinstance(found.create_time, datetime) else self._now()
            limits = (
                found.template.template.containers[0].resources.limits
                if found.template.template.containers
                else {}
            )
            extra: dict[str, Any] = {"owner": found.annotations.get(OWNER)}
            if "cpu" in limits and "memory" in limits:
                extra.update(
                    cpu=int(limits["cpu"]), memory_mb=int(str(limits["memory"]).removesuffix("Mi"))
                )
            executions.append(
                self._execution_of(job_id, found.name, created.astimezone(timezone.utc), extra)
            )
        return executions

    # -- cost, description, health ----------------------------------------------------

    def estimate_cost(self, job: JobSpec, duration_seconds: float) -> Cost | None:
        """Price ``duration_seconds`` of ``job`` at the Cloud Run size it would get.

        None for a job Cloud Run cannot run or one with a GPU (the table has no GPU
        prices). Time is billed in 100 ms steps, with no minimum.
        """
        try:
            size = fit(job.resources, gpu_type=self._settings.gpu_type)
        except SizeError:
            return None
        if size.gpu or self._price is None:
            return None
        return estimate(self._price, self._price_origin, size.cpu, size.memory_mb, duration_seconds)

    def _cost_of(self, execution: Execution, status: JobStatus) -> Cost | None:
        seconds = duration_of(status)
        cpu, memory = execution.metadata.get("cpu"), execution.metadata.get("memory_mb")
        if seconds is None or not isinstance(cpu, int) or not isinstance(memory, int):
            return None
        if execution.metadata.get("gpu") or self._price is None:
            return None
        return estimate(self._price, self._price_origin, cpu, memory, seconds)

    def capabilities(self) -> Capabilities:
        """Cloud Run jobs' limits; Cloud Logging keeps stdout and stderr apart."""
        return Capabilities(
            max_cpu=float(MAX_CPU),
            max_memory_mb=MAX_MEMORY_MB,
            max_gpu=1 if self._settings.gpu_type else 0,
            resource_limits=True,
            networking=True,
            persistent_storage=False,
            secrets=False,
            log_split=True,
            log_streaming=True,
            cancel=True,
            list_managed=True,
            platform_retries=True,
            cost_estimate=self._price is not None,
        )

    def health(self) -> Health:
        """One ListJobs call (page of one) with a short deadline; never raises."""
        return probe_health(
            lambda: self._api.probe(min(5.0, self._settings.request_timeout)),
            answered=f"Cloud Run Admin API answers for {self._settings.parent}",
            errors=Exception,  # health never raises
        )

    def close(self) -> None:
        """Close the clients' HTTP sessions."""
        self._api.clients.close()


def _is_ours(found: run_v2.Job, executor: str) -> bool:
    """A job jobrelay manages, launched by an executor of this name."""
    labels = found.labels
    launched_by = found.annotations.get(EXECUTOR, labels.get(label_key(EXECUTOR)))
    return labels.get(label_key(MANAGED)) == "true" and launched_by == executor


def _split(lines: Iterable[LogLine], truncated: bool) -> Logs:
    lines = list(lines)
    stdout = "".join(f"{line.text}\n" for line in lines if line.stream == "stdout")
    stderr = "".join(f"{line.text}\n" for line in lines if line.stream == "stderr")
    return Logs(stdout=stdout, stderr=stderr, truncated=truncated)
