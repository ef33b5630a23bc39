"""Configuration of the Docker executor, validated before any connection is made.

Every check raises :class:`~jobrelay.errors.ConfigError` naming the offending key,
so a bad Router config entry is refused at load time, not at the first launch.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Literal, cast

import attrs
import docker.errors
import docker.tls
import docker.utils

from jobrelay.errors import ConfigError

__all__ = ["PULL_POLICIES", "PullPolicy", "Settings", "TLSConfig", "build_settings"]

PullPolicy = Literal["always", "if-not-present", "never"]
PULL_POLICIES: tuple[PullPolicy, ...] = ("always", "if-not-present", "never")
RESERVED_LABEL_PREFIX = "jobrelay."
_URL_SCHEMES = ("unix://", "tcp://", "http://", "https://", "ssh://", "npipe://")
_TLS_KEYS = frozenset({"ca_cert", "client_cert", "client_key", "verify"})


def _optional_path(key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise ConfigError(f"tls.{key}: must be a file path, got {type(value).__name__}")
    path = os.fspath(value)
    if not isinstance(path, str) or not path:
        raise ConfigError(f"tls.{key}: must be a non-empty file path")
    if not Path(path).is_file():
        raise ConfigError(f"tls.{key}: no such file {path!r}")
    return path


def _ca_cert(value: object) -> str | None:
    return _optional_path("ca_cert", value)


def _client_cert(value: object) -> str | None:
    return _optional_path("client_cert", value)


def _client_key(value: object) -> str | None:
    return _optional_path("client_key", value)


def _verify(value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"tls.verify: must be true or false, got {_shown(value)}")
    return value


@attrs.frozen
class TLSConfig:
    """TLS settings for a daemon reached over TCP (``tcp://host:2376``).

    The same keys work as a mapping, so a Router config file can pass them as a TOML
    table: ``tls = {ca_cert = "ca.pem", client_cert = "cert.pem", client_key =
    "key.pem"}``.

    Args:
        ca_cert: CA certificate that signed the daemon's certificate; None uses the
            system's trusted CAs.
        client_cert: client certificate presented to a ``--tlsverify`` daemon.
        client_key: the client certificate's private key (needed with ``client_cert``).
        verify: check the daemon's certificate (turning this off is for experiments
            only: anyone on the path can impersonate the daemon).

    Raises:
        ConfigError: a file is missing, or only one of ``client_cert``/``client_key``
            is given.
    """

    ca_cert: str | None = attrs.field(default=None, converter=_ca_cert)
    client_cert: str | None = attrs.field(default=None, converter=_client_cert)
    client_key: str | None = attrs.field(default=None, converter=_client_key)
    verify: bool = attrs.field(default=True, converter=_verify)

    def __attrs_post_init__(self) -> None:
        if (self.client_cert is None) != (self.client_key is None):
            missing = "client_key" if self.client_key is None else "client_cert"
            raise ConfigError(f"tls.{missing}: client_cert and client_key go together")

    @classmethod
    def coerce(cls, value: object) -> TLSConfig | None:
        """Accept None, ``False``, ``True`` (system CAs), a mapping or a TLSConfig."""
        if value is None or value is False:
            return None
        if value is True:
            return cls()
        if isinstance(value, TLSConfig):
            return value
        if isinstance(value, Mapping):
            unknown = sorted(str(key) for key in value if key not in _TLS_KEYS)
            if unknown:
                raise ConfigError(
                    f"tls: unknown keys {unknown}; expected some of {sorted(_TLS_KEYS)}"
                )
            return cls(**{str(key): item for key, item in value.items()})
        raise ConfigError(
            f"tls: must be a TLSConfig, a mapping of {sorted(_TLS_KEYS)} or a bool, "
            f"got {type(value).__name__}"
        )

    def to_docker(self) -> docker.tls.TLSConfig:
        """Return the equivalent ``docker.tls.TLSConfig``."""
        client_cert = None
        if self.client_cert is not None and self.client_key is not None:
            client_cert = (self.client_cert, self.client_key)
        try:
            return docker.tls.TLSConfig(
                client_cert=client_cert, ca_cert=self.ca_cert, verify=self.verify
            )
        except docker.errors.TLSParameterError as exc:  # pragma: no cover - checked above
            raise ConfigError(f"tls: {exc}") from None


@attrs.frozen
class Settings:
    """Validated executor configuration (internal)."""

    base_url: str | None
    address: str | None
    tls: TLSConfig | None
    docker_tls: docker.tls.TLSConfig | None
    timeout: float
    pull_policy: PullPolicy
    pull_timeout: float
    network: str | None
    labels: Mapping[str, str]
    remove_on_harvest: bool
    keep_failed: bool
    stop_grace: int
    name: str
    start_grace: float
    cost_per_hour: Decimal
    currency: str
    volumes: tuple[str, ...] = ()
    user: str | None = None


# Longest wait any setting may ask for (about 31 years): beyond it, a typo.
_MAX_SECONDS = 10**9


def _shown(value: object) -> str:
    """``repr`` of a setting for a message, short even for a huge int or string."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18:
        return f"an integer of about {int(value.bit_length() * 0.30103) + 1} digits"
    text = (
        repr(value) if not isinstance(value, str) or len(value) <= 60 else repr(value[:60]) + "..."
    )
    return text if len(text) <= 80 else text[:77] + "..."


def _seconds(key: str, value: object, *, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{key}: must be a number of seconds, got {_shown(value)}")
    if isinstance(value, int) and value > _MAX_SECONDS:
        raise ConfigError(f"{key}: must be at most {_MAX_SECONDS} seconds, got {_shown(value)}")
    if not math.isfinite(value) or value < minimum or value > _MAX_SECONDS:
        raise ConfigError(
            f"{key}: must be between {minimum:g} and {_MAX_SECONDS} seconds, got {_shown(value)}"
        )
    return float(value)


def _positive(key: str, value: object) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
        raise ConfigError(f"{key}: must be greater than 0, got {_shown(value)}")
    return _seconds(key, value, minimum=0)


def _flag(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: must be true or false, got {_shown(value)}")
    return value


def _optional_name(key: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{key}: must be a non-empty string, got {_shown(value)}")
    return value


def _labels(value: object) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, Mapping):
        raise ConfigError(f"labels: must be a mapping, got {type(value).__name__}")
    out: dict[str, str] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"labels: keys must be non-empty strings, got {key!r}")
        if key.startswith(RESERVED_LABEL_PREFIX):
            raise ConfigError(f"labels[{key!r}]: the 'jobrelay.' prefix is reserved")
        if not isinstance(item, str):
            raise ConfigError(f"labels[{key!r}]: value must be a string, got {item!r}")
        out[key] = item
    return MappingProxyType(out)


def _base_url(value: object) -> str | None:
    url = _optional_name("base_url", value)
    if url is not None and not url.startswith(_URL_SCHEMES):
        raise ConfigError(
            f"base_url: {url!r} is not a Docker address; use one of "
            + ", ".join(scheme + "..." for scheme in _URL_SCHEMES)
        )
    return url


def _stop_grace(value: object) -> int:
    seconds = _seconds("stop_grace", value, minimum=0)
    if seconds != int(seconds):
        raise ConfigError(f"stop_grace: must be whole seconds, 0 or more, got {_shown(value)}")
    return int(seconds)


_CURRENCY = re.compile(r"[A-Z]{3}")
# Far above any machine's price; keeps a pasted huge number from overflowing sums.
_MAX_RATE = Decimal(10) ** 9


def _cost_per_hour(value: object) -> Decimal:
    """An amount of money: Decimal, int or str (a TOML float is read as written)."""
    if isinstance(value, float) and math.isfinite(value):
        value = repr(value)  # money is decimal: 0.1 means 0.1, not its binary neighbour
    if isinstance(value, bool) or not isinstance(value, (int, str, Decimal)):
        raise ConfigError(f"cost_per_hour: must be an amount of money, got {_shown(value)}")
    if isinstance(value, str) and len(value) > 40:
        raise ConfigError(f"cost_per_hour: must be an amount of money, got {_shown(value)}")
    if isinstance(value, int) and value > _MAX_RATE:
        raise ConfigError(f"cost_per_hour: must be at most {_MAX_RATE}, got {_shown(value)}")
    try:
        rate = Decimal(value)
    except (InvalidOperation, ValueError):
        raise ConfigError(
            f"cost_per_hour: must be an amount of money, got {_shown(value)}"
        ) from None
    if not rate.is_finite() or rate < 0 or rate > _MAX_RATE:
        raise ConfigError(f"cost_per_hour: must be between 0 and {_MAX_RATE}, got {_shown(value)}")
    return rate


def _currency(value: object) -> str:
    if not isinstance(value, str) or not _CURRENCY.fullmatch(value):
        raise ConfigError(f"currency: must be an ISO 4217 code such as 'USD', got {_shown(value)}")
    return value


def _connection(
    base_url: str | None, tls: TLSConfig | None
) -> tuple[str | None, docker.tls.TLSConfig | None]:
    """Return the address to dial (None: the local socket) and docker-py's TLS config.

    Without ``base_url`` the environment decides, as for the docker CLI:
    ``DOCKER_HOST``, ``DOCKER_TLS_VERIFY`` and ``DOCKER_CERT_PATH``.
    """
    address = base_url
    from_env: docker.tls.TLSConfig | None = None
    if base_url is None:
        try:
            found = docker.utils.kwargs_from_env()
        except docker.errors.TLSParameterError as exc:
            raise ConfigError(f"tls: from DOCKER_CERT_PATH/DOCKER_TLS_VERIFY: {exc}") from None
        address = cast("str | None", found.get("base_url"))
        from_env = cast("docker.tls.TLSConfig | None", found.get("tls"))
    if tls is None:
        return address, from_env
    if address is None or not address.startswith(("tcp://", "https://")):
        shown = address or "the local unix socket"
        raise ConfigError(f"tls: only applies to tcp:// or https:// addresses, not {shown!r}")
    return address, tls.to_docker()


def build_settings(
    *,
    base_url: object,
    tls: object,
    timeout: object,
    pull_policy: object,
    pull_timeout: object,
    network: object,
    labels: object,
    remove_on_harvest: object,
    keep_failed: object,
    stop_grace: object,
    name: object,
    start_grace: object,
    cost_per_hour: object,
    currency: object,
    volumes: object = None,
    user: object = None,
) -> Settings:
    """Validate every key and return :class:`Settings`; raise ``ConfigError`` naming the key."""
    if pull_policy not in PULL_POLICIES:
        raise ConfigError(
            f"pull_policy: must be one of {', '.join(PULL_POLICIES)}, got {pull_policy!r}"
        )
    url = _base_url(base_url)
    tls_config = TLSConfig.coerce(tls)
    executor_name = _optional_name("name", name)
    if executor_name is None:
        raise ConfigError("name: must be a non-empty string, got None")
    address, docker_tls = _connection(url, tls_config)
    return Settings(
        base_url=url,
        address=address,
        tls=tls_config,
        docker_tls=docker_tls,
        timeout=_positive("timeout", timeout),
        pull_policy=pull_policy,
        pull_timeout=_positive("pull_timeout", pull_timeout),
        network=_optional_name("network", network),
        labels=_labels(labels),
        remove_on_harvest=_flag("remove_on_harvest", remove_on_harvest),
        keep_failed=_flag("keep_failed", keep_failed),
        stop_grace=_stop_grace(stop_grace),
        name=executor_name,
        start_grace=_positive("start_grace", start_grace),
        cost_per_hour=_cost_per_hour(cost_per_hour),
        currency=_currency(currency),
        volumes=_volumes(volumes),
        user=_optional_name("user", user),
    )


def _volumes(value: object) -> tuple[str, ...]:
    """Bind mounts as docker writes them: ``SRC:DEST`` or ``SRC:DEST:ro|rw``."""
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ConfigError(
            f"volumes: must be a list of 'SRC:DEST[:ro]' strings, got {_shown(value)}"
        )
    mounts = []
    for index, mount in enumerate(value):
        parts = mount.split(":") if isinstance(mount, str) else []
        valid = (
            len(parts) in (2, 3)
            and all(parts[:2])
            and parts[1].startswith("/")
            and (len(parts) == 2 or parts[2] in ("ro", "rw"))
            and "\0" not in mount
        )
        if not valid:
            raise ConfigError(
                f"volumes[{index}]: expected 'SRC:DEST' or 'SRC:DEST:ro' with an absolute "
                f"DEST, got {_shown(mount)}"
            )
        mounts.append(str(mount))
    return tuple(mounts)
