"""Checking the executor's configuration, and building its Google clients.

Every check runs before any network call and raises :class:`~jobrelay.ConfigError`
naming the argument.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay import ConfigError
from jobrelay.backend import lazy_import

if TYPE_CHECKING:
    import google.auth as google_auth
    import google.auth.credentials as auth_credentials
    import google.auth.exceptions as auth_exceptions
    import google.cloud.logging as cloud_logging
    from google.api_core import client_options
    from google.cloud import run_v2
else:
    # The SDK is imported when an executor builds its clients, not with the package.
    client_options = lazy_import("google.api_core.client_options")
    google_auth = lazy_import("google.auth")
    auth_credentials = lazy_import("google.auth.credentials")
    auth_exceptions = lazy_import("google.auth.exceptions")
    cloud_logging = lazy_import("google.cloud.logging")
    run_v2 = lazy_import("google.cloud.run_v2")

__all__ = ["Clients", "Settings"]

_PROJECT = re.compile(r"(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
_REGION = re.compile(r"[a-z]+-[a-z]+[0-9]+")
_PREFIX = re.compile(r"[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?")
_ENDPOINT = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(?::[0-9]+)?/?")
_CONNECTOR = re.compile(r"(?:projects/[^/]+/locations/[^/]+/connectors/)?[a-z][-a-z0-9]{0,23}")
_EGRESS = {"all-traffic": "ALL_TRAFFIC", "private-ranges-only": "PRIVATE_RANGES_ONLY"}
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def _positive(name: str, value: object, *, zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(f"{name}: must be a number, got {value!r}")
    number = float(value)
    if math.isnan(number) or number < 0 or (number == 0 and not zero) or math.isinf(number):
        raise ConfigError(
            f"{name}: must be {'0 or more' if zero else 'greater than 0'}, got {value!r}"
        )
    return number


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name}: must be an int of 1 or more, got {value!r}")
    return value


@attrs.frozen
class Settings:
    """The checked configuration."""

    project: str
    region: str
    name: str
    job_prefix: str
    service_account: str | None
    vpc_connector: str | None
    vpc_egress: str | None  # the VpcEgress enum name
    gpu_type: str | None
    delete_jobs: bool
    poll_interval: float
    request_timeout: float
    log_grace: float
    missing_grace: float
    logs_per_minute: int
    reads_per_minute: int

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"

    @classmethod
    def build(cls, **values: Any) -> Settings:
        """Check every value; raise ConfigError naming the first bad one."""
        project = values["project"]
        if not isinstance(project, str) or not _PROJECT.fullmatch(project):
            raise ConfigError(f"project: not a Google Cloud project id: {project!r}")
        region = values["region"]
        if not isinstance(region, str) or not _REGION.fullmatch(region):
            raise ConfigError(f"region: not a region like 'europe-west1': {region!r}")
        name = values["name"]
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"name: must be a non-empty string, got {name!r}")
        prefix = values["job_prefix"]
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ConfigError(
                "job_prefix: 1-20 lowercase letters, digits and hyphens, starting with a "
                f"letter, got {prefix!r}"
            )
        account = values["service_account"]
        if account is not None and (not isinstance(account, str) or "@" not in account):
            raise ConfigError(f"service_account: not a service account email: {account!r}")
        connector = values["vpc_connector"]
        if connector is not None and (
            not isinstance(connector, str) or not _CONNECTOR.fullmatch(connector)
        ):
            raise ConfigError(
                f"vpc_connector: not a connector name or resource name: {connector!r}"
            )
        egress_text = values["vpc_egress"]
        egress = None
        if egress_text is not None:
            if egress_text not in _EGRESS:
                raise ConfigError(
                    f"vpc_egress: must be one of {sorted(_EGRESS)}, got {egress_text!r}"
                )
            if connector is None:
                raise ConfigError("vpc_egress: needs vpc_connector")
            egress = _EGRESS[egress_text]
        gpu_type = values["gpu_type"]
        if gpu_type is not None and (not isinstance(gpu_type, str) or not gpu_type):
            raise ConfigError(
                f"gpu_type: must be an accelerator name like 'nvidia-l4', got {gpu_type!r}"
            )
        if not isinstance(values["delete_jobs"], bool):
            raise ConfigError(f"delete_jobs: must be True or False, got {values['delete_jobs']!r}")
        return cls(
            project=project,
            region=region,
            name=name,
            job_prefix=prefix,
            service_account=account,
            vpc_connector=connector,
            vpc_egress=egress,
            gpu_type=gpu_type,
            delete_jobs=values["delete_jobs"],
            poll_interval=_positive("poll_interval", values["poll_interval"]),
            request_timeout=_positive("request_timeout", values["request_timeout"]),
            log_grace=_positive("log_grace", values["log_grace"], zero=True),
            missing_grace=_positive("missing_grace", values["missing_grace"], zero=True),
            logs_per_minute=_count("logs_per_minute", values["logs_per_minute"]),
            reads_per_minute=_count("reads_per_minute", values["reads_per_minute"]),
        )


def _endpoint(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ENDPOINT.fullmatch(value):
        raise ConfigError(f"{name}: must be a URL like 'https://host' or 'http://host:port'")
    return value.rstrip("/")


@attrs.frozen
class Clients:
    """The official clients one executor uses (REST transport throughout)."""

    jobs: run_v2.JobsClient
    executions: run_v2.ExecutionsClient
    tasks: run_v2.TasksClient
    logging: cloud_logging.Client

    @classmethod
    def create(
        cls,
        project: str,
        *,
        credentials: auth_credentials.Credentials | None,
        api_endpoint: object,
        logging_endpoint: object,
    ) -> Clients:
        """Build the clients; credentials from google-auth's default chain if not given.

        Raises:
            ConfigError: bad endpoint, or no credentials found.
        """
        run_url = _endpoint("api_endpoint", api_endpoint)
        log_url = _endpoint("logging_endpoint", logging_endpoint)
        if credentials is None:
            try:
                credentials, _ = google_auth.default(scopes=list(SCOPES))
            except auth_exceptions.DefaultCredentialsError as exc:
                raise ConfigError(f"credentials: none given and none found: {exc}") from None
        elif not isinstance(credentials, auth_credentials.Credentials):
            raise ConfigError(
                f"credentials: not google-auth credentials: {type(credentials).__name__}"
            )
        options = client_options.ClientOptions(api_endpoint=run_url) if run_url else None
        common: dict[str, Any] = {"credentials": credentials, "transport": "rest"}
        log_options = {"api_endpoint": log_url} if log_url else None
        return cls(
            jobs=run_v2.JobsClient(client_options=options, **common),
            executions=run_v2.ExecutionsClient(client_options=options, **common),
            tasks=run_v2.TasksClient(client_options=options, **common),
            logging=cloud_logging.Client(  # type: ignore[no-untyped-call]
                project=project,
                credentials=credentials,
                _use_grpc=False,
                client_options=log_options,
            ),
        )

    def close(self) -> None:
        """Close every client's HTTP session."""
        for client in (self.jobs, self.executions, self.tasks):
            client.transport.close()  # type: ignore[no-untyped-call]
        self.logging.close()  # type: ignore[no-untyped-call]
