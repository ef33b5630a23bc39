"""The public surface: ``__all__`` is exactly the documented names."""

from __future__ import annotations

import jobrelay_opentelemetry


def test_public_names() -> None:
    assert jobrelay_opentelemetry.__all__ == [
        "OpenTelemetryPlugin",
        "__version__",
        "plugin",
        "with_trace_context",
    ]
    for name in jobrelay_opentelemetry.__all__:
        assert getattr(jobrelay_opentelemetry, name) is not None


def test_the_entry_point_instance_uses_the_global_providers() -> None:
    assert isinstance(jobrelay_opentelemetry.plugin, jobrelay_opentelemetry.OpenTelemetryPlugin)
    assert jobrelay_opentelemetry.plugin.max_jobs == 10_000
