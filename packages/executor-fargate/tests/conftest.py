"""Fixtures: one moto server per session on 127.0.0.1, reset before every test.

boto3 talks real HTTP to moto through :class:`WireProxy`, which records the calls.
The executor sends what real ECS accepts and what moto needs as it is (a container
memory limit equal to the task's, for one), so it runs against an unpatched moto
(``test_fargate_plain_moto.py`` proves it in a fresh interpreter). Only where moto is
wrong about AWS do these fixtures patch it, never the executor:

- moto's tasks have no ``createdAt``, ``cpu`` or ``memory`` (DescribeTasks in AWS
  always has them), so the fixture sets them as AWS would;
- moto runs a task launched with a ``capacityProviderStrategy`` (FARGATE_SPOT) on EC2
  container instances and fails without any (in AWS the FARGATE and FARGATE_SPOT
  providers are Fargate), so moto is handed such a RunTask as ``launchType=FARGATE``
  (the request on the wire, which the tests check, keeps the strategy).

What is configuration, not a patch:

- moto's tasks walk RUNNING -> STOPPED on every DescribeTasks by default; that walk
  is switched to manual through moto's state-manager API, and :class:`MotoFargate`
  moves tasks explicitly instead;
- moto needs the default VPC's subnet and security group to attach task ENIs;
- between tests ECS and Logs are reset in-process (the server runs in this process),
  which is moto's own per-backend reset without rebuilding EC2's default VPC.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import boto3
import pytest
from moto.ecs.models import EC2ContainerServiceBackend
from moto.ecs.responses import EC2ContainerServiceResponse
from moto.server import ThreadedMotoServer

from fargate_fakes import REGION, MakeExecutor, MotoFargate, WireProxy, reset_services
from jobrelay import set_testing
from jobrelay_fargate import FargateExecutor

CLUSTER = "jobrelay-test"


def _post(url: str, payload: dict[str, Any] | None = None) -> None:
    data = json.dumps(payload).encode() if payload is not None else b""
    request = urllib.request.Request(url, data=data, method="POST")  # noqa: S310 - local moto
    with urllib.request.urlopen(request, timeout=10) as answer:  # noqa: S310
        answer.read()


@pytest.fixture(scope="session")
def _moto_patched() -> Iterator[None]:
    original_run_task = EC2ContainerServiceBackend.run_task
    original_response = EC2ContainerServiceResponse.run_task

    def run_task(self: Any, *args: Any, **kwargs: Any) -> Any:
        tasks: list[Any] = original_run_task(self, *args, **kwargs)
        for task in tasks:
            definition = self.describe_task_definition(task.task_definition_arn)
            task.created_at = datetime.now(timezone.utc)
            task.cpu, task.memory = definition.cpu, definition.memory
        return tasks

    def run_task_response(self: Any) -> Any:
        get = self._get_param

        spot = get("capacityProviderStrategy") and get("launchType") is None

        def param(name: str, if_none: Any = None) -> Any:
            # moto 5.2.5 refuses both at once, as AWS does: hand it the launch type alone.
            if spot and name == "launchType":
                return "FARGATE"
            if spot and name == "capacityProviderStrategy":
                return if_none
            return get(name, if_none)

        self._get_param = param
        return original_response(self)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(EC2ContainerServiceBackend, "run_task", run_task)
        patch.setattr(EC2ContainerServiceResponse, "run_task", run_task_response)
        yield


@pytest.fixture(scope="session")
def moto_url(_moto_patched: None) -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    _post(
        f"{url}/moto-api/state-manager/set-transition",
        {"model_name": "ecs::task", "transition": {"progression": "manual", "times": 10**9}},
    )
    yield url
    server.stop()


@pytest.fixture(scope="session")
def proxy(moto_url: str) -> Iterator[WireProxy]:
    wire = WireProxy(moto_url)
    wire.start()
    yield wire
    wire.stop()


@pytest.fixture(autouse=True)
def _aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/jobrelay-test-aws-config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/jobrelay-test-aws-creds")
    set_testing(True)
    yield
    set_testing(False)


@pytest.fixture(scope="session")
def session() -> boto3.session.Session:
    """One boto3 session for the run: its loaded service models make clients cheap."""
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION
    )


@pytest.fixture(scope="session")
def default_network(moto_url: str, session: boto3.session.Session) -> tuple[str, str]:
    """The default VPC's first subnet and its default security group, found once."""
    _post(f"{moto_url}/moto-api/reset")
    ec2: Any = session.client("ec2", endpoint_url=moto_url)
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])
    groups = ec2.describe_security_groups(GroupNames=["default"])
    return subnets["Subnets"][0]["SubnetId"], groups["SecurityGroups"][0]["GroupId"]


@pytest.fixture
def moto(
    moto_url: str,
    proxy: WireProxy,
    session: boto3.session.Session,
    default_network: tuple[str, str],
) -> MotoFargate:
    """A fresh ECS and CloudWatch Logs in moto, with an empty cluster.

    Only the two services under test are reset: rebuilding EC2's default VPC on every
    test would cost more than the test. Task ENIs left in EC2 affect nothing here.
    """
    reset_services()
    subnet, security_group = default_network
    fake = MotoFargate(
        cluster=CLUSTER,
        subnet=subnet,
        security_group=security_group,
        session=session,
        url=moto_url,
    )
    fake.ecs.create_cluster(clusterName=CLUSTER)
    proxy.clear()
    return fake


@pytest.fixture
def make_executor(
    moto: MotoFargate, proxy: WireProxy, session: boto3.session.Session
) -> Iterator[MakeExecutor]:
    made: list[FargateExecutor] = []

    def make(**overrides: Any) -> FargateExecutor:
        options: dict[str, Any] = {
            "region": REGION,
            "endpoint_url": proxy.url,
            "session": session,
            "poll_interval": 0.01,
        }
        options.update(overrides)
        cluster = options.pop("cluster", moto.cluster)
        executor = FargateExecutor(cluster, [moto.subnet], [moto.security_group], **options)
        made.append(executor)
        return executor

    yield make
    for executor in made:
        executor.close()


@pytest.fixture
def executor(make_executor: MakeExecutor) -> FargateExecutor:
    return make_executor()
