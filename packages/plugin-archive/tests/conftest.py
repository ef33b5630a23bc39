"""Fixtures: a Runner on the mock, a gate that holds the writer, and S3 on moto over HTTP.

The moto server runs in this process on 127.0.0.1; :class:`S3Server` can stop it and
start it again on the same port, which is a real outage for s3fs (connections
refused, pooled keep-alive connections dropped) while moto keeps its buckets.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

import jobrelay_archive
from jobrelay import Hooks, JobResult, JobSpec, RetryPolicy, Router, Runner
from jobrelay_archive import Archive, ArchivePlugin
from jobrelay_mock import MockExecutor, MockOutcome

REGION = "us-east-1"
CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
FAST_RETRY = RetryPolicy(attempts=200, timeout=30.0, initial=0.05, maximum=0.25, jitter=0.05)
FILES = ("result.json", "stderr.log", "stdout.log")


def echo_behavior(job: JobSpec) -> MockOutcome:
    """Each job prints its name and, when it has one, its secret in both streams."""
    secret = job.secrets.get("TOKEN", "")
    return MockOutcome(
        exit_code=int(job.labels.get("exit", "0")),
        stdout=f"{job.name} says hello token={secret}\n",
        stderr=f'{{"token": {json.dumps(secret)}}}\n',
        duration=0.5,
    )


def run_jobs(
    archive: Archive | None, jobs: list[JobSpec], *, hooks: Hooks | None = None
) -> list[JobResult]:
    """Run ``jobs`` through a Runner on the mock with ``archive`` registered."""
    if hooks is None:
        hooks = Hooks(load_entry_points=False)
        hooks.register(ArchivePlugin(archive))
    router = Router([MockExecutor(behavior=echo_behavior)], default="mock", hooks=hooks)
    with Runner(router, poll_interval=0.05) as runner:
        return runner.run(jobs)


def jobs(count: int, **kwargs: Any) -> list[JobSpec]:
    return [JobSpec("busybox", "true", name=f"job-{i}", **kwargs) for i in range(count)]


def read_tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root``, by path relative to it."""
    return {
        str(path.relative_to(root)): path.read_bytes() for path in root.rglob("*") if path.is_file()
    }


@pytest.fixture(autouse=True)
def _no_global_archive() -> Iterator[None]:
    jobrelay_archive.close()
    yield
    jobrelay_archive.close()


class Gate:
    """Holds every storage write of an archive until :meth:`open` is called."""

    def __init__(self, archive: Archive) -> None:
        self.opened = threading.Event()
        self.written: list[str] = []
        original = archive.storage.write

        def write(path: str, data: bytes) -> None:
            self.opened.wait(30)
            original(path, data)
            self.written.append(path)

        archive.storage.write = write  # type: ignore[method-assign]

    def open(self) -> None:
        self.opened.set()


@pytest.fixture
def gate() -> Callable[[Archive], Gate]:
    return Gate


class S3Server:
    """moto's S3 over HTTP on a fixed port, stoppable and restartable."""

    def __init__(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        self._server.start()
        host, self.port = self._server.get_host_and_port()
        self.url = f"http://{host}:{self.port}"
        self.running = True
        self._buckets = itertools.count()

    def stop(self) -> None:
        self._server.stop()
        self.running = False

    def start(self) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.running = True

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=CREDENTIALS["aws_secret_access_key"],
        )

    def new_bucket(self) -> str:
        name = f"archive-{next(self._buckets)}"
        self.client().create_bucket(Bucket=name)
        return name

    def objects(self, bucket: str) -> dict[str, bytes]:
        client = self.client()
        out: dict[str, bytes] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                out[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return out

    def storage_options(self) -> dict[str, Any]:
        return {
            "key": CREDENTIALS["aws_access_key_id"],
            "secret": CREDENTIALS["aws_secret_access_key"],
            "client_kwargs": {"endpoint_url": self.url, "region_name": REGION},
            "config_kwargs": {"connect_timeout": 2, "read_timeout": 5},
        }


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    server = S3Server()
    yield server
    if server.running:
        server.stop()


@pytest.fixture
def bucket(s3: S3Server) -> str:
    if not s3.running:
        s3.start()
    return s3.new_bucket()
