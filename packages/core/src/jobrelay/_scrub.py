"""Masking secret values in any text, in every form a backend may echo them in."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterable

__all__ = ["MASK", "Scrubber", "scrub", "secret_forms"]

MASK = "***"

_GO_ESCAPES = {
    "\a": r"\a",
    "\b": r"\b",
    "\f": r"\f",
    "\n": r"\n",
    "\r": r"\r",
    "\t": r"\t",
    "\v": r"\v",
    "\\": "\\\\",
    '"': '\\"',
}


def _go_quoted(value: str) -> str:
    """Return ``value`` as Go's ``strconv.Quote`` writes it, without the quotes.

    The Docker daemon and other Go services quote request values this way in their
    error text: a NUL becomes a backslash, ``x00``, so an exact match on the raw value misses it.
    """
    out: list[str] = []
    for ch in value:
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) <= 0xFFFF:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return "".join(out)


def secret_forms(value: str) -> set[str]:
    """Return the spellings of ``value`` that may appear in an error or log line.

    The raw value, Python's ``repr`` and ``ascii`` escapes, JSON string escapes (with
    and without ``ensure_ascii``), Go's ``strconv.Quote`` escapes, and URL encoding
    (``%20`` and ``+`` for spaces).
    """
    if not value:
        return set()
    forms = {
        value,
        repr(value)[1:-1],
        ascii(value)[1:-1],
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        _go_quoted(value),
        urllib.parse.quote(value, safe=""),
        urllib.parse.quote_plus(value, safe=""),
        urllib.parse.quote(value),
    }
    return {form for form in forms if form}


class Scrubber:
    """Replaces every form of a set of secret values with ``***``.

    Build it once per job (or per executor) and call it on any text: error
    messages, log lines, health details. Longer forms are replaced first, so a
    secret that contains another is masked whole.

    Example::

        scrub = Scrubber(job.secrets.values())
        raise LaunchError(scrub(str(exc)))
    """

    __slots__ = ("_forms",)

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for value in secrets:
            if isinstance(value, str):
                forms |= secret_forms(value)
        self._forms = tuple(sorted(forms, key=len, reverse=True))

    def __bool__(self) -> bool:
        return bool(self._forms)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every known secret form masked."""
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def __repr__(self) -> str:
        return f"Scrubber(<{len(self._forms)} forms>)"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Return ``text`` with every form of every value in ``secrets`` masked."""
    return Scrubber(secrets)(text)
