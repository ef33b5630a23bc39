"""JobSpec and Resources: validation, normalisation and memory parsing."""

from __future__ import annotations

import math
import shlex
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from jobrelay import JobSpec, Resources, SpecError, parse_memory
from strategies import (
    SPEC_FIELDS,
    anything,
    argv,
    identifiers,
    image_references,
    invalid_spec_kwargs,
    is_valid_reference,
    memory_strings,
    mutated_references,
    non_ascii_tags,
    reference_noise,
    spec_kwargs,
)

DIGEST = "sha256:" + "a" * 64


def _field_of(call: Any) -> str:
    with pytest.raises(SpecError) as info:
        call()
    return info.value.field


# -- image -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [
        "busybox",
        "busybox:1.36",
        "library/busybox:latest",
        "docker.io/library/busybox:1.36.1-musl",
        "localhost:5000/team/app",
        "registry.example.com:443/a/b/c:v1",
        "Registry.Example.COM/app",  # the domain may have capitals, the path may not
        "127.0.0.1:5000/app:tag",
        "[::1]:5000/app",
        "[fe80::1]/app",
        "my-registry/my_app__x.y--z:TAG_1.0-rc",
        f"busybox@{DIGEST}",
        f"gcr.io/project/app:1.0@{DIGEST}",
        "app:" + "t" * 128,
        "a" * 255,
    ],
)
def test_valid_images(image: str) -> None:
    assert JobSpec(image).image == image


@pytest.mark.parametrize(
    "image",
    [
        "",
        "Busybox",  # uppercase path component
        "team/App",
        "busybox:",  # empty tag
        "busybox:-tag",  # a tag starts with a word character
        "busybox:" + "t" * 129,  # tags are at most 128 characters
        "busybox:tag:again",
        "busybox:tag with space",
        " busybox",
        "busybox ",
        "-busybox",
        "busybox-",
        "busybox.",
        "bus...box",
        "team//app",
        "team/app/",
        "/app",
        "busybox@",
        "busybox@sha256:abc",  # digest shorter than 128 bits
        "busybox@sha256",
        "busybox@256:" + "a" * 64,  # algorithm starts with a letter
        "http://registry/app",
        "registry:port/app",
        "[::1/app",
        "a" * 256,  # repository name longer than 255
        "busybox:lat\u00e9st",  # Go's \w is ASCII: a non-ASCII tag is invalid
        "busybox:\u0661",
        "b\u00fcsybox",
        "busy\x00box",
    ],
)
def test_invalid_images(image: str) -> None:
    assert _field_of(lambda: JobSpec(image)) == "image"


@pytest.mark.parametrize("image", [None, 1, b"busybox", ["busybox"]])
def test_image_must_be_a_string(image: object) -> None:
    assert _field_of(lambda: JobSpec(image)) == "image"


def test_default_name_is_repository_name() -> None:
    assert JobSpec(f"registry.example.com:5000/team/app:1.2@{DIGEST}").name == "app"
    assert JobSpec("busybox").name == "busybox"
    assert JobSpec("busybox", name="custom").name == "custom"


# -- command and entrypoint ------------------------------------------------------------------


@pytest.mark.parametrize("field", ["command", "entrypoint"])
def test_argv_forms(field: str) -> None:
    assert getattr(JobSpec("busybox", **{field: ["echo", "a b"]}), field) == ("echo", "a b")
    assert getattr(JobSpec("busybox", **{field: ("echo",)}), field) == ("echo",)
    assert getattr(JobSpec("busybox", **{field: "sh -c 'echo a b'"}), field) == (
        "sh",
        "-c",
        "echo a b",
    )
    assert getattr(JobSpec("busybox", **{field: []}), field) == ()
    assert getattr(JobSpec("busybox", **{field: None}), field) is None


@pytest.mark.parametrize("field", ["command", "entrypoint"])
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, ""),
        (4.2, ""),
        (b"echo hi", ""),
        (bytearray(b"echo"), ""),
        ({"echo": "hi"}, ""),
        ({"echo"}, ""),
        (["echo", 1], "[1]"),
        ([None], "[0]"),
        (["echo", b"hi"], "[1]"),
        ("echo 'unbalanced", ""),
        ('echo "unbalanced', ""),
        ("echo trailing\\", ""),
    ],
)
def test_invalid_argv(field: str, value: object, expected: str) -> None:
    assert _field_of(lambda: JobSpec("busybox", **{field: value})) == field + expected


# -- env and secrets ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["env", "secrets"])
def test_names_and_values(field: str) -> None:
    spec = JobSpec("busybox", **{field: {"A": "1", "_b2": "", "LONG_NAME_9": "x y"}})
    assert dict(getattr(spec, field)) == {"A": "1", "_b2": "", "LONG_NAME_9": "x y"}


@pytest.mark.parametrize("field", ["env", "secrets"])
@pytest.mark.parametrize("name", ["", "1ABC", "A-B", "A B", "A.B", "\u00c9T\u00c9", "A=B", "$A"])
def test_bad_names(field: str, name: str) -> None:
    assert _field_of(lambda: JobSpec("busybox", **{field: {name: "v"}})) == f"{field}[{name!r}]"


@pytest.mark.parametrize("field", ["env", "secrets"])
@pytest.mark.parametrize("value", [1, 1.5, None, b"v", ["v"], True])
def test_non_string_values(field: str, value: object) -> None:
    assert _field_of(lambda: JobSpec("busybox", **{field: {"NAME": value}})) == f"{field}['NAME']"


@pytest.mark.parametrize("field", ["env", "secrets"])
def test_non_string_keys_and_non_mappings(field: str) -> None:
    assert _field_of(lambda: JobSpec("busybox", **{field: {1: "v"}})) == field
    assert _field_of(lambda: JobSpec("busybox", **{field: [("A", "v")]})) == field
    assert _field_of(lambda: JobSpec("busybox", **{field: "A=v"})) == field


def test_environment_merges_secrets_last() -> None:
    spec = JobSpec("busybox", env={"A": "env", "B": "env"}, secrets={"B": "secret"})
    assert spec.environment() == {"A": "env", "B": "secret"}


def test_mappings_are_frozen_copies() -> None:
    env = {"A": "1"}
    spec = JobSpec("busybox", env=env)
    env["A"] = "2"
    assert spec.env["A"] == "1"
    with pytest.raises(TypeError):
        spec.env["A"] = "3"  # type: ignore[index]


# -- resources -------------------------------------------------------------------------------


def test_resource_defaults_and_forms() -> None:
    assert Resources() == Resources(cpu=1.0, memory=512, gpu=0)
    assert JobSpec("busybox").resources == Resources()
    spec = JobSpec("busybox", resources={"cpu": 2, "memory": "2Gi", "gpu": 1})
    assert spec.resources == Resources(cpu=2.0, memory=2048, gpu=1)
    assert spec.resources.memory_mb == 2048
    assert isinstance(spec.resources.cpu, float)
    assert JobSpec("busybox", resources=Resources(cpu=0.25)).resources.cpu == 0.25


@pytest.mark.parametrize(
    "cpu", [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, "1", None, True, 10**400]
)
def test_bad_cpu(cpu: object) -> None:
    assert _field_of(lambda: Resources(cpu=cpu)) == "resources.cpu"
    assert _field_of(lambda: JobSpec("busybox", resources={"cpu": cpu})) == "resources.cpu"


@pytest.mark.parametrize("gpu", [-1, -100, 1.0, 0.5, "1", None, True])
def test_bad_gpu(gpu: object) -> None:
    assert _field_of(lambda: Resources(gpu=gpu)) == "resources.gpu"
    assert _field_of(lambda: JobSpec("busybox", resources={"gpu": gpu})) == "resources.gpu"


@pytest.mark.parametrize(
    "memory",
    [0, -1, "0", "0Mi", "0.0Gi", "-1Gi", "", " ", "Gi", "abc", "1.5.2Mi", "1e3", "12XB",
     "1gi", "1 G i", "0x10Mi", "1,5Gi", 512.0, math.nan, None, True, ["512Mi"]],
)  # fmt: skip
def test_bad_memory(memory: object) -> None:
    field = _field_of(lambda: Resources(memory=memory))
    assert field == "resources.memory"
    assert _field_of(lambda: JobSpec("busybox", resources={"memory": memory})) == field


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        (512, 512),
        (1, 1),
        ("512", 512),
        ("512Mi", 512),
        ("2Gi", 2048),
        ("1.5Gi", 1536),
        ("0.5Mi", 1),  # rounded up, never down
        ("1Ti", 1024 * 1024),
        ("2048Ki", 2),
        ("1Ki", 1),
        ("1G", 954),  # 10**9 bytes = 953.67... MiB
        ("512M", 489),  # 512 * 10**6 bytes = 488.28... MiB
        ("1048.576M", 1000),  # exactly 1000 MiB: no rounding up past an exact value
        ("1T", 953_675),  # 10**12 bytes = 953674.3... MiB
        ("1024K", 1),
        (" 2Gi ", 2048),
    ],
)
def test_memory_units(text: object, mib: int) -> None:
    assert parse_memory(text) == mib
    assert Resources(memory=text).memory == mib


def test_unknown_resource_keys() -> None:
    assert _field_of(lambda: JobSpec("busybox", resources={"cpus": 2})) == "resources"
    assert _field_of(lambda: JobSpec("busybox", resources=2)) == "resources"


# -- timeout, labels and the rest -------------------------------------------------------------


@pytest.mark.parametrize("timeout", [0, -1, 0.0, math.nan, math.inf, "60", True, 10**400])
def test_bad_timeout(timeout: object) -> None:
    assert _field_of(lambda: JobSpec("busybox", timeout=timeout)) == "timeout"


def test_timeout_forms() -> None:
    assert JobSpec("busybox").timeout is None
    assert JobSpec("busybox", timeout=90).timeout == 90.0
    assert JobSpec("busybox", timeout=0.5).timeout == 0.5


@pytest.mark.parametrize(
    ("labels", "field"),
    [
        ({1: "v"}, "labels"),
        ({None: "v"}, "labels"),
        ({"": "v"}, "labels"),
        ({"team": 1}, "labels['team']"),
        ({"team": None}, "labels['team']"),
        ({"team": b"data"}, "labels['team']"),
        (["team"], "labels"),
    ],
)
def test_bad_labels(labels: object, field: str) -> None:
    assert _field_of(lambda: JobSpec("busybox", labels=labels)) == field


def test_labels_allow_any_string_keys() -> None:
    labels = {"mock.exit-code": "3", "team": "data", "a/b": ""}
    assert dict(JobSpec("busybox", labels=labels).labels) == labels


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "a\nb"}, "name"),
        ({"name": "n" * 254}, "name"),
        ({"name": 3}, "name"),
        ({"job_id": ""}, "job_id"),
        ({"job_id": "has space"}, "job_id"),
        ({"job_id": "-leading"}, "job_id"),
        ({"job_id": "x" * 129}, "job_id"),
        ({"job_id": 7}, "job_id"),
        ({"working_dir": "relative/path"}, "working_dir"),
        ({"working_dir": ""}, "working_dir"),
        ({"preferred_executor": ""}, "preferred_executor"),
        ({"preferred_executor": 1}, "preferred_executor"),
        ({"metadata": [1]}, "metadata"),
        ({"max_retries": -1}, "max_retries"),
        ({"max_retries": 1.0}, "max_retries"),
        ({"max_retries": True}, "max_retries"),
    ],
)
def test_other_fields(kwargs: dict[str, object], field: str) -> None:
    assert _field_of(lambda: JobSpec("busybox", **kwargs)) == field


def test_job_id_default_is_unique() -> None:
    ids = {JobSpec("busybox").job_id for _ in range(100)}
    assert len(ids) == 100
    assert JobSpec("busybox", job_id="my.job-1_a").job_id == "my.job-1_a"


def test_spec_error_is_a_value_error_naming_the_field() -> None:
    with pytest.raises(ValueError, match=r"^timeout: ") as info:
        JobSpec("busybox", timeout=-1)
    assert isinstance(info.value, SpecError)


def test_frozen() -> None:
    spec = JobSpec("busybox")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        spec.image = "other"  # type: ignore[misc]


# -- properties -----------------------------------------------------------------------------


def _plain(value: object) -> object:
    return dict(value) if isinstance(value, Mapping) else value


@given(spec_kwargs())
def test_valid_specs_round_trip(kwargs: dict[str, Any]) -> None:
    spec = JobSpec(**kwargs)
    for key in ("image", "env", "secrets", "labels", "job_id", "working_dir", "metadata"):
        if key in kwargs:
            assert _plain(getattr(spec, key)) == kwargs[key]
    for key in ("command", "entrypoint"):
        if key in kwargs:
            assert getattr(spec, key) == tuple(kwargs[key])
    if "resources" in kwargs:
        assert spec.resources == Resources(**kwargs["resources"])
    # Its own fields build an equal spec: every converter is idempotent.
    fields = attrs.asdict(spec, recurse=False)
    assert JobSpec(**fields) == spec
    assert attrs.evolve(spec) == spec


@given(image_references(), argv)
def test_string_command_is_shlex_split(image: str, args: list[str]) -> None:
    assert JobSpec(image, shlex.join(args)).command == tuple(args)


@given(image_references())
def test_valid_references_accepted(image: str) -> None:
    assert is_valid_reference(image)
    assert JobSpec(image).image == image


@given(st.one_of(reference_noise, mutated_references(), non_ascii_tags()))
def test_references_agree_with_grammar(image: str) -> None:
    if is_valid_reference(image):
        assert JobSpec(image).image == image
    else:
        with pytest.raises(SpecError) as info:
            JobSpec(image)
        assert info.value.field == "image"


@given(invalid_spec_kwargs())
def test_invalid_input_raises_spec_error(case: tuple[dict[str, Any], str]) -> None:
    kwargs, field = case
    with pytest.raises(SpecError) as info:
        JobSpec(**kwargs)
    assert info.value.field.startswith(field), (info.value.field, field)


@given(spec_kwargs(), st.sampled_from(SPEC_FIELDS), anything)
def test_any_value_is_accepted_or_spec_error(
    kwargs: dict[str, Any], field: str, value: object
) -> None:
    kwargs[field] = value
    try:
        JobSpec(**kwargs)
    except SpecError as exc:
        refused = exc.field
    else:
        return
    assert refused.startswith(field)


@given(st.sampled_from(["cpu", "memory", "gpu"]), anything)
def test_any_resource_value_is_accepted_or_spec_error(field: str, value: object) -> None:
    try:
        Resources(**{field: value})
    except SpecError as exc:
        refused = exc.field
    else:
        return
    assert refused == f"resources.{field}"


@given(memory_strings())
def test_memory_parsing_is_exact(case: tuple[str, int]) -> None:
    text, mib = case
    assert parse_memory(text) == mib
    assert Resources(memory=text).memory == mib


@given(
    st.integers(min_value=1, max_value=10**9), st.sampled_from(["Ki", "Mi", "Gi", "K", "M", "G"])
)
def test_memory_never_rounds_down(number: int, unit: str) -> None:
    bytes_per_unit = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
    mib = parse_memory(f"{number}{unit}")
    asked = Fraction(number * bytes_per_unit[unit], 2**20)
    assert asked <= mib < asked + 1


@given(st.integers(min_value=1, max_value=2**40))
def test_memory_ints_are_mib(mib: int) -> None:
    assert parse_memory(mib) == mib


@given(st.integers(min_value=2**40 + 1))
def test_memory_past_an_exbibyte_is_refused(mib: int) -> None:
    with pytest.raises(SpecError, match="at most"):
        parse_memory(mib)


@given(st.dictionaries(identifiers, st.text(max_size=5), max_size=4))
def test_env_names_accepted(env: dict[str, str]) -> None:
    assert dict(JobSpec("busybox", env=env).env) == env


def test_job_specs_are_hashable_by_their_idempotency_key() -> None:
    first = JobSpec("busybox", ["true"], env={"A": "1"}, labels={"k": "v"}, job_id="job-1")
    same = JobSpec("busybox", ["true"], env={"A": "1"}, labels={"k": "v"}, job_id="job-1")
    other = JobSpec("busybox", ["true"], env={"A": "2"}, job_id="job-1")
    assert first == same
    assert hash(first) == hash(same)
    assert len({first, same}) == 1
    assert first != other  # same key, different content: unequal but may share a hash
    assert {first: "x"}[same] == "x"
