"""Pure rules: Fargate sizes, AWS tag sanitising, per-job identifiers, error mapping."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError
from hypothesis import given
from hypothesis import strategies as st

from jobrelay import ExecutorError, JobSpec, LaunchError, TransientExecutorError
from jobrelay_fargate._errors import TABLE
from jobrelay_fargate._sizing import _TIERS, MAX_CPU, MAX_MEMORY_MB, fargate_size
from jobrelay_fargate._tags import MAX_TAGS, client_token, started_by, task_tags

VALID_PAIRS = [(tier.cpu_units, memory) for tier in _TIERS for memory in tier.memory]


def test_the_table_is_fargates() -> None:
    by_cpu = {cpu: [m for c, m in VALID_PAIRS if c == cpu] for cpu, _ in VALID_PAIRS}
    assert by_cpu[256] == [512, 1024, 2048]
    assert by_cpu[512] == [1024, 2048, 3072, 4096]
    assert (by_cpu[1024][0], by_cpu[1024][-1], len(by_cpu[1024])) == (2048, 8192, 7)
    assert (by_cpu[2048][0], by_cpu[2048][-1], len(by_cpu[2048])) == (4096, 16384, 13)
    assert (by_cpu[4096][0], by_cpu[4096][-1], len(by_cpu[4096])) == (8192, 30720, 23)
    assert (by_cpu[8192][0], by_cpu[8192][-1], len(by_cpu[8192])) == (16384, 61440, 12)
    assert (by_cpu[16384][0], by_cpu[16384][-1], len(by_cpu[16384])) == (32768, 122880, 12)
    assert (MAX_CPU, MAX_MEMORY_MB) == (16, 122880)


@given(
    cpu=st.floats(min_value=0.01, max_value=20, allow_nan=False),
    memory=st.integers(min_value=1, max_value=130_000),
)
def test_size_is_the_cheapest_valid_pair_that_fits(cpu: float, memory: int) -> None:
    size = fargate_size(cpu, memory)
    fitting = [(c, m) for c, m in VALID_PAIRS if c >= cpu * 1024 - 1e-6 and m >= memory]
    if not fitting:
        assert size is None
        return
    assert size is not None
    assert (size.cpu_units, size.memory_mb) == min(fitting)
    assert size.vcpu >= cpu - 1e-9


def _valid_tag_text(text: str) -> bool:
    return all(unicodedata.category(ch)[0] in "LZN" or ch in "_.:/=+-@" for ch in text)


@given(
    labels=st.dictionaries(st.text(min_size=1, max_size=300), st.text(max_size=400), max_size=80),
    name=st.text(alphabet=st.characters(min_codepoint=32), min_size=1, max_size=253).filter(
        str.strip
    ),
)
def test_tags_always_meet_aws_rules(labels: dict[str, str], name: str) -> None:
    job = JobSpec("busybox", labels=labels, name=name)
    tags = task_tags(job, "fargate")
    keys = [tag["key"] for tag in tags]
    assert len(tags) <= MAX_TAGS - 1  # one slot left for the propagated definition tag
    assert len(set(keys)) == len(keys)
    for tag in tags:
        assert 1 <= len(tag["key"]) <= 128
        assert len(tag["value"]) <= 256
        assert _valid_tag_text(tag["key"])
        assert _valid_tag_text(tag["value"])
        assert not tag["key"].lower().startswith("aws:")
        assert not tag["value"].lower().startswith("aws:")
    mapping = dict(zip(keys, (t["value"] for t in tags), strict=True))
    assert mapping["jobrelay.managed"] == "true"
    assert mapping["jobrelay.job-id"] == job.job_id


def test_jobrelay_tags_win_over_a_clashing_label() -> None:
    job = JobSpec("busybox", labels={"jobrelay.managed": "false", "jobrelay.job-id": "x"})
    tags = {t["key"]: t["value"] for t in task_tags(job, "fargate")}
    assert tags["jobrelay.managed"] == "true"
    assert tags["jobrelay.job-id"] == job.job_id


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", fullmatch=True))
def test_per_job_identifiers_fit_ecs(job_id: str) -> None:
    token = client_token(job_id)
    by = started_by(job_id)
    assert len(token) <= 64
    assert all(33 <= ord(ch) <= 126 for ch in token)
    assert len(by) <= 128
    assert re.fullmatch(r"[A-Za-z0-9/_-]+", by)
    assert client_token(job_id) == token
    assert started_by(job_id) == by


def test_different_job_ids_never_share_identifiers() -> None:
    # "a.b" and "a_b" would collide under a naive character replacement
    assert started_by("a.b") != started_by("a_b")
    assert client_token("a.b") != client_token("a_b")


def _client_error(status: int, code: str, message: str = "m") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": "req-1"},
    }
    return ClientError(response, "RunTask")


@pytest.mark.parametrize(
    ("error", "launch", "expected"),
    [
        (_client_error(400, "ThrottlingException"), True, TransientExecutorError),
        (_client_error(500, "ServerException"), True, TransientExecutorError),
        (_client_error(503, ""), False, TransientExecutorError),
        (_client_error(429, "SomethingNew"), True, TransientExecutorError),
        (EndpointConnectionError(endpoint_url="http://x"), True, TransientExecutorError),
        (ReadTimeoutError(endpoint_url="http://x"), False, TransientExecutorError),
        (_client_error(400, "AccessDeniedException"), True, LaunchError),
        (_client_error(400, "InvalidParameterException"), True, LaunchError),
        (_client_error(400, "ClientException"), True, LaunchError),
        (_client_error(400, "ClientException"), False, ExecutorError),
    ],
)
def test_error_mapping(
    error: ClientError | EndpointConnectionError, launch: bool, expected: type[Exception]
) -> None:
    mapped = TABLE.translate(error, "RunTask", executor="fargate", job_id="j", launching=launch)
    assert type(mapped) is expected
    assert mapped.executor == "fargate"
    assert mapped.job_id == "j"
    assert str(mapped).startswith("fargate RunTask failed: ")


def test_error_message_carries_code_message_and_request_id() -> None:
    mapped = TABLE.translate(
        _client_error(400, "AccessDeniedException", "User is not authorized"),
        "RunTask",
        executor="fargate",
        launching=True,
        secrets=["hunter2"],
    )
    assert "AccessDeniedException: User is not authorized (request id req-1)" in str(mapped)
