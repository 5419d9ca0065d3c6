"""The demo's traffic-shifting services, read with plain boto3 (and raw JSON where an older botocore drops what ECS
sends): checkout on BLUE_GREEN with a PAUSE hook and an alarm, search on CANARY with a Lambda smoke test, and the two
rollbacks in their history (:data:`opskit.sandbox.demo.DEMO` says which releases)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from opskit.sandbox import Sandbox
from opskit.sandbox.demo import DEMO, HOOK_STAGE
from tests.sandbox.elb_setup import weights

CHECKOUT, SEARCH = DEMO.service("checkout"), DEMO.service("search")


@pytest.fixture(scope="module")
def demo() -> Iterator[Sandbox]:
    with Sandbox(docker=False, registry=False) as sb:
        yield sb


def history(demo: Sandbox, name: str) -> list[dict[str, Any]]:
    """Every service deployment of ``name``, oldest first, as ECS sends them (lifecycleHookDetails included)."""
    aws, arns, token = demo.aws(), [], None
    while True:
        page = aws.call_json(
            "ecs",
            "ListServiceDeployments",
            {"cluster": DEMO.cluster, "service": name, **({"nextToken": token} if token else {})},
        )
        arns += [d["serviceDeploymentArn"] for d in page["serviceDeployments"]]
        token = page.get("nextToken")
        if not token:
            break
    records = []
    for start in range(0, len(arns), 20):
        answer = aws.call_json("ecs", "DescribeServiceDeployments", {"serviceDeploymentArns": arns[start : start + 20]})
        records += answer["serviceDeployments"]
    return sorted(records, key=lambda r: r["createdAt"])


def revision_of(demo: Sandbox, record: dict[str, Any]) -> str:
    """family:revision the record's target service revision runs."""
    (revision,) = demo.client("ecs").describe_service_revisions(
        serviceRevisionArns=[record["targetServiceRevision"]["arn"]]
    )["serviceRevisions"]
    return str(revision["taskDefinition"].rsplit("/", 1)[1])


def test_checkout_deploys_blue_green_behind_its_load_balancer_with_a_pause_hook_and_an_alarm(demo: Sandbox) -> None:
    (service,) = demo.aws().call_json("ecs", "DescribeServices", {"cluster": DEMO.cluster, "services": ["checkout"]})[
        "services"
    ]
    config = service["deploymentConfiguration"]
    assert config["strategy"] == "BLUE_GREEN" and config["bakeTimeInMinutes"] > 0
    assert config["alarms"] == {"alarmNames": ["checkout-5xx"], "enable": True, "rollback": True}
    (hook,) = config["lifecycleHooks"]
    assert hook["targetType"] == "PAUSE" and hook["lifecycleStages"] == [HOOK_STAGE]
    (balancer,) = service["loadBalancers"]
    assert set(balancer["advancedConfiguration"]) >= {"alternateTargetGroupArn", "productionListenerRule"}
    # Production traffic all on the group the live revision's tasks are registered in, none on the other.
    rule = weights(demo.client("elbv2"), balancer["advancedConfiguration"]["productionListenerRule"])
    live = [group for group, weight in rule.items() if weight == 100]
    assert len(live) == 1 and sorted(rule.values()) == [0, 100]
    targets = demo.client("elbv2").describe_target_health(TargetGroupArn=live[0])["TargetHealthDescriptions"]
    assert [t["TargetHealth"]["State"] for t in targets] == ["healthy"] * CHECKOUT.desired
    (alarm,) = demo.client("cloudwatch").describe_alarms(AlarmNames=["checkout-5xx"])["MetricAlarms"]
    assert alarm["StateValue"] == "OK"  # it went off once, and came back


def test_checkout_s_history_was_approved_release_by_release_and_an_alarm_rolled_one_back(demo: Sandbox) -> None:
    records = history(demo, "checkout")
    assert len(records) == CHECKOUT.releases
    failed = [r for r in records if r["status"] != "SUCCESSFUL"]
    assert [revision_of(demo, r) for r in failed] == [f"checkout:{CHECKOUT.alarm_release}"]
    (rolled_back,) = failed
    assert rolled_back["status"] == "ROLLBACK_SUCCESSFUL"
    assert rolled_back["alarms"]["triggeredAlarmNames"] == ["checkout-5xx"]
    assert "checkout-5xx" in rolled_back["rollback"]["reason"]
    # Every release after the first stopped at the PAUSE hook and was let through with ContinueServiceDeployment.
    for record in records[1:]:
        (paused,) = record["lifecycleHookDetails"]
        assert paused["targetType"] == "PAUSE" and paused["status"] == "SUCCEEDED"


def test_search_deploys_canary_and_its_smoke_test_rolled_one_release_back(demo: Sandbox) -> None:
    (service,) = demo.aws().call_json("ecs", "DescribeServices", {"cluster": DEMO.cluster, "services": ["search"]})[
        "services"
    ]
    config = service["deploymentConfiguration"]
    assert config["strategy"] == "CANARY" and config["canaryConfiguration"]["canaryPercent"] == 10.0
    (hook,) = config["lifecycleHooks"]
    assert hook["hookTargetArn"].endswith(":function:search-smoke-test")
    records = history(demo, "search")
    assert len(records) == SEARCH.releases
    failed = [r for r in records if r["status"] != "SUCCESSFUL"]
    assert [revision_of(demo, r) for r in failed] == [f"search:{SEARCH.hook_failed_release}"]
    (rolled_back,) = failed
    assert rolled_back["status"] == "ROLLBACK_SUCCESSFUL"
    assert f"at {HOOK_STAGE} failed" in rolled_back["rollback"]["reason"]
    assert [h["status"] for h in rolled_back["lifecycleHookDetails"]] == ["FAILED"]
    assert all(
        [h["status"] for h in r["lifecycleHookDetails"]] == ["SUCCEEDED"] for r in records[1:] if r is not rolled_back
    )
    # The function's environment was put back: the next release passed its smoke test.
    environment = demo.client("lambda").get_function_configuration(FunctionName="search-smoke-test")["Environment"]
    assert environment["Variables"] == {"SMOKE_TEST": "pass"}
    (running,) = demo.client("ecs").describe_services(cluster=DEMO.cluster, services=["search"])["services"]
    assert running["taskDefinition"].endswith(f"/search:{SEARCH.releases}")


def test_every_demo_deployment_is_over(demo: Sandbox) -> None:
    for service in DEMO.services:
        statuses = {r["status"] for r in history(demo, service.name)}
        assert statuses <= {"SUCCESSFUL", "ROLLBACK_SUCCESSFUL"}, service.name
