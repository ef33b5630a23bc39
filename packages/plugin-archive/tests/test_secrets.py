"""No secret value, in any form it may be echoed in, reaches any archived object."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import S3Server, read_tree, run_jobs
from jobrelay import Hooks, JobSpec, Router, Runner
from jobrelay.backend import MASK, secret_forms
from jobrelay_archive import Archive, ArchivePlugin
from jobrelay_mock import MockExecutor, MockOutcome

# Quotes, a newline, spaces, a slash and non-ASCII: it has many spellings.
SECRET = 'p@ss "wörd"/\n42 zz'
OTHER = "second-secret-value-9"


def _secret_jobs() -> list[JobSpec]:
    secrets = {"TOKEN": SECRET, "OTHER": OTHER}
    return [
        JobSpec(
            "busybox",
            ["sh", "-c", f"echo {OTHER}"],  # a careless command line
            name="leaky",
            secrets=secrets,
            labels={"note": OTHER},
            metadata={"why": SECRET},
        ),
        JobSpec("busybox", "false", name="leaky-fail", secrets=secrets, labels={"exit": "2"}),
    ]


def _assert_clean(objects: dict[str, bytes]) -> None:
    forms = secret_forms(SECRET) | secret_forms(OTHER)
    assert objects
    for key, data in objects.items():
        text = data.decode("utf-8")
        for form in forms:
            assert form not in text, f"{key} holds a form of a secret: {form!r}"
        assert SECRET not in key
        assert OTHER not in key
    logs = [data.decode() for key, data in objects.items() if key.endswith(".log")]
    # The logs really did carry the secrets: they were masked, not missing.
    assert sum(text.count(MASK) for text in logs) >= 4
    for key, data in objects.items():
        if key.endswith("result.json"):
            record = json.loads(data)
            assert "env" not in record["job"]
            assert "secrets" not in record["job"]


def test_local_objects_hold_no_secret(tmp_path: Path) -> None:
    archive = Archive(tmp_path.as_uri())
    run_jobs(archive, _secret_jobs())
    assert archive.close(10)
    objects = read_tree(tmp_path)
    assert len(objects) == 6
    _assert_clean(objects)
    records = [json.loads(v) for k, v in objects.items() if k.endswith("result.json")]
    [leaky] = [record for record in records if record["job"]["name"] == "leaky"]
    assert leaky["job"]["labels"] == {"note": MASK}
    assert leaky["job"]["command"] == ["sh", "-c", f"echo {MASK}"]


def test_s3_objects_hold_no_secret(s3: S3Server, bucket: str) -> None:
    archive = Archive(f"s3://{bucket}/x", storage_options=s3.storage_options())
    run_jobs(archive, _secret_jobs())
    assert archive.close(30)
    objects = s3.objects(bucket)
    assert len(objects) == 6
    _assert_clean(objects)


def test_route_hops_with_secret_in_launch_error_are_masked(tmp_path: Path) -> None:
    """A backend that echoes the secret in its refusal: the hop is archived masked."""
    archive = Archive(tmp_path.as_uri())
    hooks = Hooks(load_entry_points=False)
    hooks.register(ArchivePlugin(archive))
    refusing = MockExecutor(
        "first", behavior=lambda _: MockOutcome(launch_error=f"bad token {SECRET}")
    )
    router = Router(
        [refusing, MockExecutor("second")], default="first", fallback=["second"], hooks=hooks
    )
    job = JobSpec("busybox", "true", secrets={"TOKEN": SECRET})
    with Runner(router, poll_interval=0.05) as runner:
        [result] = runner.run([job])
    assert archive.close(10)
    assert result.execution.executor == "second"
    objects = read_tree(tmp_path)
    record = json.loads(objects[f"second/{job.job_id}/result.json"])
    assert record["route"]["hops"][0][0] == "first"
    for data in objects.values():
        for form in secret_forms(SECRET):
            assert form not in data.decode()
