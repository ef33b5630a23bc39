"""A schema-checked fake of the Cloud Run Admin API v2 and Cloud Logging v2 for tests."""

from fake_gcp._schema import Schemas, load
from fake_gcp._server import Call, FakeGCP, Fault

__all__ = ["Call", "FakeGCP", "Fault", "Schemas", "load"]
