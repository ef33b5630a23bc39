"""ECS calls as the executor makes them: retried where safe, translated, batched, paged."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay import RetryPolicy
from jobrelay.backend import lazy_import, paginate
from jobrelay_fargate._errors import TABLE
from jobrelay_fargate._ids import DESCRIBE_BATCH, chunks

if TYPE_CHECKING:
    import botocore.exceptions as botocore_exceptions
    from botocore.exceptions import ClientError
else:
    botocore_exceptions = lazy_import("botocore.exceptions")

__all__ = ["EcsApi"]


@attrs.frozen
class EcsApi:
    """One executor's way of calling AWS.

    Args:
        ecs: a boto3 ECS client (botocore's own retries off).
        cluster: the cluster every task call names.
        executor: the executor's name, set on every error.
        retry: how calls that are safe to repeat are retried.
    """

    ecs: Any
    cluster: str
    executor: str
    retry: RetryPolicy

    def call(
        self,
        action: str,
        method: Callable[..., Any],
        *,
        tolerate: Callable[[ClientError], bool] | None = None,
        job_id: str | None = None,
        launching: bool = False,
        secrets: Iterable[str] = (),
        retry: bool = True,
        **kwargs: Any,
    ) -> Any:
        """Make one call of ``method``; None for a ClientError ``tolerate`` accepts.

        botocore's failures become jobrelay errors through the Fargate error table,
        with every form of ``secrets`` masked. Transient ones are retried per
        :attr:`retry` unless ``retry=False`` (a call that must not be repeated blindly).
        """
        secrets = tuple(secrets)

        def once() -> Any:
            with TABLE.mapped(
                action, executor=self.executor, job_id=job_id, launching=launching, secrets=secrets
            ):
                try:
                    return method(**kwargs)
                except botocore_exceptions.ClientError as exc:
                    if tolerate is not None and tolerate(exc):
                        return None
                    raise

        return self.retry.call(once) if retry else once()

    def describe(
        self, arns: Sequence[str], *, tags: bool = False, job_id: str | None = None
    ) -> dict[str, dict[str, Any]]:
        """Describe tasks by ARN, 100 per call (``LaunchError`` when ``job_id`` is given)."""
        found: dict[str, dict[str, Any]] = {}
        for batch in chunks(arns, DESCRIBE_BATCH):
            extra: dict[str, Any] = {"include": ["TAGS"]} if tags else {}
            answer = self.call(
                "DescribeTasks",
                self.ecs.describe_tasks,
                job_id=job_id,
                launching=job_id is not None,
                cluster=self.cluster,
                tasks=list(batch),
                **extra,
            )
            for task in answer.get("tasks", []):
                found[str(task["taskArn"])] = task
        return found

    def task_arns(self, desired: str, **filters: Any) -> Iterator[str]:
        """Yield the ARNs of the cluster's tasks of ``desiredStatus``, every page."""

        def fetch(token: str | None) -> tuple[list[str], str | None]:
            extra: dict[str, Any] = {"nextToken": token} if token else {}
            answer = self.call(
                "ListTasks",
                self.ecs.list_tasks,
                cluster=self.cluster,
                desiredStatus=desired,
                maxResults=100,
                **filters,
                **extra,
            )
            return [str(arn) for arn in answer.get("taskArns", [])], answer.get("nextToken")

        return paginate(fetch)
