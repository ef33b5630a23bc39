"""The executor's configuration, checked at construction, and its AWS clients.

Every check raises :class:`~jobrelay.errors.ConfigError` naming the argument, so a
misconfigured executor fails when it is built, not on its first job.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay import ConfigError, Health
from jobrelay.backend import lazy_import
from jobrelay_fargate._launch import NetworkConfig

if TYPE_CHECKING:
    import boto3
    import boto3.session
    import botocore.config as botocore_config
    import botocore.exceptions as botocore_exceptions
else:
    # The SDK is imported when an executor makes its clients, not with this package.
    boto3 = lazy_import("boto3")
    botocore_config = lazy_import("botocore.config")
    botocore_exceptions = lazy_import("botocore.exceptions")

__all__ = ["Clients", "Settings"]

_FAMILY_PREFIX = re.compile(r"[A-Za-z0-9_-]{1,200}")
_LOG_GROUP = re.compile(r"[\w./#-]{1,512}")
_CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
_ARCHITECTURES = ("X86_64", "ARM64")


def _strings(field: str, value: object, *, allow_empty: bool) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ConfigError(f"{field}: must be a list of strings, got {type(value).__name__}")
    items = tuple(value)
    if not items and not allow_empty:
        raise ConfigError(f"{field}: must name at least one")
    for item in items:
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{field}: every entry must be a non-empty string, got {item!r}")
    return items


def _text(field: str, value: object, pattern: re.Pattern[str] | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{field}: must be a non-empty string, got {value!r}")
    if pattern is not None and not pattern.fullmatch(value):
        raise ConfigError(f"{field}: {value!r} does not match {pattern.pattern}")
    return value


def _optional_text(field: str, value: object) -> str | None:
    return None if value is None else _text(field, value)


_MAX_SECONDS = 7 * 24 * 3600.0


def _seconds(field: str, value: object) -> float:
    # Compare before converting: a huge int would overflow float() (and its repr).
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 0 <= value <= _MAX_SECONDS:
            return float(value)
        shown = "an int out of range" if isinstance(value, int) else repr(value)
        if isinstance(value, int) and abs(value) < 10**15:
            shown = repr(value)
    else:
        shown = type(value).__name__
    raise ConfigError(
        f"{field}: must be a number of seconds from 0 to {_MAX_SECONDS:g}, got {shown}"
    )


@attrs.frozen
class Settings:
    """Validated executor settings (see :class:`~jobrelay_fargate.FargateExecutor`)."""

    name: str
    cluster: str
    network: NetworkConfig
    log_group: str
    log_stream_prefix: str
    execution_role_arn: str | None
    task_role_arn: str | None
    family_prefix: str
    poll_interval: float
    missing_grace: float
    cpu_architecture: str = "X86_64"

    @classmethod
    def build(
        cls,
        *,
        name: object,
        cluster: object,
        subnets: object,
        security_groups: object,
        assign_public_ip: object,
        capacity_provider: object,
        platform_version: object,
        log_group: object,
        log_stream_prefix: object,
        execution_role_arn: object,
        task_role_arn: object,
        family_prefix: object,
        poll_interval: object,
        missing_grace: object,
        cpu_architecture: object = "X86_64",
    ) -> Settings:
        """Check every argument and return the settings.

        Raises:
            ConfigError: an argument is missing, of the wrong type or out of range.
        """
        if capacity_provider not in _CAPACITY_PROVIDERS:
            raise ConfigError(
                f"capacity_provider: must be one of {', '.join(_CAPACITY_PROVIDERS)}, "
                f"got {capacity_provider!r}"
            )
        if cpu_architecture not in _ARCHITECTURES:
            raise ConfigError(
                f"cpu_architecture: must be one of {', '.join(_ARCHITECTURES)}, "
                f"got {cpu_architecture!r}"
            )
        if not isinstance(assign_public_ip, bool):
            raise ConfigError(f"assign_public_ip: must be a bool, got {assign_public_ip!r}")
        prefix = _text("log_stream_prefix", log_stream_prefix)
        if ":" in prefix or "*" in prefix:
            raise ConfigError(f"log_stream_prefix: must not hold ':' or '*', got {prefix!r}")
        return cls(
            name=_text("name", name),
            cluster=_text("cluster", cluster),
            network=NetworkConfig(
                subnets=_strings("subnets", subnets, allow_empty=False),
                security_groups=_strings("security_groups", security_groups, allow_empty=True),
                assign_public_ip=assign_public_ip,
                capacity_provider=str(capacity_provider),
                platform_version=_text("platform_version", platform_version),
            ),
            log_group=_text("log_group", log_group, _LOG_GROUP),
            log_stream_prefix=prefix,
            execution_role_arn=_optional_text("execution_role_arn", execution_role_arn),
            task_role_arn=_optional_text("task_role_arn", task_role_arn),
            family_prefix=_text("family_prefix", family_prefix, _FAMILY_PREFIX),
            poll_interval=_seconds("poll_interval", poll_interval),
            missing_grace=_seconds("missing_grace", missing_grace),
            cpu_architecture=str(cpu_architecture),
        )


def _client_config(*, connect_timeout: float, read_timeout: float) -> botocore_config.Config:
    # botocore must not retry on its own: jobrelay's RetryPolicy owns retries, so that
    # one budget (attempts, deadline, backoff) governs and the two never multiply.
    return botocore_config.Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        user_agent_extra="jobrelay-fargate",
    )


@attrs.frozen
class Clients:
    """The boto3 clients an executor uses (typed ``Any``: stubs are optional)."""

    ecs: Any
    logs: Any
    health_ecs: Any
    region: str

    @classmethod
    def create(
        cls, session: boto3.session.Session | None, *, region: str | None, endpoint_url: str | None
    ) -> Clients:
        """Create the clients, with botocore retries off and bounded timeouts.

        Raises:
            ConfigError: no region is known, or the session cannot make clients.
        """
        region = _optional_text("region", region)
        endpoint_url = _optional_text("endpoint_url", endpoint_url)
        session = session if session is not None else boto3.session.Session()
        options: dict[str, Any] = {"region_name": region, "endpoint_url": endpoint_url}
        work = _client_config(connect_timeout=5, read_timeout=30)
        quick = _client_config(connect_timeout=2, read_timeout=5)
        try:
            ecs = session.client("ecs", config=work, **options)
            logs = session.client("logs", config=work, **options)
            health_ecs = session.client("ecs", config=quick, **options)
        except botocore_exceptions.NoRegionError:
            raise ConfigError(
                "region: none given and none configured (AWS_REGION, AWS_DEFAULT_REGION "
                "or the profile's region)"
            ) from None
        except (botocore_exceptions.BotoCoreError, ValueError) as exc:
            raise ConfigError(f"cannot create AWS clients: {exc}") from exc
        return cls(ecs=ecs, logs=logs, health_ecs=health_ecs, region=str(ecs.meta.region_name))

    def health(self, cluster: str) -> Health:
        """DescribeClusters on ``cluster`` with the quick client; never raises."""
        started = time.monotonic()
        try:
            answer = self.health_ecs.describe_clusters(clusters=[cluster])
        except (botocore_exceptions.ClientError, botocore_exceptions.BotoCoreError) as exc:
            return Health(
                healthy=False,
                latency=time.monotonic() - started,
                detail=f"DescribeClusters failed: {exc}",
            )
        latency = time.monotonic() - started
        clusters = answer.get("clusters", [])
        if not clusters:
            reasons = ", ".join(str(f.get("reason")) for f in answer.get("failures", []))
            detail = f"cluster {cluster!r} not found ({reasons or 'no answer'})"
            return Health(healthy=False, latency=latency, detail=detail)
        state = str(clusters[0].get("status", ""))
        if state != "ACTIVE":
            return Health(healthy=False, latency=latency, detail=f"cluster {cluster!r} is {state}")
        detail = f"cluster {cluster!r} is ACTIVE in {self.region}"
        return Health(healthy=True, latency=latency, detail=detail)

    def close(self) -> None:
        """Close every client's connection pool."""
        for client in (self.ecs, self.logs, self.health_ecs):
            client.close()
