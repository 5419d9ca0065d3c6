"""The cleanup plan over random histories and service states (hypothesis): it never selects a protected revision,
never an image that something kept needs, and it reads, serialises and grows the way it says it does."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.cleanup import CleanupOptions, CleanupPlan, Inventory, make_plan
from opskit.cleanup.images import INDEX_MEDIA_TYPES
from opskit.records import (
    ContainerRecord,
    DeploymentRecord,
    ImageRecord,
    ImageRef,
    RevisionRecord,
    ServiceRecord,
    TaskRecord,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
NOW = T0 + timedelta(days=120)
REGION = "arn:aws:ecs:us-east-1:123456789012"
HOST = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
FAMILIES = ("web", "api", "worker")
SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
INDEX = "application/vnd.oci.image.index.v1+json"


def arn(family: str, revision: int) -> str:
    return f"{REGION}:task-definition/{family}:{revision}"


def digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


@st.composite
def inventories(draw: Any) -> Inventory:
    families = draw(st.lists(st.sampled_from(FAMILIES), min_size=1, max_size=3, unique=True))
    repositories = [*families, "shared"]
    # Images: per repository, a few manifests with tags (some untagged), some of them image indexes.
    images: list[ImageRecord] = []
    children: dict[str, tuple[str, ...]] = {}
    for repository in repositories:
        count = draw(st.integers(0, 8))
        made: list[ImageRecord] = []
        for n in range(count):
            tags = tuple(
                draw(st.lists(st.sampled_from([f"v{k}" for k in range(8)] + ["latest"]), max_size=2, unique=True))
            )
            tags = tuple(t for t in tags if all(t not in i.tags for i in made))  # a tag points at one image
            pushed = None if draw(st.integers(0, 20)) == 0 else T0 + timedelta(days=draw(st.integers(0, 119)))
            media = INDEX if draw(st.integers(0, 5)) == 0 else SCHEMA2
            made.append(
                ImageRecord(repository, "123456789012", digest(f"{repository}{n}"), tags, pushed, 1, None, media)
            )
        for image in made:
            if image.media_type == INDEX and draw(st.booleans()):  # else: its manifest could not be read
                others = [i.digest for i in made if i.digest != image.digest]
                children[f"{repository}@{image.digest}"] = tuple(
                    draw(st.lists(st.sampled_from(others), max_size=2)) if others else ()
                )
        images.extend(made)
    known_digests = [i.digest for i in images] or [digest("none")]

    def image_ref(family: str) -> str:
        repository = draw(st.sampled_from([family, "shared"]))
        kind = draw(st.sampled_from(["tag", "tag", "digest", "bare"]))
        if kind == "tag":
            return f"{HOST}/{repository}:{draw(st.sampled_from([f'v{k}' for k in range(8)] + ['latest']))}"
        if kind == "digest":
            return f"{HOST}/{repository}@{draw(st.sampled_from(known_digests))}"
        return f"{HOST}/{repository}"

    revisions: list[RevisionRecord] = []
    for family in families:
        count = draw(st.integers(1, 14))
        first = draw(st.integers(1, 5))  # older ones were deleted long ago
        for number in range(first, first + count):
            status = draw(st.sampled_from(["ACTIVE", "ACTIVE", "INACTIVE", "DELETE_IN_PROGRESS"]))
            registered = (
                None if draw(st.integers(0, 25)) == 0 else T0 + timedelta(days=number * 7 + draw(st.integers(0, 6)))
            )
            containers = tuple(
                ContainerRecord(f"c{i}", image_ref(family), True, (), ()) for i in range(draw(st.integers(1, 2)))
            )
            tags = (("opskit:keep", "yes"),) if draw(st.integers(0, 8)) == 0 else ()
            revisions.append(
                RevisionRecord(
                    family,
                    number,
                    arn(family, number),
                    status,
                    registered,
                    None,
                    None,
                    None,
                    None,
                    None,
                    (),
                    containers,
                    tags,
                )
            )
    arns = [r.arn for r in revisions]

    services: list[ServiceRecord] = []
    history: list[DeploymentRecord] = []
    for s in range(draw(st.integers(0, 3))):
        name = f"svc{s}"
        status = draw(st.sampled_from(["ACTIVE", "ACTIVE", "DRAINING", "INACTIVE"]))
        deployed = draw(st.lists(st.sampled_from(arns), min_size=1, max_size=6))
        for hour, target in enumerate(deployed):
            state = draw(st.sampled_from(["COMPLETED", "COMPLETED", "FAILED", "IN_PROGRESS"]))
            start = T0 + timedelta(hours=hour)
            history.append(
                DeploymentRecord(
                    "prod",
                    name,
                    f"{name}-{hour}",
                    target,
                    "",
                    state,
                    start,
                    start + timedelta(minutes=5) if state != "IN_PROGRESS" else None,
                    rolled_back=state == "FAILED" and draw(st.booleans()),
                )
            )
        current = deployed[-1]
        shown = [
            DeploymentRecord("prod", name, "primary", current, "PRIMARY", "IN_PROGRESS", None, None, source="service")
        ]
        if draw(st.booleans()):
            old = draw(st.sampled_from(arns))
            shown.append(
                DeploymentRecord("prod", name, "active", old, "ACTIVE", "COMPLETED", None, None, source="service")
            )
        services.append(
            ServiceRecord(
                "prod", name, f"arn:svc/{name}", status, 1, 1, 0, current, "FARGATE", True, True, tuple(shown)
            )
        )
    tasks = tuple(
        TaskRecord(
            "prod",
            f"arn:task/{n}",
            draw(st.sampled_from(arns)),
            draw(st.sampled_from(["service:svc0", "family:batch", None])),
            draw(st.sampled_from(["PENDING", "RUNNING", "DEACTIVATING"])),
            draw(st.sampled_from(["RUNNING", "RUNNING", "STOPPED"])),
            tuple(draw(st.lists(st.sampled_from(known_digests), max_size=2))),
        )
        for n in range(draw(st.integers(0, 4)))
    )
    return Inventory(tuple(revisions), tuple(services), tuple(history), tasks, NOW, tuple(images), children)


@st.composite
def option_sets(draw: Any) -> CleanupOptions:
    return CleanupOptions(
        families=tuple(draw(st.lists(st.sampled_from(FAMILIES), max_size=2, unique=True))),
        keep=draw(st.integers(1, 6)),
        keep_days=draw(st.sampled_from([0, 0, 10, 60, 400])),
        rollback_depth=draw(st.integers(1, 3)),
        delete_deregistered=draw(st.booleans()),
        images=True,
        untagged_days=draw(st.sampled_from([0, 14, 60])),
        unreferenced_days=draw(st.sampled_from([0, 30, 90])),
    )


# -- the oracle: what must be kept, computed here from the records and the rules --------------------------------
# The rules (CleanupOptions, the README's Cleanup section) written out again, independently of opskit.cleanup and
# opskit.library.rollback: a cleanup never touches what a deployment or a wanted task uses, a service's last
# ``rollback_depth`` revisions it ran to completion, the ``keep`` newest of a family, young ones, or pinned ones.
def name_of(task_definition: str | None) -> str:
    """family:revision of a task-definition ARN."""
    return (task_definition or "").split(":task-definition/")[-1]


def last_completed(history: list[DeploymentRecord], current: str | None, depth: int) -> list[str]:
    """The ``depth`` revisions a service most recently ran to completion, not counting the one it runs now.

    "Most recently" is when a deployment ended, or began if its end is unknown; one whose times are both unknown
    is older than any other. A revision that completed twice counts once, at its latest completion.
    """
    latest: dict[str, datetime] = {}
    for deployment in history:
        if deployment.rollout_state != "COMPLETED" or not deployment.task_definition:
            continue
        when = deployment.finished_at or deployment.created_at or datetime.min.replace(tzinfo=UTC)
        revision = name_of(deployment.task_definition)
        latest[revision] = max(when, latest.get(revision, when))
    latest.pop(name_of(current), None)
    ranked = sorted(latest.items(), key=lambda item: item[1], reverse=True)
    assert len({when for _, when in ranked[: depth + 1]}) == len(ranked[: depth + 1]), "the world has a tie"
    return [revision for revision, _ in ranked[:depth]]


def protected(inventory: Inventory, options: CleanupOptions) -> dict[str, set[str]]:
    """family:revision -> every reason it must never be deregistered or deleted (the plan's protection names)."""
    out: dict[str, set[str]] = defaultdict(set)
    for service in inventory.services:
        if service.status == "INACTIVE":  # a deleted service uses nothing and rolls back nowhere
            continue
        out[name_of(service.task_definition)].add("deployment")
        for shown in service.deployments:  # PRIMARY and ACTIVE
            out[name_of(shown.task_definition)].add("deployment")
        history = [d for d in inventory.deployments if (d.cluster, d.service) == (service.cluster, service.service)]
        for target in last_completed([*history, *service.deployments], service.task_definition, options.rollback_depth):
            out[target].add("rollback")
    for deployment in inventory.deployments:
        if deployment.rollout_state == "IN_PROGRESS":  # a rollout under way, whatever its service says now
            out[name_of(deployment.task_definition)].add("deployment")
    for task in inventory.tasks:
        if task.desired_status == "RUNNING":  # running, or pending and wanted
            out[name_of(task.task_definition)].add("task")
    for family in {r.family for r in inventory.revisions}:
        # A revision being deleted is no longer one to deploy: it does not count among the newest.
        numbers = sorted(
            (r.revision for r in inventory.revisions if r.family == family and r.status != "DELETE_IN_PROGRESS"),
            reverse=True,
        )
        for number in numbers[: options.keep]:
            out[f"{family}:{number}"].add("newest")
    for r in inventory.revisions:
        key = f"{r.family}:{r.revision}"
        if any(tag == "opskit:keep" for tag, _ in r.tags):
            out[key].add("pinned")
        if options.keep_days and (r.registered_at is None or NOW - r.registered_at < timedelta(days=options.keep_days)):
            out[key].add("young")  # an unknown registration time might be a recent one
    return dict(out)


def names(ref: ImageRef, image: ImageRecord) -> bool:
    """Does a container's image reference name this ECR image (a bare name means ``latest``)?"""
    if ref.repository != image.repository:
        return False
    return ref.digest == image.digest if ref.digest else (ref.tag or "latest") in image.tags


def acted(plan: CleanupPlan) -> set[str]:
    return {d.key for d in plan.revisions if d.acts} | {d.key for d in plan.images_to_delete}


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(inventories(), option_sets())
def test_the_plan_never_selects_a_protected_revision(inventory: Inventory, options: CleanupOptions) -> None:
    plan = make_plan(inventory, options)
    must_keep = protected(inventory, options)
    in_scope = [r for r in inventory.revisions if not options.families or r.family in options.families]
    assert sorted(d.key for d in plan.revisions) == sorted(f"{r.family}:{r.revision}" for r in in_scope)
    for decision in plan.revisions:
        reasons = must_keep.get(decision.key, set())
        assert set(decision.protections) == reasons, (decision, reasons)
        if reasons:
            assert not decision.acts, (decision, reasons)
        elif decision.status in ("ACTIVE", "INACTIVE"):
            assert decision.acts, decision  # nothing protects it: the cleanup removes it
        if decision.fate == "deregister" or decision.fate == "deregister+delete":
            assert decision.status == "ACTIVE"
        if decision.fate == "delete":
            assert decision.status == "INACTIVE"
        if decision.status == "DELETE_IN_PROGRESS":
            assert decision.fate == "deleting"
        if decision.fate == "deregister+delete":
            assert options.delete_deregistered


@SETTINGS
@given(inventories(), option_sets())
def test_the_plan_never_deletes_an_image_something_kept_needs(inventory: Inventory, options: CleanupOptions) -> None:
    plan = make_plan(inventory, options)
    decided = {d.key: d for d in plan.revisions}
    # Revisions that stay after the plan: kept, out of scope, deregistered only, or still held while deleting.
    staying = [
        r
        for r in inventory.revisions
        if ((d := decided.get(f"{r.family}:{r.revision}")) is None and r.status != "DELETE_IN_PROGRESS")
        or (d is not None and (d.fate in ("keep", "deregister") or (d.fate == "deleting" and d.protections)))
    ]
    running = {d for t in inventory.tasks if t.desired_status == "RUNNING" for d in t.image_digests}
    staying_images = {i.digest: i for i in inventory.images}
    for image in plan.images_to_delete:
        record = next(i for i in inventory.images if i.repository == image.repository and i.digest == image.digest)
        for revision in staying:
            for container in revision.containers:
                assert not names(ImageRef.parse(container.image), record), (image, revision)
        assert image.digest not in running
        limit = options.unreferenced_days if image.tags else options.untagged_days
        if limit:
            assert image.pushed_at is not None and NOW - image.pushed_at >= timedelta(days=limit)
        del staying_images[image.digest]
    # No image that stays is an index that lists a deleted manifest.
    deleted = {i.key for i in plan.images_to_delete}
    for parent in staying_images.values():
        for child in inventory.image_children.get(f"{parent.repository}@{parent.digest}", ()):
            assert f"{parent.repository}@{child}" not in deleted
        if (
            parent.media_type in INDEX_MEDIA_TYPES
            and f"{parent.repository}@{parent.digest}" not in inventory.image_children
        ):
            assert not any(i.repository == parent.repository and not i.tags for i in plan.images_to_delete)


@SETTINGS
@given(inventories(), option_sets())
def test_keeping_more_never_removes_more(inventory: Inventory, options: CleanupOptions) -> None:
    from dataclasses import replace

    fewer = make_plan(inventory, options)
    more = make_plan(
        inventory, replace(options, keep=options.keep + 1, rollback_depth=min(100, options.rollback_depth + 1))
    )
    assert acted(more) <= acted(fewer)


@settings(max_examples=40, deadline=None)
@given(inventories(), option_sets())
def test_a_plan_reads_back_from_its_dict_and_shows_itself(inventory: Inventory, options: CleanupOptions) -> None:
    plan = make_plan(inventory, options)
    again = CleanupPlan.from_dict(plan.to_dict())
    assert again == plan and again.key == plan.key
    frame = plan.to_frame()
    assert len(frame) == len(plan.revisions)
    assert str(frame["registered_at"].dtype) == "datetime64[us, UTC]"
    summary = plan.summary()
    assert summary["revisions"].sum() == len(plan.revisions)
    assert (
        summary[["keep", "deregister", "deregister+delete", "delete", "deleting"]].sum(axis=1) == summary["revisions"]
    ).all()
    assert "<table>" in plan._repr_html_()
    assert len(plan.images_frame()) == len(plan.images)


def test_the_defaults_are_the_conservative_ones_the_docstring_names() -> None:
    options = CleanupOptions()
    assert (options.keep, options.keep_days, options.rollback_depth) == (10, 30, 3)
    assert (options.pin_tags, options.delete_deregistered, options.images) == (("opskit:keep",), False, False)
    assert (options.untagged_days, options.unreferenced_days) == (14, 90)
    doc = CleanupOptions.__doc__ or ""
    for words in ("(default 3)", "(default 10)", "(default 30)", "``opskit:keep``", "(default 14)", "(default 90)"):
        assert words in doc


def test_reasons_say_why_in_words() -> None:
    records = [
        RevisionRecord(
            "web", n, arn("web", n), "ACTIVE", T0 + timedelta(days=n), None, None, None, None, None, (), (), ()
        )
        for n in range(1, 6)
    ]
    history = [
        DeploymentRecord("prod", "web", f"d{n}", arn("web", n), "SUCCESSFUL", "COMPLETED", T0 + timedelta(days=n), None)
        for n in (2, 3)
    ]
    service = ServiceRecord("prod", "web", "arn:svc/web", "ACTIVE", 1, 1, 0, arn("web", 3), "FARGATE", True, True, ())
    inventory = Inventory(tuple(records), (service,), tuple(history), (), NOW)
    plan = make_plan(inventory, CleanupOptions(keep=1, keep_days=0, rollback_depth=1))
    reasons = {d.revision: (d.fate, d.reason) for d in plan.revisions}
    assert reasons[1] == ("deregister", "not in use, not a rollback target, #5 of web, 119 days old")
    assert reasons[2] == ("keep", "rollback target 1 of prod/web")
    assert reasons[3] == ("keep", "used by prod/web (current)")
    assert reasons[5] == ("keep", "newest 1 of web (#1)")
