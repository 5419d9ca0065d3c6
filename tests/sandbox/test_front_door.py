"""The sandbox's front door: throttling, faults, the call counter, and what it says to bad requests."""

from __future__ import annotations

import json
import socket
import urllib.request

import boto3
import botocore.config
import botocore.exceptions
import pytest

from opskit.errors import ConfigError
from opskit.sandbox import Sandbox

NO_RETRIES = botocore.config.Config(retries={"total_max_attempts": 1})


def register(ecs, family: str = "web") -> None:
    ecs.register_task_definition(family=family, containerDefinitions=[{"name": "a", "image": "x:1", "memory": 64}])


def test_a_burst_is_throttled_in_the_aws_wire_format() -> None:
    # AWS's burst; a refill slowed a hundredfold, so however slowly this machine sends, the burst runs out.
    with Sandbox(seed=None, registry=False, docker=False, time_scale=0.01) as sandbox:
        ecs = sandbox.client("ecs", config=NO_RETRIES)
        register(ecs)
        codes = []
        for _ in range(60):  # burst 50 for task-definition reads
            try:
                ecs.describe_task_definition(taskDefinition="web:1")
                codes.append("ok")
            except botocore.exceptions.ClientError as exc:
                codes.append(exc.response["Error"]["Code"])
        assert codes.count("ok") >= 50
        assert "ThrottlingException" in codes
        assert sandbox.throttled["DescribeTaskDefinition"] == codes.count("ThrottlingException")


def test_botocore_retries_recover_from_throttling() -> None:
    with Sandbox(seed=None, registry=False, docker=False, fault_seed=3) as sandbox:
        ecs = sandbox.client(
            "ecs", config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 20})
        )
        register(ecs)
        sandbox.faults.set("DescribeTaskDefinition", throttle_rate=0.3)  # whatever the machine's speed
        for _ in range(30):
            ecs.describe_task_definition(taskDefinition="web:1")  # never raises: retries absorb the throttles
        assert sandbox.throttled["DescribeTaskDefinition"] > 0
        assert sandbox.calls["DescribeTaskDefinition"] == 30 + sandbox.throttled["DescribeTaskDefinition"]


def test_categories_share_a_bucket_and_refill_with_the_time_scale() -> None:
    # At this scale a token of the modify bucket (1 per sandbox second) takes a year of wall time to come back.
    with Sandbox(seed=None, registry=False, docker=False, time_scale=1e-8) as sandbox:
        ecs = sandbox.client("ecs", config=NO_RETRIES)
        registered = 0
        with pytest.raises(botocore.exceptions.ClientError, match="Rate exceeded"):
            while registered < 100:  # the modify bucket: burst 20, then 1 per second
                register(ecs)
                registered += 1
        assert registered == 20
        with pytest.raises(botocore.exceptions.ClientError, match="Rate exceeded"):
            ecs.deregister_task_definition(taskDefinition="web:1")  # the same category as register
        ecs.describe_task_definition(taskDefinition="web:1")  # another category, another bucket
        sandbox.clock.advance(3600)  # moving the calendar hands out no calls
        with pytest.raises(botocore.exceptions.ClientError, match="Rate exceeded"):
            ecs.deregister_task_definition(taskDefinition="web:1")
        assert sandbox.throttled == {"RegisterTaskDefinition": 1, "DeregisterTaskDefinition": 2}
        # A million sandbox seconds per wall second: by the time the next request arrives the bucket is full.
        sandbox.clock.time_scale = 1e6
        ecs.deregister_task_definition(taskDefinition="web:1")
        sandbox.clock.time_scale = 1e-8  # and however long it refilled, it holds one burst, no more
        again = 0
        with pytest.raises(botocore.exceptions.ClientError, match="Rate exceeded"):
            while again < 100:
                register(ecs)
                again += 1
        assert again == 20


def test_buckets_belong_to_a_service_not_to_an_action_name() -> None:
    """ECR's ListTagsForResource has no published rate and must not drain ECS's tag-read bucket (burst 50), nor
    ECS's calls ECR's: both services have an action of that name."""
    with Sandbox(seed=None, registry=False, docker=False, time_scale=1e-8) as sandbox:  # no refill
        ecs = sandbox.client("ecs", config=NO_RETRIES)
        ecr = sandbox.client("ecr", config=NO_RETRIES)
        repository = ecr.create_repository(repositoryName="web")["repository"]["repositoryArn"]
        cluster = ecs.create_cluster(clusterName="prod")["cluster"]["clusterArn"]
        for _ in range(60):
            ecr.list_tags_for_resource(resourceArn=repository)
        ecr.tag_resource(resourceArn=repository, tags=[{"Key": "team", "Value": "web"}])
        answered = 0
        with pytest.raises(botocore.exceptions.ClientError, match="Rate exceeded"):
            while answered < 100:
                ecs.list_tags_for_resource(resourceArn=cluster)
                answered += 1
        assert answered == 50  # ECS's whole burst was still there
        assert ecr.list_tags_for_resource(resourceArn=repository)["tags"] == [{"Key": "team", "Value": "web"}]
        assert sandbox.throttled == {"ListTagsForResource": 1}
        assert sandbox.throttle.category("ListTagsForResource", "ecr") is None
        assert sandbox.throttle.category("ListTagsForResource", "ecs") == "tag-read"
        assert sandbox.throttle.category("ListTagsForResource") == "tag-read"  # by name alone: ECS's
        rate = sandbox.throttle.rate("PutImage")
        assert rate is not None and rate == sandbox.throttle.rate("PutImage", "ecr") and rate.per_second == 10
        assert sandbox.throttle.rate("PutImage", "ecs") is None


def test_call_counter_over_http(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    ecs.list_clusters()
    ecs.list_clusters()
    register(ecs)
    with urllib.request.urlopen(f"{sandbox.endpoint_url}/_opskit/calls") as answer:
        counts = json.load(answer)
    assert counts == {"ListClusters": 2, "RegisterTaskDefinition": 1}
    urllib.request.urlopen(urllib.request.Request(f"{sandbox.endpoint_url}/_opskit/calls", method="DELETE")).close()
    assert sandbox.calls == {}


@pytest.mark.parametrize("fault", ["error_rate", "drop_rate", "throttle_rate"])
def test_injected_faults_reach_botocore_and_retries_absorb_them(fault: str) -> None:
    with Sandbox(seed=None, registry=False, docker=False, fault_seed=3) as sandbox:
        sandbox.faults.set("ListClusters", **{fault: 1.0})
        strict = sandbox.client("ecs", config=NO_RETRIES)
        with pytest.raises((botocore.exceptions.ClientError, botocore.exceptions.HTTPClientError)):
            strict.list_clusters()

        sandbox.faults.set("ListClusters", **{fault: 0.5})
        sandbox.reset_calls()
        patient = sandbox.client(
            "ecs", config=botocore.config.Config(retries={"mode": "standard", "total_max_attempts": 30})
        )
        for _ in range(6):
            patient.list_clusters()
        assert sandbox.calls["ListClusters"] > 6  # some calls failed and were retried


def test_latency_is_added(sandbox: Sandbox) -> None:
    impatient = sandbox.client("ecs", config=botocore.config.Config(read_timeout=0.2, retries={"max_attempts": 1}))
    sandbox.faults.set("ListClusters", latency=2.0)
    with pytest.raises(botocore.exceptions.ReadTimeoutError):
        impatient.list_clusters()  # the answer comes after the client stopped waiting
    sandbox.faults.clear()
    sandbox.client("ecs").list_clusters()


def test_an_api_the_sandbox_does_not_serve_is_an_aws_error_not_a_retried_html_page(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs", config=NO_RETRIES)
    with pytest.raises(botocore.exceptions.ClientError) as error:
        ecs.get_task_protection(cluster="default")  # served by neither the sandbox nor moto
    assert error.value.response["Error"]["Code"] == "UnknownOperationException"
    assert "does not serve" in error.value.response["Error"]["Message"]


def test_unknown_family_and_cluster_get_the_errors_aws_gives(sandbox: Sandbox) -> None:
    ecs = sandbox.client("ecs")
    with pytest.raises(botocore.exceptions.ClientError, match="Unable to describe task definition"):
        ecs.describe_task_definition(taskDefinition="nope:1")
    with pytest.raises(botocore.exceptions.ClientError) as error:
        ecs.list_services(cluster="nope")
    assert error.value.response["Error"]["Code"] == "ClusterNotFoundException"


def test_another_region_is_refused_with_what_to_set(sandbox: Sandbox) -> None:
    ecs = boto3.client(
        "ecs",
        region_name="eu-west-3",
        endpoint_url=sandbox.endpoint_url,
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    with pytest.raises(botocore.exceptions.ClientError, match="AWS_DEFAULT_REGION=us-east-1"):
        ecs.list_task_definitions()


def test_a_taken_port_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"port {port} on 127.0.0.1 is taken"):
            Sandbox(port=port, seed=None, registry=False, docker=False).__enter__()


def test_concurrent_sandboxes_do_not_share_resources() -> None:
    with (
        Sandbox(seed=None, registry=False, docker=False) as one,
        Sandbox(seed=None, registry=False, docker=False) as two,
    ):
        one.client("ecs").create_cluster(clusterName="only-in-one")
        assert two.client("ecs").list_clusters()["clusterArns"] == []
        assert one.account_id != two.account_id
