"""The Fargate executor: jobs as ECS tasks on AWS Fargate, output in CloudWatch Logs."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from jobrelay import (
    Capabilities,
    Clock,
    Execution,
    Health,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    LaunchError,
    LogLine,
    Logs,
    SystemClock,
)
from jobrelay_fargate._config import Clients, Settings
from jobrelay_fargate._errors import translate
from jobrelay_fargate._ids import (
    DESCRIBE_BATCH,
    chunks,
    is_already_exists,
    is_task_not_found,
    task_id_of,
)
from jobrelay_fargate._launch import failure_text, plan_launch
from jobrelay_fargate._logs import LogReader
from jobrelay_fargate._sizing import MAX_CPU, MAX_MEMORY_MB
from jobrelay_fargate._status import CANCEL_REASON_PREFIX, task_status
from jobrelay_fargate._tags import managed_job_id, started_by
from jobrelay_fargate._taskdefs import CONTAINER_NAME, TaskDefinitionRegistry

__all__ = ["FargateExecutor"]

logger = logging.getLogger("jobrelay.fargate")


class FargateExecutor:
    """Runs jobs as AWS Fargate tasks on an ECS cluster.

    Each distinct (image, entrypoint, working directory, size, log configuration,
    roles) gets one task definition, registered once and reused; command,
    environment and secrets travel as RunTask overrides (secrets as plain container
    environment: use a task role and a secret store for anything sensitive to ECS
    API readers). Output goes to CloudWatch Logs with the ``awslogs`` driver.

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
        platform_version: Fargate platform version.
        family_prefix: start of the task definition families jobrelay makes.
        session: a ``boto3.session.Session``; credentials come from it.
        name: this executor's name (tags, routing).
        poll_interval: seconds between polls in ``harvest`` and ``stream_logs``.
        missing_grace: seconds after launch during which a task DescribeTasks does not
            show yet is PENDING (ECS is eventually consistent) rather than LOST.
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
        platform_version: str = "LATEST",
        family_prefix: str = "jobrelay",
        session: boto3.session.Session | None = None,
        name: str = "fargate",
        poll_interval: float = 5.0,
        missing_grace: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        settings = Settings.build(
            name=name,
            cluster=cluster,
            subnets=subnets,
            security_groups=security_groups,
            assign_public_ip=assign_public_ip,
            capacity_provider=capacity_provider,
            platform_version=platform_version,
            log_group=log_group,
            log_stream_prefix=log_stream_prefix,
            execution_role_arn=execution_role_arn,
            task_role_arn=task_role_arn,
            family_prefix=family_prefix,
            poll_interval=poll_interval,
            missing_grace=missing_grace,
        )
        self.name = settings.name
        self.cluster = settings.cluster
        self.log_group = settings.log_group
        self.log_stream_prefix = settings.log_stream_prefix
        self._settings = settings
        self._network = settings.network
        self._clock: Clock = clock if clock is not None else SystemClock()
        clients = Clients.create(session, region=region, endpoint_url=endpoint_url)
        self._ecs = clients.ecs
        self._logs = clients.logs
        self._health_ecs = clients.health_ecs
        self.region = clients.region
        self._taskdefs = TaskDefinitionRegistry(
            ecs=self._ecs,
            cluster=self.cluster,
            family_prefix=settings.family_prefix,
            call=self._call,
        )
        self._log_group_ready = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"FargateExecutor(name={self.name!r}, cluster={self.cluster!r}, region={self.region!r})"
        )

    # -- plumbing ------------------------------------------------------------------

    def _call(
        self,
        action: str,
        method: Callable[..., Any],
        *,
        tolerate: Callable[[ClientError], bool] | None = None,
        job_id: str | None = None,
        launch: bool = False,
        secrets: Iterable[str] = (),
        **kwargs: Any,
    ) -> Any:
        """Make one API call; translate failures; None for a tolerated ClientError."""
        try:
            return method(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            if tolerate is not None and isinstance(exc, ClientError) and tolerate(exc):
                return None
            error = translate(
                exc,
                action=action,
                executor=self.name,
                job_id=job_id,
                launch=launch,
                secrets=secrets,
            )
            if secrets:
                # The original may echo request values, secrets among them: not chained.
                raise error from None
            raise error from exc

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.time(), tz=timezone.utc)

    def _describe(
        self, arns: Sequence[str], *, tags: bool = False, job_id: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Describe tasks by ARN, 100 per call (LaunchError on failure during a launch)."""
        found: dict[str, dict[str, Any]] = {}
        for batch in chunks(arns, DESCRIBE_BATCH):
            kwargs: dict[str, Any] = {"cluster": self.cluster, "tasks": list(batch)}
            if tags:
                kwargs["include"] = ["TAGS"]
            answer = self._call(
                "DescribeTasks",
                self._ecs.describe_tasks,
                job_id=job_id,
                launch=job_id is not None,
                **kwargs,
            )
            for task in answer.get("tasks", []):
                found[str(task["taskArn"])] = task
        return found

    def _log_stream(self, execution: Execution, task_id: str) -> str:
        stream = execution.metadata.get("log_stream")
        if isinstance(stream, str) and stream:
            return stream
        return f"{self.log_stream_prefix}/{CONTAINER_NAME}/{task_id}"

    def _reader(self, execution: Execution) -> LogReader | None:
        task_id = task_id_of(execution.execution_id)
        if task_id is None:
            return None
        group = execution.metadata.get("log_group")
        return LogReader(
            logs=self._logs,
            group=group if isinstance(group, str) and group else self.log_group,
            stream=self._log_stream(execution, task_id),
            call=self._call,
        )

    def _execution(self, job_id: str, task: Mapping[str, Any], launched_at: datetime) -> Execution:
        arn = str(task["taskArn"])
        task_id = task_id_of(arn) or arn.rsplit("/", 1)[-1]
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
                "capacity_provider": self._network.capacity_provider,
                "log_group": self.log_group,
                "log_stream": f"{self.log_stream_prefix}/{CONTAINER_NAME}/{task_id}",
            },
        )

    # -- launch --------------------------------------------------------------------

    def launch(self, job: JobSpec) -> Execution:
        """Start ``job`` as a Fargate task; the existing task for a known job id.

        Raises:
            LaunchError: the job does not fit Fargate (checked before any API call),
                AWS refused it, or RunTask reported failures (AWS's reason included).
            TransientExecutorError: throttling, 5xx, connection trouble; retry it.
        """
        plan = plan_launch(
            job,
            executor=self.name,
            log_group=self.log_group,
            log_region=self.region,
            log_stream_prefix=self.log_stream_prefix,
            execution_role_arn=self._settings.execution_role_arn,
            task_role_arn=self._settings.task_role_arn,
        )
        existing = self._find(job.job_id)
        if existing is not None:
            logger.info("job %s already runs as %s", job.job_id, existing.execution_id)
            return existing
        secrets = tuple(value for value in job.secrets.values() if value)
        self._ensure_log_group(job.job_id)
        task_definition = self._taskdefs.arn_for(
            plan.shape, call=functools.partial(self._call, job_id=job.job_id, launch=True)
        )
        arguments = plan.run_task_arguments(
            cluster=self.cluster, task_definition=task_definition, network=self._network
        )
        launched_at = self._now()
        answer = self._call(
            "RunTask",
            self._ecs.run_task,
            job_id=job.job_id,
            launch=True,
            secrets=secrets,
            **arguments,
        )
        tasks = answer.get("tasks", [])
        if not tasks:
            raise LaunchError(
                f"fargate RunTask started no task: {failure_text(answer.get('failures', []))}",
                executor=self.name,
                job_id=job.job_id,
            )
        execution = self._execution(job.job_id, tasks[0], launched_at)
        logger.info(
            "launched job %s as %s (%g vCPU, %d MiB)",
            job.job_id,
            execution.execution_id,
            plan.size.vcpu,
            plan.size.memory_mb,
        )
        return execution

    def _find(self, job_id: str) -> Execution | None:
        """Return the task already started for ``job_id``, if ECS still knows it."""
        token = started_by(job_id)
        for desired in ("RUNNING", "STOPPED"):
            answer = self._call(
                "ListTasks",
                self._ecs.list_tasks,
                job_id=job_id,
                launch=True,
                cluster=self.cluster,
                startedBy=token,
                desiredStatus=desired,
            )
            arns = [str(arn) for arn in answer.get("taskArns", [])]
            if not arns:
                continue
            if len(arns) > 1:
                logger.warning("job %s has %d tasks; reporting %s", job_id, len(arns), arns[0])
            task = self._describe(arns[:1], job_id=job_id).get(arns[0])
            if task is None:
                continue
            created = task.get("createdAt")
            launched_at = created if isinstance(created, datetime) else self._now()
            return self._execution(job_id, task, launched_at.astimezone(timezone.utc))
        return None

    def _ensure_log_group(self, job_id: str) -> None:
        with self._lock:
            if self._log_group_ready:
                return
        try:
            self._call(
                "CreateLogGroup",
                self._logs.create_log_group,
                tolerate=is_already_exists,
                job_id=job_id,
                launch=True,
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
        found = self._describe(arns)
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

    def _wait(self, execution: Execution) -> JobStatus:
        status = self.status(execution)
        while not status.is_terminal:
            self._clock.sleep(self._settings.poll_interval)
            status = self.status(execution)
        return status

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the task to stop; return its final status and CloudWatch output.

        An execution ECS does not know is ``LOST`` (never a success); its log stream
        is still read, since CloudWatch keeps output after ECS forgets a task.
        """
        status = self._wait(execution)
        logs = self.logs(execution)
        duration = None
        if status.started_at is not None and status.finished_at is not None:
            duration = max((status.finished_at - status.started_at).total_seconds(), 0.0)
        return JobResult(execution=execution, status=status, logs=logs, duration=duration)

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
        done = lambda: self.status(execution).is_terminal  # noqa: E731
        wait = lambda: self._clock.sleep(self._settings.poll_interval)  # noqa: E731
        for event in reader.follow(done, wait):
            yield LogLine("stdout", event.message, event.timestamp)

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
        task = self._describe([arn]).get(arn)
        if task is None or "STOPPED" in (task.get("lastStatus"), task.get("desiredStatus")):
            return
        self._call(
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
        ``jobrelay.managed`` / ``jobrelay.executor`` tags.
        """
        arns: list[str] = []
        for desired in ("RUNNING", "STOPPED"):
            token: str | None = None
            while True:
                kwargs: dict[str, Any] = {
                    "cluster": self.cluster,
                    "desiredStatus": desired,
                    "maxResults": 100,
                }
                if token:
                    kwargs["nextToken"] = token
                answer = self._call("ListTasks", self._ecs.list_tasks, **kwargs)
                arns.extend(str(arn) for arn in answer.get("taskArns", []))
                token = answer.get("nextToken")
                if not token:
                    break
        found = self._describe(list(dict.fromkeys(arns)), tags=True)
        executions = []
        for arn, task in found.items():
            job_id = managed_job_id(task, self.name)
            if job_id is None:
                continue
            created = task.get("createdAt")
            launched_at = (
                created.astimezone(timezone.utc) if isinstance(created, datetime) else self._now()
            )
            executions.append(self._execution(job_id, {**task, "taskArn": arn}, launched_at))
        return executions

    def prune_task_definitions(self) -> list[str]:
        """Deregister the task definitions jobrelay made that no running task uses.

        Only families named ``<family_prefix>-<hash>`` and tagged by jobrelay are
        touched. Returns the deregistered ARNs.
        """
        return self._taskdefs.prune()

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Fargate's limits; CloudWatch does not keep stdout and stderr apart."""
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
        )

    def health(self) -> Health:
        """DescribeClusters on the configured cluster, with short timeouts; never raises."""
        started = time.monotonic()
        try:
            answer = self._health_ecs.describe_clusters(clusters=[self.cluster])
        except (ClientError, BotoCoreError) as exc:
            return Health(
                healthy=False,
                latency=time.monotonic() - started,
                detail=f"DescribeClusters failed: {exc}",
            )
        latency = time.monotonic() - started
        clusters = answer.get("clusters", [])
        if not clusters:
            reasons = ", ".join(str(f.get("reason")) for f in answer.get("failures", []))
            detail = f"cluster {self.cluster!r} not found ({reasons or 'no answer'})"
            return Health(healthy=False, latency=latency, detail=detail)
        state = str(clusters[0].get("status", ""))
        if state != "ACTIVE":
            return Health(
                healthy=False, latency=latency, detail=f"cluster {self.cluster!r} is {state}"
            )
        return Health(
            healthy=True,
            latency=latency,
            detail=f"cluster {self.cluster!r} is ACTIVE in {self.region}",
        )

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Close the AWS clients' connection pools."""
        for client in (self._ecs, self._logs, self._health_ecs):
            client.close()

    def __enter__(self) -> FargateExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
