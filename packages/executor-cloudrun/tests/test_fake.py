"""The fake itself: it refuses what the discovery documents refuse, and answers like the service.

Without these, a test against the fake could pass on a request Google would reject.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from google.api_core.exceptions import Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2

from fake_gcp import FakeGCP, load

PARENT = "projects/jobrelay-test/locations/europe-west1"
CONTAINER = {"image": "busybox", "resources": {"limits": {"cpu": "1", "memory": "512Mi"}}}


def _send(fake: FakeGCP, verb: str, path: str, body: Any = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(  # noqa: S310 - the local fake
        f"{fake.url}{path}", data=data, method=verb, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:  # noqa: S310
            return int(answer.status), json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


def _create(fake: FakeGCP, job_id: str, job: dict[str, Any]) -> tuple[int, Any]:
    path = f"/v2/{PARENT}/jobs?jobId={job_id}&%24alt=json%3Benum-encoding%3Dint"
    return _send(fake, "POST", path, job)


def _job(**extra: Any) -> dict[str, Any]:
    return {"template": {"template": {"containers": [CONTAINER]}}, **extra}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_job(colour="blue"), "GoogleCloudRunV2Job.colour: unknown field"),
        (_job(uid="abc"), "uid: is output only"),
        (_job(executionCount=3), "executionCount: is output only"),
        (_job(launchStage="SHINY"), "'SHINY' is not one of"),
        (_job(launchStage=99), "enum number 99 is out of range"),
        (
            {"template": {"template": {"containers": [CONTAINER], "timeout": "10 minutes"}}},
            "not a duration",
        ),
        (
            {"template": {"template": {"containers": [CONTAINER], "maxRetries": "3"}}},
            "expected an int32 number",
        ),
        (
            {"template": {"template": {"containers": [{**CONTAINER, "shell": "sh"}]}}},
            "containers[0].shell: unknown field",
        ),
    ],
)
def test_schema_refuses_bad_requests(fake: FakeGCP, body: dict[str, Any], problem: str) -> None:
    status, answer = _create(fake, "bad-job", body)
    assert status == 400
    assert answer["error"]["status"] == "INVALID_ARGUMENT"
    assert problem in answer["error"]["message"]
    assert fake.jobs == {}
    fake.rejected.clear()


@pytest.mark.parametrize(
    ("labels", "limits", "problem"),
    [
        ({"Team": "x"}, None, "invalid label key"),
        ({"team": "Data Science"}, None, "invalid label value"),
        ({"run.googleapis.com/x": "y"}, None, "invalid label key"),
        ({}, {"cpu": "3", "memory": "1Gi"}, "not a valid job cpu"),
        ({}, {"cpu": "1", "memory": "8Gi"}, "outside 512Mi-4096Mi"),
        ({}, {"cpu": "4", "memory": "1Gi"}, "outside 2048Mi-16384Mi"),
    ],
)
def test_service_rules_refuse_bad_jobs(
    fake: FakeGCP, labels: dict[str, str], limits: dict[str, str] | None, problem: str
) -> None:
    container = {**CONTAINER, "resources": {"limits": limits}} if limits else CONTAINER
    body = {"labels": labels, "template": {"template": {"containers": [container]}}}
    status, answer = _create(fake, "bad-job", body)
    assert status == 400, answer
    assert problem in answer["error"]["message"]


def test_unknown_query_parameter_is_refused(fake: FakeGCP) -> None:
    status, answer = _send(fake, "GET", f"/v2/{PARENT}/jobs?filter=labels.x%3Dy")
    assert status == 400
    assert "'filter'" in answer["error"]["message"]
    fake.rejected.clear()


def test_the_fake_checks_its_own_answers(fake: FakeGCP) -> None:
    _create(fake, "ok-job", _job())
    fake.job("ok-job")["colour"] = "blue"  # corrupt the stored job
    status, _ = _send(fake, "GET", f"/v2/{PARENT}/jobs/ok-job")
    assert status == 200
    assert fake.problems == ["run.jobs.get answer: GoogleCloudRunV2Job.colour: unknown field"]
    fake.problems.clear()


def test_discovery_documents_mark_output_only_fields() -> None:
    run = load("run.v2")
    job = run.schemas["GoogleCloudRunV2Job"]["properties"]
    assert "Output only" in job["uid"]["description"]
    assert run.check({"uid": "x"}, "GoogleCloudRunV2Job", request=False) == []
    assert run.check({"uid": "x"}, "GoogleCloudRunV2Job", request=True) != []


def test_create_with_token_starts_execution_and_409_on_existing_name(fake: FakeGCP) -> None:
    client = run_v2.JobsClient(
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        transport="rest",
        client_options={"api_endpoint": fake.url},
    )
    job = run_v2.Job(
        start_execution_token="tok1",
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(containers=[run_v2.Container(image="busybox")])
        ),
    )
    operation = client.create_job(parent=PARENT, job=job, job_id="tokened", timeout=5)
    assert operation.operation.done is False
    assert operation.metadata.name == f"{PARENT}/jobs/tokened"
    assert list(fake.executions) == [f"{PARENT}/jobs/tokened/executions/tokened-tok1"]
    with pytest.raises(Conflict):
        client.create_job(parent=PARENT, job=job, job_id="tokened", timeout=5)
    assert len(fake.executions) == 1
    # RunJob: the operation is not done and carries the Execution as metadata.
    run = client.run_job(name=f"{PARENT}/jobs/tokened", timeout=5)
    assert run.operation.done is False
    assert isinstance(run.metadata, run_v2.Execution)
    assert run.metadata.name.startswith(f"{PARENT}/jobs/tokened/executions/tokened-")
    client.transport.close()  # type: ignore[no-untyped-call]


def test_list_executions_across_jobs_pages_without_empty_token(fake: FakeGCP) -> None:
    for index in range(5):
        _create(fake, f"job-{index}", _job(startExecutionToken="t"))
    names: list[str] = []
    token = ""
    pages = 0
    while True:
        query = f"pageSize=2&pageToken={token}" if token else "pageSize=2"
        status, answer = _send(fake, "GET", f"/v2/{PARENT}/jobs/-/executions?{query}")
        assert status == 200
        pages += 1
        names += [e["name"] for e in answer["executions"]]
        token = answer.get("nextPageToken", "")
        assert "nextPageToken" not in answer or token
        if not token:
            break
    assert pages == 3
    assert sorted(names) == sorted(fake.executions)
    status, answer = _send(fake, "GET", f"/v2/{PARENT}/jobs/job-0/executions")
    assert [e["name"] for e in answer["executions"]] == [f"{PARENT}/jobs/job-0/executions/job-0-t"]


def test_string_enums_in_answers(fake: FakeGCP) -> None:
    _create(fake, "enum-job", _job(startExecutionToken="t", launchStage=0))
    execution = f"{PARENT}/jobs/enum-job/executions/enum-job-t"
    fake.finish(execution, 2)
    _, answer = _send(fake, "GET", f"/v2/{execution}")
    assert answer["conditions"][0]["state"] == "CONDITION_FAILED"
    assert answer["conditions"][0]["executionReason"] == "NON_ZERO_EXIT_CODE"
    _, job = _send(fake, "GET", f"/v2/{PARENT}/jobs/enum-job")
    assert job["launchStage"] == "GA"


def _entries(fake: FakeGCP, **body: Any) -> tuple[int, Any]:
    return _send(
        fake, "POST", "/v2/entries:list", {"resourceNames": ["projects/jobrelay-test"], **body}
    )


def test_entries_list_filters_orders_and_pages(fake: FakeGCP) -> None:
    _create(fake, "log-job", _job(startExecutionToken="t"))
    execution = f"{PARENT}/jobs/log-job/executions/log-job-t"
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for second in range(5):
        fake.write_log(
            execution, "stdout", [f"out {second}"], when=start + timedelta(seconds=second)
        )
    fake.write_log(execution, "stderr", ["err"], when=start)
    stdout = "projects/jobrelay-test/logs/run.googleapis.com%2Fstdout"
    text = f'logName = "{stdout}" AND timestamp >= "2026-01-01T00:00:02Z"'
    status, answer = _entries(fake, filter=text, orderBy="timestamp desc", pageSize=2)
    assert status == 200
    assert [e["textPayload"] for e in answer["entries"]] == ["out 4", "out 3"]
    _, rest = _entries(
        fake, filter=text, orderBy="timestamp desc", pageSize=2, pageToken=answer["nextPageToken"]
    )
    assert [e["textPayload"] for e in rest["entries"]] == ["out 2"]
    assert "nextPageToken" not in rest
    # Without a timestamp bound only the last 24 hours are searched, as the service does.
    _, unbounded = _entries(fake, filter=f'logName = "{stdout}"')
    assert unbounded == {}
    status, bad = _entries(fake, filter="logName =~ nonsense(")
    assert status == 400
    assert "invalid filter" in bad["error"]["message"]


def test_entries_list_quota(fake: FakeGCP) -> None:
    fake.logging_quota = 3
    bound = 'timestamp >= "2026-01-01T00:00:00Z"'
    codes = [_entries(fake, filter=bound)[0] for _ in range(4)]
    assert codes == [200, 200, 200, 429]


def test_lost_reply_happens_after_the_call_took_effect(fake: FakeGCP) -> None:
    fake.fail("run.jobs.create", lost_reply=True)
    with requests.Session() as session, pytest.raises(requests.ConnectionError):
        session.post(f"{fake.url}/v2/{PARENT}/jobs?jobId=lost", json=_job(), timeout=5)
    assert f"{PARENT}/jobs/lost" in fake.jobs
    assert fake.count("run.jobs.create") == 1
