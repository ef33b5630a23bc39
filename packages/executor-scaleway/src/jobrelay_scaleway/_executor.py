"""The Scaleway executor: jobs as Serverless Jobs runs, output from Cockpit's Loki."""

from __future__ import annotations

import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from jobrelay import (
    Capabilities,
    Clock,
    Cost,
    Execution,
    ExecutorError,
    Health,
    JobResult,
    JobSpec,
    JobState,
    JobStatus,
    LogLine,
    Logs,
    RetryPolicy,
    SystemClock,
    TransientExecutorError,
)
from jobrelay.backend import (
    duration_of,
    lazy_import,
    make_result,
    probe_health,
    wait_until_terminal,
)
from jobrelay.labels import JOB_ID, OWNER
from jobrelay_scaleway._config import Settings, make_client
from jobrelay_scaleway._definitions import DefinitionRegistry
from jobrelay_scaleway._logs import DEFAULT_SELECTOR, RunOutput
from jobrelay_scaleway._plan import (
    MAX_MEMORY_MB,
    MAX_MVCPU,
    Plan,
    Size,
    owns,
    plan_launch,
    run_identity,
    size_for,
)
from jobrelay_scaleway._prices import PriceTable, load_prices
from jobrelay_scaleway._runs import KeyedLocks, runs_since
from jobrelay_scaleway._status import ACTIVE_STATES, run_status
from jobrelay_scaleway._transport import TABLE, Transport, status_of

if TYPE_CHECKING:
    import scaleway.cockpit.v1 as scw_cockpit  # type: ignore[import-untyped, unused-ignore]
    import scaleway.jobs.v1alpha2 as scw_jobs  # type: ignore[import-untyped, unused-ignore]
    import scaleway_core.api as scaleway_core_api
else:
    # The SDK is imported by the constructor, not by importing this package: a
    # Router that only lists this executor pays nothing for it.
    scw_cockpit = lazy_import("scaleway.cockpit.v1")
    scw_jobs = lazy_import("scaleway.jobs.v1alpha2")
    scaleway_core_api = lazy_import("scaleway_core.api")

__all__ = ["ScalewayExecutor"]

logger = logging.getLogger("jobrelay.scaleway")

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SWEEP_PAGES = 10
SWEEP_SLACK = timedelta(minutes=2)
REMEMBER = 10_000
T = TypeVar("T")


class ScalewayExecutor:
    """Runs jobs on Scaleway Serverless Jobs (API ``v1alpha2``, official ``scaleway`` SDK).

    Jobs of one shape share a job definition; each launch is a ``StartJobDefinition``
    whose overrides carry the job's command, arguments and environment, plus
    ``JOBRELAY_LABELS`` (jobrelay's identity: Scaleway has no labels). Output is read
    from Cockpit's Loki, all of it as stdout.

    Example::

        with ScalewayExecutor(logs_token="...") as scaleway:
            execution = scaleway.launch(JobSpec("busybox", "echo hi"))
            print(scaleway.harvest(execution).logs.stdout)

    Args:
        project_id: the Scaleway project; default ``SCW_DEFAULT_PROJECT_ID`` / scw config.
        region: ``fr-par``, ``nl-ams`` or ``pl-waw``.
        access_key: API access key; default ``SCW_ACCESS_KEY`` / scw config.
        secret_key: API secret key; default ``SCW_SECRET_KEY`` / scw config.
        api_url: API base URL (``http://127.0.0.1:PORT`` for a local fake).
        logs_url: Cockpit Loki URL; default: the project's Scaleway logs data source,
            found through the Cockpit API on first use.
        logs_token: a Cockpit token allowed to query logs; without one, logs are empty.
        local_storage_mb: ephemeral storage of every run (MiB, at most 10240).
        poll_interval: seconds between polls in ``harvest`` and ``stream_logs``.
        name: this executor's name (identity, routing).
        clock: where time is waited (tests pass a ManualClock).
        prices: price table override: a mapping or a TOML file (see ``prices.toml``).
        timeout: seconds any API call may wait for the server.
        health_timeout: seconds the ``health()`` call may take.
        log_grace: seconds after a run's end during which Loki may still receive its
            lines; ``harvest`` waits out the rest of it once.
        idempotency_window: how far back (seconds) a launch looks for a run of the
            same job id (default one day, the longest a run may last).
        retry: the policy for transient errors of reads, stops and whole launches.
        logs_selector: LogQL selector of one run's lines (``$run_id``,
            ``$definition_id``, ``$definition_name``).
        definition_prefix: start of the names of the definitions jobrelay makes.
    """

    def __init__(
        self,
        project_id: str | None = None,
        region: str = "fr-par",
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        api_url: str | None = None,
        logs_url: str | None = None,
        logs_token: str | None = None,
        local_storage_mb: int = 1024,
        poll_interval: float = 5.0,
        name: str = "scaleway",
        clock: Clock | None = None,
        prices: Mapping[str, Any] | str | Path | None = None,
        timeout: float = 30.0,
        health_timeout: float = 5.0,
        log_grace: float = 5.0,
        idempotency_window: float = 86_400.0,
        retry: RetryPolicy | None = None,
        logs_selector: str = DEFAULT_SELECTOR,
        definition_prefix: str = "jobrelay",
    ) -> None:
        settings = Settings.build(
            name=name,
            region=region,
            project_id=project_id,
            access_key=access_key,
            secret_key=secret_key,
            api_url=api_url,
            logs_url=logs_url,
            logs_token=logs_token,
            local_storage_mb=local_storage_mb,
            poll_interval=poll_interval,
            timeout=timeout,
            health_timeout=health_timeout,
            log_grace=log_grace,
            idempotency_window=idempotency_window,
            definition_prefix=definition_prefix,
        )
        self._prices: PriceTable = load_prices(prices, settings.region)
        self.name = settings.name
        self.region = settings.region
        self.project_id = settings.project_id
        self._settings = settings
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._retry = retry if retry is not None else RetryPolicy(attempts=4, timeout=60.0)
        client = make_client(settings)
        self._transport = Transport(settings.timeout)
        self._health_transport = Transport(settings.health_timeout)
        self._jobs = self._transport.bind(scw_jobs.JobsV1Alpha2API(client))
        self._health_jobs = self._health_transport.bind(scw_jobs.JobsV1Alpha2API(client))
        self._cockpit = self._transport.bind(scw_cockpit.CockpitV1RegionalAPI(client))
        self._definitions = DefinitionRegistry(
            api=self._jobs,
            project_id=settings.project_id,
            executor=self.name,
            prefix=settings.definition_prefix,
            local_storage_mb=settings.local_storage_mb,
        )
        self._lock = threading.Lock()
        self._job_locks = KeyedLocks()
        # What this process launched, most recent REMEMBER jobs: the executions (a
        # relaunch costs no call) and the secrets (Scaleway may echo them later).
        self._launched: OrderedDict[str, Execution] = OrderedDict()
        self._job_secrets: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._output = RunOutput(
            session=self._transport.session,
            url=settings.logs_url,
            discover=self._discover_logs_url,
            token=settings.logs_token,
            timeout=settings.timeout,
            selector=logs_selector,
            call=lambda send: self._call("QueryRange", send),
            clock=self._clock,
            poll_interval=settings.poll_interval,
        )
        self.sweep_calls = 0
        """API calls the last :meth:`statuses` made."""

    def __repr__(self) -> str:
        return (
            f"ScalewayExecutor(name={self.name!r}, region={self.region!r}, "
            f"project_id={self.project_id!r})"
        )

    # -- plumbing ------------------------------------------------------------------

    def _call(
        self,
        action: str,
        method: Callable[..., Any],
        *,
        job_id: str | None = None,
        launching: bool = False,
        secrets: Iterable[str] = (),
        tolerate: Iterable[int] = (),
        retry: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Make one SDK call with jobrelay's errors; None for a tolerated HTTP status."""
        known = self._job_secrets.get(job_id, ()) if job_id is not None else ()
        hidden = (*self._settings.secrets, *known, *secrets)
        allowed = set(tolerate)

        def once() -> Any:
            with TABLE.mapped(
                action, executor=self.name, job_id=job_id, launching=launching, secrets=hidden
            ):
                try:
                    return method(**kwargs)
                except scaleway_core_api.ScalewayException as exc:
                    if status_of(exc) in allowed:
                        return None
                    raise

        return self._retry.call(once) if retry else once()

    def _count(self, action: str, method: Callable[..., Any], **kwargs: Any) -> Any:
        self.sweep_calls += 1
        return self._call(action, method, **kwargs)

    def _execution(self, job_id: str, run: Any, plan: Plan | None = None) -> Execution:
        """The execution of ``run``; its owner is the one its ``JOBRELAY_LABELS`` names."""
        plan_size = plan.size if plan is not None else None
        owner = run_identity(run.environment_variables).get(OWNER)
        if owner is None and plan is not None:
            owner = plan.owner
        created = run.created_at or datetime.now(timezone.utc)
        if created.tzinfo is None:
            created = created.replace(tzinfo=timezone.utc)
        return Execution(
            executor=self.name,
            execution_id=str(run.id),
            job_id=job_id,
            launched_at=created,
            metadata={
                "region": self.region,
                "project_id": self.project_id,
                "job_definition_id": str(run.job_definition_id),
                "job_run_id": str(run.id),
                "cpu_mvcpu": int(run.cpu_limit or (plan_size.mvcpu if plan_size else 0)),
                "memory_mb": int(run.memory_limit or (plan_size.memory_mb if plan_size else 0)),
                "owner": owner,
            },
        )

    # -- launch --------------------------------------------------------------------

    def launch(self, job: JobSpec) -> Execution:
        """Start ``job`` as a Serverless Jobs run; the existing run for a known job id.

        Launches of one job id are serialised within this process, and each looks for
        a run of the job's definition carrying the job id before it starts one, so a
        retried launch (a lost reply included) finds the run it already started.

        Raises:
            LaunchError: the job does not fit (checked before any call), or Scaleway
                refused it (400, 403, quota, a 404 on create), with Scaleway's message.
            TransientExecutorError: 429, 5xx, connection trouble or a deadline, still
                failing after this executor's retries.
        """
        plan = plan_launch(
            job, executor=self.name, local_storage_mb=self._settings.local_storage_mb
        )
        if plan.secrets:
            with self._lock:
                _remember(self._job_secrets, job.job_id, plan.secrets)
        with self._job_locks.hold(job.job_id):
            with self._lock:
                known = self._launched.get(job.job_id)
            if known is not None:
                return known
            execution: Execution = self._retry.call(self._launch_once, job, plan)
            with self._lock:
                _remember(self._launched, job.job_id, execution)
            return execution

    def _launch_once(self, job: JobSpec, plan: Plan) -> Execution:
        def call(action: str, method: Callable[..., Any], **kwargs: Any) -> Any:
            return self._call(
                action,
                method,
                job_id=job.job_id,
                launching=True,
                secrets=plan.secrets,
                retry=False,
                **kwargs,
            )

        definition_ids = self._definitions.ids_for(plan, call=call)
        existing = self._find_run(job.job_id, definition_ids, call=call)
        if existing is not None:
            logger.info("job %s already runs as %s", job.job_id, existing.id)
            return self._execution(job.job_id, existing, plan)
        answer = call(
            "StartJobDefinition",
            self._jobs.start_job_definition,
            tolerate=(404,),
            job_definition_id=definition_ids[0],
            startup_command=plan.startup_command,
            args=plan.args,
            environment_variables=plan.environment,
        )
        if answer is None:
            # Someone pruned the definition: the retry makes it again.
            self._definitions.forget(plan)
            raise TransientExecutorError(
                f"scaleway job definition {definition_ids[0]} is gone",
                executor=self.name,
                job_id=job.job_id,
            )
        runs = list(answer.job_runs or [])
        if not runs or not runs[0].id:
            # Retrying is safe: the retry looks for the run before starting one.
            raise TransientExecutorError(
                "scaleway StartJobDefinition answered no job run",
                executor=self.name,
                job_id=job.job_id,
            )
        execution = self._execution(job.job_id, runs[0], plan)
        logger.info(
            "launched job %s as run %s (%d mvCPU, %d MiB)",
            job.job_id,
            execution.execution_id,
            plan.size.mvcpu,
            plan.size.memory_mb,
        )
        return execution

    def _find_run(
        self, job_id: str, definition_ids: Iterable[str], *, call: Callable[..., Any]
    ) -> Any | None:
        """Return the newest run of these definitions carrying ``job_id``, if recent."""
        since = datetime.now(timezone.utc) - timedelta(seconds=self._settings.idempotency_window)
        for definition_id in definition_ids:
            for run in runs_since(self._jobs, self.project_id, definition_id, since, call=call):
                if owns(run_identity(run.environment_variables), self.name, job_id):
                    return run
        return None

    # -- status --------------------------------------------------------------------

    def status(self, execution: Execution) -> JobStatus:
        """Return the run's status (``LOST`` when Scaleway does not know it)."""
        run_id = execution.execution_id
        if not _UUID.match(run_id):
            return _lost(run_id)
        run = self._call(
            "GetJobRun",
            self._jobs.get_job_run,
            job_id=execution.job_id,
            tolerate=(404,),
            job_run_id=run_id,
        )
        return _lost(run_id) if run is None else run_status(run)

    def statuses(self, executions: Iterable[Execution]) -> Mapping[str, JobStatus]:
        """Return statuses keyed by run id, from ListJobRuns pages rather than a call per run.

        Runs are listed newest first (filtered by definition when all share one),
        100 per page, back to the oldest execution asked about; a run not seen there
        is asked for with GetJobRun. :attr:`sweep_calls` holds the calls it took.
        """
        self.sweep_calls = 0
        wanted = {execution.execution_id: execution for execution in executions}
        found: dict[str, JobStatus] = {
            run_id: _lost(run_id) for run_id in wanted if not _UUID.match(run_id)
        }
        pending = {run_id: e for run_id, e in wanted.items() if run_id not in found}
        if pending:
            definitions = {e.metadata.get("job_definition_id") for e in pending.values()}
            definition = definitions.pop() if len(definitions) == 1 else None
            since = min(e.launched_at for e in pending.values()) - SWEEP_SLACK
            pages = 0

            def call(action: str, method: Callable[..., Any], **kwargs: Any) -> Any:
                nonlocal pages
                pages += 1
                return self._count(action, method, **kwargs)

            of_definition = definition if isinstance(definition, str) else None
            for run in runs_since(self._jobs, self.project_id, of_definition, since, call=call):
                if str(run.id) in pending:
                    found[str(run.id)] = run_status(run)
                if len(found) == len(wanted) or pages >= SWEEP_PAGES:
                    break
            for run_id, execution in pending.items():
                if run_id not in found:
                    run = self._count(
                        "GetJobRun",
                        self._jobs.get_job_run,
                        job_id=execution.job_id,
                        tolerate=(404,),
                        job_run_id=run_id,
                    )
                    found[run_id] = _lost(run_id) if run is None else run_status(run)
        logger.debug("status sweep of %d runs took %d calls", len(wanted), self.sweep_calls)
        return {run_id: found[run_id] for run_id in wanted}

    def harvest(self, execution: Execution) -> JobResult:
        """Wait for the run to end; return its final status, its output and its cost.

        Lines reach Loki a little after the run ends: when the run ended less than
        ``log_grace`` seconds ago, the rest of that grace is waited out once first.
        """
        status = wait_until_terminal(
            lambda: self.status(execution),
            clock=self._clock,
            poll_interval=self._settings.poll_interval,
        )
        if status.finished_at is not None:
            ended = (datetime.now(timezone.utc) - status.finished_at).total_seconds()
            if ended < self._settings.log_grace:
                self._clock.sleep(self._settings.log_grace - max(ended, 0.0))
        logs = self.logs(execution)
        cost = self._run_cost(execution, duration_of(status))
        return make_result(execution, status, logs, cost=cost)

    # -- logs ----------------------------------------------------------------------

    def _discover_logs_url(self) -> str:
        answer = self._call(
            "ListDataSources",
            self._cockpit.list_data_sources,
            project_id=self.project_id,
            types=["logs"],
            origin="scaleway",
        )
        for source in answer.data_sources or []:
            if source.url:
                return str(source.url).rstrip("/")
        raise ExecutorError(
            f"scaleway: project {self.project_id} has no Cockpit logs data source in "
            f"{self.region}; pass logs_url=",
            executor=self.name,
        )

    def logs(self, execution: Execution, *, tail: int | None = None) -> Logs:
        """Return the run's output so far, all in ``stdout`` (Loki does not split it)."""
        if not _UUID.match(execution.execution_id):
            return Logs()
        return self._output.logs(execution, tail=tail)

    def stream_logs(self, execution: Execution) -> Iterator[LogLine]:
        """Yield output lines as Loki receives them, until the run ends."""
        if not _UUID.match(execution.execution_id):
            return iter(())
        return self._output.stream(execution, lambda: self.status(execution).is_terminal)

    # -- cancel and cleanup --------------------------------------------------------

    def cancel(self, execution: Execution) -> None:
        """Stop the run (``StopJobRun``); nothing happens if it ended or is unknown."""
        status = self.status(execution)
        if status.is_terminal or status.reason == "interrupting":
            return
        self._call(
            "StopJobRun",
            self._jobs.stop_job_run,
            job_id=execution.job_id,
            tolerate=(404, 409, 412),
            job_run_id=execution.execution_id,
        )
        logger.info("stopped run %s of job %s", execution.execution_id, execution.job_id)

    def cleanup(self, execution: Execution) -> None:
        """Leave nothing running for ``execution``; idempotent.

        A run keeps nothing once it has ended (Scaleway keeps its record 60 days); the
        definition is shared with other jobs of its shape, so it stays (see
        :meth:`prune_definitions`).
        """
        self.cancel(execution)

    # -- reconcile and housekeeping ------------------------------------------------

    def list_managed(self) -> list[Execution]:
        """Return the runs this executor started within ``idempotency_window``.

        Found through the definitions jobrelay made (name prefix and description),
        then each run's ``JOBRELAY_LABELS``: runs of other tools are never returned.
        """
        since = datetime.now(timezone.utc) - timedelta(seconds=self._settings.idempotency_window)
        executions = []
        for definition in list(self._definitions.managed(call=self._call)):
            for run in runs_since(
                self._jobs, self.project_id, str(definition.id), since, call=self._call
            ):
                labels = run_identity(run.environment_variables)
                if owns(labels, self.name):
                    executions.append(self._execution(labels[JOB_ID], run))
        return executions

    def prune_definitions(self) -> list[str]:
        """Delete the definitions this executor made that no active run uses.

        Returns the deleted ids. A launch in another process that picked a pruned
        definition gets a 404 and makes it again.
        """
        deleted = []
        for definition in list(self._definitions.managed(call=self._call)):
            active = self._call(
                "ListJobRuns",
                self._jobs.list_job_runs,
                project_id=self.project_id,
                job_definition_id=str(definition.id),
                states=list(ACTIVE_STATES),
                page_size=1,
            )
            if active.job_runs:
                continue
            self._call(
                "DeleteJobDefinition",
                self._jobs.delete_job_definition,
                tolerate=(404,),
                job_definition_id=str(definition.id),
            )
            self._definitions.forget_id(str(definition.id))
            deleted.append(str(definition.id))
        return deleted

    # -- cost ----------------------------------------------------------------------

    def estimate_cost(self, job: JobSpec, duration_seconds: float) -> Cost | None:
        """Price ``job`` for ``duration_seconds`` at the size Scaleway gives it.

        cpu and memory are rounded up as at launch (whole mvCPU, at least 70; whole
        MiB, at least 128); None for a job Serverless Jobs cannot run.
        """
        if job.resources.gpu:
            return None
        size = size_for(job.resources.cpu, job.resources.memory_mb)
        return None if size is None else self._prices.estimate(size, duration_seconds)

    def _run_cost(self, execution: Execution, duration: float | None) -> Cost | None:
        mvcpu = execution.metadata.get("cpu_mvcpu")
        memory = execution.metadata.get("memory_mb")
        if duration is None or not isinstance(mvcpu, int) or not isinstance(memory, int):
            return None
        if not mvcpu or not memory:
            return None
        return self._prices.estimate(Size(mvcpu, memory), duration)

    # -- description ---------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        """Serverless Jobs' limits; Loki does not keep stdout and stderr apart."""
        return Capabilities(
            max_cpu=MAX_MVCPU / 1000,
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
            platform_retries=True,
            cost_estimate=True,
        )

    def health(self) -> Health:
        """One ListJobDefinitions call (page size 1) with a short deadline; never raises."""
        return probe_health(
            lambda: self._call(
                "ListJobDefinitions",
                self._health_jobs.list_job_definitions,
                retry=False,
                project_id=self.project_id,
                page_size=1,
            ),
            answered=f"Serverless Jobs answered in {self.region}",
        )

    # -- lifetime ------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        self._transport.close()
        self._health_transport.close()

    def __enter__(self) -> ScalewayExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _remember(memory: OrderedDict[str, T], key: str, value: T) -> None:
    memory[key] = value
    memory.move_to_end(key)
    while len(memory) > REMEMBER:
        memory.popitem(last=False)


def _lost(run_id: str) -> JobStatus:
    return JobStatus(JobState.LOST, reason=f"Serverless Jobs has no run {run_id!r}")
