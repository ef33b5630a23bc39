"""The Fargate executor: jobs as ECS tasks on AWS Fargate, output in CloudWatch Logs."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from jobrelay import (
    Capabilities,
    Clock,
    ConfigError,
    Cost,
    Execution,
    ExecutorError,
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
from jobrelay import labels as jl
from jobrelay.backend import (
    ExecutorBase,
    duration_of,
    follow_logs,
    make_result,
    utc_from_epoch,
    wait_until_terminal,
)
from jobrelay_fargate._api import EcsApi
from jobrelay_fargate._config import Clients, Settings
from jobrelay_fargate._ids import (
    is_already_exists,
    is_task_not_found,
    task_id_of,
)
from jobrelay_fargate._launch import LaunchPlan, failure_text, plan_launch
from jobrelay_fargate._logs import LogReader
from jobrelay_fargate._pricing import Pricer, PriceTable
from jobrelay_fargate._sizing import MAX_CPU, MAX_MEMORY_MB, FargateSize
from jobrelay_fargate._status import CANCEL_REASON_PREFIX, task_status
from jobrelay_fargate._tags import managed_job_id, started_by, tags_to_dict
from jobrelay_fargate._taskdefs import CONTAINER_NAME, TaskDefinitionRegistry

if TYPE_CHECKING:
    import boto3.session

__all__ = ["FargateExecutor"]

logger = logging.getLogger("jobrelay.fargate")

# Retries of calls that are safe to repeat; RunTask is never repeated blindly.
_DEFAULT_RETRY = RetryPolicy(attempts=4, timeout=30.0, initial=0.2, maximum=5.0, jitter=0.2)


def _utc(value: object, default: datetime) -> datetime:
    return value.astimezone(timezone.utc) if isinstance(value, datetime) else default


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


class FargateExecutor(ExecutorBase):
    """Runs jobs as AWS Fargate tasks on an ECS cluster.

    Each distinct (image, entrypoint, working directory, size, log configuration,
    roles, architecture) gets one task definition, registered once and reused;
    command, environment and secrets travel as RunTask overrides (secrets as plain
    container environment: use a task role and a secret store for anything sensitive
    to ECS API readers). Output goes to CloudWatch Logs with the ``awslogs`` driver.

    Example::

        with FargateExecutor("jobs", ["subnet-0abc"], ["sg-0def"]) as fargate:
            execution = fargate.launch(JobSpec("busybox", "echo hi"))
            print(fargate.harvest(execution).logs.stdout)

    Args:
        cluster: ECS cluster name or ARN.
        subnets: subnets the tasks' network interfaces go in (at least one).
        security_groups: security groups for the tasks (empty: the VPC's default).
        assign_public_ip: give tasks a public IP (needed in public subnets without NAT
            to pull images from public registries).
        region: AWS region; default from the session / boto3's usual chain.
        endpoint_url: ECS and CloudWatch Logs endpoint override (tests, VPC endpoints).
        execution_role_arn: role the ECS agent uses to pull images and write logs.
        task_role_arn: role the job's code gets.
        log_group: CloudWatch log group (created on first launch when missing).
        log_stream_prefix: ``awslogs-stream-prefix``.
        capacity_provider: ``"FARGATE"`` or ``"FARGATE_SPOT"``.
        cpu_architecture: ``"X86_64"`` or ``"ARM64"`` (Graviton; images must be
            built for ``linux/arm64``).
        platform_version: Fargate platform version.
        family_prefix: start of the task definition families jobrelay makes.
        session: a ``boto3.session.Session``; credentials come from it.
        name: this executor's name (tags, routing).
        poll_interval: longest wait between polls in ``harvest`` and ``stream_logs``.
        missing_grace: seconds after launch during which a task DescribeTasks does not
            show yet is PENDING (ECS is eventually consistent) rather than LOST.
        retry: how calls that are safe to repeat (every read, StopTask, creating the
            log group, registering a task definition) are retried on throttling,
            5xx and connection trouble. RunTask is never repeated blindly: when its
            answer is lost, the task is looked up by the job's ``startedBy``.
        prices: price table replacing the one shipped (a mapping of its shape, or
            a TOML file); it must price this executor's region, capacity provider
            and architecture.
        clock: where time is read and waited (tests pass a ManualClock).
    """

    def __init__(
        self,
        cluster: str,
        subnets: Sequence[str],
        security_groups: Sequence[str],
        *,
        assign_public_ip: bool = False,
        region: str | None = None,
        endpoint_url: str | None = None,
        execution_role_arn: str | None = None,
        task_role_arn: str | None = None,
        log_group: str = "/jobrelay",
        log_stream_prefix: str = "jobrelay",
        capacity_provider: str = "FARGATE",
        cpu_architecture: str = "X86_64",
        platform_version: str = "LATEST",
        family_prefix: str = "jobrelay",
        session: boto3.session.Session | None = None,
        name: str = "fargate",
        poll_interval: float = 5.0,
        missing_grace: float = 60.0,
        retry: RetryPolicy | None = None,
        prices: Mapping[str, Any] | str | None = None,
        clock: Clock | None = None,
    ) -> None:
        settings = Settings.build(
            name=name,
            cluster=cluster,
            subnets=subnets,
            security_groups=security_groups,
            assign_public_ip=assign_public_ip,
            capacity_provider=capacity_provider,
            cpu_architecture=cpu_architecture,
            platform_version=platform_version,
            log_group=log_group,
            log_stream_prefix=log_stream_prefix,
            execution_role_arn=execution_role_arn,
            task_role_arn=task_role_arn,
            family_prefix=family_prefix,
            poll_interval=poll_interval,
            missing_grace=missing_grace,
        )
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigError(f"retry: must be a jobrelay RetryPolicy, got {type(retry).__name__}")
        table = PriceTable.load(prices)
        self.name = settings.name
        self.cluster = settings.cluster
        self.log_group = settings.log_group
        self.log_stream_prefix = settings.log_stream_prefix
        self._settings = settings
        self._network = settings.network
        self._retry = retry if retry is not None else _DEFAULT_RETRY
        self._clock: Clock = clock if clock is not None else SystemClock()
        clients = Clients.create(session, region=region, endpoint_url=endpoint_url)
        self.region = clients.region
        self._pricer = Pricer(
            table, self.region, settings.network.capacity_provider, settings.cpu_architecture
        )
        if prices is not None and self._pricer.row() is None:
            clients.close()
            raise ConfigError(
                f"prices: no row for region {self.region!r}, capacity provider "
                f"{self._network.capacity_provider!r}, architecture "
                f"{settings.cpu_architecture!r}"
            )
        self._clients = clients
        self._ecs = clients.ecs
        self._logs = clients.logs
        self._api = EcsApi(clients.ecs, self.cluster, self.name, self._retry)
        self._taskdefs = TaskDefinitionRegistry(
            ecs=self._ecs,
            cluster=self.cluster,
            family_prefix=settings.family_prefix,
            call=self._api.call,
        )
        self._log_group_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"FargateExecutor(name={self.name!r}, cluster={self.cluster!r}, region={self.region!r})"
        )

    # -- plumbing ------------------------------------------------------------------

    def _now(self) -> datetime:
        return utc_from_epoch(self._clock.time())

    def _reader(self, execution: Execution) -> LogReader | None:
        task_id = task_id_of(execution.execution_id)
        if task_id is None:
            return None
        group = execution.metadata.get("log_group")
        stream = execution.metadata.get("log_stream")
        return LogReader(
            logs=self._logs,
            group=group if isinstance(group, str) and group else self.log_group,
            stream=stream
            if isinstance(stream, str) and stream
            else f"{self.log_stream_prefix}/{CONTAINER_NAME}/{task_id}",
            call=self._api.call,
        )

    def _execution(
        self,
        job_id: str,
        task: Mapping[str, Any],
        launched_at: datetime,
        size: FargateSize | None = None,
        **extra: object,
    ) -> Execution:
        arn = str(task["taskArn"])
        task_id = task_id_of(arn) or arn.rsplit("/", 1)[-1]
        cpu_units = size.cpu_units if size is not None else _int(task.get("cpu"))
        memory_mb = size.memory_mb if size is not None else _int(task.get("memory"))
        return Execution(
            executor=self.name,
            execution_id=arn,
            job_id=job_id,
            launched_at=launched_at,
            metadata={
                "region": self.region,
                "cluster": self.cluster,
                "task_arn": arn,
                "task_definition_arn": task.get("taskDefinitionArn"),
                "started_by": task.get("startedBy"),
                "capacity_provider": task.get("capacityProviderName")
                or self._network.capacity_provider,
                "cpu_architecture": self._settings.cpu_architecture,
                "cpu_units": cpu_units,
                "memory_mb": memory_mb,
                "log_group": self.log_group,
                "log_stream": f"{self.log_stream_prefix}/{CONTAINER_NAME}/{task_id}",
                **extra,
            },
        )

    # -- launch --------------------------------------------------------------------

    def launch(self, job: JobSpec) -> Execution:
        """Start ``job`` as a Fargate task; the existing task for a known job id.

        Idempotent by job id: the task carries a ``startedBy`` and RunTask a
        ``clientToken`` derived from it, and a launch first looks for the job's task.
        When RunTask's answer is lost (connection dropped, 5xx, throttled after the
        fact), the task is looked up before anything else happens; if that look-up
        fails too, the outcome is unknown and ``TransientExecutorError`` is raised,
        so that the caller launches again (and finds the task) rather than forgets it.

        Raises:
            LaunchError: the job does not fit Fargate (checked before any API call),
                AWS refused it, or RunTask reported failures (AWS's reason included).
            TransientExecutorError: throttling, 5xx, connection trouble, or an
                unknown RunTask outcome; launch again with the same job.
        """
        plan = plan_launch(
            job,
            executor=self.name,
            log_group=self.log_group,
            log_region=self.region,
            log_stream_prefix=self.log_stream_prefix,
            execution_role_arn=self._settings.execution_role_arn,
            task_role_arn=self._settings.task_role_arn,
            cpu_architecture=self._settings.cpu_architecture,
        )
        existing = self._find(job.job_id, plan)
        if existing is not None:
            logger.info("job %s already runs as %s", job.job_id, existing.execution_id)
            return existing
        self._ensure_log_group(job.job_id)
        task_definition = self._retry.call(
            self._taskdefs.arn_for,
            plan.shape,
            call=functools.partial(self._api.call, job_id=job.job_id, launching=True, retry=False),
        )
        arguments = plan.run_task_arguments(
            cluster=self.cluster, task_definition=task_definition, network=self._network
        )
        launched_at = self._now()
        try:
            answer = self._api.call(
                "RunTask",
                self._ecs.run_task,
                job_id=job.job_id,
                launching=True,
                secrets=[value for value in job.secrets.values() if value],
                retry=False,
                **arguments,
            )
        except TransientExecutorError as unknown:
            return self._settle(job, plan, unknown)
        tasks = answer.get("tasks", [])
        if not tasks:
            raise LaunchError(
                f"fargate RunTask started no task: {failure_text(answer.get('failures', []))}",
                executor=self.name,
                job_id=job.job_id,
            )
        execution = self._execution(job.job_id, tasks[0], launched_at, plan.size)
        logger.info(
            "launched job %s as %s (%g vCPU, %d MiB)",
            job.job_id,
            execution.execution_id,
            plan.size.vcpu,
            plan.size.memory_mb,
        )
        return execution

    def _settle(self, job: JobSpec, plan: LaunchPlan, unknown: TransientExecutorError) -> Execution:
        """After a RunTask without a clear answer: return its task, or say it is unknown."""
        try:
            found = self._find(job.job_id, plan)
        except ExecutorError as lookup:
            raise TransientExecutorError(
                f"fargate RunTask outcome unknown for job {job.job_id} ({unknown}), and "
                f"looking its task up failed ({lookup}); launch it again to find it",
                executor=self.name,
                job_id=job.job_id,
            ) from lookup
        if found is None:
            # ECS shows no task: RunTask did not take effect. The retry sends the same
            # clientToken, so even a task ECS does not list yet is not started twice.
            raise unknown
        logger.warning(
            "RunTask's answer for job %s was lost; its task is %s",
            job.job_id,
            found.execution_id,
        )
        return found

    def _find(self, job_id: str, plan: LaunchPlan | None = None) -> Execution | None:
        """Return the task already started for ``job_id``, if ECS still knows it."""
        token = started_by(job_id)
        for desired in ("RUNNING", "STOPPED"):
            answer = self._api.call(
                "ListTasks",
                self._ecs.list_tasks,
                job_id=job_id,
                launching=True,
                cluster=self.cluster,
                startedBy=token,
                desiredStatus=desired,
            )
            arns = [str(arn) for arn in answer.get("taskArns", [])]
            if not arns:
                continue
            if len(arns) > 1:
                logger.warning("job %s has %d tasks; reporting %s", job_id, len(arns), arns[0])
            task = self._api.describe(arns[:1], job_id=job_id).get(arns[0])
            if task is None:
                continue
            launched_at = _utc(task.get("createdAt"), self._now())
            size = plan.size if plan is not None else None
            return self._execution(job_id, task, launched_at, size)
        return None

    def _ensure_log_group(self, job_id: str) -> None:
        with self._lock:
            if self._log_group_ready:
                return
        try:
            self._api.call(
                "CreateLogGroup",
                self._logs.create_log_group,
                tolerate=is_already_exists,
                job_id=job_id,
                launching=True,
                logGroupName=self.log_group,
            )
        except LaunchError as exc:
            # Often the caller may run tasks but not create log groups; the group
            # may exist anyway. If it does not, the task fails with AWS's reason.
            logger.warning("could not ensure log group %s: %s", self.log_group, exc)
        with self._lock:
            self._log_group_ready = True

    # -- status --------------------------------------------------------------------

    def status(self, execution: Execution) -> JobStatus:
        """Return the execution's status (``LOST`` once ECS no longer knows the task)."""
        return self.statuses([execution])[execution.execution_id]

    def statuses(self, executions: Iterable[Execution]) -> Mapping[str, JobStatus]:
        """Return statuses keyed by execution id: one DescribeTasks call per 100 tasks."""
        wanted = {execution.execution_id: execution for execution in executions}
        arns = [arn for arn in wanted if task_id_of(arn) is not None]
        found = self._api.describe(arns)
        return {
            execution_id: (
                task_status(found[execution_id])
                if execution_id in found
                else self._missing(execution)
            )
            for execution_id, execution in wanted.items()
        }

    def _missing(self, execution: Execution) -> JobStatus:
        age = self._clock.time() - execution.launched_at.timestamp()
        if task_id_of(execution.execution_id) is not None and age < self._settings.missing_grace:
            return JobStatus(JobState.PENDING, reason="not yet visible in DescribeTasks")
        return JobStatus(JobState.LOST, reason=f"ECS cluster {self.cluster!r} has no such task")

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the task to stop; return its final status, CloudWatch output and cost.

        An execution ECS does not know is ``LOST`` (never a success); its log stream
        is still read, since CloudWatch keeps output after ECS forgets a task. The
        cost is the task's Fargate size for the time it ran (see
        :meth:`estimate_cost`). A stopped task leaves nothing to clean up.
        """
        status = wait_until_terminal(
            lambda: self.status(execution),
            clock=self._clock,
            poll_interval=self._settings.poll_interval,
        )
        duration = duration_of(status)
        cost = self._pricer.for_run(execution.metadata, duration) if duration is not None else None
        return make_result(execution, status, self.logs(execution), cost=cost)

    # -- logs ----------------------------------------------------------------------

    def logs(self, execution: Execution, *, tail: int | None = None) -> Logs:
        """Return the output so far, all in ``stdout`` (CloudWatch merges the streams)."""
        reader = self._reader(execution)
        if reader is None:
            return Logs()
        events, truncated = reader.read(tail)
        return Logs(stdout="".join(f"{event.message}\n" for event in events), truncated=truncated)

    def stream_logs(self, execution: Execution) -> Iterator[LogLine]:
        """Yield output lines as CloudWatch receives them, until the task stops."""
        reader = self._reader(execution)
        if reader is None:
            return

        def fetch(token: str | None) -> tuple[list[LogLine], str | None]:
            events, token = reader.forward(token)
            return [LogLine("stdout", event.message, event.timestamp) for event in events], token

        yield from follow_logs(
            fetch,
            lambda: self.status(execution).is_terminal,
            clock=self._clock,
            poll_interval=self._settings.poll_interval,
        )

    # -- cancel and cleanup --------------------------------------------------------

    def cancel(self, execution: Execution) -> None:
        """Stop the task with a jobrelay reason; no-op if it is stopped or unknown."""
        self._stop(execution, "cancelled")

    def cleanup(self, execution: Execution) -> None:
        """Leave nothing running for ``execution``; idempotent.

        A Fargate task keeps nothing once stopped (its output stays in CloudWatch,
        under the log group's retention), so this only stops a task still running.
        """
        self._stop(execution, "cleaned up")

    def _stop(self, execution: Execution, why: str) -> None:
        arn = execution.execution_id
        if task_id_of(arn) is None:
            return
        task = self._api.describe([arn]).get(arn)
        if task is None or "STOPPED" in (task.get("lastStatus"), task.get("desiredStatus")):
            return
        self._api.call(
            "StopTask",
            self._ecs.stop_task,
            tolerate=is_task_not_found,
            job_id=execution.job_id,
            cluster=self.cluster,
            task=arn,
            reason=f"{CANCEL_REASON_PREFIX} {why} by executor {self.name!r}"[:255],
        )
        logger.info("stopped %s (%s)", arn, why)

    # -- reconcile and housekeeping ------------------------------------------------

    def list_managed(self) -> list[Execution]:
        """Return every task in the cluster jobrelay started under this executor's name.

        Running tasks and recently stopped ones (ECS shows those for about an hour),
        found through ListTasks and then filtered on ``startedBy`` and the
        ``jobrelay.managed`` / ``jobrelay.executor`` tags. Each execution's
        ``metadata["owner"]`` is its ``jobrelay.owner`` tag (None if it has none), so a
        Runner adopts only its own.
        """
        arns = [arn for desired in ("RUNNING", "STOPPED") for arn in self._api.task_arns(desired)]
        found = self._api.describe(list(dict.fromkeys(arns)), tags=True)
        executions = []
        for arn, task in found.items():
            job_id = managed_job_id(task, self.name)
            if job_id is not None:
                owner = tags_to_dict(task.get("tags")).get(jl.OWNER)
                launched_at = _utc(task.get("createdAt"), self._now())
                described = {**task, "taskArn": arn}
                executions.append(self._execution(job_id, described, launched_at, owner=owner))
        return executions

    def prune_task_definitions(self) -> list[str]:
        """Deregister the task definitions jobrelay made that no running task uses.

        Only families named ``<family_prefix>-<hash>`` and tagged by jobrelay are
        touched. Returns the deregistered ARNs.
        """
        return self._taskdefs.prune()

    # -- cost ----------------------------------------------------------------------

    def estimate_cost(self, job: JobSpec, duration_seconds: float) -> Cost | None:
        """Return what ``job`` costs on Fargate for ``duration_seconds``.

        Priced is what Fargate bills: the size the job rounds up to (the cheapest
        valid cpu/memory pair), per second rounded up, with a one-minute minimum, at
        the table's rate for this region, capacity provider and architecture. None
        when the job does not fit Fargate, the table has no such row, or the duration
        is not a number of seconds up to about 300 years.
        """
        return self._pricer.for_job(job, duration_seconds)

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Fargate's limits; CloudWatch does not keep stdout and stderr apart.

        Fargate has no platform retries (a Runner relaunches a failed job) and the
        executor prices jobs (:meth:`estimate_cost`).
        """
        return Capabilities(
            max_cpu=MAX_CPU,
            max_memory_mb=MAX_MEMORY_MB,
            max_gpu=0,
            resource_limits=True,
            networking=True,
            persistent_storage=False,
            secrets=False,
            log_split=False,
            log_streaming=True,
            cancel=True,
            list_managed=True,
            platform_retries=False,
            cost_estimate=True,
        )

    def health(self) -> Health:
        """DescribeClusters on the configured cluster, with short timeouts; never raises."""
        return self._clients.health(self.cluster)

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Close the AWS clients' connection pools."""
        self._clients.close()
