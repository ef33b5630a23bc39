"""Writing whole objects through fsspec: atomically where the filesystem allows."""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Mapping
from typing import Any

import fsspec

from jobrelay import ConfigError

__all__ = ["Storage", "is_transient"]

# One PUT makes the whole object appear at once: no temporary name needed (and a
# "rename" there would be a copy plus a delete).
_OBJECT_STORES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}
)

# Defaults merged under the caller's storage options, per protocol: a deadline on
# every request, and the SDK's own retries off so that the archive's RetryPolicy is
# the one retrying (s3fs still retries a few low-level faults itself).
_S3_DEFAULTS: Mapping[str, Any] = {
    "config_kwargs": {"connect_timeout": 10, "read_timeout": 60, "retries": {"max_attempts": 1}}
}
_PROTOCOL_DEFAULTS: Mapping[str, Mapping[str, Any]] = {"s3": _S3_DEFAULTS, "s3a": _S3_DEFAULTS}

# Errors that another attempt will not fix; anything else a filesystem raises
# (connection refused or reset, timeouts, 5xx, throttling) is retried.
_PERMANENT: tuple[type[BaseException], ...] = (
    PermissionError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    ValueError,
    TypeError,
    AttributeError,
    NotImplementedError,
    ImportError,
)

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]")


def is_transient(error: BaseException) -> bool:
    """Return whether retrying the write that raised ``error`` may succeed."""
    return isinstance(error, Exception) and not isinstance(error, _PERMANENT)


def segment(text: str) -> str:
    """Make ``text`` one safe path segment (executor names come from configuration)."""
    cleaned = _UNSAFE.sub("_", text) or "_"
    return "_" if set(cleaned) == {"."} else cleaned


def _merged(defaults: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(defaults)
    for key, value in given.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merged(out[key], value)
        else:
            out[key] = value
    return out


class Storage:
    """The filesystem behind an archive URL.

    Args:
        url: any fsspec URL or local path (``file:///srv/jobs``, ``s3://bucket/jobs``).
        storage_options: passed to the filesystem (credentials, endpoint, timeouts).

    Raises:
        ConfigError: the URL is empty, its protocol is unknown, or the filesystem
            package for it is not installed (``pip install s3fs``).
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        if not url or not url.strip():
            raise ConfigError(f"url: must be a non-empty fsspec URL or path, got {url!r}")
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        options = _merged(_PROTOCOL_DEFAULTS.get(protocol, {}), storage_options or {})
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **options)
        except ImportError as exc:
            raise ConfigError(f"url: {url!r} needs a filesystem package: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"url: cannot open {url!r}: {exc}") from None
        self.url = url
        self.root: str = root.rstrip("/")
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.object_store = bool(set(protocols) & _OBJECT_STORES)
        self.local = bool(set(protocols) & {"file", "local"})

    def path(self, *parts: str) -> str:
        """The full path of ``parts`` under the archive root."""
        return "/".join([self.root, *parts])

    def write(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` whole: readers see the old object or the new one.

        Object stores get one PUT. Other filesystems get a temporary sibling that is
        renamed over ``path`` (atomic on local disks, SFTP, HDFS); on local disks
        the data is also synced before the rename.
        """
        if self.object_store:
            self.fs.pipe_file(path, data)
            return
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        temporary = f"{parent}/.{path.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
        try:
            with self.fs.open(temporary, "wb") as handle:
                handle.write(data)
                if self.local:
                    handle.flush()
                    os.fsync(handle.fileno())
            self.fs.mv(temporary, path)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm_file(temporary)
            raise

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"
