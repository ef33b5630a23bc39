"""Hypothesis strategies for JobSpec, Resources and memory values.

The image-reference strategies are built from the Docker reference grammar
(distribution/reference), independently of the regex in ``jobrelay._spec``, so the
property tests compare two implementations rather than one with itself.
"""

from __future__ import annotations

import math
import re
import string
from fractions import Fraction
from typing import Any

from hypothesis import strategies as st

# -- Docker image references ------------------------------------------------------------

_LOWER_ALNUM = string.ascii_lowercase + string.digits
_ALNUM = string.ascii_letters + string.digits
_WORD = _ALNUM + "_"
_HEX = "0123456789abcdefABCDEF"

# The grammar written out once more, ASCII only (Go's \w is ASCII), as the oracle.
ORACLE_REFERENCE = re.compile(
    r"""
    (?P<name>
        (?:
            (?:
                (?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])
                (?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*
              | \[[a-fA-F0-9:]+\]
            )(?::[0-9]+)? /
        )?
    [a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*
    (?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*
    )
    (?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?
    (?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?
    """,
    re.VERBOSE | re.ASCII,
)
NAME_MAX = 255


def is_valid_reference(text: str) -> bool:
    """Oracle: whether ``text`` is a valid reference per the grammar and length rule."""
    match = ORACLE_REFERENCE.fullmatch(text)
    return match is not None and len(match["name"]) <= NAME_MAX


def _runs(alphabet: str, *, min_size: int = 1, max_size: int = 6) -> st.SearchStrategy[str]:
    return st.text(alphabet, min_size=min_size, max_size=max_size)


_separators = st.sampled_from([".", "_", "__", "-", "--", "---"])


@st.composite
def path_components(draw: st.DrawFn) -> str:
    """``alnum (separator alnum)*``, lowercase."""
    parts = [draw(_runs(_LOWER_ALNUM))]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(_separators), draw(_runs(_LOWER_ALNUM))]
    return "".join(parts)


@st.composite
def domain_components(draw: st.DrawFn) -> str:
    """A DNS-like label: alnum, hyphens inside only."""
    if draw(st.booleans()):
        return draw(st.sampled_from(_ALNUM))
    inner = draw(st.text(_ALNUM + "-", max_size=8))
    return draw(st.sampled_from(_ALNUM)) + inner + draw(st.sampled_from(_ALNUM))


@st.composite
def domains(draw: st.DrawFn) -> str:
    """A registry host (DNS name or bracketed IPv6) with an optional port."""
    if draw(st.integers(0, 9)) == 0:
        host = "[" + draw(st.text(_HEX + ":", min_size=1, max_size=12)) + "]"
    else:
        host = ".".join(draw(st.lists(domain_components(), min_size=1, max_size=4)))
    if draw(st.booleans()):
        host += ":" + str(draw(st.integers(0, 65535)))
    return host


tags = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(_WORD),
    st.text(_WORD + ".-", max_size=127),
)


@st.composite
def digests(draw: st.DrawFn) -> str:
    """``algorithm:hex`` with at least 128 bits of hex."""
    components = draw(
        st.lists(
            st.builds(
                lambda a, b: a + b,
                st.sampled_from(string.ascii_letters),
                st.text(_ALNUM, max_size=5),
            ),
            min_size=1,
            max_size=3,
        )
    )
    algorithm: str = components[0]
    for component in components[1:]:
        algorithm += draw(st.sampled_from("-_+.")) + component
    return algorithm + ":" + draw(st.text(_HEX, min_size=32, max_size=72))


@st.composite
def image_references(draw: st.DrawFn) -> str:
    """A valid image reference: ``[domain/]path[:tag][@digest]``."""
    name = "/".join(draw(st.lists(path_components(), min_size=1, max_size=4)))
    if draw(st.booleans()):
        name = draw(domains()) + "/" + name
    reference = name  # sizes above keep the name well under NAME_MAX
    if draw(st.booleans()):
        reference += ":" + draw(tags)
    if draw(st.booleans()):
        reference += "@" + draw(digests())
    return reference


reference_noise = st.lists(
    st.sampled_from([*"aZ09._-/:@[]", "__", "--", " ", "\t", "\u00e9", "\u0661", "\u212a", "\x00"]),
    max_size=30,
).map("".join)
"""Short strings over the reference alphabet plus troublemakers (most are invalid)."""


@st.composite
def mutated_references(draw: st.DrawFn) -> str:
    """A valid reference with one character inserted, replaced or dropped."""
    base: str = draw(image_references())
    index = draw(st.integers(0, len(base)))
    action = draw(st.sampled_from(["insert", "replace", "drop"]))
    char: str = draw(st.sampled_from([*"A._-/:@", " ", "\u00e9", "\u0661"]))
    if action == "insert":
        return base[:index] + char + base[index:]
    if action == "replace":
        return base[:index] + char + base[index + 1 :]
    return base[:index] + base[index + 1 :]


@st.composite
def non_ascii_tags(draw: st.DrawFn) -> str:
    """A valid name with a tag holding a non-ASCII letter or digit (Python's ``\\w`` would pass it)."""
    name = "/".join(draw(st.lists(path_components(), min_size=1, max_size=2)))
    tag = draw(tags)
    index = draw(st.integers(0, len(tag)))
    odd = draw(st.characters(categories=("Lu", "Ll", "Nd"), min_codepoint=128))
    return f"{name}:{tag[:index]}{odd}{tag[index:]}"


# -- Memory -------------------------------------------------------------------------------

MEMORY_FACTORS: dict[str, Fraction] = {
    "": Fraction(1),
    "Ki": Fraction(1, 2**10),
    "Mi": Fraction(1),
    "Gi": Fraction(2**10),
    "Ti": Fraction(2**20),
    "K": Fraction(1000, 2**20),
    "M": Fraction(1000**2, 2**20),
    "G": Fraction(1000**3, 2**20),
    "T": Fraction(1000**4, 2**20),
}
"""MiB per unit, written from the unit definitions (Ki=2**10 bytes, K=10**3 bytes...)."""


@st.composite
def memory_strings(draw: st.DrawFn) -> tuple[str, int]:
    """A memory string and the MiB it must parse to (exact arithmetic, rounded up).

    Only strings whose value is positive are drawn.
    """
    whole = draw(st.integers(0, 10**6))
    fraction = draw(st.one_of(st.none(), st.text(string.digits, min_size=1, max_size=6)))
    unit = draw(st.sampled_from(sorted(MEMORY_FACTORS)))
    number = str(whole) if fraction is None else f"{whole}.{fraction}"
    value = Fraction(number) * MEMORY_FACTORS[unit]
    if value <= 0:
        number, value = "1", MEMORY_FACTORS[unit]
    return number + unit, math.ceil(value)


# -- Whole specs ---------------------------------------------------------------------------

identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True)
"""Environment and secret names."""

bad_identifiers = st.text(min_size=0, max_size=10).filter(
    lambda s: re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", s) is None
)
"""Strings that are not environment names (empty, leading digit, dashes, unicode...)."""

argv = st.lists(st.text(st.characters(exclude_characters="\0"), max_size=12), max_size=5)
positive_numbers = st.one_of(
    st.integers(1, 512),
    st.floats(min_value=1e-3, max_value=1e4, allow_nan=False, allow_infinity=False),
)
job_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,30}", fullmatch=True)


@st.composite
def spec_kwargs(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments for a valid ``JobSpec`` (the image under ``"image"``)."""
    kwargs: dict[str, Any] = {"image": draw(image_references())}
    optional: dict[str, st.SearchStrategy[Any]] = {
        "command": argv,
        "entrypoint": argv,
        "env": st.dictionaries(identifiers, st.text(max_size=10), max_size=3),
        "secrets": st.dictionaries(identifiers, st.text(max_size=10), max_size=3),
        "resources": st.fixed_dictionaries(
            {},
            optional={
                "cpu": positive_numbers,
                "memory": st.one_of(st.integers(1, 2**20), memory_strings().map(lambda p: p[0])),
                "gpu": st.integers(0, 8),
            },
        ),
        "timeout": st.one_of(st.none(), positive_numbers),
        "labels": st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=10)),
        "name": st.text(string.printable.strip(), min_size=1, max_size=20),
        "job_id": job_ids,
        "working_dir": st.from_regex(r"/[a-z/]{0,10}", fullmatch=True),
        "preferred_executor": st.sampled_from(["mock", "docker", "fargate"]),
        "metadata": st.dictionaries(st.text(max_size=5), st.integers()),
        "max_retries": st.integers(0, 5),
        "stdin": st.booleans(),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            kwargs[key] = draw(strategy)
    if kwargs.get("stdin"):
        kwargs.pop("max_retries", None)  # input is sent once: such a job is never retried
    return kwargs


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),
    st.text(max_size=10),
    st.binary(max_size=5),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.none()), max_size=3),
    st.dictionaries(
        st.one_of(st.text(max_size=5), st.integers()),
        st.one_of(st.text(max_size=5), st.integers(), st.none(), st.floats()),
        max_size=3,
    ),
    st.tuples(st.text(max_size=3)),
)
"""Values of every common type, including the odd ones (huge ints, NaN, bytes)."""

SPEC_FIELDS = (
    "image",
    "command",
    "entrypoint",
    "env",
    "secrets",
    "resources",
    "timeout",
    "labels",
    "name",
    "job_id",
    "working_dir",
    "preferred_executor",
    "metadata",
    "max_retries",
    "stdin",
)


# -- Invalid input, one field at a time ------------------------------------------------------

_no_quotes = st.text(st.characters(blacklist_characters="'\"\\", codec="utf-8"), max_size=8)
unbalanced_commands = st.builds(
    lambda head, quote, tail: f"{head} {quote}{tail}",
    _no_quotes,
    st.sampled_from(["'", '"']),
    _no_quotes,
)
"""Command strings with an opening quote that is never closed."""

_not_str = st.one_of(st.none(), st.integers(), st.floats(), st.binary(max_size=3), st.booleans())
_not_number = st.one_of(st.none(), st.text(max_size=3), st.booleans(), st.lists(st.integers()))
_non_positive = st.one_of(
    st.integers(max_value=0),
    st.floats(max_value=0.0, allow_nan=False),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)


def _argv_invalid() -> st.SearchStrategy[object]:
    return st.one_of(
        unbalanced_commands,
        st.integers(),
        st.floats(),
        st.binary(max_size=4),
        st.dictionaries(st.text(max_size=3), st.text(max_size=3), min_size=1),
        st.lists(_not_str.filter(lambda v: v is not None), min_size=1, max_size=2).map(
            lambda items: ["echo", *items]
        ),
    )


def _names_invalid() -> st.SearchStrategy[object]:
    return st.one_of(
        st.builds(lambda key: {key: "v"}, bad_identifiers),
        st.builds(lambda key: {key: "v"}, st.integers()),
        st.builds(lambda value: {"NAME": value}, _not_str),
        st.sampled_from([["A=1"], "A=1", 42]),
    )


INVALID_FIELD_VALUES: dict[str, tuple[str, st.SearchStrategy[object]]] = {
    "image": (
        "image",
        st.one_of(
            st.just(""),
            _not_str,
            reference_noise.filter(lambda s: not is_valid_reference(s)),
            mutated_references().filter(lambda s: not is_valid_reference(s)),
            non_ascii_tags(),
        ),
    ),
    "command": ("command", _argv_invalid()),
    "entrypoint": ("entrypoint", _argv_invalid()),
    "env": ("env", _names_invalid()),
    "secrets": ("secrets", _names_invalid()),
    "cpu": ("resources.cpu", st.one_of(_non_positive, _not_number)),
    "gpu": ("resources.gpu", st.one_of(st.integers(max_value=-1), _not_number, st.floats())),
    "memory": (
        "resources.memory",
        st.one_of(
            st.integers(max_value=0),
            st.sampled_from(["0", "0Mi", "0.0Gi", "-1Gi", "", "Gi", "1.5.2Mi", "1e3", "12XB"]),
            st.text(string.ascii_letters + " -", max_size=5),
            st.floats(),
            st.booleans(),
        ),
    ),
    "timeout": ("timeout", st.one_of(_non_positive, _not_number.filter(lambda v: v is not None))),
    "labels": (
        "labels",
        st.one_of(
            st.builds(lambda key: {key: "v"}, st.one_of(st.integers(), st.just(""))),
            st.builds(lambda value: {"team": value}, _not_str),
            st.sampled_from([["team"], "team=data"]),
        ),
    ),
}
"""Field -> (the SpecError.field prefix expected, values that must be refused)."""


@st.composite
def invalid_spec_kwargs(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    """A valid spec with exactly one field made invalid; returns (kwargs, expected field)."""
    kwargs = draw(spec_kwargs())
    which = draw(st.sampled_from(sorted(INVALID_FIELD_VALUES)))
    expected, strategy = INVALID_FIELD_VALUES[which]
    value = draw(strategy)
    if which in {"cpu", "gpu", "memory"}:
        resources = dict(kwargs.get("resources", {}))
        resources[which] = value
        kwargs["resources"] = resources
    else:
        kwargs[which] = value
    return kwargs, expected
