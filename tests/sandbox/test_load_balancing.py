"""Elastic Load Balancing as the sandbox's ECS uses it, over HTTP with plain boto3: users' load balancers and rules
(moto's), checking a service's loadBalancers, traffic shifts that describe_rules shows, and target health as the
sandbox sets it. Each test has its own sandbox (without Docker or a registry: nothing here runs a container)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import botocore.exceptions
import pytest

from opskit.sandbox import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Sandbox
from opskit.sandbox.alb import AlbSetup, forward, make_alb
from opskit.sandbox.elb import LoadBalancing, LoadBalancingError
from opskit.sandbox.server.wire import ApiError
from tests.sandbox.elb_setup import health, weights


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=None, time_scale=60, docker=False, registry=False) as sb:
        yield sb


@pytest.fixture
def elbv2(sandbox: Sandbox) -> Any:
    return sandbox.client("elbv2")


@pytest.fixture
def alb(sandbox: Sandbox) -> AlbSetup:
    return make_alb(sandbox)


@pytest.fixture
def lb(sandbox: Sandbox) -> LoadBalancing:
    assert sandbox.region is not None
    return sandbox.region.load_balancing


# -- what users make, moto keeps ---------------------------------------------------------------------------------------
def test_the_setup_is_served_over_http_with_weighted_forward_rules(sandbox: Sandbox, alb: AlbSetup, elbv2: Any) -> None:
    (balancer,) = elbv2.describe_load_balancers(LoadBalancerArns=[alb.load_balancer_arn])["LoadBalancers"]
    assert balancer["VpcId"] == alb.vpc_id and balancer["Type"] == "application"
    subnets = sandbox.client("ec2").describe_subnets(SubnetIds=list(alb.subnet_ids))["Subnets"]
    assert {subnet["VpcId"] for subnet in subnets} == {alb.vpc_id}
    groups = elbv2.describe_target_groups(TargetGroupArns=[alb.blue_arn, alb.green_arn])["TargetGroups"]
    assert {group["TargetType"] for group in groups} == {"ip"}
    assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 100, alb.green_arn: 0}
    elbv2.modify_rule(RuleArn=alb.test_rule_arn, Actions=[forward({alb.blue_arn: 0, alb.green_arn: 100})])
    assert weights(elbv2, alb.test_rule_arn) == {alb.blue_arn: 0, alb.green_arn: 100}


def test_load_balancers_of_another_region_are_moto_s(sandbox: Sandbox) -> None:
    other = boto3.client(
        "elbv2",
        region_name="us-west-2",
        endpoint_url=sandbox.endpoint_url,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    assert other.describe_load_balancers()["LoadBalancers"] == []  # not InvalidRegionException, as ECS would say


def test_a_closed_sandbox_leaves_no_load_balancer_to_the_next() -> None:
    with Sandbox(seed=None, docker=False, registry=False) as first:
        make_alb(first)
        account = first.account_id
    with Sandbox(seed=None, docker=False, registry=False) as second:
        assert second.account_id == account  # the same account, so moto's store is the same one
        assert second.client("elbv2").describe_load_balancers()["LoadBalancers"] == []
        make_alb(second)  # the same names again: nothing left to collide with


# -- check(): CreateService / UpdateService's loadBalancers ------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["BLUE_GREEN", "LINEAR", "CANARY"])
@pytest.mark.parametrize("test_rule", [True, False])
def test_a_traffic_shifting_configuration_is_accepted(
    lb: LoadBalancing, alb: AlbSetup, strategy: str, test_rule: bool
) -> None:
    lb.check([alb.load_balancer(test=test_rule)], strategy=strategy)


def test_rolling_needs_no_advanced_configuration(lb: LoadBalancing, alb: AlbSetup) -> None:
    entry = alb.load_balancer()
    del entry["advancedConfiguration"]
    lb.check([entry], strategy="ROLLING")
    lb.check([alb.load_balancer()], strategy="ROLLING")


def test_a_network_load_balancer_s_listener_is_its_production_rule(
    sandbox: Sandbox, lb: LoadBalancing, alb: AlbSetup, elbv2: Any
) -> None:
    listener = _nlb(sandbox, alb)
    entry = alb.load_balancer(test=False)
    entry["advancedConfiguration"]["productionListenerRule"] = listener
    lb.check([entry], strategy="BLUE_GREEN")


def _nlb(sandbox: Sandbox, alb: AlbSetup) -> str:
    elbv2 = sandbox.client("elbv2")
    balancer = elbv2.create_load_balancer(Name="web-nlb", Subnets=list(alb.subnet_ids), Type="network")
    return str(
        elbv2.create_listener(
            LoadBalancerArn=balancer["LoadBalancers"][0]["LoadBalancerArn"],
            Protocol="TCP",
            Port=443,
            DefaultActions=[forward({alb.blue_arn: 100, alb.green_arn: 0})],
        )["Listeners"][0]["ListenerArn"]
    )


MISSING_TG = "arn:aws:elasticloadbalancing:us-east-1:{account}:targetgroup/nope/0123456789abcdef"
MISSING_RULE = "arn:aws:elasticloadbalancing:us-east-1:{account}:listener-rule/app/web-alb/0123456789abcdef/1/2"


def _bad(alb: AlbSetup, case: str, account: str) -> dict[str, Any]:
    entry = alb.load_balancer()
    advanced = entry["advancedConfiguration"]
    if case == "no target group":
        del entry["targetGroupArn"]
    elif case == "target group missing":
        entry["targetGroupArn"] = MISSING_TG.format(account=account)
    elif case == "no container name":
        del entry["containerName"]
    elif case == "no advanced configuration":
        del entry["advancedConfiguration"]
    elif case == "no alternate":
        del advanced["alternateTargetGroupArn"]
    elif case == "alternate is the target group":
        advanced["alternateTargetGroupArn"] = alb.blue_arn
    elif case == "alternate missing":
        advanced["alternateTargetGroupArn"] = MISSING_TG.format(account=account)
    elif case == "no production rule":
        del advanced["productionListenerRule"]
    elif case == "production rule is an ALB listener":
        advanced["productionListenerRule"] = alb.production_listener_arn
    elif case == "production rule missing":
        advanced["productionListenerRule"] = MISSING_RULE.format(account=account)
    elif case == "test rule is the production rule":
        advanced["testListenerRule"] = alb.production_rule_arn
    elif case == "test rule missing":
        advanced["testListenerRule"] = MISSING_RULE.format(account=account)
    elif case == "no role":
        del advanced["roleArn"]
    return entry


BAD = {
    "no target group": "needs targetGroupArn",
    "target group missing": "Unable to assume role and validate the specified targetGroupArn",
    "no container name": "Container Name can not be blank",
    "no advanced configuration": "advancedConfiguration is required in loadBalancers for the BLUE_GREEN",
    "no alternate": "alternateTargetGroupArn is required",
    "alternate is the target group": "alternateTargetGroupArn must differ from targetGroupArn",
    "alternate missing": "Unable to assume role and validate the specified alternateTargetGroupArn",
    "no production rule": "productionListenerRule is required",
    "production rule is an ALB listener": "productionListenerRule has an invalid ARN format. Must be RuleArn for ALB",
    "production rule missing": "The productionListenerRule arn:",
    "test rule is the production rule": "cannot be used as both production and test listener rules",
    "test rule missing": "The testListenerRule arn:",
    "no role": "roleArn is required",
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_wrong_configuration_is_refused_in_ecs_s_words(
    sandbox: Sandbox, lb: LoadBalancing, alb: AlbSetup, case: str
) -> None:
    entry = _bad(alb, case, sandbox.account_id)
    with pytest.raises(ApiError) as refused:
        lb.check([alb.load_balancer(), entry], strategy="BLUE_GREEN")
    assert refused.value.code == "InvalidParameterException"
    assert BAD[case] in refused.value.message
    lb.check([alb.load_balancer()], strategy="BLUE_GREEN")  # the good one alone still passes


def test_a_target_group_no_load_balancer_forwards_to_is_refused(
    sandbox: Sandbox, lb: LoadBalancing, alb: AlbSetup, elbv2: Any
) -> None:
    lonely = elbv2.create_target_group(Name="lonely", Protocol="HTTP", Port=80, VpcId=alb.vpc_id, TargetType="ip")
    entry = alb.load_balancer()
    entry["targetGroupArn"] = lonely["TargetGroups"][0]["TargetGroupArn"]
    with pytest.raises(ApiError, match="does not have an associated load balancer") as refused:
        lb.check([entry], strategy="ROLLING")
    assert refused.value.code == "InvalidParameterException"


def test_a_network_load_balancer_s_rule_arn_is_the_wrong_kind(
    sandbox: Sandbox, lb: LoadBalancing, alb: AlbSetup
) -> None:
    listener = _nlb(sandbox, alb)
    (default_rule,) = sandbox.client("elbv2").describe_rules(ListenerArn=listener)["Rules"]
    entry = alb.load_balancer(test=False)
    entry["advancedConfiguration"]["productionListenerRule"] = default_rule["RuleArn"]
    with pytest.raises(ApiError, match="Must be RuleArn for ALB or ListenerArn for NLB"):
        lb.check([entry], strategy="CANARY")


# -- shift(): the listener rules' weights ---------------------------------------------------------------------------
def test_a_shift_shows_in_describe_rules(lb: LoadBalancing, alb: AlbSetup, elbv2: Any) -> None:
    entry = alb.load_balancer()
    blue, green = alb.blue_arn, alb.green_arn
    lb.shift(entry, production={blue: 100, green: 0}, test={blue: 0, green: 100})
    assert weights(elbv2, alb.production_rule_arn) == {blue: 100, green: 0}
    assert weights(elbv2, alb.test_rule_arn) == {blue: 0, green: 100}
    lb.shift(entry, production={blue: 90, green: 10})
    assert weights(elbv2, alb.production_rule_arn) == {blue: 90, green: 10}
    assert weights(elbv2, alb.test_rule_arn) == {blue: 0, green: 100}  # no test split given: left as it was
    lb.shift(entry, production={blue: 0.0, green: 100.0})
    assert weights(elbv2, alb.production_rule_arn) == {blue: 0, green: 100}


def test_a_split_finer_than_a_percent_is_written_in_tenths(lb: LoadBalancing, alb: AlbSetup, elbv2: Any) -> None:
    lb.shift(alb.load_balancer(), production={alb.blue_arn: 99.9, alb.green_arn: 0.1})
    assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 999, alb.green_arn: 1}
    lb.shift(alb.load_balancer(), production={alb.blue_arn: 66.7, alb.green_arn: 33.3})
    assert weights(elbv2, alb.production_rule_arn) == {alb.blue_arn: 667, alb.green_arn: 333}


def test_a_split_that_is_not_100_percent_is_a_bug(lb: LoadBalancing, alb: AlbSetup) -> None:
    with pytest.raises(ValueError, match="add up to 100"):
        lb.shift(alb.load_balancer(), production={alb.blue_arn: 90, alb.green_arn: 20})


def test_a_network_load_balancer_shifts_on_its_listener(
    sandbox: Sandbox, lb: LoadBalancing, alb: AlbSetup, elbv2: Any
) -> None:
    listener = _nlb(sandbox, alb)
    entry = alb.load_balancer(test=False)
    entry["advancedConfiguration"]["productionListenerRule"] = listener
    lb.shift(entry, production={alb.blue_arn: 20, alb.green_arn: 80})
    (described,) = elbv2.describe_listeners(ListenerArns=[listener])["Listeners"]
    (action,) = described["DefaultActions"]
    assert {g["TargetGroupArn"]: g["Weight"] for g in action["ForwardConfig"]["TargetGroups"]} == {
        alb.blue_arn: 20,
        alb.green_arn: 80,
    }


def test_a_rule_that_does_not_only_forward_cannot_be_shifted(lb: LoadBalancing, alb: AlbSetup, elbv2: Any) -> None:
    elbv2.modify_rule(
        RuleArn=alb.production_rule_arn,
        Actions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "503"}}],
    )
    with pytest.raises(LoadBalancingError, match="fixed-response action"):
        lb.shift(alb.load_balancer(), production={alb.blue_arn: 0, alb.green_arn: 100})


def test_a_deleted_rule_cannot_be_shifted(lb: LoadBalancing, alb: AlbSetup, elbv2: Any) -> None:
    elbv2.delete_rule(RuleArn=alb.production_rule_arn)
    with pytest.raises(LoadBalancingError, match="does not exist"):
        lb.shift(alb.load_balancer(), production={alb.blue_arn: 0, alb.green_arn: 100})


# -- targets and their health ---------------------------------------------------------------------------------------
def test_registered_targets_show_the_health_the_sandbox_gives_them(
    lb: LoadBalancing, alb: AlbSetup, elbv2: Any
) -> None:
    lb.register(alb.green_arn, "10.0.1.7", 8080)
    lb.register(alb.green_arn, "10.0.2.9", 8080)
    assert health(elbv2, alb.green_arn) == {
        "10.0.1.7": ("initial", "Elb.RegistrationInProgress"),
        "10.0.2.9": ("initial", "Elb.RegistrationInProgress"),
    }
    lb.set_health(alb.green_arn, "10.0.1.7", "healthy")
    lb.set_health(alb.green_arn, "10.0.2.9", "unhealthy", "Target.Timeout")
    (described,) = elbv2.describe_target_health(TargetGroupArn=alb.green_arn, Targets=[{"Id": "10.0.2.9"}])[
        "TargetHealthDescriptions"
    ]
    assert described["Target"] == {"Id": "10.0.2.9", "Port": 8080}
    assert described["TargetHealth"] == {
        "State": "unhealthy",
        "Reason": "Target.Timeout",
        "Description": "Request timed out",
    }
    assert health(elbv2, alb.green_arn)["10.0.1.7"] == ("healthy", None)
    lb.set_health(alb.green_arn, "10.0.1.7", "draining")
    assert health(elbv2, alb.green_arn)["10.0.1.7"] == ("draining", "Target.DeregistrationInProgress")
    lb.deregister(alb.green_arn, "10.0.1.7")
    assert health(elbv2, alb.green_arn) == {"10.0.2.9": ("unhealthy", "Target.Timeout")}
    asked = health(elbv2, alb.green_arn, Targets=[{"Id": "10.0.1.7", "Port": 8080}])
    assert asked == {"10.0.1.7": ("unused", "Target.NotRegistered")}
    assert health(elbv2, alb.blue_arn) == {}  # moto's answer: the sandbox registered nothing there


def test_an_unknown_state_is_a_bug(lb: LoadBalancing, alb: AlbSetup) -> None:
    lb.register(alb.green_arn, "10.0.1.7", 8080)
    with pytest.raises(ValueError, match="unknown target state"):
        lb.set_health(alb.green_arn, "10.0.1.7", "sick")
    with pytest.raises(ValueError, match="not registered"):
        lb.set_health(alb.green_arn, "10.0.9.9", "healthy")


def test_registering_in_a_deleted_target_group_fails(lb: LoadBalancing, alb: AlbSetup, elbv2: Any) -> None:
    lonely = elbv2.create_target_group(Name="lonely", Protocol="HTTP", Port=80, VpcId=alb.vpc_id, TargetType="ip")
    arn = lonely["TargetGroups"][0]["TargetGroupArn"]
    lb.register(arn, "10.0.1.7", 80)
    elbv2.delete_target_group(TargetGroupArn=arn)
    with pytest.raises(LoadBalancingError, match="One or more target groups not found"):
        lb.register(arn, "10.0.1.8", 80)
    with pytest.raises(botocore.exceptions.ClientError) as refused:  # moto answers for a group that is gone
        elbv2.describe_target_health(TargetGroupArn=arn)
    assert refused.value.response["Error"]["Code"] == "TargetGroupNotFound"


def test_targets_users_register_stay_moto_s(lb: LoadBalancing, alb: AlbSetup, elbv2: Any) -> None:
    elbv2.register_targets(TargetGroupArn=alb.blue_arn, Targets=[{"Id": "10.0.1.50", "Port": 9000}])
    assert health(elbv2, alb.blue_arn) == {"10.0.1.50": ("healthy", None)}
    lb.register(alb.blue_arn, "10.0.1.7", 8080)  # the sandbox's and the user's, side by side
    described = elbv2.describe_target_health(TargetGroupArn=alb.blue_arn)["TargetHealthDescriptions"]
    assert {(d["Target"]["Id"], d["Target"]["Port"], d["TargetHealth"]["State"]) for d in described} == {
        ("10.0.1.7", 8080, "initial"),
        ("10.0.1.50", 9000, "healthy"),
    }
    elbv2.deregister_targets(TargetGroupArn=alb.blue_arn, Targets=[{"Id": "10.0.1.50", "Port": 9000}])
    assert health(elbv2, alb.blue_arn) == {"10.0.1.7": ("initial", "Elb.RegistrationInProgress")}


def test_describe_target_health_refuses_what_elb_refuses(alb: AlbSetup, elbv2: Any, lb: LoadBalancing) -> None:
    lb.register(alb.green_arn, "10.0.1.7", 8080)
    with pytest.raises(botocore.exceptions.ClientError) as refused:
        elbv2.describe_target_health(TargetGroupArn=alb.green_arn.replace("green", "gone"))
    assert refused.value.response["Error"]["Code"] == "TargetGroupNotFound"
