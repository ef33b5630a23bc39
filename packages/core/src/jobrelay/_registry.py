"""Finding executors: entry points read once by name, modules imported on first use.

Discovery never imports a backend: listing executors reads entry-point *names* and
dotted paths only, so ``available_executors()`` costs no boto3 or google-cloud import.
A plugin that fails to import raises :class:`~jobrelay.errors.ExecutorLoadError` for
that name alone; the others keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata as importlib_metadata
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from jobrelay.errors import ConfigError, ExecutorLoadError, ExecutorNotFoundError

if TYPE_CHECKING:
    from jobrelay._protocol import Executor

ExecutorClass = type["Executor"]

__all__ = [
    "ExecutorInfo",
    "available_executors",
    "bind_config",
    "describe_executors",
    "get_executor",
    "load_executor_class",
    "register_executor",
]

EXECUTORS_GROUP = "jobrelay.executors"
logger = logging.getLogger("jobrelay.registry")


@attrs.frozen
class ExecutorInfo:
    """Where an executor comes from, without importing it.

    Args:
        name: the executor name (entry-point name).
        target: ``module:attr`` or dotted path, or the class's qualified name.
        distribution: the distribution that declared it (None when registered in code).
        version: that distribution's version.
    """

    name: str
    target: str
    distribution: str | None = None
    version: str | None = None


@attrs.frozen
class _EntryPoint:
    """An entry point as read: its distribution's name and version are read on demand."""

    name: str
    target: str
    dist: importlib_metadata.Distribution | None = attrs.field(eq=False, repr=False)

    def info(self) -> ExecutorInfo:
        dist = self.dist
        return ExecutorInfo(
            name=self.name,
            target=self.target,
            distribution=dist.name if dist is not None else None,
            version=dist.version if dist is not None else None,
        )


@attrs.define
class _Registry:
    _entries: dict[str, _EntryPoint | ExecutorInfo] | None = None
    _explicit: dict[str, ExecutorInfo] = attrs.Factory(dict)
    _classes: dict[str, ExecutorClass] = attrs.Factory(dict)
    _lock: threading.RLock = attrs.Factory(threading.RLock)

    def names(self) -> list[str]:
        with self._lock:
            if self._entries is None:
                self._entries = _read_entry_points()
            return sorted({*self._entries, *self._explicit})

    def entries(self) -> dict[str, ExecutorInfo]:
        with self._lock:
            if self._entries is None:
                self._entries = _read_entry_points()
            merged = {
                name: entry.info() if isinstance(entry, _EntryPoint) else entry
                for name, entry in self._entries.items()
            }
            merged.update(self._explicit)
            return merged

    def register(self, name: object, target: type[object] | str, *, replace: bool) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"executor name must be a non-empty string, got {name!r}")
        with self._lock:
            if name in self.entries() and not replace:
                raise ConfigError(
                    f"an executor named {name!r} is already registered "
                    f"({self.entries()[name].target}); pass replace=True to replace it"
                )
            if isinstance(target, str):
                info, cls = ExecutorInfo(name, target), None
            else:
                where = getattr(target, "__module__", "?")
                info = ExecutorInfo(name, f"{where}:{getattr(target, '__qualname__', target)!s}")
                # Check before storing: a refused class must not replace a working entry.
                cls = _checked(name, info, target, ())
            self._explicit[name] = info
            self._classes.pop(name, None)
            if cls is not None:
                self._classes[name] = cls

    def load(self, name: str) -> ExecutorClass:
        with self._lock:
            cls = self._classes.get(name)
            if cls is not None:
                return cls
            entries = self.entries()
            info = entries.get(name)
            if info is None:
                raise ExecutorNotFoundError(name, sorted(entries))
            others = sorted(n for n in entries if n != name)
            try:
                loaded = _import_target(info.target)
            except Exception as exc:
                raise ExecutorLoadError(
                    name,
                    entry_point=info.target,
                    distribution=info.distribution,
                    reason=f"{type(exc).__name__}: {exc}",
                    alternatives=others,
                ) from exc
            cls = _checked(name, info, loaded, others)
            self._classes[name] = cls
            return cls

    def forget(self) -> None:
        with self._lock:
            self._entries = None
            self._classes = {
                name: cls for name, cls in self._classes.items() if name in self._explicit
            }


def _read_entry_points() -> dict[str, _EntryPoint | ExecutorInfo]:
    found: dict[str, _EntryPoint | ExecutorInfo] = {}
    for ep in importlib_metadata.entry_points(group=EXECUTORS_GROUP):
        entry = _EntryPoint(ep.name, ep.value, ep.dist)
        previous = found.get(ep.name)
        if previous is not None and previous.target != entry.target:
            first = previous.info() if isinstance(previous, _EntryPoint) else previous
            logger.warning(
                "executor name %r is declared twice: %s (%s) and %s (%s); using the latter",
                ep.name,
                first.target,
                first.distribution,
                entry.target,
                entry.info().distribution,
            )
        found[ep.name] = entry
    return found


def _import_target(target: str) -> object:
    if ":" in target:
        module_name, _, attr_path = target.partition(":")
    else:
        module_name, _, attr_path = target.rpartition(".")
    if not module_name or not attr_path:
        raise ValueError(f"not a 'module:attr' or dotted path: {target!r}")
    obj: object = importlib.import_module(module_name)
    for part in attr_path.split("."):
        obj = getattr(obj, part)
    return obj


def _checked(
    name: str, info: ExecutorInfo, obj: object, others: list[str] | tuple[()]
) -> ExecutorClass:
    # Imported here: listing executors must not load the models behind the protocol.
    from jobrelay._protocol import missing_methods  # noqa: PLC0415

    missing = missing_methods(obj)
    if not isinstance(obj, type) or missing:
        what = f"missing methods {missing}" if missing else "not a class"
        raise ExecutorLoadError(
            name,
            entry_point=info.target,
            distribution=info.distribution,
            reason=f"{info.target} is not an executor ({what})",
            alternatives=others,
        )
    return obj


_registry = _Registry()


def available_executors() -> list[str]:
    """Return the sorted names of every known executor, importing none of them."""
    return _registry.names()


def describe_executors() -> list[ExecutorInfo]:
    """Return where each known executor comes from (distribution, version), sorted by name."""
    entries = _registry.entries()
    return [entries[name] for name in sorted(entries)]


def load_executor_class(name: str) -> ExecutorClass:
    """Import and return the class registered as ``name`` (cached after the first call).

    Raises:
        ExecutorNotFoundError: nothing is registered under ``name``.
        ExecutorLoadError: the plugin failed to import or is not an executor.
    """
    return _registry.load(name)


def get_executor(name: str, /, **config: Any) -> Executor:
    """Create the executor registered as ``name`` with ``config`` as keyword arguments.

    The configuration is bound against the class's signature first, so a misspelt
    key is a :class:`~jobrelay.errors.ConfigError` naming it and the accepted ones; a
    ``TypeError`` raised inside the constructor itself is not disguised as one.

    Example::

        executor = get_executor("docker", base_url="tcp://build-host:2376")
        executor = get_executor("docker", name="gpu-box")   # ``name`` reaches the class

    Raises:
        ExecutorNotFoundError: nothing is registered under ``name``.
        ExecutorLoadError: the plugin failed to import or is not an executor.
        ConfigError: the configuration does not fit the executor's signature.
    """
    cls = _registry.load(name)
    bind_config(cls, config, executor=name)
    return cls(**config)


def bind_config(cls: type[object], options: Mapping[str, Any], *, executor: str) -> None:
    """Check that ``options`` fit ``cls``'s constructor as keyword arguments.

    Raises:
        ConfigError: an unknown key (naming it and the accepted ones), or a required
            argument missing. Values are not checked here; the constructor does that.
    """
    import inspect  # noqa: PLC0415 - listing executors must not pay for inspect

    try:
        signature = inspect.signature(cls)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    accepted = [
        p.name
        for p in parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    unknown = [key for key in options if key not in accepted]
    if unknown:
        raise ConfigError(
            f"executor {executor!r}: unknown option {unknown[0]!r}; "
            f"accepted: {', '.join(accepted) or 'none'}"
        )
    try:
        signature.bind(**options)
    except TypeError as exc:
        raise ConfigError(f"executor {executor!r}: {exc}") from None


def register_executor(
    name: str, cls_or_dotted_path: type[object] | str, *, replace: bool = False
) -> None:
    """Register an executor that is not installed as a distribution.

    ``cls_or_dotted_path`` is a class, or ``"package.module:Class"`` (imported on first
    use). Registering a known name again raises :class:`~jobrelay.errors.ConfigError`
    unless ``replace=True``.
    """
    _registry.register(name, cls_or_dotted_path, replace=replace)


def _reset_entry_point_cache() -> None:
    """Forget what was read from entry points (tests that install plugins use this)."""
    _registry.forget()
