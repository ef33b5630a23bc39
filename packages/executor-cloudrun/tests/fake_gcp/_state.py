"""The fake's world: jobs, executions, tasks, operations and log entries.

Everything is stored as the JSON the service would answer (string enums, int64 as
strings, RFC 3339 times), so the HTTP layer only checks and serialises it.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

__all__ = ["ApiError", "World", "stamp"]

JOB_ID = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")
RESERVED_PREFIXES = ("run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev")
CPUS = {"1": 1, "2": 2, "4": 4, "6": 6, "8": 8, "1000m": 1, "2000m": 2, "4000m": 4}
# cpu -> (least MiB, most MiB) that Cloud Run jobs accept with it.
MEMORY_BOUNDS = {
    1: (512, 4096),
    2: (512, 8192),
    4: (2048, 16384),
    6: (4096, 24576),
    8: (4096, 32768),
}
_MEMORY = re.compile(r"([0-9]+)(Mi|Gi)")


def stamp(moment: datetime) -> str:
    """Return ``moment`` as the service writes times (RFC 3339, UTC, ``Z``)."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


class ApiError(Exception):
    """An error answer: HTTP status, gRPC status name and message."""

    def __init__(self, code: int, status: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.message = message


def _not_found(what: str) -> ApiError:
    return ApiError(404, "NOT_FOUND", f"Resource '{what}' was not found")


def _invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_ARGUMENT", message)


def _check_labels(labels: dict[str, str], where: str) -> None:
    if len(labels) > 64:
        raise _invalid(f"{where}: at most 64 labels, got {len(labels)}")
    for key, value in labels.items():
        if not LABEL_KEY.fullmatch(key) or key.startswith(RESERVED_PREFIXES):
            raise _invalid(f"{where}: invalid label key {key!r}")
        if not LABEL_VALUE.fullmatch(value):
            raise _invalid(f"{where}: invalid label value {value!r} for key {key!r}")


def _check_annotations(annotations: dict[str, str], where: str) -> None:
    for key in annotations:
        if key.startswith(RESERVED_PREFIXES):
            raise _invalid(f"{where}: annotation {key!r} is reserved for the system")


def _mib(text: str) -> int:
    match = _MEMORY.fullmatch(text)
    if match is None:
        raise _invalid(f"memory limit {text!r} is not a quantity like 512Mi or 2Gi")
    return int(match[1]) * (1024 if match[2] == "Gi" else 1)


def _check_container(container: dict[str, Any], where: str) -> None:
    if not container.get("image"):
        raise _invalid(f"{where}.image: is required")
    limits = container.get("resources", {}).get("limits", {})
    cpu_text = limits.get("cpu", "1")
    if cpu_text not in CPUS:
        raise _invalid(f"{where}.resources.limits.cpu: {cpu_text!r} is not a valid job cpu")
    cpu = CPUS[cpu_text]
    memory = _mib(limits.get("memory", "512Mi"))
    low, high = MEMORY_BOUNDS[cpu]
    if not low <= memory <= high:
        raise _invalid(
            f"{where}.resources.limits.memory: {limits.get('memory')} is outside "
            f"{low}Mi-{high}Mi for {cpu} CPU"
        )
    unknown = set(limits) - {"cpu", "memory", "nvidia.com/gpu"}
    if unknown:
        raise _invalid(f"{where}.resources.limits: unknown resources {sorted(unknown)}")


class World:
    """All state of one fake project; every method holds the lock."""

    def __init__(self, project: str, region: str, *, max_page_size: int) -> None:
        self.project = project
        self.region = region
        self.max_page_size = max_page_size
        self.lock = threading.RLock()
        self.offset = timedelta()
        self.jobs: dict[str, dict[str, Any]] = {}
        self.executions: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, list[dict[str, Any]]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.entries: list[dict[str, Any]] = []

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    def now(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    # -- jobs ------------------------------------------------------------------

    def create_job(self, job_id: str, body: dict[str, Any]) -> dict[str, Any]:
        if not JOB_ID.fullmatch(job_id):
            raise _invalid(f"jobId {job_id!r}: lowercase letters, digits, hyphens; 63 at most")
        name = f"{self.parent}/jobs/{job_id}"
        if body.get("name") not in (None, "", name):
            raise _invalid(f"job.name {body['name']!r} does not match jobId {job_id!r}")
        _check_labels(body.get("labels", {}), "job.labels")
        _check_annotations(body.get("annotations", {}), "job.annotations")
        template = body.get("template")
        if not isinstance(template, dict):
            raise _invalid("job.template: is required")
        task = template.get("template", {})
        containers = task.get("containers", [])
        if not containers:
            raise _invalid("job.template.template.containers: at least one container")
        for index, container in enumerate(containers):
            _check_container(container, f"job.template.template.containers[{index}]")
        token = body.get("startExecutionToken") or body.get("runExecutionToken")
        if token and len(f"{job_id}-{token}") >= 63:
            raise _invalid("job name and execution token must together stay under 63 characters")
        with self.lock:
            if name in self.jobs:
                raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists.")
            now = stamp(self.now())
            job = {
                **body,
                "name": name,
                "uid": str(uuid.uuid4()),
                "generation": "1",
                "createTime": now,
                "updateTime": now,
                "creator": "fake@jobrelay.test",
                "lastModifier": "fake@jobrelay.test",
                "launchStage": body.get("launchStage", "GA"),
                "observedGeneration": "1",
                "conditions": [],
                "executionCount": 0,
                "reconciling": False,
                "etag": f'"{uuid.uuid4().hex[:12]}"',
                "terminalCondition": {
                    "type": "Ready",
                    "state": "CONDITION_SUCCEEDED",
                    "lastTransitionTime": now,
                },
            }
            if job["launchStage"] == "LAUNCH_STAGE_UNSPECIFIED":
                job["launchStage"] = "GA"
            self.jobs[name] = job
            if token:
                self._start(job, str(token))
            return job

    def job(self, name: str) -> dict[str, Any]:
        with self.lock:
            if name not in self.jobs:
                raise _not_found(name)
            return self.jobs[name]

    def delete_job(self, name: str) -> dict[str, Any]:
        with self.lock:
            job = self.job(name)
            del self.jobs[name]
            for execution in [e for e in self.executions if e.startswith(f"{name}/")]:
                del self.executions[execution]
                self.tasks.pop(execution, None)
            return job

    def run_job(self, name: str, token: str | None, overrides: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            job = self.job(name)
            return self._start(job, token or uuid.uuid4().hex[:5], overrides)

    def _start(
        self, job: dict[str, Any], suffix: str, overrides: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        short_job = job["name"].rsplit("/", 1)[1]
        name = f"{job['name']}/executions/{short_job}-{suffix}"
        if name in self.executions:
            raise ApiError(409, "ALREADY_EXISTS", f"Resource '{name}' already exists.")
        template = job["template"]
        now = stamp(self.now())
        task_count = (overrides or {}).get("taskCount") or template.get("taskCount") or 1
        task_template = dict(template.get("template", {}))
        task_template.setdefault("maxRetries", 3)
        task_template.setdefault("timeout", "600s")
        execution = {
            "name": name,
            "uid": str(uuid.uuid4()),
            "creator": "fake@jobrelay.test",
            "generation": "1",
            "labels": dict(template.get("labels", {})),
            "annotations": dict(template.get("annotations", {})),
            "createTime": now,
            "updateTime": now,
            "launchStage": "GA",
            "job": short_job,
            "parallelism": template.get("parallelism") or task_count,
            "taskCount": task_count,
            "template": task_template,
            "reconciling": False,
            "conditions": [
                {"type": "Completed", "state": "CONDITION_PENDING", "lastTransitionTime": now},
                {"type": "ResourcesAvailable", "state": "CONDITION_PENDING"},
            ],
            "observedGeneration": "1",
            "logUri": f"https://console.cloud.google.com/logs/viewer?project={self.project}",
            "etag": f'"{uuid.uuid4().hex[:12]}"',
        }
        self.executions[name] = execution
        self.tasks[name] = [
            {
                "name": f"{name}/tasks/{short_job}-{suffix}-{index}",
                "uid": str(uuid.uuid4()),
                "job": short_job,
                "execution": name.rsplit("/", 1)[1],
                "index": index,
                "createTime": now,
                "retried": 0,
                "maxRetries": task_template["maxRetries"],
                "timeout": task_template["timeout"],
                "containers": task_template.get("containers", []),
                "conditions": [],
            }
            for index in range(task_count)
        ]
        job["executionCount"] = int(job.get("executionCount", 0)) + 1
        job["latestCreatedExecution"] = {
            "name": name,
            "createTime": now,
            "completionStatus": "EXECUTION_PENDING",
        }
        return execution

    def list_jobs(self, page_size: int, token: str) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            return self._page(sorted(self.jobs), self.jobs, page_size, token)

    # -- executions ------------------------------------------------------------

    def execution(self, name: str) -> dict[str, Any]:
        with self.lock:
            if name not in self.executions:
                raise _not_found(name)
            return self.executions[name]

    def list_executions(
        self, job: str, page_size: int, token: str
    ) -> tuple[list[dict[str, Any]], str]:
        with self.lock:
            if job.endswith("/jobs/-"):
                names = sorted(self.executions)
            else:
                self.job(job)
                names = sorted(n for n in self.executions if n.startswith(f"{job}/executions/"))
            return self._page(names, self.executions, page_size, token)

    def list_tasks(self, execution: str) -> list[dict[str, Any]]:
        with self.lock:
            self.execution(execution)
            return list(self.tasks[execution])

    def _page(
        self,
        names: list[str],
        items: dict[str, dict[str, Any]],
        page_size: int,
        token: str,
    ) -> tuple[list[dict[str, Any]], str]:
        size = min(page_size or self.max_page_size, self.max_page_size)
        start = 0
        if token:
            if not token.startswith("after:"):
                raise _invalid(f"invalid page token {token!r}")
            start = sum(1 for n in names if n <= token[len("after:") :])
        page = names[start : start + size]
        more = start + size < len(names)
        return [items[n] for n in page], (f"after:{page[-1]}" if more and page else "")

    def cancel(self, name: str) -> dict[str, Any]:
        with self.lock:
            execution = self.execution(name)
            if "completionTime" in execution:
                raise ApiError(
                    400, "FAILED_PRECONDITION", f"Execution '{name}' has already completed."
                )
            self._complete(execution, "cancelled")
            return execution

    # -- driving executions (tests) ----------------------------------------------

    def start(self, name: str) -> dict[str, Any]:
        with self.lock:
            execution = self.execution(name)
            if "startTime" not in execution and "completionTime" not in execution:
                now = stamp(self.now())
                execution["startTime"] = now
                execution["updateTime"] = now
                execution["runningCount"] = execution["taskCount"]
                execution["conditions"][1] = {
                    "type": "ResourcesAvailable",
                    "state": "CONDITION_SUCCEEDED",
                    "lastTransitionTime": now,
                }
                for task in self.tasks[name]:
                    task["startTime"] = now
                self._reference(execution, "EXECUTION_RUNNING")
            return execution

    def finish(
        self,
        name: str,
        *,
        exit_code: int = 0,
        signal: int | None = None,
        timed_out: bool = False,
    ) -> dict[str, Any]:
        with self.lock:
            execution = self.start(name)
            if "completionTime" in execution:
                return execution
            tasks = self.tasks[name]
            for task in tasks:
                result: dict[str, Any] = {}
                if timed_out:
                    result["status"] = {"code": 4, "message": "Task exceeded its timeout."}
                elif signal is not None:
                    result["termSignal"] = signal
                    result["status"] = {"code": 2, "message": f"Killed by signal {signal}."}
                else:
                    result["exitCode"] = exit_code
                    if exit_code:
                        result["status"] = {
                            "code": 2,
                            "message": f"Container exited with exit code {exit_code}.",
                        }
                task["lastAttemptResult"] = result
                task["completionTime"] = stamp(self.now())
            failed = timed_out or signal is not None or exit_code != 0
            self._complete(execution, "failed" if failed else "succeeded")
            return execution

    def _complete(self, execution: dict[str, Any], outcome: str) -> None:
        now = stamp(self.now())
        count = execution["taskCount"]
        execution.pop("runningCount", None)
        execution["completionTime"] = now
        execution["updateTime"] = now
        completed: dict[str, Any] = {"type": "Completed", "lastTransitionTime": now}
        if outcome == "succeeded":
            execution["succeededCount"] = count
            completed["state"] = "CONDITION_SUCCEEDED"
            completed["message"] = "Execution completed successfully."
            status = "EXECUTION_SUCCEEDED"
        elif outcome == "failed":
            execution["failedCount"] = count
            completed["state"] = "CONDITION_FAILED"
            completed["executionReason"] = "NON_ZERO_EXIT_CODE"
            completed["message"] = f"Task {execution['job']}-0 failed."
            status = "EXECUTION_FAILED"
        else:
            execution["cancelledCount"] = count
            completed["state"] = "CONDITION_FAILED"
            completed["executionReason"] = "CANCELLED"
            completed["message"] = "The execution was cancelled."
            status = "EXECUTION_CANCELLED"
        execution["conditions"][0] = completed
        self._reference(execution, status, completion=now)

    def _reference(self, execution: dict[str, Any], status: str, completion: str = "") -> None:
        job = self.jobs.get(execution["name"].split("/executions/")[0])
        if job is None:
            return
        reference = job.get("latestCreatedExecution", {})
        if reference.get("name") == execution["name"]:
            reference["completionStatus"] = status
            if completion:
                reference["completionTime"] = completion

    # -- logs ------------------------------------------------------------------

    def write_log(
        self,
        execution: str,
        stream: str,
        lines: Iterable[str],
        *,
        when: datetime | None = None,
    ) -> None:
        with self.lock:
            record = self.executions.get(execution)
            job = (
                record["job"] if record else execution.split("/jobs/")[1].split("/", maxsplit=1)[0]
            )
            short = execution.rsplit("/", 1)[1]
            for line in lines:
                moment = when or self.now()
                self.entries.append(
                    {
                        "insertId": uuid.uuid4().hex[:16],
                        "logName": f"projects/{self.project}/logs/run.googleapis.com%2F{stream}",
                        "resource": {
                            "type": "cloud_run_job",
                            "labels": {
                                "project_id": self.project,
                                "job_name": job,
                                "location": self.region,
                            },
                        },
                        "labels": {
                            "run.googleapis.com/execution_name": short,
                            "run.googleapis.com/task_index": "0",
                            "run.googleapis.com/task_attempt": "0",
                            "instanceId": "00f46b9285",
                        },
                        "textPayload": line,
                        "timestamp": stamp(moment),
                        "receiveTimestamp": stamp(moment + timedelta(milliseconds=30)),
                        "severity": "ERROR" if stream == "stderr" else "DEFAULT",
                    }
                )
