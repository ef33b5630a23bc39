"""A module imported on first use, so that importing an executor does not import its SDK."""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Any

__all__ = ["LazyModule", "lazy_import"]


class LazyModule(ModuleType):
    """Stands for module ``name``; the first attribute read imports it (thread-safe).

    Reading an attribute of a module that cannot be imported raises the
    ``ImportError`` then, every time (nothing is cached but success).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name, f"{name}, imported on first use")
        self.__dict__["_jobrelay_lock"] = threading.Lock()
        self.__dict__["_jobrelay_module"] = None

    def _jobrelay_load(self) -> ModuleType:
        module: ModuleType | None = self.__dict__["_jobrelay_module"]
        if module is None:
            with self.__dict__["_jobrelay_lock"]:
                module = self.__dict__["_jobrelay_module"]
                if module is None:
                    module = importlib.import_module(self.__name__)
                    self.__dict__["_jobrelay_module"] = module
        return module

    def __getattr__(self, attribute: str) -> Any:
        # Only names the stand-in itself lacks reach here: all of the module's.
        return getattr(self._jobrelay_load(), attribute)

    def __dir__(self) -> list[str]:
        return dir(self._jobrelay_load())

    def __repr__(self) -> str:
        state = "imported" if self.__dict__["_jobrelay_module"] is not None else "not yet imported"
        return f"<lazy module {self.__name__!r} ({state})>"


def lazy_import(name: str) -> Any:
    """Return module ``name`` as a stand-in that imports it at the first attribute read.

    For an executor whose SDK is slow to import: a Router that lists it, a command
    that never routes a job to it, pay nothing. Type it with the real module::

        from typing import TYPE_CHECKING
        from jobrelay.backend import lazy_import

        if TYPE_CHECKING:
            import botocore.exceptions as botocore_exceptions
        else:
            botocore_exceptions = lazy_import("botocore.exceptions")

    Names read at module level (a base class, a constant tuple of exception
    classes) import it at once: build those on first use instead.
    """
    return LazyModule(name)
