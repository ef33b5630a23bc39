"""launch -> status -> cancel against moto exactly as a user installs it: no patch at all.

The fixtures of the other tests patch moto where it is wrong about AWS, and they run
moto in this process, so the check runs in a fresh interpreter with nothing but
``ThreadedMotoServer`` and the executor: what a user's own test suite would do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = """
import json
import boto3
from moto.server import ThreadedMotoServer
from jobrelay import JobSpec
from jobrelay_fargate import FargateExecutor

server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
try:
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    session = boto3.session.Session(region_name="us-east-1")
    ec2 = session.client("ec2", endpoint_url=url)
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]
    session.client("ecs", endpoint_url=url).create_cluster(clusterName="plain")
    with FargateExecutor(
        "plain", [subnet], [group["GroupId"]], endpoint_url=url, session=session
    ) as fargate:
        job = JobSpec("busybox:1.36", ["sh", "-c", "echo hi"], resources={"memory": "1Gi"})
        execution = fargate.launch(job)
        before = fargate.status(execution)
        fargate.cancel(execution)
        after = fargate.status(execution)
        again = fargate.launch(job)
        listed = [(e.job_id, e.execution_id) for e in fargate.list_managed()]
    print(json.dumps({
        "job_id": job.job_id,
        "arn": execution.execution_id,
        "before": before.state.value,
        "after": after.state.value,
        "reason": after.reason,
        "again": again.execution_id,
        "listed": listed,
    }))
finally:
    server.stop()
"""


def test_launch_status_cancel_on_unpatched_moto(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
    }
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] in {"pending", "running"}
    assert seen["after"] == "cancelled"
    assert seen["reason"].startswith("jobrelay: cancelled")
    assert seen["again"] == seen["arn"]  # the same job id finds its task, starts none
    assert seen["listed"] == [[seen["job_id"], seen["arn"]]]
