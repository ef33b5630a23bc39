"""Job definitions shared by every job of one shape: found or made once, then reused.

Scaleway allows 1000 definitions per organisation. One per job would reach that
after a thousand jobs (and cost a create and a delete per job); one per shape
(image, entrypoint, size, storage, timeout, retries) stays small, and the run
overrides carry each job's command, arguments and environment.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from jobrelay.backend import lazy_import, paginate
from jobrelay_scaleway._plan import Plan, definition_description, definition_identity, owns
from jobrelay_scaleway._runs import PAGE_SIZE, next_page

if TYPE_CHECKING:
    import scaleway.jobs.v1alpha2 as scw_jobs  # type: ignore[import-untyped, unused-ignore]
else:
    scw_jobs = lazy_import("scaleway.jobs.v1alpha2")

__all__ = ["DefinitionRegistry"]

logger = logging.getLogger("jobrelay.scaleway")


Call = Callable[..., Any]


class DefinitionRegistry:
    """Finds or creates the definition of a shape; remembers the answer per process.

    Args:
        api: the SDK's ``JobsV1Alpha2API``.
        project_id: the project definitions live in.
        executor: the executor's name (part of the shape and of the identity).
        prefix: start of the names of the definitions jobrelay makes.
        local_storage_mb: ephemeral storage of every run.
    """

    def __init__(
        self, *, api: Any, project_id: str, executor: str, prefix: str, local_storage_mb: int
    ) -> None:
        self._api = api
        self._project_id = project_id
        self._executor = executor
        self._prefix = prefix
        self._storage = local_storage_mb
        self._known: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._shape_locks: dict[str, threading.Lock] = {}

    def ids_for(self, plan: Plan, *, call: Call) -> list[str]:
        """Return the ids of the definitions of ``plan``'s shape, oldest first.

        Makes one if there is none; ``call(action, method, **kwargs)`` makes each call.
        """
        name = plan.definition_name(self._prefix)
        with self._lock:
            known = self._known.get(name)
            lock = self._shape_locks.setdefault(name, threading.Lock())
        if known:
            return known
        with lock:
            with self._lock:
                known = self._known.get(name)
            if known:
                return known
            found = [d.id for d in self.managed(call=call) if d.name == name]
            if not found:
                found = [self._create(plan, name, call=call)]
            with self._lock:
                self._known[name] = found
            return found

    def forget(self, plan: Plan) -> None:
        """Drop what is remembered for ``plan``'s shape (its definition was deleted)."""
        with self._lock:
            self._known.pop(plan.definition_name(self._prefix), None)

    def forget_id(self, definition_id: str) -> None:
        """Drop a deleted definition from what is remembered."""
        with self._lock:
            for name, ids in list(self._known.items()):
                if definition_id in ids:
                    del self._known[name]

    def _create(self, plan: Plan, name: str, *, call: Call) -> str:
        shape = plan.shape
        definition = call(
            "CreateJobDefinition",
            self._api.create_job_definition,
            name=name,
            description=definition_description(self._executor, plan.shape_hash),
            project_id=self._project_id,
            cpu_limit=shape["cpu_limit"],
            memory_limit=shape["memory_limit"],
            local_storage_capacity=self._storage,
            image_uri=shape["image_uri"],
            startup_command=shape["startup_command"] or None,
            job_timeout=shape["job_timeout"],
            retry_policy=scw_jobs.RetryPolicy(max_retries=shape["max_retries"]),
        )
        logger.info("created job definition %s (%s)", definition.id, name)
        return str(definition.id)

    def managed(self, *, call: Call) -> Iterator[Any]:
        """Yield the project's definitions made by this executor, oldest first."""

        def fetch(page: int | None) -> tuple[list[Any], int | None]:
            number = page or 1
            answer = call(
                "ListJobDefinitions",
                self._api.list_job_definitions,
                project_id=self._project_id,
                page=number,
                page_size=PAGE_SIZE,
                order_by="created_at_asc",
            )
            items = list(answer.job_definitions or [])
            return items, next_page(number, len(items), answer)

        for definition in paginate(fetch):
            if str(definition.name).startswith(f"{self._prefix}-") and owns(
                definition_identity(definition.description), self._executor
            ):
                yield definition
