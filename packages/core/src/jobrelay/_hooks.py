"""Calling hooks safely: every implementation runs, and none can break a job."""

from __future__ import annotations

import logging
import threading
from typing import Any

import importlib_metadata
import pluggy

from jobrelay import hookspecs

__all__ = ["Hooks"]

PLUGINS_GROUP = "jobrelay.plugins"
logger = logging.getLogger("jobrelay.hooks")


class Hooks:
    """The hook relay of a Router or Runner.

    Wraps a :class:`pluggy.PluginManager`: ``register(obj)`` adds an implementation,
    ``emit(name, **kwargs)`` calls each implementation of hook ``name`` in turn and
    logs (never raises) what one of them raises.

    Args:
        load_entry_points: also register the ``jobrelay.plugins`` entry points.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self._lock = threading.Lock()
        self._loaded = threading.Event()
        if not load_entry_points:
            self._loaded.set()

    def _ensure_loaded(self) -> None:
        # Set only once loading is done: a concurrent emit waits on the lock meanwhile.
        if self._loaded.is_set():
            return
        with self._lock:
            if self._loaded.is_set():
                return
            # Not pluggy's load_setuptools_entrypoints: it stops at the first plugin
            # that fails, leaving every later one unloaded.
            for ep in importlib_metadata.entry_points(group=PLUGINS_GROUP):
                if self.manager.get_plugin(ep.name) is not None or self.manager.is_blocked(ep.name):
                    continue
                try:
                    self.manager.register(ep.load(), name=ep.name)
                except Exception:
                    # A broken plugin must not stop jobs or other plugins; say which, go on.
                    logger.exception(
                        "could not load %s entry point %r (%s) from distribution %s; skipped",
                        PLUGINS_GROUP,
                        ep.name,
                        ep.value,
                        ep.dist.name if ep.dist is not None else "unknown",
                    )
            self._loaded.set()

    def register(self, plugin: object, name: str | None = None) -> str | None:
        """Register a hook implementation object; return the name pluggy gave it."""
        return self.manager.register(plugin, name)

    def unregister(self, plugin: object) -> None:
        """Remove a previously registered implementation."""
        self.manager.unregister(plugin)

    def emit(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of ``hook``; log and swallow what they raise."""
        self._ensure_loaded()
        caller = getattr(self.manager.hook, hook)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(*[kwargs[arg] for arg in impl.argnames])
            except Exception:  # noqa: PERF203 - each implementation fails alone
                logger.exception("hook %s of plugin %r raised; ignored", hook, impl.plugin_name)
