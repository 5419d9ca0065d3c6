"""The checks of how a service deploys: a rollback monitor (REL007: the circuit breaker or deployment alarms, with
rollback), bake times (REL011), roles for Lambda lifecycle hooks (REL012) and versionConsistency (REL013).

Each check first as a pure function over records built by hand, then through the library: what DescribeServices
says of a sandbox service's deployments reaches the snapshot through the cache, and a cache of the schema before it
is rebuilt rather than misread. The sandbox states that keep or break them through the plugin are in
:data:`.worlds.BREAKAGES`.
"""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from opskit.checks import Snapshot, get_check
from opskit.library import CacheWarning, RevisionLibrary
from opskit.library.store import SCHEMA
from opskit.records import LifecycleHookRecord
from opskit.sandbox import Sandbox

from .test_checks import REGISTRY, SHA_B, arn, digest, revision
from .test_checks import world as records
from .worlds import World, good_world, lambda_hook, with_alarms, with_hooks

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:web-smoke-test"
ROLE = "arn:aws:iam::123456789012:role/ecsLifecycleHooks"
# What each failure message says to do, after what is wrong (one line).
FIXES = {
    "REL007": "turn on the circuit breaker with rollback, or deployment alarms with rollback",
    "REL011": "above 0",
    "REL012": "give each AWS_LAMBDA hook the roleArn",
    "REL013": "register a revision without versionConsistency disabled",
}


def web(**changes: Any) -> Snapshot:
    """The hand-built world of test_checks with prod/web changed."""
    (service,) = records().services
    return records(services=(replace(service, **changes),))


def outcome(snapshot: Snapshot, check: str) -> tuple[bool, str]:
    (finding,) = get_check(check).run(snapshot)
    assert finding.resource == "prod/web"
    if finding.failed:
        assert "\n" not in finding.message and FIXES[check] in finding.message, finding.message
    return finding.passed, finding.message


# -- REL007: the circuit breaker or deployment alarms, with rollback -----------------------------------------------
ALARMS = {"alarm_names": ("web-5xx", "web-latency"), "alarms_enabled": True, "alarms_rollback": True}
NO_BREAKER = {"circuit_breaker": False, "circuit_breaker_rollback": False}


@pytest.mark.parametrize(
    ("changes", "passes", "says"),
    [
        ({}, True, "the circuit breaker is on and rolls failed deployments back"),
        (ALARMS, True, "the circuit breaker and alarms web-5xx, web-latency roll failed deployments back"),
        ({**NO_BREAKER, **ALARMS}, True, "alarms web-5xx, web-latency roll failed deployments back"),
        (NO_BREAKER, False, "no deployment circuit breaker; no deployment alarms: turn on"),
        (
            {"circuit_breaker_rollback": False},
            False,
            "the circuit breaker stops failed deployments but does not roll them back; no deployment alarms",
        ),
        (
            {**NO_BREAKER, **ALARMS, "alarms_rollback": False},
            False,
            "alarms web-5xx, web-latency fail deployments but do not roll them back",
        ),
        ({**NO_BREAKER, **ALARMS, "alarms_enabled": False}, False, "deployment alarms (web-5xx, web-latency) are not"),
        ({**NO_BREAKER, **ALARMS, "alarm_names": ()}, False, "deployment alarms name no alarm"),
    ],
)
def test_a_rollback_monitor_is_the_circuit_breaker_or_alarms_with_rollback(
    changes: dict[str, Any], passes: bool, says: str
) -> None:
    passed, message = outcome(web(**changes), "REL007")
    assert passed is passes and says in message, message


def test_the_rollback_monitor_keeps_its_id_and_name() -> None:
    check = get_check("REL007")
    assert check.name == "circuit-breaker" and get_check("circuit-breaker") is check
    assert "circuit breaker or deployment alarms" in check.title
    assert "deploymentCircuitBreaker=" in check.remediation and "alarms=" in check.remediation


# -- REL011: bake times --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "passes", "says"),
    [
        ({}, True, "ROLLING: no bake time applies"),
        ({"strategy": "BLUE_GREEN", "bake_time_minutes": 15}, True, "kept 15 minute(s) after traffic moves"),
        ({"strategy": "BLUE_GREEN", "bake_time_minutes": 0}, False, "set deploymentConfiguration.bakeTimeInMinutes"),
        ({"strategy": "BLUE_GREEN", "bake_time_minutes": None}, False, "BLUE_GREEN with no bake time"),
        # BLUE_GREEN bakes after the shift; a step or canary bake time is not its own.
        ({"strategy": "BLUE_GREEN", "bake_time_minutes": 0, "canary_bake_time_minutes": 5}, False, "no bake time"),
        ({"strategy": "LINEAR", "step_bake_time_minutes": 3}, True, "each traffic step baking 3 minute(s)"),
        ({"strategy": "LINEAR", "step_bake_time_minutes": None}, True, "baking 6 minute(s)"),  # ECS's default
        ({"strategy": "LINEAR", "step_bake_time_minutes": 0, "bake_time_minutes": 30}, False, "stepBakeTimeInMinutes"),
        ({"strategy": "CANARY", "canary_bake_time_minutes": 5}, True, "the canary baking 5 minute(s)"),
        ({"strategy": "CANARY", "canary_bake_time_minutes": None}, True, "baking 10 minute(s)"),  # ECS's default
        ({"strategy": "CANARY", "canary_bake_time_minutes": 0}, False, "set canaryConfiguration.canaryBakeTime"),
    ],
)
def test_traffic_shifting_deployments_bake(changes: dict[str, Any], passes: bool, says: str) -> None:
    passed, message = outcome(web(**changes), "REL011")
    assert passed is passes and says in message, message


# -- REL012: Lambda hooks name a role ------------------------------------------------------------------------------
def hook(target_type: str = "AWS_LAMBDA", role: str | None = ROLE, *stages: str) -> LifecycleHookRecord:
    target = FUNCTION if target_type == "AWS_LAMBDA" else None
    return LifecycleHookRecord(target_type, target, role, stages or ("POST_TEST_TRAFFIC_SHIFT",))


@pytest.mark.parametrize(
    ("hooks", "passes", "says"),
    [
        ((), True, "no lifecycle hooks"),
        ((hook("PAUSE", None),), True, "1 PAUSE hook(s): no function to call"),
        ((hook(), hook("PAUSE", None)), True, "its Lambda hook(s) (web-smoke-test) name the role"),
        (
            (hook("PAUSE", None), hook(), hook("AWS_LAMBDA", None, "PRE_SCALE_UP", "POST_SCALE_UP")),
            False,
            "Lambda hook(s) without a roleArn (web-smoke-test at PRE_SCALE_UP/POST_SCALE_UP)",
        ),
    ],
)
def test_lambda_hooks_name_the_role_ecs_invokes_them_with(
    hooks: tuple[LifecycleHookRecord, ...], passes: bool, says: str
) -> None:
    passed, message = outcome(web(strategy="BLUE_GREEN", bake_time_minutes=5, lifecycle_hooks=hooks), "REL012")
    assert passed is passes and says in message, message


def test_a_hook_without_a_target_type_calls_a_lambda_function() -> None:
    """ECS's default targetType is AWS_LAMBDA: an entry that names none needs a role too."""
    record = LifecycleHookRecord.from_api({"hookTargetArn": FUNCTION, "lifecycleStages": ["POST_SCALE_UP"]})
    assert record.calls_lambda and record.role_arn is None
    passed, message = outcome(web(lifecycle_hooks=(record,)), "REL012")
    assert not passed and "web-smoke-test at POST_SCALE_UP" in message


# -- REL013: versionConsistency ------------------------------------------------------------------------------------
def test_version_consistency_is_read_for_the_revision_the_service_runs() -> None:
    two = (("c0", "enabled"), ("sidecar", "disabled"))
    passed, message = outcome(records(version_consistency={arn("web:2"): two}), "REL013")
    assert not passed and message.startswith("web:2 has versionConsistency disabled for container(s) sidecar:")
    # The rollback target's settings are not what the service runs now.
    assert outcome(records(version_consistency={**records().version_consistency, arn("web:1"): two}), "REL013")[0]


def test_an_image_pinned_by_digest_needs_no_resolving() -> None:
    pinned = revision("web:2", f"{REGISTRY}/web:{SHA_B}@{digest('b')}")
    snapshot = records(
        revisions=(records().revisions[0], pinned), version_consistency={arn("web:2"): (("c0", "disabled"),)}
    )
    passed, message = outcome(snapshot, "REL013")
    assert passed and "(versionConsistency disabled, but pinned by digest: c0)" in message


def test_a_revision_the_snapshot_did_not_read_cannot_be_judged() -> None:
    (finding,) = get_check("REL013").run(records(version_consistency={}))
    assert finding.failed and finding.message.startswith("cannot tell: web:2 is not in the library's cache")
    (service,) = records().services
    assert get_check("REL013").run(records(services=(replace(service, task_definition=None),))) == []


# -- through the library ----------------------------------------------------------------------------------------
def test_the_library_carries_how_services_deploy_into_the_snapshot(world: World) -> None:
    with_hooks(world)  # BLUE_GREEN, 10 minutes' bake, a PAUSE hook and a Lambda hook with its role
    with_alarms(rollback=True, breaker=True)(world)
    library = RevisionLibrary(world.sandbox.aws(), cache_path=":memory:")
    snapshot = Snapshot.from_library(library, now=world.sandbox.clock.now())
    (web,) = snapshot.services
    assert (web.strategy, web.bake_time_minutes, web.step_bake_time_minutes) == ("BLUE_GREEN", 10, None)
    pause, function = web.lifecycle_hooks
    assert (pause.target_type, pause.role_arn, pause.stages) == ("PAUSE", None, ("POST_TEST_TRAFFIC_SHIFT",))
    assert function == LifecycleHookRecord.from_api(lambda_hook(world, roleArn=function.role_arn))
    assert function.role_arn == f"arn:aws:iam::{world.sandbox.account_id}:role/ecsLifecycleHooks"
    assert (web.alarm_names, web.alarms_enabled, web.alarms_rollback) == (("web-5xx",), True, True)
    assert web.circuit_breaker and web.circuit_breaker_rollback
    assert snapshot.version_consistency == {world.revisions["web:2"]: (("web", "enabled"),)}  # what web runs
    findings = {f.id: f for check in ("REL007", "REL011", "REL012", "REL013") for f in get_check(check).run(snapshot)}
    assert all(f.passed for f in findings.values()), [f.explain() for f in findings.values()]
    assert "alarms web-5xx" in findings["REL007"].message


def test_a_cache_written_before_services_kept_how_they_deploy_is_rebuilt(quiet: Sandbox, tmp_path: Path) -> None:
    world = good_world(quiet)
    with_alarms(rollback=True)(world)  # the circuit breaker off: only the alarms pass REL007
    path = tmp_path / "cache.sqlite"
    with RevisionLibrary(quiet.aws(), cache_path=path) as library:
        library.sync()
    # The file as the schema before (2) wrote it: its services table had no deployment settings.
    (services,) = [statement for statement in SCHEMA if statement.startswith("CREATE TABLE services")]
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE services")
        conn.execute(services[: services.index(", strategy TEXT")] + ")")
        conn.execute("UPDATE meta SET value = '2' WHERE key = 'schema'")
    conn.close()
    with RevisionLibrary(quiet.aws(), cache_path=path) as library:
        with pytest.warns(CacheWarning, match="its tables are not this version's"):
            assert library.store.rollouts() == {}  # set aside and rebuilt empty
        snapshot = Snapshot.from_library(library, now=quiet.clock.now())
    (web,) = snapshot.services
    assert web.alarms_roll_back and not web.circuit_breaker
    assert get_check("REL007").run(snapshot)[0].passed
