"""An Application Load Balancer set up for ECS blue/green, linear and canary deployments, with plain boto3 calls
against a sandbox, as AWS's developer guide lays it out: a VPC with two subnets in two zones, two target groups of
type ip (blue, the production one, and green, the alternate), a production listener (port 80) whose rule forwards
all traffic to blue and none to green, and a test listener (port 8080) whose rule does the same. The demo's
traffic-shifting services stand behind two of them.

>>> alb = make_alb(sandbox)                                                                      # doctest: +SKIP
>>> ecs.create_service(..., loadBalancers=[alb.load_balancer()],                                 # doctest: +SKIP
...                    deploymentConfiguration={"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5})
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ROLE_ARN = "arn:aws:iam::{account}:role/ecsInfrastructureRoleForLoadBalancers"
CONTAINER_PORT = 8080


@dataclass(frozen=True)
class AlbSetup:
    vpc_id: str
    subnet_ids: tuple[str, str]
    load_balancer_arn: str
    blue_arn: str  # the production target group
    green_arn: str  # the alternate target group
    production_listener_arn: str
    test_listener_arn: str
    production_rule_arn: str
    test_rule_arn: str
    role_arn: str

    def load_balancer(
        self, *, container_name: str = "web", container_port: int = CONTAINER_PORT, test: bool = True
    ) -> dict[str, Any]:
        """The service's ``loadBalancers`` entry for a traffic-shifting strategy (without the test rule when
        ``test`` is false)."""
        advanced = {
            "alternateTargetGroupArn": self.green_arn,
            "productionListenerRule": self.production_rule_arn,
            "roleArn": self.role_arn,
        }
        if test:
            advanced["testListenerRule"] = self.test_rule_arn
        return {
            "targetGroupArn": self.blue_arn,
            "containerName": container_name,
            "containerPort": container_port,
            "advancedConfiguration": advanced,
        }


def make_alb(sandbox: Any, name: str = "web", *, cidr: str = "10.0.0.0/16") -> AlbSetup:
    """Make the load balancer and all it needs; ``name`` prefixes every resource's name (one setup per name)."""
    ec2, elbv2 = sandbox.client("ec2"), sandbox.client("elbv2")
    vpc_id = ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"]
    prefix = cidr.rsplit(".", 2)[0]  # 10.0.0.0/16 -> 10.0
    zones = (f"{sandbox.region_name}a", f"{sandbox.region_name}b")
    subnet_ids = tuple(
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"{prefix}.{index + 1}.0/24", AvailabilityZone=zone)["Subnet"][
            "SubnetId"
        ]
        for index, zone in enumerate(zones)
    )
    assert len(subnet_ids) == 2
    balancer = elbv2.create_load_balancer(Name=f"{name}-alb", Subnets=list(subnet_ids), Type="application")
    balancer_arn = balancer["LoadBalancers"][0]["LoadBalancerArn"]
    blue, green = (
        elbv2.create_target_group(
            Name=f"{name}-{color}",
            Protocol="HTTP",
            Port=CONTAINER_PORT,
            VpcId=vpc_id,
            TargetType="ip",
            HealthCheckPath="/",
        )["TargetGroups"][0]["TargetGroupArn"]
        for color in ("blue", "green")
    )
    listeners, rules = [], []
    for port in (80, 8080):
        listener = elbv2.create_listener(
            LoadBalancerArn=balancer_arn,
            Protocol="HTTP",
            Port=port,
            DefaultActions=[{"Type": "fixed-response", "FixedResponseConfig": {"StatusCode": "404"}}],
        )["Listeners"][0]["ListenerArn"]
        rule = elbv2.create_rule(
            ListenerArn=listener,
            Priority=1,
            Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
            Actions=[forward({blue: 100, green: 0})],
        )["Rules"][0]["RuleArn"]
        listeners.append(listener)
        rules.append(rule)
    return AlbSetup(
        vpc_id=vpc_id,
        subnet_ids=(subnet_ids[0], subnet_ids[1]),
        load_balancer_arn=balancer_arn,
        blue_arn=blue,
        green_arn=green,
        production_listener_arn=listeners[0],
        test_listener_arn=listeners[1],
        production_rule_arn=rules[0],
        test_rule_arn=rules[1],
        role_arn=ROLE_ARN.format(account=sandbox.account_id),
    )


def forward(weights: dict[str, int]) -> dict[str, Any]:
    """A forward action to these target groups with these ELB weights."""
    return {
        "Type": "forward",
        "ForwardConfig": {
            "TargetGroups": [{"TargetGroupArn": arn, "Weight": weight} for arn, weight in weights.items()]
        },
    }


__all__ = ["CONTAINER_PORT", "AlbSetup", "forward", "make_alb"]
