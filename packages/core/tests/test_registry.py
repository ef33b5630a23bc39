"""The executor registry: entry points read once by name, imported on first use."""

from __future__ import annotations

import importlib.metadata as importlib_metadata
import json
import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from conftest import Site
from jobrelay import (
    ConfigError,
    ExecutorInfo,
    ExecutorLoadError,
    ExecutorNotFoundError,
    JobSpec,
    JobState,
    available_executors,
    describe_executors,
    get_executor,
    load_executor_class,
    register_executor,
)
from jobrelay._registry import _reset_entry_point_cache
from jobrelay_mock import MockExecutor

GROUP = "jobrelay.executors"

WORKING = textwrap.dedent(
    """
    from jobrelay_mock import MockExecutor

    class WorkingExecutor(MockExecutor):
        def __init__(self, **config):
            super().__init__("working", **config)
    """
)
BROKEN = 'raise ImportError("jr_broken_plugin needs libjobrelay-broken.so")\n'
CRASHING = "raise RuntimeError('initialisation failed')\n"
NOT_EXECUTORS = textwrap.dedent(
    """
    class NotAnExecutor:
        def launch(self, job):
            return None

    value = 42
    """
)


@pytest.fixture
def plugins(site: Site) -> Site:
    site.distribution(
        "jr-working-plugin",
        "1.2.3",
        entry_points={GROUP: {"working": "jr_working_plugin:WorkingExecutor"}},
        modules={"jr_working_plugin": WORKING},
    )
    site.distribution(
        "jr-broken-plugin",
        "0.1",
        entry_points={GROUP: {"broken": "jr_broken_plugin:BrokenExecutor"}},
        modules={"jr_broken_plugin": BROKEN},
    )
    site.distribution(
        "jr-odd-plugins",
        "2.0",
        entry_points={
            GROUP: {
                "notexec": "jr_not_executors:NotAnExecutor",
                "notaclass": "jr_not_executors:value",
                "noattr": "jr_not_executors:Missing",
                "nomodule": "jr_module_that_is_not_installed:Executor",
                "crashing": "jr_crashing_plugin:Executor",
            }
        },
        modules={"jr_not_executors": NOT_EXECUTORS, "jr_crashing_plugin": CRASHING},
    )
    return site


INSTALLED = {"working", "broken", "notexec", "notaclass", "noattr", "nomodule", "crashing"}


def test_discovery_lists_every_name_and_imports_nothing(plugins: Site) -> None:
    names = available_executors()
    assert set(names) >= INSTALLED | {"mock"}
    assert names == sorted(names)
    assert plugins.imported() == []
    infos = {info.name: info for info in describe_executors()}
    assert infos["working"] == ExecutorInfo(
        "working", "jr_working_plugin:WorkingExecutor", "jr-working-plugin", "1.2.3"
    )
    assert infos["broken"].distribution == "jr-broken-plugin"
    assert infos["mock"].distribution == "jobrelay-mock"
    assert plugins.imported() == []


def test_working_plugin_loads_on_first_use(plugins: Site) -> None:
    available_executors()
    assert "jr_working_plugin" not in sys.modules
    executor = get_executor("working", healthy=False)
    assert plugins.imported() == ["jr_working_plugin"]
    assert executor.name == "working"
    assert executor.health().healthy is False  # the config reached the constructor
    result = executor.harvest(executor.launch(JobSpec("busybox")))
    assert result.state is JobState.SUCCEEDED
    assert load_executor_class("working") is type(executor)
    assert load_executor_class("working") is load_executor_class("working")


@pytest.mark.usefixtures("plugins")
def test_broken_plugin_is_reported_and_breaks_nothing() -> None:
    with pytest.raises(ExecutorLoadError) as info:
        get_executor("broken")
    error = info.value
    assert error.executor == "broken"
    assert error.entry_point == "jr_broken_plugin:BrokenExecutor"
    assert error.distribution == "jr-broken-plugin"
    assert set(error.alternatives) == set(available_executors()) - {"broken"}
    assert {"working", "mock"} <= set(error.alternatives)
    message = str(error)
    for text in ("'broken'", "jr_broken_plugin:BrokenExecutor", "jr-broken-plugin", "working"):
        assert text in message
    assert "libjobrelay-broken.so" in message  # the reason, not just "failed"
    assert isinstance(error.__cause__, ImportError)
    # Nothing else is affected, and asking again gives the same clear error.
    assert isinstance(get_executor("working"), MockExecutor)
    assert isinstance(get_executor("mock"), MockExecutor)
    assert set(available_executors()) >= INSTALLED
    with pytest.raises(ExecutorLoadError):
        load_executor_class("broken")


@pytest.mark.parametrize(
    ("name", "reason", "cause"),
    [
        ("notexec", "missing methods", None),
        ("notaclass", "not an executor", None),
        ("noattr", "AttributeError", AttributeError),
        ("nomodule", "ModuleNotFoundError", ModuleNotFoundError),
        ("crashing", "initialisation failed", RuntimeError),
    ],
)
@pytest.mark.usefixtures("plugins")
def test_other_bad_plugins(name: str, reason: str, cause: type[BaseException] | None) -> None:
    with pytest.raises(ExecutorLoadError, match=reason) as info:
        get_executor(name)
    assert info.value.distribution == "jr-odd-plugins"
    assert info.value.executor == name
    assert name not in info.value.alternatives
    assert "working" in info.value.alternatives
    if cause is not None:
        assert isinstance(info.value.__cause__, cause)
    assert isinstance(get_executor("working"), MockExecutor)


@pytest.mark.usefixtures("plugins")
def test_missing_methods_are_named() -> None:
    with pytest.raises(ExecutorLoadError) as info:
        load_executor_class("notexec")
    assert "'status'" in str(info.value)
    assert "'launch'" not in str(info.value)  # NotAnExecutor has launch


def test_entry_points_are_read_once(plugins: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    real = importlib_metadata.entry_points

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(importlib_metadata, "entry_points", counting)
    _reset_entry_point_cache()
    assert calls == []  # lazily: nothing is read until asked
    for _ in range(3):
        available_executors()
    get_executor("working")
    describe_executors()
    assert calls == [{"group": GROUP}]
    # A distribution installed later shows up only after the cache is reset.
    plugins.distribution(
        "jr-late-plugin",
        entry_points={GROUP: {"late": "jr_working_plugin:WorkingExecutor"}},
    )
    assert "late" not in available_executors()
    _reset_entry_point_cache()
    assert "late" in available_executors()
    assert len(calls) == 2


def test_duplicate_entry_point_names_warn(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    for dist in ("jr-dup-one", "jr-dup-two"):
        site.distribution(
            dist, entry_points={GROUP: {"dup": f"{dist.replace('-', '_')}_module:Executor"}}
        )
    with caplog.at_level(logging.WARNING, logger="jobrelay"):
        assert "dup" in available_executors()
    warnings = [r for r in caplog.records if "declared twice" in r.getMessage()]
    assert len(warnings) == 1
    assert "jr-dup-one" in warnings[0].getMessage()
    assert "jr-dup-two" in warnings[0].getMessage()


# -- register_executor -------------------------------------------------------------------


class InCodeExecutor(MockExecutor):
    def __init__(self, **config: Any) -> None:
        super().__init__("in-code", **config)


@pytest.mark.usefixtures("registry_state")
def test_register_a_class() -> None:
    register_executor("in-code", InCodeExecutor)
    assert "in-code" in available_executors()
    executor = get_executor("in-code")
    assert isinstance(executor, InCodeExecutor)
    info = {i.name: i for i in describe_executors()}["in-code"]
    assert info.target == f"{__name__}:InCodeExecutor"
    assert info.distribution is None


def test_register_a_dotted_path_imports_on_first_use(site: Site) -> None:
    site.distribution("jr-unused", modules={"jr_dotted_module": WORKING})
    register_executor("dotted", "jr_dotted_module.WorkingExecutor")
    register_executor("colon", "jr_dotted_module:WorkingExecutor")
    assert {"dotted", "colon"} <= set(available_executors())
    assert site.imported() == []
    assert get_executor("dotted").name == "working"
    assert load_executor_class("colon") is load_executor_class("dotted")


@pytest.mark.usefixtures("registry_state")
def test_register_a_broken_dotted_path() -> None:
    register_executor("nowhere", "jr_no_such_module.Executor")
    with pytest.raises(ExecutorLoadError) as info:
        get_executor("nowhere")
    assert info.value.entry_point == "jr_no_such_module.Executor"
    assert info.value.distribution is None
    assert "mock" in info.value.alternatives
    register_executor("no-path", "justaname")
    with pytest.raises(ExecutorLoadError, match="not a 'module:attr' or dotted path"):
        get_executor("no-path")


@pytest.mark.usefixtures("registry_state")
def test_duplicate_registration() -> None:
    register_executor("in-code", InCodeExecutor)
    with pytest.raises(ConfigError, match="already registered"):
        register_executor("in-code", MockExecutor)
    with pytest.raises(ConfigError, match="already registered"):
        register_executor("mock", InCodeExecutor)  # an entry point's name too
    assert load_executor_class("in-code") is InCodeExecutor
    assert load_executor_class("mock") is MockExecutor


@pytest.mark.usefixtures("registry_state")
def test_replace() -> None:
    register_executor("in-code", InCodeExecutor)
    assert isinstance(get_executor("in-code"), InCodeExecutor)
    register_executor("in-code", MockExecutor, replace=True)
    assert type(get_executor("in-code")) is MockExecutor
    register_executor("in-code", f"{__name__}:InCodeExecutor", replace=True)
    assert type(get_executor("in-code")) is InCodeExecutor
    register_executor("mock", InCodeExecutor, replace=True)
    assert type(get_executor("mock")) is InCodeExecutor


@pytest.mark.usefixtures("registry_state")
def test_replace_after_cache_reset_keeps_registrations() -> None:
    register_executor("in-code", InCodeExecutor)
    _reset_entry_point_cache()
    assert "in-code" in available_executors()
    assert load_executor_class("in-code") is InCodeExecutor


@pytest.mark.parametrize("target", [object, int, 42, "jobrelay.errors.SpecError"])
@pytest.mark.usefixtures("registry_state")
def test_register_a_non_executor(target: Any) -> None:
    register_executor("in-code", InCodeExecutor)
    if isinstance(target, str):
        register_executor("odd", target)  # a path is checked when first used
        with pytest.raises(ExecutorLoadError, match="not an executor"):
            get_executor("odd")
    else:
        with pytest.raises(ExecutorLoadError, match=r"not an executor|not a class"):
            register_executor("in-code", target, replace=True)
        # Refused means refused: the working registration is untouched.
        assert load_executor_class("in-code") is InCodeExecutor


@pytest.mark.parametrize("name", ["", None, 3])
@pytest.mark.usefixtures("registry_state")
def test_register_needs_a_name(name: Any) -> None:
    with pytest.raises(ConfigError):
        register_executor(name, InCodeExecutor)


@pytest.mark.usefixtures("registry_state")
def test_unknown_name() -> None:
    register_executor("in-code", InCodeExecutor)
    with pytest.raises(ExecutorNotFoundError) as info:
        get_executor("nope")
    assert isinstance(info.value, LookupError)
    assert info.value.executor == "nope"
    assert info.value.alternatives == tuple(available_executors())
    assert "in-code" in str(info.value)
    assert "mock" in str(info.value)


@pytest.mark.usefixtures("registry_state")
def test_misspelt_option_names_the_key_and_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_executor("mock", remove_on_harvst=False)
    message = str(info.value)
    assert "unknown option 'remove_on_harvst'" in message
    assert "remove_on_harvest" in message
    assert "keep_failed" in message


class NeedsRegion:
    """An executor whose constructor needs an argument and has a bug for size=2."""

    name = "needs-region"

    def __init__(self, region: str, *, size: int = 1) -> None:
        if size == 2:
            raise TypeError("a bug inside the constructor")
        self.region = region

    def launch(self, job: object) -> None: ...
    def status(self, execution: object) -> None: ...
    def statuses(self, executions: object) -> None: ...
    def logs(self, execution: object, *, tail: object = None) -> None: ...
    def stream_logs(self, execution: object) -> None: ...
    def harvest(self, execution: object) -> None: ...
    def cancel(self, execution: object) -> None: ...
    def cleanup(self, execution: object) -> None: ...
    def capabilities(self) -> None: ...
    def health(self) -> None: ...
    def close(self) -> None: ...


@pytest.mark.usefixtures("registry_state")
def test_type_error_inside_a_constructor_is_not_disguised_as_configuration() -> None:
    register_executor("needs-region", NeedsRegion)
    with pytest.raises(TypeError, match="a bug inside the constructor"):
        get_executor("needs-region", region="eu", size=2)
    with pytest.raises(ConfigError, match="unknown option 'sise'"):
        get_executor("needs-region", region="eu", sise=2)


@pytest.mark.usefixtures("registry_state")
def test_missing_required_argument_is_a_config_error() -> None:
    register_executor("needs-region", NeedsRegion)
    with pytest.raises(ConfigError, match=r"needs-region.*region"):
        get_executor("needs-region", size=1)
    assert get_executor("needs-region", region="eu").name == "needs-region"


# -- a fresh interpreter -----------------------------------------------------------------


def test_fresh_import_lists_mock_and_imports_no_sdk() -> None:
    # What a user checks first: listing names imports no backend, in a clean interpreter.
    code = textwrap.dedent(
        """
        import json, sys
        import jobrelay
        names = jobrelay.available_executors()
        sdks = sorted(
            m for m in sys.modules if m.startswith(("docker", "boto", "google", "scaleway"))
        )
        plugins = sorted(m for m in sys.modules if m.startswith("jobrelay_"))
        print(json.dumps({"names": names, "sdks": sdks, "plugins": plugins}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    found = json.loads(done.stdout)
    assert "mock" in found["names"]
    assert found["sdks"] == []
    assert found["plugins"] == []  # listing names imported no executor module
