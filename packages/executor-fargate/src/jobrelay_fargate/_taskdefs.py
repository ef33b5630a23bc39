"""Task definitions: one per distinct shape, registered once and reused.

A job's image, entrypoint, working directory, size, log configuration and roles go
into a task definition; everything else (command, environment) is a RunTask override.
The family is ``<family_prefix>-<content hash>``, so equal shapes share one family
and a thousand jobs do not make a thousand revisions: the first launch of a shape
looks the family up (``DescribeTaskDefinition``) and registers it only when no
ACTIVE revision exists; later launches hit an in-memory cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay.backend import paginate
from jobrelay_fargate._errors import error_code

if TYPE_CHECKING:
    from botocore.exceptions import ClientError

__all__ = ["CONTAINER_NAME", "TD_TAG_KEY", "TaskDefinitionRegistry", "TaskShape", "is_not_found"]

logger = logging.getLogger("jobrelay.fargate")

CONTAINER_NAME = "main"
TD_TAG_KEY = "jobrelay.task-definition"
_HASH_LENGTH = 20


@attrs.frozen
class TaskShape:
    """What a task definition fixes for a job (all of it hashed into the family)."""

    image: str
    entrypoint: tuple[str, ...] | None
    working_dir: str | None
    cpu_units: int
    memory_mb: int
    log_group: str
    log_region: str
    log_stream_prefix: str
    execution_role_arn: str | None
    task_role_arn: str | None
    cpu_architecture: str = "X86_64"

    def digest(self) -> str:
        """Return the content hash that names this shape's family."""
        canonical = json.dumps(attrs.asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:_HASH_LENGTH]

    def request(self, family: str) -> dict[str, Any]:
        """Return the ``RegisterTaskDefinition`` arguments for this shape."""
        container: dict[str, Any] = {
            "name": CONTAINER_NAME,
            "image": self.image,
            "essential": True,
            # Fargate needs only the task's memory, but a container limit equal to it
            # is what real ECS accepts and what moto needs to place the task.
            "memory": self.memory_mb,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.log_group,
                    "awslogs-region": self.log_region,
                    "awslogs-stream-prefix": self.log_stream_prefix,
                },
            },
        }
        if self.entrypoint is not None:
            container["entryPoint"] = list(self.entrypoint)
        if self.working_dir is not None:
            container["workingDirectory"] = self.working_dir
        request: dict[str, Any] = {
            "family": family,
            "containerDefinitions": [container],
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": str(self.cpu_units),
            "memory": str(self.memory_mb),
            "tags": [{"key": TD_TAG_KEY, "value": family}],
            "runtimePlatform": {
                "cpuArchitecture": self.cpu_architecture,
                "operatingSystemFamily": "LINUX",
            },
        }
        if self.execution_role_arn is not None:
            request["executionRoleArn"] = self.execution_role_arn
        if self.task_role_arn is not None:
            request["taskRoleArn"] = self.task_role_arn
        return request


@attrs.define
class TaskDefinitionRegistry:
    """Finds or registers the task definition for a shape; prunes unused ones.

    Args:
        ecs: a boto3 ECS client.
        cluster: the cluster whose tasks count as "in use" when pruning.
        family_prefix: start of every family this registry makes.
        call: ``call(action, method, *, tolerate=None, **kwargs)`` makes one API call,
            translating errors; returns None for a ClientError ``tolerate`` accepts.
    """

    ecs: Any
    cluster: str
    family_prefix: str
    call: Callable[..., Any]
    _arns: dict[str, str] = attrs.field(factory=dict, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def family(self, shape: TaskShape) -> str:
        """Return the family name for ``shape``."""
        return f"{self.family_prefix}-{shape.digest()}"

    def arn_for(self, shape: TaskShape, *, call: Callable[..., Any] | None = None) -> str:
        """Return an ACTIVE task definition ARN for ``shape``, registering it if needed.

        ``call`` replaces the registry's own for this lookup (a launch passes one that
        raises ``LaunchError``).
        """
        family = self.family(shape)
        with self._lock:
            cached = self._arns.get(family)
        if cached is not None:
            return cached
        call = call if call is not None else self.call
        arn = self._existing(family, call) or self._register(shape, family, call)
        with self._lock:
            self._arns[family] = arn
        return arn

    def _existing(self, family: str, call: Callable[..., Any]) -> str | None:
        answer = call(
            "DescribeTaskDefinition",
            self.ecs.describe_task_definition,
            taskDefinition=family,
            tolerate=is_not_found,
        )
        if answer is None:
            return None
        definition = answer.get("taskDefinition", {})
        if definition.get("status") != "ACTIVE":
            return None
        return str(definition["taskDefinitionArn"])

    def _register(self, shape: TaskShape, family: str, call: Callable[..., Any]) -> str:
        answer = call(
            "RegisterTaskDefinition", self.ecs.register_task_definition, **shape.request(family)
        )
        arn = str(answer["taskDefinition"]["taskDefinitionArn"])
        logger.info("registered task definition %s", arn)
        return arn

    def forget(self, family: str) -> None:
        """Drop ``family`` from the cache (after it was deregistered)."""
        with self._lock:
            self._arns.pop(family, None)

    def _pages(
        self, action: str, method: Callable[..., Any], key: str, **kwargs: Any
    ) -> Iterator[str]:
        def fetch(token: str | None) -> tuple[list[str], str | None]:
            extra = {"nextToken": token} if token else {}
            answer = self.call(action, method, **kwargs, **extra)
            return [str(item) for item in answer.get(key, [])], answer.get("nextToken")

        return paginate(fetch)

    def our_families(self) -> Iterator[str]:
        """Yield every family on the account that this registry's naming produced."""
        pattern = re.compile(rf"{re.escape(self.family_prefix)}-[0-9a-f]{{{_HASH_LENGTH}}}")
        families = self._pages(
            "ListTaskDefinitionFamilies",
            self.ecs.list_task_definition_families,
            "families",
            familyPrefix=f"{self.family_prefix}-",
            status="ACTIVE",
        )
        return (family for family in families if pattern.fullmatch(family))

    def prune(self) -> list[str]:
        """Deregister every ACTIVE revision of our families no task in the cluster uses.

        A family counts as ours only when its name has our shape and its revision
        carries our ``jobrelay.task-definition`` tag naming that family. Returns the
        deregistered ARNs.
        """
        removed: list[str] = []
        for family in list(self.our_families()):
            if self._in_use(family):
                continue
            for arn in self._active_revisions(family):
                if not self._tagged_ours(arn, family):
                    continue
                self.call(
                    "DeregisterTaskDefinition",
                    self.ecs.deregister_task_definition,
                    taskDefinition=arn,
                )
                removed.append(arn)
                logger.info("deregistered unused task definition %s", arn)
            self.forget(family)
        return removed

    def _in_use(self, family: str) -> bool:
        answer = self.call(
            "ListTasks",
            self.ecs.list_tasks,
            cluster=self.cluster,
            family=family,
            desiredStatus="RUNNING",
            maxResults=1,
        )
        return bool(answer.get("taskArns"))

    def _active_revisions(self, family: str) -> list[str]:
        return list(
            self._pages(
                "ListTaskDefinitions",
                self.ecs.list_task_definitions,
                "taskDefinitionArns",
                familyPrefix=family,
                status="ACTIVE",
            )
        )

    def _tagged_ours(self, arn: str, family: str) -> bool:
        answer = self.call(
            "DescribeTaskDefinition",
            self.ecs.describe_task_definition,
            taskDefinition=arn,
            include=["TAGS"],
        )
        tags = {t.get("key"): t.get("value") for t in answer.get("tags", [])}
        return tags.get(TD_TAG_KEY) == family


def is_not_found(error: ClientError) -> bool:
    """Return whether a DescribeTaskDefinition error means "no such family"."""
    message = str(error.response.get("Error", {}).get("Message", ""))
    return error_code(error) == "ClientException" and "Unable to describe" in message
