"""OpenTelemetry traces and metrics for jobrelay.

Installing the distribution registers :data:`plugin` under the ``jobrelay.plugins``
entry points, so every Router and Runner whose hooks load entry points records a span
per job and the job metrics through the global OpenTelemetry providers. To use other
providers, block the entry point and register your own instance::

    router.hooks.manager.set_blocked("opentelemetry")
    router.hooks.register(OpenTelemetryPlugin(tracer_provider=provider))
"""

from jobrelay_opentelemetry._plugin import OpenTelemetryPlugin, with_trace_context

__all__ = ["OpenTelemetryPlugin", "__version__", "plugin", "with_trace_context"]

__version__ = "0.1.0"

plugin = OpenTelemetryPlugin()
"""The instance the ``opentelemetry`` entry point registers (global providers)."""
