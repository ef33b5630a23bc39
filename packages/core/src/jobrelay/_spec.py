"""What to run: :class:`JobSpec` and :class:`Resources`, validated at construction.

Every check raises :class:`~jobrelay.errors.SpecError` naming the field, so a bad job
is refused before any backend sees it. Secret values are kept out of ``repr``/``str``
and out of every error message.
"""

from __future__ import annotations

import math
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from types import MappingProxyType
from typing import Any

import attrs

from jobrelay.errors import SpecError

__all__ = ["JobSpec", "Resources", "parse_memory"]

# Docker image reference grammar (distribution/reference):
#   reference  := name [ ":" tag ] [ "@" digest ]
#   name       := [domain "/"] path-component ["/" path-component]*
#   domain     := domain-component ["." domain-component]* [":" port]
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
# re.ASCII: the grammar's \w is Go's, ASCII only; Python's would admit "busybox:\u00e9".
_IMAGE_RE = re.compile(
    rf"(?P<name>(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_NAME_MAX = 255
_NAME_LEN_MAX = 253  # JobSpec.name: a DNS name's length, what most backends accept

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

# Binary units are exact powers of two; decimal ones are exact powers of ten.
_MEMORY_UNITS: dict[str, Fraction] = {
    "": Fraction(1),  # a bare number is MiB
    "Ki": Fraction(1, 1024),
    "Mi": Fraction(1),
    "Gi": Fraction(1024),
    "Ti": Fraction(1024 * 1024),
    "K": Fraction(10**3, 2**20),
    "M": Fraction(10**6, 2**20),
    "G": Fraction(10**9, 2**20),
    "T": Fraction(10**12, 2**20),
}
# Bounds well past any real job, so that absurd input fails here, fast and by name,
# instead of overflowing a backend's int64 or float later.
_CPU_MAX = 10_000.0
_MEMORY_MAX_MIB = 2**40  # 1 EiB: still fits int64 bytes with room
_GPU_MAX = 1024
_TIMEOUT_MAX = 1e9  # about 31 years
_RETRIES_MAX = 100
_MEMORY_TEXT_MAX = 64
_METADATA_DEPTH_MAX = 32


def _shown(value: object) -> str:
    """``repr(value)`` for a message, short, and safe for huge ints (no 4300-digit limit)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        digits = int(abs(value).bit_length() * 0.30103) + 1
        return f"{'-' if value < 0 else ''}<an int of about {digits} digits>"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


_MEMORY_RE = re.compile(r"\s*(?P<num>[0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*(?P<unit>[KMGT]i?)?\s*")


def parse_memory(value: object, *, field: str = "memory") -> int:
    """Return ``value`` as a whole number of MiB.

    Accepts an int (MiB) or a string such as ``"512Mi"``, ``"2Gi"``, ``"1.5Gi"``,
    ``"1G"`` or ``"512M"``. Decimal units are converted exactly and rounded up to the
    next MiB so a job never gets less memory than it asked for.

    Raises:
        SpecError: the value is not positive or cannot be parsed.
    """
    if isinstance(value, bool):
        raise SpecError(field, f"must be MiB as an int or a string like '512Mi', got {value!r}")
    if isinstance(value, int):
        mib = value
    elif isinstance(value, str):
        match = _MEMORY_RE.fullmatch(value) if len(value) <= _MEMORY_TEXT_MAX else None
        if match is None:
            raise SpecError(
                field,
                f"cannot parse {_shown(value)}; use MiB or a unit: 512Mi, 2Gi, 1.5Gi, 1G, 512M",
            )
        try:
            number = Fraction(Decimal(match["num"]))
        except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
            raise SpecError(field, f"cannot parse {value!r}") from exc
        mib = math.ceil(number * _MEMORY_UNITS[match["unit"] or ""])
    else:
        raise SpecError(
            field, f"must be MiB as an int or a string like '512Mi', got {type(value).__name__}"
        )
    if mib <= 0:
        raise SpecError(field, f"must be greater than 0, got {_shown(value)}")
    if mib > _MEMORY_MAX_MIB:
        raise SpecError(field, f"must be at most {_MEMORY_MAX_MIB} MiB, got {_shown(value)}")
    return mib


def _positive_number(field: str, value: object, maximum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SpecError(field, f"must be a number, got {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:
        raise SpecError(field, f"must be at most {maximum:g}, got {_shown(value)}") from None
    if not math.isfinite(number) or number <= 0:
        raise SpecError(field, f"must be greater than 0, got {_shown(value)}")
    if number > maximum:
        raise SpecError(field, f"must be at most {maximum:g}, got {_shown(value)}")
    return number


def _cpu(value: object) -> float:
    return _positive_number("resources.cpu", value, _CPU_MAX)


def _memory(value: object) -> int:
    return parse_memory(value, field="resources.memory")


def _gpu(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError("resources.gpu", f"must be an int, got {type(value).__name__}")
    if not 0 <= value <= _GPU_MAX:
        raise SpecError("resources.gpu", f"must be 0 to {_GPU_MAX}, got {_shown(value)}")
    return value


@attrs.frozen
class Resources:
    """Compute a job asks for.

    Args:
        cpu: cores, a positive float (``0.25`` is a quarter core).
        memory: MiB as an int, or a string such as ``"512Mi"``, ``"2Gi"``, ``"1G"``.
        gpu: number of GPUs, 0 or more.
    """

    cpu: float = attrs.field(default=1.0, converter=_cpu)
    memory: int = attrs.field(default=512, converter=_memory)
    gpu: int = attrs.field(default=0, converter=_gpu)

    @property
    def memory_mb(self) -> int:
        """Memory in MiB (the unit routing rules call ``memory_mb``)."""
        return self.memory


def _resources(value: object) -> Resources:
    if value is None:
        return Resources()
    if isinstance(value, Resources):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"cpu", "memory", "gpu"}
        if unknown:
            raise SpecError("resources", f"unknown keys {sorted(map(str, unknown))}")
        return Resources(**value)
    raise SpecError("resources", f"must be Resources or a mapping, got {type(value).__name__}")


def _image(value: object) -> str:
    if not isinstance(value, str):
        raise SpecError("image", f"must be a string, got {type(value).__name__}")
    if not value:
        raise SpecError("image", "must not be empty")
    match = _IMAGE_RE.fullmatch(value)
    if match is None:
        raise SpecError("image", f"{_shown(value)} is not a valid image reference")
    if len(match["name"]) > _NAME_MAX:
        raise SpecError("image", f"repository name longer than {_NAME_MAX} characters")
    return value


def _to_argv(field: str, value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise SpecError(field, f"cannot split {_shown(value)}: {exc}") from None
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = tuple(value)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise SpecError(f"{field}[{i}]", f"must be a string, got {type(item).__name__}")
            if "\0" in item:
                raise SpecError(f"{field}[{i}]", "must not contain a NUL character")
        return items
    raise SpecError(field, f"must be a sequence of strings or a string, got {type(value).__name__}")


def _command(value: object) -> tuple[str, ...] | None:
    return _to_argv("command", value)


def _entrypoint(value: object) -> tuple[str, ...] | None:
    return _to_argv("entrypoint", value)


def _to_string_mapping(
    field: str, value: object, *, secret: bool = False, identifiers: bool = True
) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise SpecError(field, f"must be a mapping, got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str):
            raise SpecError(field, f"keys must be strings, got {type(key).__name__}")
        if identifiers and not _IDENT_RE.fullmatch(key):
            raise SpecError(f"{field}[{_shown(key)}]", "name must match [A-Za-z_][A-Za-z0-9_]*")
        if not isinstance(item, str):
            shown = "" if secret else f" {_shown(item)}"
            raise SpecError(
                f"{field}[{_shown(key)}]",
                f"value must be a string, got {type(item).__name__}{shown}",
            )
        out[key] = item
    return MappingProxyType(out)


def _env(value: object) -> Mapping[str, str]:
    return _to_string_mapping("env", value)


def _secrets(value: object) -> Mapping[str, str]:
    # Never show a secret value, even a malformed one.
    return _to_string_mapping("secrets", value, secret=True)


def _labels(value: object) -> Mapping[str, str]:
    converted = _to_string_mapping("labels", value, identifiers=False)
    for key in converted:
        if not key:
            raise SpecError("labels", "keys must not be empty")
    return converted


def _metadata(value: object) -> Mapping[str, Any]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise SpecError("metadata", f"must be a mapping, got {type(value).__name__}")
    # Iteratively, so a hostile 3000-deep value is refused, not a RecursionError later.
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > _METADATA_DEPTH_MAX:
            raise SpecError("metadata", f"nested deeper than {_METADATA_DEPTH_MAX} levels")
        if isinstance(item, Mapping):
            pending.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            pending.extend((child, depth + 1) for child in item)
    return MappingProxyType(dict(value))


def _timeout(value: object) -> float | None:
    if value is None:
        return None
    return _positive_number("timeout", value, _TIMEOUT_MAX)


def _to_optional_str(field: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise SpecError(field, f"must be a non-empty string, got {_shown(value)}")
    if "\0" in value:
        raise SpecError(field, "must not contain a NUL character")
    return value


def _preferred_executor(value: object) -> str | None:
    return _to_optional_str("preferred_executor", value)


def _working_dir(value: object) -> str | None:
    converted = _to_optional_str("working_dir", value)
    if converted is not None and not converted.startswith("/"):
        raise SpecError("working_dir", f"must be an absolute path, got {_shown(converted)}")
    return converted


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SpecError("name", f"must be a non-empty string, got {_shown(value)}")
    if any(ord(ch) < 32 for ch in value) or len(value) > _NAME_LEN_MAX:
        raise SpecError("name", f"must be at most {_NAME_LEN_MAX} printable characters")
    return value


def _job_id(value: object) -> str:
    if not isinstance(value, str) or not _JOB_ID_RE.fullmatch(value):
        raise SpecError(
            "job_id", f"must match [A-Za-z0-9][A-Za-z0-9_.-]{{0,127}}, got {_shown(value)}"
        )
    return value


def _max_retries(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _RETRIES_MAX:
        raise SpecError(
            "max_retries", f"must be an int from 0 to {_RETRIES_MAX}, got {_shown(value)}"
        )
    return value


def _stdin(value: object) -> bool:
    if not isinstance(value, bool):
        raise SpecError("stdin", f"must be True or False, got {_shown(value)}")
    return value


def _default_name(image: str) -> str:
    match = _IMAGE_RE.fullmatch(image)
    repository = match["name"] if match else image
    # A path component may be longer than a name may be: keep a valid image valid.
    return repository.rsplit("/", 1)[-1][:_NAME_LEN_MAX]


def _new_job_id() -> str:
    return uuid.uuid4().hex


def _secrets_repr(secrets: Mapping[str, str]) -> str:
    return "{" + ", ".join(f"{key!r}: '***'" for key in secrets) + "}"


@attrs.frozen(unsafe_hash=False)
class JobSpec:
    """A container job: what to run, with what, where it may go.

    Validated at construction; bad input raises :class:`~jobrelay.errors.SpecError`
    naming the field. ``secrets`` are passed to the workload like ``env`` but their
    values never appear in ``repr``, logs, events or error messages.

    Example::

        job = JobSpec(
            "busybox:1.36",
            "sh -c 'echo hello'",
            env={"GREETING": "hi"},
            secrets={"API_TOKEN": token},
            resources=Resources(cpu=0.5, memory="1Gi"),
            timeout=600,
        )

    Args:
        image: image reference (Docker grammar).
        command: argument list, or a string split with :func:`shlex.split`.
        entrypoint: overrides the image's entrypoint (same forms as ``command``).
        env: environment variables.
        secrets: environment variables whose values are secret.
        resources: :class:`Resources` or a mapping of its fields.
        timeout: seconds of running time before the job is cancelled, or None.
        labels: your own labels, put on the workload beside jobrelay's.
        name: human name; default is the image's repository name.
        job_id: idempotency key; launching the same id twice never makes two workloads.
        working_dir: absolute working directory inside the container.
        preferred_executor: executor to use when it is available.
        metadata: free mapping for your own use (routing rules can read it).
        max_retries: platform-side retries of a failed task, where the backend has them.
        stdin: keep the job's standard input open for the input given through the
            executor's ``send_stdin`` (see :class:`~jobrelay.StdinFeeder`); the job
            reads it until the sender closes it. Executors without
            ``Capabilities.stdin`` ignore it, and the job reads end-of-file. Input is
            sent once: such a job cannot have ``max_retries``.
    """

    image: str = attrs.field(converter=_image)
    command: tuple[str, ...] | None = attrs.field(default=None, converter=_command)
    entrypoint: tuple[str, ...] | None = attrs.field(
        default=None, converter=_entrypoint, kw_only=True
    )
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_env, kw_only=True)
    secrets: Mapping[str, str] = attrs.field(
        factory=dict,
        converter=_secrets,
        repr=_secrets_repr,
        kw_only=True,
    )
    resources: Resources = attrs.field(factory=Resources, converter=_resources, kw_only=True)
    timeout: float | None = attrs.field(default=None, converter=_timeout, kw_only=True)
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_labels, kw_only=True)
    name: str = attrs.field(
        default=attrs.Factory(lambda self: _default_name(self.image), takes_self=True),
        converter=_name,
        kw_only=True,
    )
    job_id: str = attrs.field(factory=_new_job_id, converter=_job_id, kw_only=True)
    working_dir: str | None = attrs.field(default=None, converter=_working_dir, kw_only=True)
    preferred_executor: str | None = attrs.field(
        default=None, converter=_preferred_executor, kw_only=True
    )
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=_metadata, kw_only=True)
    max_retries: int = attrs.field(default=0, converter=_max_retries, kw_only=True)
    stdin: bool = attrs.field(default=False, converter=_stdin, kw_only=True)

    def __attrs_post_init__(self) -> None:
        if self.stdin and self.max_retries:
            # A retried attempt would wait for input nobody sends again.
            raise SpecError(
                "stdin", "a job that reads its input once cannot be retried: max_retries must be 0"
            )

    def __hash__(self) -> int:
        # Equal specs share a job_id, so hashing the idempotency key agrees with ==;
        # the mapping fields are read-only proxies, which cannot be hashed.
        return hash(self.job_id)

    def environment(self) -> dict[str, str]:
        """Return ``env`` and ``secrets`` merged (secrets win), as the workload sees them."""
        merged = dict(self.env)
        merged.update(self.secrets)
        return merged


# attrs takes each parameter's annotation from its converter, which accepts ``object``
# to validate anything; ``help()`` should show what callers may pass instead.
Resources.__init__.__annotations__.update(
    cpu="float",
    memory="int | str",
    gpu="int",
)
JobSpec.__init__.__annotations__.update(
    image="str",
    command="Sequence[str] | str | None",
    entrypoint="Sequence[str] | str | None",
    env="Mapping[str, str] | None",
    secrets="Mapping[str, str] | None",
    resources="Resources | Mapping[str, Any] | None",
    timeout="float | None",
    labels="Mapping[str, str] | None",
    name="str",
    job_id="str",
    working_dir="str | None",
    preferred_executor="str | None",
    metadata="Mapping[str, Any] | None",
    max_retries="int",
    stdin="bool",
)
