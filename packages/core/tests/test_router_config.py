"""Router configuration is checked at load: executor options, rule names, hostile values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from jobrelay import (
    Capabilities,
    Clock,
    ConfigError,
    JobSpec,
    ManualClock,
    Router,
    RoutingRule,
    register_executor,
)
from jobrelay_mock import MockExecutor


class Typed(MockExecutor):
    """An executor whose constructor says what it takes."""

    def __init__(
        self,
        region: str,
        *,
        name: str = "typed",
        timeout: float = 30,
        retries: int = 3,
        verbose: bool = False,
        endpoint: str | None = None,
        labels: dict[str, str] | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(name, clock=clock)
        self.region = region
        self.timeout = timeout


class Unresolvable(MockExecutor):
    """Annotations that cannot be resolved: values are left to the constructor."""

    def __init__(self, name: str = "odd", *, timeout: NoSuchType = 1) -> None:  # type: ignore[name-defined]  # noqa: F821
        super().__init__(name)


class Evaluated(MockExecutor):
    """Annotations as real types (a module without postponed annotations)."""

    def __init__(self, name: str = "evaluated", *, timeout: float | None = None) -> None:
        super().__init__(name)


Evaluated.__init__.__annotations__.update({"name": str, "timeout": float | None})


@pytest.fixture
def typed(request: pytest.FixtureRequest) -> None:
    request.getfixturevalue("registry_state")  # put the registry back afterwards
    register_executor("typed", Typed)
    register_executor("odd", Unresolvable)
    register_executor("evaluated", Evaluated)


def config(**entry: Any) -> dict[str, Any]:
    return {"executors": {"box": {"type": "typed", "region": "eu", **entry}}}


def job(**fields: Any) -> JobSpec:
    return JobSpec("busybox", "true", name="web", **fields)


# -- executor options, bound at load ---------------------------------------------------


@pytest.mark.usefixtures("typed")
@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"timout": 5}, r"executors\['box'\]: unknown option 'timout'; accepted: region, name, timeout"),
        ({"region": None, "timeout": "abc"}, r"executors\['box'\]\.region: expected str, got None"),
        ({"timeout": "abc"}, r"executors\['box'\]\.timeout: expected float, got 'abc'"),
        ({"timeout": True}, r"executors\['box'\]\.timeout: expected float, got True"),
        ({"retries": 1.5}, r"executors\['box'\]\.retries: expected int, got 1\.5"),
        ({"verbose": "yes"}, r"executors\['box'\]\.verbose: expected bool, got 'yes'"),
        ({"endpoint": 3}, r"executors\['box'\]\.endpoint: expected str or None, got 3"),
    ],
)  # fmt: skip
def test_executor_options_are_checked_at_load(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Router.from_config(config(**entry))


@pytest.mark.usefixtures("typed")
def test_a_missing_required_option_is_a_config_error_at_load() -> None:
    with pytest.raises(ConfigError, match=r"executors\['box'\]: missing a required argument"):
        Router({"box": {"type": "typed"}})


@pytest.mark.usefixtures("typed")
def test_fitting_options_load_and_reach_the_executor(tmp_path: Path) -> None:
    router = Router.from_config(
        config(timeout=5, retries=2, verbose=True, endpoint=None, labels={"a": "b"})
    )
    executor = router.executor("box")
    assert isinstance(executor, Typed)
    assert (executor.name, executor.region, executor.timeout) == ("box", "eu", 5)
    router.close()
    # Rich annotations are the constructor's business; unresolvable ones are skipped.
    Router({"odd": {"timeout": "anything"}}).close()
    Router({"evaluated": {"timeout": None}}).close()
    with pytest.raises(ConfigError, match=r"\.timeout: expected float or None, got '1'"):
        Router({"evaluated": {"timeout": "1"}})
    path = tmp_path / "router.toml"
    path.write_text('[executors.box]\ntype = "typed"\nregion = "eu"\ntimeout = "abc"\n')
    with pytest.raises(ConfigError, match=r"executors\['box'\]\.timeout: expected float"):
        Router.from_toml(path)


def test_mock_options_are_checked_at_load() -> None:
    with pytest.raises(ConfigError, match=r"executors\['mock'\]: unknown option 'log_splt'"):
        Router.from_config({"executors": {"mock": {"log_splt": False}}})
    with pytest.raises(ConfigError, match=r"executors\['mock'\]\.log_split: expected bool"):
        Router.from_config({"executors": {"mock": {"log_split": "no"}}})


def test_router_settings_are_keyword_only() -> None:
    executor = MockExecutor()
    with pytest.raises(TypeError):
        Router({"mock": executor}, [], "mock")  # type: ignore[call-arg]


# -- names in rules -----------------------------------------------------------------------


def test_a_misspelt_name_in_a_rule_is_a_config_error_at_load() -> None:
    with pytest.raises(
        ConfigError,
        match=r"rules\[0\]\.condition: unknown name 'memroy_mb' in 'memroy_mb > 8192'; "
        r"the standard names are cost, cpu_cores, .*context = \['memroy_mb'\]",
    ):
        Router.from_config(
            {
                "executors": {"mock": {}},
                "rules": [{"condition": "memroy_mb > 8192", "executor": "mock"}],
            }
        )
    with pytest.raises(ConfigError, match=r"rules\[1\]\.condition: unknown name 'tenant'"):
        Router(
            {"mock": MockExecutor()},
            rules=[RoutingRule("True", "mock"), RoutingRule("tenant == 'a'", "mock")],
        )


def test_caller_supplied_names_are_declared_on_the_rule_or_the_router(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    executors = {"mock": MockExecutor(clock=clock), "big": MockExecutor("big", clock=clock)}
    on_rule = RoutingRule("tenant == 'acme'", "big", context=["tenant"])
    router = Router(executors, rules=[on_rule], default="mock", clock=clock)
    assert router.route(job(), {"tenant": "acme"}).executor == "big"
    decision = router.route(job())  # not supplied: the rule cannot be evaluated
    assert decision.executor == "mock"
    assert "unknown name 'tenant'" in decision.skipped[0][1]
    router = Router(
        executors,
        rules=[RoutingRule("tenant == 'acme' and plan.tier > 1", "big")],
        context_names=["tenant", "plan"],
        default="mock",
        clock=clock,
    )
    plan = attrs.make_class("Plan", ["tier"])(2)
    assert router.route(job(), {"tenant": "acme", "plan": plan}).executor == "big"
    path = tmp_path / "router.toml"
    path.write_text(
        'default = "mock"\ncontext_names = ["team"]\n[executors.mock]\n[executors.big]\n'
        'type = "mock"\n[[rules]]\ncondition = "team == region"\nexecutor = "big"\n'
        'context = ["region"]\n'
    )
    router = Router.from_toml(path)
    assert router.route(job(), {"team": "eu", "region": "eu"}).executor == "big"
    router.close()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"context_names": "tenant"}, "context_names must be a list of names"),
        ({"context_names": ["ok", "not ok"]}, "context_names: not a context name: 'not ok'"),
        ({"context_names": ["_private"]}, "context_names: not a context name"),
        ({"rules": [{"condition": "x", "executor": "mock", "context": [1]}]},
         r"rules\[0\]\.context: not a context name: 1"),
    ],
)  # fmt: skip
def test_context_names_are_checked(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Router.from_config({"executors": {"mock": {}}, **settings})


# -- executors that cannot honour a job ---------------------------------------------------


class NoCancel(MockExecutor):
    """A backend that cannot stop a running job."""

    def capabilities(self) -> Capabilities:
        return attrs.evolve(super().capabilities(), cancel=False)


def test_a_job_with_a_timeout_needs_an_executor_that_can_cancel() -> None:
    clock = ManualClock()
    router = Router(
        {"batch": NoCancel("batch", clock=clock), "mock": MockExecutor(clock=clock)},
        default="batch",
        fallback=["mock"],
        clock=clock,
    )
    assert router.route(job()).executor == "batch"
    decision = router.route(job(timeout=60))
    assert decision.executor == "mock"
    assert decision.skipped == (
        ("batch", "job has a timeout, and the executor cannot cancel a job to enforce it"),
    )


# -- hostile values: the right error, quickly, naming the field ---------------------------

HUGE = 10**5000
DEEP: list[Any] = []
for _ in range(3000):
    DEEP = [DEEP]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"health_ttl": 10**400}, "health_ttl: must be a finite number of seconds, got an integer of 401 digits"),
        ({"health_ttl": float("inf")}, "health_ttl: must be a finite number"),
        ({"health_ttl": float("nan")}, "health_ttl: must be a number of seconds >= 0, got nan"),
        ({"unhealthy_wait": -1}, "unhealthy_wait: must be a number of seconds >= 0"),
        ({"executors": {"mock": {"max_concurrent": HUGE}}},
         r"executors\['mock'\]\.max_concurrent: must be an int from 1 to 1000000, got an integer of 5001 digits"),
        ({"executors": {"mock": {"enabled": HUGE}}}, r"executors\['mock'\]\.enabled: .*5001 digits"),
        ({"rules": [{"condition": "True", "executor": "mock", "priority": HUGE}]},
         r"rules\[0\]\.priority must be within \+-2\*\*63, got an integer of 5001 digits"),
        ({"rules": [{"condition": "True", "executor": "mock", "priority": -(2**64)}]},
         r"rules\[0\]\.priority must be within"),
        ({HUGE: 1}, r"unknown configuration keys \['an integer of 5001 digits'\]"),
        ({"executors": {"mock": {"enabled": DEEP}}},
         r"executors\['mock'\]\.enabled: must be true or false, got a list that cannot be shown"),
        ({"rules": [{"condition": "True", "executor": "mock", "priority": DEEP}]}, r"rules\[0\]\.priority"),
        ({"rules": [{"condition": "True", "executor": DEEP}]}, r"rules\[0\]\.executor"),
        ({"rules": [{"condition": DEEP, "executor": "mock"}]}, r"rules\[0\]\.condition must be a string"),
        ({"default": DEEP}, "default: a list that cannot be shown is not a configured executor"),
        ({"fallback": [DEEP]}, r"fallback\[0\]: a list that cannot be shown"),
        ({"context_names": DEEP}, r"context_names: not a context name"),
        ({"health_ttl": DEEP}, "health_ttl: must be a number"),
    ],
)  # fmt: skip
def test_hostile_values_get_a_config_error_naming_the_field(
    data: dict[Any, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        Router.from_config({"executors": {"mock": {}}, **data})


def test_hostile_toml(tmp_path: Path) -> None:
    path = tmp_path / "router.toml"
    path.write_text("[executors.mock]\n\n[executors.other]\nmax_concurrent = " + "9" * 5000)
    with pytest.raises(ConfigError, match=r"line 4: max_concurrent: integer too large"):
        Router.from_toml(path)
    path.write_text("executors = " + "[" * 3000 + "]" * 3000)
    with pytest.raises(ConfigError, match="not valid TOML: nested too deeply"):
        Router.from_toml(path)
    path.write_text("x = " + "{a = " * 3000 + "1" + "}" * 3000)
    with pytest.raises(ConfigError, match="not valid TOML"):
        Router.from_toml(path)


def test_rules_with_hostile_numbers_are_refused_at_load() -> None:
    hex_literal = "0x" + "f" * 4000
    with pytest.raises(ConfigError, match=r"rules\[0\]\.condition: integer literal beyond 2\*\*64"):
        Router.from_config(
            {
                "executors": {"mock": {}},
                "rules": [{"condition": f"memory_mb > {hex_literal}", "executor": "mock"}],
            }
        )
    with pytest.raises(ConfigError, match=r"rules\[0\]\.condition: integer literal beyond"):
        Router.from_config(
            {
                "executors": {"mock": {}},
                "rules": [{"condition": "memory_mb > " + "9" * 4080, "executor": "mock"}],
            }
        )
