"""The Cloud Run and Cloud Logging calls one executor makes, each with its safeguards.

Every call gets the executor's deadline (the clients have no default timeout), goes
through the error table, and is retried by the executor's ``RetryPolicy`` when it is
idempotent; reads of the Admin API and of ``entries.list`` first take a slot from a
per-minute rate limiter shared by everything the executor does. Lists are read page by
page (one call each), never through the pagers' hidden extra calls.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from jobrelay import Clock, RetryPolicy
from jobrelay.backend import RateLimiter, lazy_import, paginate
from jobrelay_cloudrun._config import Clients
from jobrelay_cloudrun._errors import TABLE

if TYPE_CHECKING:
    import google.api_core.exceptions as api_exceptions
    from google.cloud import run_v2
else:
    api_exceptions = lazy_import("google.api_core.exceptions")
    run_v2 = lazy_import("google.cloud.run_v2")

__all__ = ["Api"]

T = TypeVar("T")
PAGE_SIZE = 1000


@attrs.define
class Api:
    """The calls, bound to one executor's clients, deadline, retries and limiters."""

    clients: Clients
    parent: str
    executor: str
    timeout: float
    retry: RetryPolicy
    reads: RateLimiter
    log_reads: RateLimiter

    @classmethod
    def create(
        cls,
        clients: Clients,
        *,
        parent: str,
        executor: str,
        timeout: float,
        retry: RetryPolicy,
        clock: Clock,
        reads_per_minute: int,
        logs_per_minute: int,
    ) -> Api:
        return cls(
            clients=clients,
            parent=parent,
            executor=executor,
            timeout=timeout,
            retry=retry,
            reads=RateLimiter(reads_per_minute, 60.0, clock=clock),
            log_reads=RateLimiter(logs_per_minute, 60.0, clock=clock),
        )

    def call(
        self,
        action: str,
        fn: Callable[..., T],
        /,
        *,
        job_id: str | None = None,
        launching: bool = False,
        secrets: Iterable[str] = (),
        read: bool = False,
        retry: bool = True,
        tolerate: tuple[type[api_exceptions.GoogleAPICallError], ...] = (),
        **kwargs: Any,
    ) -> T | None:
        """One call with its deadline, error mapping, rate limit and retries.

        ``tolerate`` lists errors that mean "already so": None is returned for them.
        """
        secrets = tuple(secrets)

        def once() -> T | None:
            if read:
                self.reads.acquire()
            with TABLE.mapped(
                action, executor=self.executor, job_id=job_id, launching=launching, secrets=secrets
            ):
                try:
                    return fn(timeout=self.timeout, **kwargs)
                except tolerate:
                    return None

        return self.retry.call(once) if retry else once()

    # -- jobs ------------------------------------------------------------------------

    def create_job(
        self, job_path: str, body: run_v2.Job, *, job_id: str, secrets: Iterable[str]
    ) -> bool:
        """CreateJob once, not retried here; False when the name already exists (409)."""
        answer = self.call(
            "CreateJob",
            self._create,
            job_id=job_id,
            launching=True,
            secrets=secrets,
            retry=False,
            tolerate=(api_exceptions.Conflict,),
            job=body,
            name=job_path.rsplit("/", 1)[1],
        )
        return answer is not None

    def _create(self, *, job: run_v2.Job, name: str, timeout: float) -> bool:
        self.clients.jobs.create_job(parent=self.parent, job=job, job_id=name, timeout=timeout)
        return True

    def get_job(
        self, name: str, *, job_id: str | None, launching: bool = False
    ) -> run_v2.Job | None:
        """GetJob; None when it does not exist."""
        return self.call(
            "GetJob",
            self.clients.jobs.get_job,
            job_id=job_id,
            launching=launching,
            read=True,
            tolerate=(api_exceptions.NotFound,),
            name=name,
        )

    def delete_job(self, name: str, *, job_id: str | None) -> None:
        """DeleteJob; already gone is fine."""
        self.call(
            "DeleteJob",
            self.clients.jobs.delete_job,
            job_id=job_id,
            tolerate=(api_exceptions.NotFound,),
            name=name,
        )

    def list_jobs(self) -> Iterable[run_v2.Job]:
        """Every job of the region, a page (1000) per call."""

        def fetch(token: str | None) -> tuple[list[run_v2.Job], str | None]:
            request = run_v2.ListJobsRequest(
                parent=self.parent, page_size=PAGE_SIZE, page_token=token or ""
            )
            pager = self.call("ListJobs", self.clients.jobs.list_jobs, read=True, request=request)
            page = next(iter(pager.pages)) if pager is not None else None
            return (list(page.jobs), page.next_page_token or None) if page else ([], None)

        return paginate(fetch)

    def probe(self, timeout: float) -> None:
        """One ListJobs page of one, with ``timeout``: the health check (raises)."""
        with TABLE.mapped("ListJobs", executor=self.executor):
            pager = self.clients.jobs.list_jobs(
                request=run_v2.ListJobsRequest(parent=self.parent, page_size=1), timeout=timeout
            )
            next(iter(pager.pages))

    # -- executions and tasks --------------------------------------------------------

    def get_execution(self, name: str, *, job_id: str | None) -> run_v2.Execution | None:
        """GetExecution; None when it does not exist."""
        return self.call(
            "GetExecution",
            self.clients.executions.get_execution,
            job_id=job_id,
            read=True,
            tolerate=(api_exceptions.NotFound,),
            name=name,
        )

    def list_executions(self) -> tuple[dict[str, run_v2.Execution], int]:
        """Every execution of the region (``jobs/-``) by name, and the pages it took."""
        pages = 0

        def fetch(token: str | None) -> tuple[list[run_v2.Execution], str | None]:
            nonlocal pages
            pages += 1
            request = run_v2.ListExecutionsRequest(
                parent=f"{self.parent}/jobs/-", page_size=PAGE_SIZE, page_token=token or ""
            )
            pager = self.call(
                "ListExecutions",
                self.clients.executions.list_executions,
                read=True,
                request=request,
            )
            page = next(iter(pager.pages)) if pager is not None else None
            return (list(page.executions), page.next_page_token or None) if page else ([], None)

        found = {record.name: record for record in paginate(fetch)}
        return found, pages

    def list_tasks(self, execution: str) -> list[run_v2.Task]:
        """The execution's tasks (one page: jobrelay runs one task per execution)."""
        pager = self.call(
            "ListTasks",
            self.clients.tasks.list_tasks,
            read=True,
            tolerate=(api_exceptions.NotFound,),
            parent=execution,
        )
        return list(next(iter(pager.pages)).tasks) if pager is not None else []

    def cancel_execution(self, name: str, *, job_id: str | None) -> None:
        """CancelExecution; already finished or gone is fine."""
        self.call(
            "CancelExecution",
            self.clients.executions.cancel_execution,
            job_id=job_id,
            tolerate=(api_exceptions.NotFound, api_exceptions.FailedPrecondition),
            name=name,
        )

    # -- logs --------------------------------------------------------------------------

    def list_entries(self, body: dict[str, Any]) -> Mapping[str, Any]:
        """One ``entries:list`` call, answered as JSON (entries parsed by the caller)."""

        def once() -> Mapping[str, Any]:
            self.log_reads.acquire()
            with TABLE.mapped("ListLogEntries", executor=self.executor):
                answer = self.clients.logging.logging_api.api_request(
                    method="POST", path="/entries:list", data=body, timeout=self.timeout
                )
            return answer if isinstance(answer, Mapping) else {}

        return self.retry.call(once)
