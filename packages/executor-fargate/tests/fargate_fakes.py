"""Test doubles around moto's server: a recording proxy and a task-state driver.

- :class:`WireProxy` sits on 127.0.0.1 between boto3 and moto. It records every
  request (operation and JSON body, exactly as sent on the wire) and can answer an
  operation itself: an AWS error (throttling, 5xx, access denied), a canned 200 body
  (RunTask ``failures``), or a dropped connection.
- :class:`MotoFargate` changes task state inside moto's in-process backend to what a
  real Fargate would report (moto runs no containers): exit codes, stop codes and
  reasons, times, and the CloudWatch lines a container would have written.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import attrs
import boto3
from moto.ecs.models import ecs_backends
from moto.logs.models import logs_backends

from jobrelay_fargate import FargateExecutor

MakeExecutor = Callable[..., FargateExecutor]
"""The ``make_executor`` fixture: keyword overrides -> an executor pointed at moto."""

ACCOUNT = "123456789012"
REGION = "us-east-1"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


def reset_services() -> None:
    """Reset moto's ECS and CloudWatch Logs backends (what ``/moto-api/reset`` does, for two)."""
    ecs_backends[ACCOUNT][REGION].reset()
    logs_backends[ACCOUNT][REGION].reset()


@attrs.frozen
class Call:
    """One request seen on the wire."""

    service: str
    operation: str
    body: dict[str, Any]


@attrs.define
class _Rule:
    operation: str
    times: int
    status: int = 200
    body: dict[str, Any] = attrs.Factory(dict)
    drop: bool = False
    forward: bool = False
    skip: int = 0


class WireProxy:
    """A recording, fault-injecting HTTP proxy in front of moto."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._rules: list[_Rule] = []
        self._chaos_rate = 0.0
        self._random = random.Random(0)  # noqa: S311 - fault injection, not crypto
        self.faults: Counter[str] = Counter()
        self.faulted: Counter[tuple[str, str]] = Counter()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """Base URL boto3 should use as ``endpoint_url``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def clear(self) -> None:
        """Forget recorded calls and pending faults; stop any chaos."""
        with self._lock:
            self._calls.clear()
            self._rules.clear()
            self._chaos_rate = 0.0
            self.faults.clear()
            self.faulted.clear()

    def chaos(self, rate: float, *, seed: int = 0) -> None:
        """Fail about ``rate`` of all calls from now on, each in one of four ways.

        Evenly: a 500 ``ServerException`` whose message echoes the request (as AWS
        services sometimes echo parameters), a 400 ``ThrottlingException``, a
        connection dropped before the call reaches moto, and a reply lost after the
        call took effect. :attr:`faults` counts what was injected.
        """
        with self._lock:
            self._chaos_rate = rate
            self._random.seed(seed)
            self.faults.clear()
            self.faulted.clear()

    # -- what tests use ------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every request so far."""
        with self._lock:
            return list(self._calls)

    def ops(self, operation: str) -> list[Call]:
        """The requests for one operation (e.g. ``"RunTask"``)."""
        return [call for call in self.calls if call.operation == operation]

    def count(self, operation: str | None = None) -> int:
        """How many requests (of ``operation``, or of any) were made."""
        return len(self.calls if operation is None else self.ops(operation))

    def fail(
        self,
        operation: str,
        *,
        status: int,
        code: str,
        message: str = "",
        times: int = 1,
        skip: int = 0,
        after_effect: bool = False,
    ) -> None:
        """Answer the next ``times`` calls of ``operation`` with an AWS JSON error.

        ``skip`` lets that many matching calls through first; ``after_effect`` passes
        the call to moto before answering with the error (it took effect all the same).
        """
        body = {"__type": code, "message": message or code}
        with self._lock:
            self._rules.append(
                _Rule(operation, times, status, body, forward=after_effect, skip=skip)
            )

    def answer(self, operation: str, body: dict[str, Any], *, times: int = 1) -> None:
        """Answer the next ``times`` calls of ``operation`` with ``body`` (HTTP 200)."""
        with self._lock:
            self._rules.append(_Rule(operation, times, 200, body))

    def drop(self, operation: str, *, times: int = 1, skip: int = 0) -> None:
        """Close the connection on the next ``times`` calls of ``operation``."""
        with self._lock:
            self._rules.append(_Rule(operation, times, drop=True, skip=skip))

    def lose_reply(self, operation: str, *, times: int = 1) -> None:
        """Pass the next ``times`` calls of ``operation`` to moto, then drop the reply.

        The request takes effect; the client sees a broken connection, as when a
        response is lost on the way back.
        """
        with self._lock:
            self._rules.append(_Rule(operation, times, drop=True, forward=True))

    # -- serving -------------------------------------------------------------------

    def _record(self, target: str, raw: bytes) -> _Rule | None:
        service, _, operation = target.partition(".")
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        with self._lock:
            self._calls.append(Call(service, operation, body))
            for rule in self._rules:
                if rule.operation != operation or rule.times <= 0:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                rule.times -= 1
                return rule
            if self._chaos_rate and self._random.random() < self._chaos_rate:
                return self._chaos_rule(operation, raw)
        return None

    def _chaos_rule(self, operation: str, raw: bytes) -> _Rule:
        kind = self._random.choice(("error", "throttle", "drop", "lost-reply"))
        self.faults[kind] += 1
        self.faulted[operation, kind] += 1
        if kind == "error":
            echo = raw.decode("utf-8", "replace")[:4000]
            body = {"__type": "ServerException", "message": f"internal error on {echo}"}
            return _Rule(operation, 0, 500, body)
        if kind == "throttle":
            return _Rule(
                operation, 0, 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            )
        return _Rule(operation, 0, drop=True, forward=kind == "lost-reply")

    def _forward(
        self, method: str, path: str, headers: dict[str, str], raw: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        connection = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            connection.request(method, path, body=raw, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out as separate writes

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                """Stay quiet."""

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                rule = proxy._record(self.headers.get("X-Amz-Target", "."), raw)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
                if rule is not None and rule.forward:
                    proxy._forward("POST", self.path, headers, raw)
                if rule is not None and rule.drop:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if rule is not None:
                    self._reply(
                        rule.status,
                        [("Content-Type", "application/x-amz-json-1.1")],
                        json.dumps(rule.body).encode(),
                    )
                    return
                status, answer_headers, body = proxy._forward("POST", self.path, headers, raw)
                self._reply(status, answer_headers, body)

            def _reply(self, status: int, headers: Sequence[tuple[str, str]], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers:
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


class MotoFargate:
    """Drives tasks inside moto's ECS backend the way Fargate would move them."""

    def __init__(
        self,
        *,
        cluster: str,
        subnet: str,
        security_group: str,
        session: boto3.session.Session,
        url: str,
    ) -> None:
        self.cluster = cluster
        self.subnet = subnet
        self.security_group = security_group
        self.session = session
        self.url = url
        self.ecs: Any = session.client("ecs", endpoint_url=url)
        self.logs: Any = session.client("logs", endpoint_url=url)

    @staticmethod
    def _backend() -> Any:
        return ecs_backends[ACCOUNT][REGION]

    def task(self, arn: str) -> Any:
        """moto's task object for ``arn``."""
        for tasks in self._backend().tasks.values():
            if arn in tasks:
                return tasks[arn]
        raise KeyError(arn)

    def tasks(self) -> Iterator[Any]:
        """Every task moto holds."""
        for tasks in self._backend().tasks.values():
            yield from tasks.values()

    def set_status(self, arn: str, last_status: str) -> None:
        """Move a task to ``last_status`` (PROVISIONING, PENDING, RUNNING, STOPPING, ...)."""
        task = self.task(arn)
        task.last_status = last_status
        if last_status == "RUNNING":
            task.started_at = datetime.now(timezone.utc)
            for container in task.containers:
                container.last_status = "RUNNING"

    def finish(
        self, arn: str, exit_code: int | None, *, reason: str = "Essential container in task exited"
    ) -> None:
        """Stop a task as Fargate does when its essential container exits."""
        task = self.task(arn)
        now = datetime.now(timezone.utc)
        task.started_at = getattr(task, "started_at", None) or now
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stopped_reason = reason
        task.stop_code = "EssentialContainerExited"
        task.stopped_at = now
        task.execution_stopped_at = now
        for container in task.containers:
            container.last_status = "STOPPED"
            container.exitCode = exit_code

    def fail_to_start(self, arn: str, reason: str) -> None:
        """Stop a task that never started: no containers ran, ``TaskFailedToStart``."""
        task = self.task(arn)
        task.containers = []
        task.last_status = "STOPPED"
        task.desired_status = "STOPPED"
        task.stop_code = "TaskFailedToStart"
        task.stopped_reason = reason
        task.stopped_at = datetime.now(timezone.utc)

    def write_logs(self, group: str, stream: str, lines: Sequence[str]) -> None:
        """Write ``lines`` as the awslogs driver would, one event per line, in order."""
        for existing in ("create_log_group", "create_log_stream"):
            kwargs = {"logGroupName": group}
            if existing == "create_log_stream":
                kwargs["logStreamName"] = stream
            with contextlib.suppress(self.logs.exceptions.ResourceAlreadyExistsException):
                getattr(self.logs, existing)(**kwargs)
        start = int(datetime.now(timezone.utc).timestamp() * 1000)
        events = [{"timestamp": start + i, "message": line} for i, line in enumerate(lines)]
        for offset in range(0, len(events), 10_000):
            self.logs.put_log_events(
                logGroupName=group, logStreamName=stream, logEvents=events[offset : offset + 10_000]
            )
