"""Configuration: the SDK's profile chain, checked field by field before any call."""

from __future__ import annotations

import math
import os
import urllib.parse
from typing import TYPE_CHECKING

import attrs

from jobrelay import ConfigError
from jobrelay.backend import Scrubber, lazy_import

if TYPE_CHECKING:
    import scaleway_core.client as scaleway_core_client
    import scaleway_core.validations.string_validation as scw_checks
    from scaleway_core.client import Client
else:
    # Imported by Settings.build (the executor's constructor), not at import.
    scaleway_core_client = lazy_import("scaleway_core.client")
    scw_checks = lazy_import("scaleway_core.validations.string_validation")

__all__ = ["REGIONS", "Settings", "make_client"]

REGIONS = ("fr-par", "nl-ams", "pl-waw")
MAX_STORAGE_MB = 10_240


def _positive(field: str, value: float, *, allow_zero: bool = False) -> float:
    number = float(value)
    if math.isnan(number) or number < 0 or (number == 0 and not allow_zero):
        raise ConfigError(f"{field}: must be a positive number of seconds, got {value!r}")
    return number


def _http_url(field: str, value: str) -> str:
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigError(f"{field}: not an http(s) URL: {value!r}")
    return value.rstrip("/")


@attrs.frozen
class Settings:
    """The executor's checked configuration (credentials never in ``repr``)."""

    name: str
    region: str
    project_id: str
    access_key: str
    secret_key: str = attrs.field(repr=False)
    api_url: str
    logs_url: str | None
    logs_token: str | None = attrs.field(repr=False)
    local_storage_mb: int
    poll_interval: float
    timeout: float
    health_timeout: float
    log_grace: float
    idempotency_window: float
    definition_prefix: str

    @classmethod
    def build(
        cls,
        *,
        name: str,
        region: str,
        project_id: str | None,
        access_key: str | None,
        secret_key: str | None,
        api_url: str | None,
        logs_url: str | None,
        logs_token: str | None,
        local_storage_mb: int,
        poll_interval: float,
        timeout: float,
        health_timeout: float,
        log_grace: float,
        idempotency_window: float,
        definition_prefix: str,
    ) -> Settings:
        """Resolve the SDK's config file and ``SCW_*`` chain, then check every field.

        Explicit arguments win over ``SCW_*`` environment variables, which win over
        the scw config file (``SCW_CONFIG_PATH``, profile ``SCW_PROFILE``).
        """
        if not name:
            raise ConfigError("name: must be a non-empty string")
        if region not in REGIONS:
            raise ConfigError(
                f"region: Serverless Jobs runs in {', '.join(REGIONS)}; got {region!r}"
            )
        if None in (access_key, secret_key, project_id, api_url):
            # Only what was not given comes from the SDK's chain.
            profile = _profile()
            access_key = access_key if access_key is not None else profile.access_key
            secret_key = secret_key if secret_key is not None else profile.secret_key
            project_id = project_id if project_id is not None else profile.default_project_id
            api_url = api_url if api_url is not None else (profile.api_url or None)
        access_key, secret_key, project_id = _check_credentials(access_key, secret_key, project_id)
        api_url = _http_url("api_url", api_url or "https://api.scaleway.com")
        if not scw_checks.is_url(api_url):
            raise ConfigError(f"api_url: not a URL the Scaleway SDK accepts: {api_url!r}")
        if logs_url is not None:
            logs_url = _http_url("logs_url", logs_url)
        if logs_token is not None and not logs_token:
            raise ConfigError("logs_token: must be a non-empty string (a Cockpit token)")
        if isinstance(local_storage_mb, bool) or not isinstance(local_storage_mb, int):
            raise ConfigError(f"local_storage_mb: must be an int of MiB, got {local_storage_mb!r}")
        if not 1 <= local_storage_mb <= MAX_STORAGE_MB:
            raise ConfigError(
                f"local_storage_mb: Serverless Jobs allows 1 to {MAX_STORAGE_MB} MiB, "
                f"got {local_storage_mb}"
            )
        if not definition_prefix or not definition_prefix.replace("-", "").isalnum():
            raise ConfigError(
                f"definition_prefix: letters, digits and '-' only, got {definition_prefix!r}"
            )
        return cls(
            name=name,
            region=region,
            project_id=project_id,
            access_key=access_key,
            secret_key=secret_key,
            api_url=api_url,
            logs_url=logs_url,
            logs_token=logs_token,
            local_storage_mb=local_storage_mb,
            poll_interval=_positive("poll_interval", poll_interval),
            timeout=_positive("timeout", timeout),
            health_timeout=_positive("health_timeout", health_timeout),
            log_grace=_positive("log_grace", log_grace, allow_zero=True),
            idempotency_window=_positive("idempotency_window", idempotency_window),
            definition_prefix=definition_prefix,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Values no message or log line may show."""
        return tuple(value for value in (self.secret_key, self.logs_token) if value)


def _check_credentials(
    access_key: str | None, secret_key: str | None, project_id: str | None
) -> tuple[str, str, str]:
    """Check the three values the SDK would refuse, each named; the secret never echoed."""
    if not access_key:
        raise ConfigError(
            "access_key: no Scaleway access key (pass access_key=, set SCW_ACCESS_KEY "
            "or the scw config file)"
        )
    if not scw_checks.is_access_key(access_key):
        raise ConfigError(
            f"access_key: {access_key!r} is not a Scaleway access key (SCW + 17 of A-Z, 0-9)"
        )
    if not secret_key:
        raise ConfigError(
            "secret_key: no Scaleway secret key (pass secret_key=, set SCW_SECRET_KEY "
            "or the scw config file)"
        )
    if not scw_checks.is_secret_key(secret_key):
        # Never echo it: a malformed secret key is still someone's secret.
        raise ConfigError("secret_key: not a Scaleway secret key (a UUID)")
    if not project_id:
        raise ConfigError(
            "project_id: no Scaleway project (pass project_id=, set "
            "SCW_DEFAULT_PROJECT_ID or the scw config file)"
        )
    if not scw_checks.is_project_id(project_id):
        raise ConfigError(f"project_id: {project_id!r} is not a project id (a UUID)")
    return access_key, secret_key, project_id


def _profile() -> Client:
    """Return the SDK's profile: ``SCW_*`` variables over the scw config file.

    The SDK's own ``from_config_file_and_env`` logs a warning when there is no config
    file and hides a broken one; here a missing file is normal and a broken one is a
    ConfigError naming it.
    """
    path = scaleway_core_client.Client.get_default_config_file_path()
    if not os.path.isfile(path):  # noqa: PTH113 - the SDK hands us a str path
        return scaleway_core_client.Client.from_env()
    try:
        from_file = scaleway_core_client.Client.from_config_file(
            path, os.environ.get("SCW_PROFILE", "default")
        )
    except Exception as exc:  # noqa: BLE001 - yaml, OS and the SDK's own errors alike
        # A YAML error quotes the file, keys included: only the SDK's own words are shown.
        detail = str(exc) if type(exc) is ValueError else type(exc).__name__
        raise ConfigError(f"SCW_CONFIG_PATH: cannot use scw config file {path}: {detail}") from None
    profile = scaleway_core_client.Client.from_env(force_none=True)
    profile.merge(from_file)
    return profile


def make_client(settings: Settings) -> Client:
    """Return an SDK client for ``settings``; the SDK's own checks become ConfigError."""
    client = scaleway_core_client.Client(
        access_key=settings.access_key,
        secret_key=settings.secret_key,
        default_project_id=settings.project_id,
        default_region=settings.region,
        api_url=settings.api_url,
    )
    try:
        client.validate()
    except ValueError as exc:
        message = Scrubber(settings.secrets)(str(exc))
        raise ConfigError(f"scaleway client: {message}") from None
    return client
