"""Calling hooks safely: every implementation runs, and none can break a job."""

from __future__ import annotations

import functools
import importlib.metadata as importlib_metadata
import logging
import threading
from collections.abc import Callable
from typing import Any

import pluggy

from jobrelay import hookspecs

__all__ = ["Hooks"]

PLUGINS_GROUP = "jobrelay.plugins"
logger = logging.getLogger("jobrelay.hooks")


class Hooks:
    """The hook relay of a Router or Runner.

    Wraps a :class:`pluggy.PluginManager`: ``register(obj)`` adds an implementation,
    ``emit(name, **kwargs)`` calls the hook through pluggy's hook caller (so
    ``wrapper=True`` and ``hookwrapper`` implementations run, and a call that does not
    match the hook's specification is an error). Each plain implementation registered
    through :meth:`register` or an entry point runs isolated: what it raises is logged
    and the other implementations still run.

    Args:
        load_entry_points: also register the ``jobrelay.plugins`` entry points.
    """

    def __init__(self, *, load_entry_points: bool = True) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        self._lock = threading.Lock()
        self._argnames: dict[str, frozenset[str]] = {}
        self._loaded = threading.Event()
        if not load_entry_points:
            self._loaded.set()

    def load_entry_points(self) -> None:
        """Import and register the ``jobrelay.plugins`` entry points now (else on first emit).

        A command can call it in a background thread while it does other work, so
        that importing plugins' dependencies does not delay the first hook.
        """
        self._ensure_loaded()

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
                    self.register(ep.load(), name=ep.name)
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
        registered = self.manager.register(plugin, name)
        for caller in self.manager.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin and not (impl.hookwrapper or impl.wrapper):
                    # pluggy types it Final; it is a plain slot, set once here.
                    object.__setattr__(
                        impl, "function", _isolated(impl.function, caller.name, impl.plugin_name)
                    )
        return registered

    def unregister(self, plugin: object) -> None:
        """Remove a previously registered implementation."""
        self.manager.unregister(plugin)

    def emit(self, hook: str, **kwargs: Any) -> None:
        """Call hook ``hook`` with ``kwargs`` through pluggy; never let a plugin break a job.

        Raises:
            AttributeError: no hook of that name is specified.
            pluggy.HookCallError: the call does not give what the specification asks.
        """
        if not self._loaded.is_set():
            self._ensure_loaded()
        caller = getattr(self.manager.hook, hook)
        expected = self._argnames.get(hook)
        if expected is None:
            spec = caller.spec
            expected = frozenset(spec.argnames) if spec is not None else frozenset(kwargs)
            self._argnames[hook] = expected
        if expected != kwargs.keys():
            raise pluggy.HookCallError(
                f"hook {hook} takes {', '.join(sorted(expected))}; called with "
                f"{', '.join(sorted(kwargs)) or 'nothing'}"
            )
        if not caller.get_hookimpls():
            return  # nobody listens: pluggy's call path would cost 2 us per call for nothing
        try:
            caller(**kwargs)
        except pluggy.HookCallError:
            raise
        except Exception:
            # A wrapper that raised: plain implementations are isolated one by one.
            logger.exception("hook %s raised; ignored", hook)


def _isolated(function: Callable[..., Any], hook: str, plugin: str) -> Callable[..., Any]:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception:
            logger.exception("hook %s of plugin %r raised; ignored", hook, plugin)
            return None

    return call
