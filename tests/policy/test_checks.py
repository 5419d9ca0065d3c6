"""Each check as a pure function over records built by hand: what passes, what fails, and what the message names."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from opskit.checks import (
    CHECKS,
    ContainerSettings,
    RevisionSettings,
    Snapshot,
    Target,
    checks_for,
    findings_frame,
    findings_json,
    findings_table,
    get_check,
    groups_for,
    run_checks,
    summary,
)
from opskit.errors import ConfigError, NotFoundError
from opskit.records import ContainerRecord, ImageRecord, RepositoryRecord, RevisionRecord, ServiceRecord

NOW = datetime(2026, 6, 1, tzinfo=UTC)
ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
SHA_A, SHA_B, SHA_C = "a1b2c3d4e5f6", "b2c3d4e5f6a1", "c3d4e5f6a1b2"


def digest(marker: str) -> str:
    return "sha256:" + (marker.encode().hex() * 64)[:64]


def repository(name: str = "web", **changes: Any) -> RepositoryRecord:
    record = RepositoryRecord(
        name=name,
        registry_id=ACCOUNT,
        uri=f"{REGISTRY}/{name}",
        arn=f"arn:aws:ecr:us-east-1:{ACCOUNT}:repository/{name}",
        mutability="IMMUTABLE",
        exclusion_filters=(),
        scan_on_push=True,
        scan_frequency="SCAN_ON_PUSH",
        lifecycle_policy=json.dumps(policy(rule(1, "untagged", "sinceImagePushed", 14))),
    )
    return replace(record, **changes)


def image(tags: tuple[str, ...], marker: str, days_ago: float = 1, repo: str = "web") -> ImageRecord:
    return ImageRecord(repo, ACCOUNT, digest(marker), tags, NOW - timedelta(days=days_ago), 1000, None, None)


def arn(label: str) -> str:
    return f"arn:aws:ecs:us-east-1:{ACCOUNT}:task-definition/{label}"


def revision(label: str, *images: str, status: str = "ACTIVE") -> RevisionRecord:
    family, _, number = label.partition(":")
    containers = tuple(ContainerRecord(f"c{i}", ref, True, (), ()) for i, ref in enumerate(images))
    return RevisionRecord(
        family, int(number), arn(label), status, NOW, None, None, None, None, "awsvpc", (), containers, ()
    )


def service(name: str, current: str, *, breaker: bool = True, rollback: bool = True) -> ServiceRecord:
    return ServiceRecord(
        "prod", name, f"arn:svc/{name}", "ACTIVE", 1, 1, 0, arn(current), "FARGATE", breaker, rollback, ()
    )


def rule(priority: int, status: str, count_type: str, number: int, **selection: Any) -> dict[str, Any]:
    chosen: dict[str, Any] = {"tagStatus": status, "countType": count_type, "countNumber": number, **selection}
    action = chosen.pop("action", "expire")
    return {"rulePriority": priority, "selection": chosen, "action": {"type": action}}


def policy(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


def ref(tag: str, repo: str = "web") -> str:
    return f"{REGISTRY}/{repo}:{tag}"


def world(**changes: Any) -> Snapshot:
    """web:1 and web:2 (SHA-tagged images A and B), service prod/web on web:2 rolling back to web:1."""
    base = Snapshot(
        revisions=(revision("web:1", ref(SHA_A)), revision("web:2", ref(SHA_B))),
        images=(image((SHA_A,), "a", days_ago=10), image((SHA_B,), "b", days_ago=5)),
        repositories=(repository(),),
        services=(service("web", "web:2"),),
        rollback_targets={"arn:svc/web": arn("web:1")},
        version_consistency={arn("web:2"): (("c0", "enabled"),)},
        taken_at=NOW,
    )
    return replace(base, **changes)


def failures(snapshot: Snapshot, check: str) -> dict[str, str]:
    return {f.resource: f.message for f in get_check(check).run(snapshot) if f.failed}


def test_the_base_world_passes_every_release_check() -> None:
    findings = run_checks(world())
    assert findings and all(f.passed for f in findings), findings_table(findings, failed_only=True)
    assert {(f.id, f.resource) for f in findings if f.id == "REL006"} == {("REL006", "prod/web")}


# -- REL001 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("reference", "passes", "says"),
    [
        (ref(SHA_A), True, ""),
        (f"{REGISTRY}/web@{digest('a')}", True, ""),
        (f"{REGISTRY}/web:v1.2@{digest('a')}", True, ""),
        (ref("latest"), False, "the tag latest"),
        (f"{REGISTRY}/web", False, "no tag, so latest"),
        (f"{REGISTRY}/web:latest@{digest('a')}", False, "the tag latest"),
        (ref("v1.2"), False, "the tag v1.2 is not a commit SHA"),
        (ref("main"), False, "the tag main is not a commit SHA"),
        ("nginx:1.27", False, "the tag 1.27 is not a commit SHA"),
    ],
)
def test_images_are_sha_tagged_or_pinned(reference: str, passes: bool, says: str) -> None:
    snapshot = world(revisions=(revision("web:3", reference),))
    found = failures(snapshot, "REL001")
    assert ("web:3" not in found) is passes
    if not passes:
        assert says in found["web:3"] and reference in found["web:3"]


def test_only_active_revisions_count() -> None:
    snapshot = world(revisions=(revision("web:1", ref("latest"), status="INACTIVE"), revision("web:2", ref(SHA_B))))
    assert failures(snapshot, "REL001") == {}


# -- REL002 ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mutability", "filters", "passes", "says"),
    [
        ("IMMUTABLE", (), True, "IMMUTABLE"),
        ("MUTABLE", (), False, "MUTABLE: any tag"),
        ("IMMUTABLE_WITH_EXCLUSION", ("latest", "dev-*", "v*", "release-*"), True, "can never be commit SHAs"),
        ("IMMUTABLE_WITH_EXCLUSION", ("latest", "a1*"), False, "matching a1* mutable"),
        ("IMMUTABLE_WITH_EXCLUSION", ("*",), False, "matching * mutable"),
        ("IMMUTABLE_WITH_EXCLUSION", ("*f6",), False, "matching *f6 mutable"),
        ("IMMUTABLE_WITH_EXCLUSION", ("deadbee",), False, "deadbee"),  # a 7-digit SHA is a SHA
        ("IMMUTABLE_WITH_EXCLUSION", ("cafe",), True, ""),  # too short to be one
        ("MUTABLE_WITH_EXCLUSION", ("*",), True, "every tag matches *"),
        ("MUTABLE_WITH_EXCLUSION", ("a1*",), False, "only tags matching a1* immutable"),
    ],
)
def test_tag_immutability_and_exclusion_filters(
    mutability: str, filters: tuple[str, ...], passes: bool, says: str
) -> None:
    snapshot = world(repositories=(repository(mutability=mutability, exclusion_filters=filters),))
    finding = get_check("REL002").run(snapshot)[0]
    assert finding.passed is passes
    assert says in finding.message


def test_exclusion_filters_name_the_sha_tags_in_use_they_match() -> None:
    snapshot = world(repositories=(repository(mutability="IMMUTABLE_WITH_EXCLUSION", exclusion_filters=("a1*",)),))
    assert f"in use now: {SHA_A}" in failures(snapshot, "REL002")["web"]
    snapshot = world(repositories=(repository(mutability="MUTABLE_WITH_EXCLUSION", exclusion_filters=("a1*",)),))
    assert failures(snapshot, "REL002")["web"].endswith(f"(mutable now: {SHA_B})")


# -- REL003 ----------------------------------------------------------------------------------------------------
def test_a_sha_tag_pinned_to_another_digest_is_two_images() -> None:
    pinned = f"{REGISTRY}/web:{SHA_B}@{digest('old-b')}"
    snapshot = world(revisions=(*world().revisions, revision("web:3", pinned)))
    message = failures(snapshot, "REL003")["web"]
    assert f"tag {SHA_B} names 2 images" in message and "pinned by web:3" in message


def test_one_commit_under_two_sha_lengths_is_two_images() -> None:
    snapshot = world(images=(*world().images, image((SHA_A[:7],), "a-rebuilt")))
    assert failures(snapshot, "REL003") == {
        "web": f"tags {SHA_A[:7]} and {SHA_A} are the same commit but name different images"
    }
    same = world(images=(image((SHA_A, SHA_A[:7]), "a"), image((SHA_B,), "b")))
    assert failures(same, "REL003") == {}


# -- REL004 ----------------------------------------------------------------------------------------------------
def test_two_active_revisions_of_one_image_are_one_too_many() -> None:
    snapshot = world(revisions=(*world().revisions, revision("web:3", ref(SHA_B))))
    assert failures(snapshot, "REL004") == {"web": f"web:2, web:3 run the same image(s) {digest('b')[:19]}"}


def test_a_shared_sidecar_does_not_make_revisions_duplicates() -> None:
    sidecar = f"public.ecr.aws/datadog/agent@{digest('agent')}"
    revisions = (revision("web:1", ref(SHA_A), sidecar), revision("web:2", ref(SHA_B), sidecar))
    assert failures(world(revisions=revisions), "REL004") == {}


# -- REL005 ----------------------------------------------------------------------------------------------------
def test_missing_images_are_named() -> None:
    revisions = (
        revision("web:3", ref("0123456789ab")),
        revision("web:4", f"{REGISTRY}/web@{digest('gone')}"),
        revision("gone:1", ref(SHA_A, repo="gone")),
    )
    found = failures(world(revisions=revisions), "REL005")
    assert "repository web has no tag 0123456789ab" in found["web:3"]
    assert "repository web has no digest sha256:" in found["web:4"]
    assert "there is no repository gone" in found["gone:1"]


def test_images_outside_the_accounts_ecr_are_not_judged() -> None:
    snapshot = world(revisions=(revision("web:1", ref(SHA_A), f"nginx@{digest('n')}"),))
    (finding,) = get_check("REL005").run(snapshot)
    assert finding.passed and "not checked" in finding.message and "nginx@" in finding.message


# -- REL006 ----------------------------------------------------------------------------------------------------
def test_rollback_targets() -> None:
    assert failures(world(rollback_targets={}), "REL006") == {
        "prod/web": "no other revision ever ran to completion: a rollback has nowhere to go"
    }
    gone = world(revisions=(revision("web:2", ref(SHA_B)),))
    assert failures(gone, "REL006") == {"prod/web": "its rollback target web:1 no longer exists"}
    inactive = world(revisions=(revision("web:1", ref(SHA_A), status="INACTIVE"), revision("web:2", ref(SHA_B))))
    assert "web:1 is INACTIVE" in failures(inactive, "REL006")["prod/web"]
    expired = world(images=(image((SHA_B,), "b"),))
    assert "no longer in ECR" in failures(expired, "REL006")["prod/web"]


# -- REL007, REL008, REL009 ----------------------------------------------------------------------------------------
def test_circuit_breaker_needs_rollback() -> None:
    assert (
        "does not roll them back"
        in failures(world(services=(service("web", "web:2", rollback=False),)), "REL007")["prod/web"]
    )
    assert (
        "no deployment circuit breaker"
        in failures(world(services=(service("web", "web:2", breaker=False, rollback=False),)), "REL007")["prod/web"]
    )
    # Deployment alarms with rollback are the other way to pass: tests/policy/test_rollout_checks.py.


@pytest.mark.parametrize(
    ("on_push", "frequency", "passes"),
    [
        (True, "SCAN_ON_PUSH", True),
        (False, "CONTINUOUS_SCAN", True),  # a registry rule (enhanced scanning) covers it
        (True, "MANUAL", False),
        (False, None, False),
        (True, None, True),  # the scanning configuration could not be asked: scanOnPush decides
    ],
)
def test_scan_on_push(on_push: bool, frequency: str | None, passes: bool) -> None:
    snapshot = world(repositories=(repository(scan_on_push=on_push, scan_frequency=frequency),))
    assert get_check("REL008").run(snapshot)[0].passed is passes


def test_a_lifecycle_policy_must_exist_and_parse() -> None:
    assert failures(world(repositories=(repository(lifecycle_policy=None),)), "REL009") == {
        "web": "no lifecycle policy: old and untagged images pile up"
    }
    assert "not JSON" in failures(world(repositories=(repository(lifecycle_policy="{"),)), "REL009")["web"]
    assert "no rules" in failures(world(repositories=(repository(lifecycle_policy='{"rules": []}'),)), "REL009")["web"]


# -- REL010 ----------------------------------------------------------------------------------------------------
def with_policy(*rules: dict[str, Any], images: tuple[ImageRecord, ...] | None = None) -> Snapshot:
    base = world()
    return replace(
        base,
        repositories=(repository(lifecycle_policy=json.dumps(policy(*rules))),),
        images=images if images is not None else base.images,
    )


@pytest.mark.parametrize(
    ("rules", "passes", "says"),
    [
        ([rule(1, "untagged", "sinceImagePushed", 14, countUnit="days")], True, ""),
        (
            [rule(1, "tagged", "imageCountMoreThan", 1, tagPatternList=["*"])],
            False,
            f"removes web:{SHA_A}, used by web:1, now",
        ),
        ([rule(1, "tagged", "imageCountMoreThan", 2, tagPatternList=["*"])], True, ""),
        ([rule(1, "any", "imageCountMoreThan", 1)], False, "used by web:1, now"),
        ([rule(1, "tagged", "sinceImagePushed", 7, tagPrefixList=["a1"])], False, "used by web:1, now"),
        ([rule(1, "tagged", "sinceImagePushed", 30, tagPrefixList=["a1"])], False, "used by web:1, on 2026-06-21"),
        ([rule(1, "tagged", "sinceImagePushed", 1, tagPrefixList=["a1", "zz"])], True, ""),  # every prefix must match
        ([rule(1, "tagged", "sinceImagePushed", 1, tagPatternList=["*", "release-*"])], True, ""),
        ([rule(1, "tagged", "sinceImagePulled", 30, tagPatternList=["b2*"])], False, "after their last pull"),
        ([rule(1, "tagged", "sinceImagePushed", 1, tagPatternList=["b*"], action="transition")], False, "archives"),
        ([rule(1, "any", "sinceImageTransitioned", 1, storageClass="archive")], True, ""),
        (
            [
                rule(1, "tagged", "imageCountMoreThan", 50, tagPatternList=["??", "*"]),
                rule(2, "any", "sinceImagePushed", 1),
            ],
            False,  # rule 1 selects only tags matching both "??" (literally) and "*": it protects nothing
            "rule 2",
        ),
        (
            [
                rule(1, "tagged", "imageCountMoreThan", 50, tagPatternList=["*"]),
                rule(2, "any", "sinceImagePushed", 1),
            ],
            True,  # tagged images match rule 1, so the lower-priority rule 2 can never expire them
            "",
        ),
    ],
)
def test_lifecycle_rules_against_images_in_use(rules: list[dict[str, Any]], passes: bool, says: str) -> None:
    (finding,) = get_check("REL010").run(with_policy(*rules))
    assert finding.passed is passes, finding.message
    assert says in finding.message


def test_an_untagged_image_pinned_by_digest_is_what_an_untagged_rule_takes() -> None:
    pinned = f"{REGISTRY}/web@{digest('orphan')}"
    snapshot = replace(
        world(revisions=(*world().revisions, revision("web:3", pinned))),
        images=(*world().images, image((), "orphan", days_ago=20)),
    )
    assert "used by web:3, now" in failures(snapshot, "REL010")["web"]


def test_count_rules_keep_the_newest_images_by_push_time() -> None:
    images = (image((SHA_A,), "a", days_ago=1), image((SHA_B,), "b", days_ago=5), image((SHA_C,), "c", days_ago=9))
    snapshot = replace(with_policy(rule(1, "tagged", "imageCountMoreThan", 2, tagPatternList=["*"])), images=images)
    assert failures(snapshot, "REL010") == {}  # web:1 (A) and web:2 (B) are the newest two; C is unused


def test_an_unreadable_policy_cannot_be_trusted() -> None:
    snapshot = world(repositories=(repository(lifecycle_policy='{"rules": [{"selection": {}}]}'),))
    assert "cannot tell what it expires" in failures(snapshot, "REL010")["web"]


# -- the target --------------------------------------------------------------------------------------------------
def scoped() -> Snapshot:
    return Snapshot(
        revisions=(
            revision("web:1", ref(SHA_A)),
            revision("web:2", ref(SHA_B)),
            revision("api:1", ref(SHA_C, repo="api")),
            revision("batch:1", ref(SHA_A, repo="api"), ref(SHA_B)),
        ),
        images=(
            image((SHA_A,), "a"),
            image((SHA_B,), "b"),
            image((SHA_C,), "c", repo="api"),
            image((SHA_A,), "a2", repo="api"),
        ),
        repositories=(repository("api"), repository("web"), repository("unused")),
        services=(service("web", "web:2"), service("api", "api:1")),
        rollback_targets={"arn:svc/web": arn("web:1")},
        taken_at=NOW,
    )


@pytest.mark.parametrize(
    ("target", "services", "families", "repositories"),
    [
        (Target(), ["api", "web"], ["api", "batch", "web"], ["api", "unused", "web"]),
        (Target(cluster="prod", services=("web",)), ["web"], ["web"], ["web"]),
        (Target(services=("prod/api",)), ["api"], ["api"], ["api"]),
        (Target(families=("batch",)), [], ["batch"], ["api", "web"]),
        (Target(repositories=("api",)), ["api"], ["api", "batch"], ["api"]),
    ],
)
def test_a_target_narrows_services_families_and_repositories(
    target: Target, services: list[str], families: list[str], repositories: list[str]
) -> None:
    snapshot = replace(scoped(), target=target)
    assert [s.service for s in snapshot.scoped_services] == services
    assert list(snapshot.scoped_families) == families
    assert [r.name for r in snapshot.scoped_repositories] == repositories
    assert {r.family for r in snapshot.active_revisions} == set(families)


@pytest.mark.parametrize(
    ("target", "says"),
    [
        (Target(cluster="staging"), "no services in cluster staging"),
        (Target(services=("nope",)), "no service nope"),
        (Target(families=("nope",)), "no task-definition family nope"),
        (Target(repositories=("nope",)), "no ECR repository nope"),
    ],
)
def test_a_target_that_is_not_there_is_one_line(target: Target, says: str) -> None:
    with pytest.raises(NotFoundError, match=says) as caught:
        replace(scoped(), target=target).check_target()
    assert "\n" not in str(caught.value)


# -- hardening -----------------------------------------------------------------------------------------------------
def settings_of(label: str, *containers: dict[str, Any], **task: Any) -> RevisionSettings:
    return RevisionSettings.from_api(
        {"taskDefinitionArn": arn(label), "containerDefinitions": list(containers), **task}
    )


GOOD = {
    "name": "web",
    "user": "1000",
    "readonlyRootFilesystem": True,
    "logConfiguration": {"logDriver": "awslogs"},
    "environment": [{"name": "LOG_LEVEL", "value": "debug"}, {"name": "TOKEN_TTL", "value": "300"}],
}


def hardening(*containers: dict[str, Any], **task: Any) -> dict[str, str]:
    snapshot = world(settings={arn("web:1"): settings_of("web:1", *containers, **task)})
    findings = run_checks(snapshot, "hardening")
    return {f.id: f.message for f in findings if f.failed and f.resource == "web:1"}


def test_a_hardened_revision_passes_every_hardening_check() -> None:
    assert hardening(GOOD, networkMode="awsvpc") == {}


def test_secrets_are_reported_by_name_and_never_by_value() -> None:
    values = {
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "DB_PASSWORD": "correct-horse-battery",
        "DATABASE_URL": "postgres://app:s3cr3t-pass@db:5432/app",
        "UPSTREAM": "AKIAIOSFODNN7EXAMPLE",
        "SIGNING_KEY": "-----BEGIN RSA PRIVATE KEY-----\nMIIE",
        "API_KEY_ARN": "arn:aws:secretsmanager:us-east-1:1:secret:x",  # where a secret is: fine
        "PASSWORD_MIN_LENGTH": "12",
    }
    container = {**GOOD, "environment": [{"name": k, "value": v} for k, v in values.items()]}
    message = hardening(container)["HARD001"]
    for name in ("AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "DATABASE_URL", "UPSTREAM", "SIGNING_KEY"):
        assert name in message
    assert "API_KEY_ARN" not in message and "PASSWORD_MIN_LENGTH" not in message
    settings = settings_of("web:1", container)
    shown = (
        message
        + repr(settings)
        + json.dumps(run_checks(world(settings={arn("web:1"): settings}), "hardening")[0].to_dict())
    )
    for name in ("AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "DATABASE_URL", "UPSTREAM", "SIGNING_KEY"):
        assert values[name] not in shown


@pytest.mark.parametrize(
    ("change", "task", "failing"),
    [
        ({"privileged": True}, {}, {"HARD002": "container web is privileged"}),
        ({"readonlyRootFilesystem": False}, {}, {"HARD003": "container web can write to its root filesystem"}),
        ({"logConfiguration": None}, {}, {"HARD004": "container web has no log configuration"}),
        ({"user": None}, {}, {"HARD005": "container web sets no user, so it runs as root"}),
        ({"user": "0:0"}, {}, {"HARD005": "container web runs as 0:0"}),
        ({"user": "root"}, {}, {"HARD005": "container web runs as root"}),
        ({}, {"networkMode": "host"}, {"HARD006": "network mode host: its containers share the host's network stack"}),
        (
            {},
            {"pidMode": "host"},
            {"HARD007": "pid mode host: its containers see and can signal every process on the host"},
        ),
    ],
)
def test_each_hardening_check(change: dict[str, Any], task: dict[str, Any], failing: dict[str, str]) -> None:
    assert hardening({**GOOD, **change}, **task) == failing


def test_windows_containers() -> None:
    windows = {"runtimePlatform": {"operatingSystemFamily": "WINDOWS_SERVER_2022_CORE"}}
    assert hardening({**GOOD, "readonlyRootFilesystem": False, "user": "app"}, **windows) == {}
    assert "containeradministrator" in hardening({**GOOD, "user": "ContainerAdministrator"}, **windows)["HARD005"]


def test_hardening_without_settings_says_how_to_get_them() -> None:
    (finding, *_) = get_check("HARD002").run(world())
    assert finding.failed and "hardening=True" in finding.message


def test_container_settings_keep_no_values() -> None:
    settings = ContainerSettings.from_api({"name": "x", "environment": [{"name": "TOKEN", "value": "abc"}]})
    assert settings.secret_variables == (("TOKEN", "its name says it holds a secret"),)


# -- the API around the checks ------------------------------------------------------------------------------------
def test_every_check_has_what_ci_and_people_need() -> None:
    assert len({c.id for c in CHECKS}) == len(CHECKS) == 21
    for check in CHECKS:
        assert check.title and check.remediation and check.name and check.group in ("release", "hardening")
    hub = {r.id for c in CHECKS for r in c.references if r.framework == "Security Hub"}
    assert {"ECR.1", "ECR.2", "ECR.3", "ECS.3", "ECS.4", "ECS.5", "ECS.8", "ECS.9", "ECS.17", "ECS.20"} <= hub
    checkov = {r.id for c in CHECKS for r in c.references if r.framework == "Checkov"}
    assert checkov == {"CKV_AWS_51", "CKV_AWS_163", "CKV_AWS_334", "CKV_AWS_335", "CKV_AWS_336"}


def test_groups_ids_and_names() -> None:
    assert [c.id for c in checks_for("release")] == [f"REL{n:03d}" for n in range(1, 15)]
    assert {c.group for c in checks_for(groups_for("all"))} == {"release", "hardening"}
    assert get_check("tag-immutability").id == "REL002"
    assert [f.id for f in run_checks(world(), ids=["REL007"])] == ["REL007"]
    for bad in (lambda: get_check("REL999"), lambda: groups_for("strict"), lambda: checks_for("security")):
        with pytest.raises(ConfigError):
            bad()


def test_findings_for_junit_json_frames_and_people() -> None:
    snapshot = world(repositories=(repository(mutability="MUTABLE"),))
    findings = run_checks(snapshot)
    (failed,) = [f for f in findings if f.failed]
    assert ("check_id", "REL002") in failed.properties() and ("security_hub", "ECR.2") in failed.properties()
    assert ("aws_config", "ecr-private-tag-immutability-enabled") in failed.properties()
    assert ("checkov", "CKV_AWS_51") in failed.properties()
    assert failed.explain().splitlines()[0] == "REL002 repository web: " + failed.message
    assert "fix: aws ecr put-image-tag-mutability" in failed.explain()
    listed = json.loads(findings_json(findings, failed_only=True))
    assert [f["check_id"] for f in listed] == ["REL002"]
    assert {"check_id", "severity", "resource", "message", "passed", "references"} <= set(listed[0])
    assert len(json.loads(findings_json(findings, failed_only=False))) == len(findings)
    frame = findings_frame(findings)
    assert len(frame) == len(findings) and str(frame["severity"].dtype) == "category"
    assert frame["passed"].dtype == "boolean" and frame["references"].map(type).eq(list).all()
    table = findings_table(findings).splitlines()
    assert table[0].split() == ["STATUS", "CHECK", "SEVERITY", "RESOURCE", "MESSAGE"] and table[1].startswith("FAIL")
    assert summary(findings).startswith(f"1 of {len(findings)} checks failed (1 high)")
    assert findings_table(findings, failed_only=True).count("\n") == 1
