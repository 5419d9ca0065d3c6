"""Releases end to end on the sandbox, with real Docker builds and pushes to the sandbox's registry."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from opskit.errors import ConflictError
from opskit.lock import is_lock_tag
from opskit.progress import ProgressEvent
from opskit.release import ReleaseOptions, apply_release, plan_release
from tests.release.conftest import World, unstartable

FAST = {"poll_interval": 0.1, "timeout": 120}


def options(world: World, **extra: object) -> ReleaseOptions:
    return ReleaseOptions(cluster="prod", service="web", path=world.app, **extra)  # type: ignore[arg-type]


def test_build_push_register_update_completed(world: World, tmp_path: Path) -> None:
    events: list[ProgressEvent] = []
    plan = plan_release(world.aws, options(world))
    assert [s.name for s in plan.steps] == ["build", "push", "register", "update", "wait"]
    assert any('"image": "' + world.uri + ":bootstrap" in line for line in plan.diff)

    record = apply_release(plan, world.aws, progress=events.append, journal_dir=tmp_path, **FAST)

    assert record.ok, record.reason
    sha = plan.commit.sha
    assert record.commit == sha and plan.tag == sha[:12]
    body = world.ecs.describe_task_definition(taskDefinition=record.revision_arn, include=["TAGS"])
    assert body["taskDefinition"]["containerDefinitions"][0]["image"] == f"{world.uri}:{sha[:12]}"
    assert {"key": "commit", "value": sha} in body["tags"]
    image = world.ecr.describe_images(repositoryName="web", imageIds=[{"imageTag": sha[:12]}])["imageDetails"][0]
    assert image["imageDigest"] == record.digest
    service = world.service()
    assert service["taskDefinition"] == record.revision_arn
    assert [d["id"] for d in service["deployments"]] == [record.deployment_id]
    assert set(record.stages) == {"build", "tag", "push", "register", "update", "wait"}
    # one progress protocol: every stage started and finished, the build log and new service events streamed
    assert [(e.stage, e.state) for e in events if e.state in ("started", "done")][:2] == [
        ("build", "started"),
        ("build", "done"),
    ]
    assert any(e.stage == "build" and e.state == "log" and "Step" in e.message for e in events)
    assert any(e.stage == "wait" and e.state == "log" and "deployment completed" in e.message for e in events)
    assert not [
        t for t in world.ecs.list_tags_for_resource(resourceArn=service["serviceArn"])["tags"] if is_lock_tag(t["key"])
    ]
    journal = next((tmp_path / "journal" / "release").glob("*.jsonl")).read_text()
    assert '"event": "pushed"' in journal and '"event": "finished"' in journal


def test_releasing_the_same_commit_twice_registers_and_pushes_nothing_new(world: World) -> None:
    first = apply_release(plan_release(world.aws, options(world)), world.aws, **FAST)
    assert first.ok
    world.sandbox.reset_calls()

    again = plan_release(world.aws, options(world))
    assert {s.name: s.action for s in again.steps} == {
        "build": "skip",
        "push": "skip",
        "register": "skip",
        "update": "skip",
        "wait": "run",
    }
    second = apply_release(again, world.aws, **FAST)

    assert second.ok
    assert second.revision_arn == first.revision_arn and second.digest == first.digest
    calls = world.sandbox.calls
    assert calls["RegisterTaskDefinition"] == 0 and calls["UpdateService"] == 0 and calls["PutImage"] == 0
    assert len(world.ecr.describe_images(repositoryName="web")["imageDetails"]) == 2  # bootstrap + one release


def test_a_broken_image_is_rolled_back_and_reported_as_a_failure(world: World) -> None:
    world.commit("cannot start", Dockerfile=unstartable((world.app / "Dockerfile").read_text()))
    record = apply_release(plan_release(world.aws, options(world)), world.aws, **FAST)

    assert not record.ok
    assert record.outcome == "ROLLED_BACK"
    assert "circuit breaker" in record.reason and "web:1" in record.reason
    assert world.service()["taskDefinition"].endswith("web:1")


def test_a_second_release_while_the_first_is_in_progress_is_refused(world: World) -> None:
    first_plan = plan_release(world.aws, options(world))
    waiting = threading.Event()
    outcome: dict[str, object] = {}

    def watch(event: ProgressEvent) -> None:
        if event.stage == "wait" and event.state == "started":
            waiting.set()

    thread = threading.Thread(
        target=lambda: outcome.setdefault("first", apply_release(first_plan, world.aws, progress=watch, **FAST))
    )
    thread.start()
    assert waiting.wait(60)
    world.commit("another change", marker="second")
    with pytest.raises(ConflictError, match=r"is being released by .* pid"):
        apply_release(plan_release(world.aws, options(world)), world.aws, **FAST)
    thread.join(120)
    assert outcome["first"].ok  # type: ignore[attr-defined]


def test_a_service_that_moved_since_the_plan_is_refused_unless_forced(world: World) -> None:
    plan = plan_release(world.aws, options(world))
    world.ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": f"{world.uri}:bootstrap", "memory": 32}]
    )
    world.ecs.update_service(cluster="prod", service="web", taskDefinition="web:2")
    with pytest.raises(ConflictError, match="moved from web:1 to web:2 since the plan"):
        apply_release(plan, world.aws, **FAST)
    assert world.service()["taskDefinition"].endswith("web:2")


def test_every_field_survives_the_copy_except_the_image(world: World) -> None:
    body = {
        "family": "web",
        "taskRoleArn": "arn:aws:iam::123456789012:role/task",
        "executionRoleArn": "arn:aws:iam::123456789012:role/exec",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "pidMode": "task",
        "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
        "ephemeralStorage": {"sizeInGiB": 30},
        "enableFaultInjection": True,
        "volumes": [{"name": "scratch", "host": {}}],
        "placementConstraints": [],
        "proxyConfiguration": {"type": "APPMESH", "containerName": "web", "properties": []},
        "aFieldBotocoreDoesNotModelYet": {"nested": [1, 2, 3]},
        "containerDefinitions": [
            {
                "name": "web",
                "image": f"{world.uri}:bootstrap",
                "essential": True,
                "cpu": 128,
                "memory": 256,
                "memoryReservation": 128,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp", "name": "http", "appProtocol": "http"}],
                "environment": [{"name": "MODE", "value": "prod"}],
                "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:us-east-1:123456789012:parameter/db"}],
                "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": False}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/web"}},
                "healthCheck": {"command": ["CMD-SHELL", "true"], "interval": 30, "timeout": 5, "retries": 3},
                "restartPolicy": {"enabled": True, "ignoredExitCodes": [0], "restartAttemptPeriod": 60},
                "readonlyRootFilesystem": True,
                "user": "1000",
                "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
                "versionConsistency": "enabled",
                "futureContainerField": "kept",
            },
            {"name": "sidecar", "image": "127.0.0.1:1/sidecar:1.2.3", "essential": False, "memory": 64},
        ],
    }
    live = world.aws.call_json("ecs", "RegisterTaskDefinition", body)["taskDefinition"]
    plan = plan_release(world.aws, options(world, containers=("web",)))
    assert plan.live_arn != live["taskDefinitionArn"]  # the service still runs web:1: plan from the new one instead
    from opskit.release.taskdef import registrable, with_images

    copied = with_images(registrable(live), {"web": f"{world.uri}:{plan.tag}"})
    registered = world.aws.call_json("ecs", "RegisterTaskDefinition", copied)["taskDefinition"]
    expected = registrable(live)
    expected["containerDefinitions"][0]["image"] = f"{world.uri}:{plan.tag}"
    assert registrable(registered) == expected
    assert registered["aFieldBotocoreDoesNotModelYet"] == {"nested": [1, 2, 3]}
    assert registered["containerDefinitions"][1]["image"] == "127.0.0.1:1/sidecar:1.2.3"


def test_dirty_tree_is_pinned_by_digest_and_says_dirty(world: World) -> None:
    (world.app / "uncommitted.txt").write_text("work in progress")
    plan = plan_release(world.aws, options(world, allow_dirty=True))
    assert "-dirty-" in plan.tag
    record = apply_release(plan, world.aws, **FAST)
    assert record.ok, record.reason
    image = world.ecs.describe_task_definition(taskDefinition=record.revision_arn)["taskDefinition"][
        "containerDefinitions"
    ][0]["image"]
    assert image == f"{world.uri}@{record.digest}"


def test_a_missing_repository_is_created_immutable_with_scan_on_push_only_when_asked(world: World) -> None:
    plan = plan_release(world.aws, options(world, repository="web-next", create_repository=True))
    assert plan.steps[0].name == "repository" and plan.steps[0].action == "create"
    assert world.ecr.describe_repositories()["repositories"][0]["repositoryName"] == "web"  # a plan changes nothing

    record = apply_release(plan, world.aws, **FAST)

    assert record.ok, record.reason
    created = world.ecr.describe_repositories(repositoryNames=["web-next"])["repositories"][0]
    assert created["imageTagMutability"] == "IMMUTABLE"
    assert created["imageScanningConfiguration"]["scanOnPush"] is True
    image = world.ecs.describe_task_definition(taskDefinition=record.revision_arn)["taskDefinition"]
    assert image["containerDefinitions"][0]["image"] == f"{created['repositoryUri']}:{plan.tag}"


def test_latest_is_only_ever_a_local_tag(world: World, docker_client: object) -> None:
    record = apply_release(plan_release(world.aws, options(world, tag_latest_locally=True)), world.aws, **FAST)
    assert record.ok
    assert docker_client.images.get(f"{world.uri}:latest")  # type: ignore[attr-defined]
    images = world.ecr.describe_images(repositoryName="web")["imageDetails"]
    assert all("latest" not in i.get("imageTags", []) for i in images)
    body = world.ecs.describe_task_definition(taskDefinition=record.revision_arn)["taskDefinition"]
    assert not body["containerDefinitions"][0]["image"].endswith(":latest")
    docker_client.images.remove(f"{world.uri}:latest", noprune=True)  # type: ignore[attr-defined]


def test_the_plan_shows_itself_as_a_table_html_and_json(world: World) -> None:
    plan = plan_release(world.aws, options(world))
    frame = plan.to_frame()
    assert list(frame.columns) == ["step", "action", "detail"] and len(frame) == 5
    page = plan._repr_html_()
    assert "<table>" in page and plan.tag in page and "bootstrap" in page
    assert plan.to_dict()["commit"] == plan.commit.sha
