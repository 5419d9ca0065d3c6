"""The release invariants: one commit -> one image tagged with its SHA -> one revision -> one deployment, with
rollback always possible. On by default everywhere the checks run.

Each function reads a :class:`~opskit.checks.snapshot.Snapshot` and yields one
:class:`~opskit.checks.model.Outcome` per resource; :data:`RELEASE_CHECKS` pairs them with their metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from opskit.checks.lifecycle import PolicyError, evaluate, parse_policy
from opskit.checks.model import AWS_CONFIG, CHECKOV, SECURITY_HUB, Check, Outcome, Reference
from opskit.checks.snapshot import ImageUse, Snapshot, revision_label
from opskit.checks.wildcards import can_match_commit_sha, matches_every_commit_sha, wildcard_matches
from opskit.records import COMMIT_SHA, RevisionRecord, ServiceRecord

SCANNING = ("SCAN_ON_PUSH", "CONTINUOUS_SCAN")


def short(digest: str) -> str:
    """``sha256:3f2a...`` -> ``sha256:3f2a9c1e8b2d`` (12 hex digits are plenty to tell images apart)."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm}:{value[:12]}" if value else digest


def _labels(revisions: list[RevisionRecord]) -> str:
    """``web:12, web:15``: each revision once, in order."""
    unique = {r.arn: r for r in revisions}.values()
    return ", ".join(revision_label(r.arn) for r in sorted(unique, key=lambda r: (r.family, r.revision)))


def _day(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d")


# -- images ------------------------------------------------------------------------------------------------------
def image_references(snapshot: Snapshot) -> Iterator[Outcome]:
    for revision in snapshot.active_revisions:
        problems = []
        for container in revision.containers:
            ref = container.ref
            if ref.uses_latest:
                what = "no tag, so latest," if ref.untagged else "the tag latest"
                problems.append(
                    f"container {container.name} runs {container.image}: {what} names whatever was pushed last"
                )
            elif ref.digest and not ref.pinned:
                problems.append(
                    f"container {container.name} runs {container.image}: {ref.digest} is not a sha256 digest"
                )
            elif not ref.pinned and not ref.commit_sha:
                problems.append(
                    f"container {container.name} runs {container.image}: the tag {ref.tag} is not a commit SHA"
                )
        label = revision_label(revision.arn)
        message = "; ".join(problems) or "every image is tagged with a commit SHA or pinned by digest"
        yield Outcome(label, not problems, message)


def images_exist(snapshot: Snapshot) -> Iterator[Outcome]:
    for revision in snapshot.active_revisions:
        uses = snapshot.uses(revision)
        missing = [_missing(u) for u in uses if u.missing]
        foreign = [u.container.image for u in uses if not u.in_known_registry]
        if missing:
            yield Outcome(revision_label(revision.arn), False, "; ".join(missing))
            continue
        message = "every image it refers to is in ECR"
        if foreign:
            message += f" (not checked, outside the account's ECR: {', '.join(foreign)})"
        yield Outcome(revision_label(revision.arn), True, message)


def _missing(use: ImageUse) -> str:
    where = use.ref.repository
    if use.repository is None:
        return f"container {use.container.name} refers to {use.container.image}: there is no repository {where}"
    named = f"digest {short(use.ref.digest)}" if use.ref.digest else f"tag {use.ref.tag or 'latest'}"
    return f"container {use.container.name} refers to {use.container.image}: repository {where} has no {named}"


# -- repositories ------------------------------------------------------------------------------------------------
def tag_immutability(snapshot: Snapshot) -> Iterator[Outcome]:
    for repository in snapshot.scoped_repositories:
        in_use = sorted({u.ref.tag for u in snapshot.uses_of(repository) if u.ref.commit_sha and u.ref.tag})
        mode, filters = repository.mutability, repository.exclusion_filters
        if mode == "IMMUTABLE":
            yield Outcome(repository.name, True, "IMMUTABLE: no tag can be pushed again")
        elif mode == "IMMUTABLE_WITH_EXCLUSION":
            risky = [f for f in filters if can_match_commit_sha(f)]
            if not risky:
                yield Outcome(
                    repository.name,
                    True,
                    f"IMMUTABLE_WITH_EXCLUSION: the mutable tags ({', '.join(filters)}) can never be commit SHAs",
                )
                continue
            hit = [t for t in in_use if any(wildcard_matches(f, t) for f in risky)]
            message = (
                f"IMMUTABLE_WITH_EXCLUSION leaves tags matching {', '.join(risky)} mutable, and commit SHA tags "
                "can match"
            )
            if hit:
                message += f" (in use now: {', '.join(hit[:5])})"
            yield Outcome(repository.name, False, message)
        elif mode == "MUTABLE_WITH_EXCLUSION":
            everything = [f for f in filters if matches_every_commit_sha(f)]
            if everything:
                yield Outcome(
                    repository.name,
                    True,
                    f"MUTABLE_WITH_EXCLUSION: every tag matches {everything[0]}, so it is immutable",
                )
                continue
            loose = [t for t in in_use if not any(wildcard_matches(f, t) for f in filters)]
            message = (
                f"MUTABLE_WITH_EXCLUSION makes only tags matching {', '.join(filters)} immutable: other commit SHA "
                "tags can be pushed again over another image"
            )
            if loose:
                message += f" (mutable now: {', '.join(loose[:5])})"
            yield Outcome(repository.name, False, message)
        else:
            yield Outcome(
                repository.name,
                False,
                f"{mode}: any tag, commit SHA tags included, can be pushed again over another image",
            )


def one_digest_per_sha(snapshot: Snapshot) -> Iterator[Outcome]:
    for repository in snapshot.scoped_repositories:
        digests: dict[str, set[str]] = {}
        pinned_by: dict[str, list[RevisionRecord]] = {}
        for image in snapshot.images_in(repository):
            for tag in image.tags:
                if COMMIT_SHA.match(tag):
                    digests.setdefault(tag, set()).add(image.digest)
        for use in snapshot.uses_of(repository):
            sha = use.ref.commit_sha
            if sha and use.ref.pinned and use.ref.digest:
                digests.setdefault(sha, set()).add(use.ref.digest)
                pinned_by.setdefault(sha, []).append(use.revision)
        problems = []
        for tag in sorted(digests):
            if len(digests[tag]) > 1:
                named = ", ".join(short(d) for d in sorted(digests[tag]))
                pins = f" (pinned by {_labels(pinned_by[tag])})" if tag in pinned_by else ""
                problems.append(f"tag {tag} names {len(digests[tag])} images: {named}{pins}")
        tags = sorted(digests)
        for index, tag in enumerate(tags):  # one commit under SHAs of two lengths: sorted, a prefix comes first
            for longer in tags[index + 1 :]:
                if not longer.startswith(tag):
                    break
                if digests[longer] != digests[tag]:
                    problems.append(f"tags {tag} and {longer} are the same commit but name different images")
        message = "; ".join(problems) or "each commit SHA tag names one image"
        yield Outcome(repository.name, not problems, message)


def scan_on_push(snapshot: Snapshot) -> Iterator[Outcome]:
    for repository in snapshot.scoped_repositories:
        frequency = repository.scan_frequency or ("SCAN_ON_PUSH" if repository.scan_on_push else "MANUAL")
        if frequency in SCANNING:
            yield Outcome(repository.name, True, f"images are scanned ({frequency})")
        else:
            yield Outcome(repository.name, False, f"images are scanned only when someone asks ({frequency})")


def lifecycle_policy(snapshot: Snapshot) -> Iterator[Outcome]:
    for repository in snapshot.scoped_repositories:
        if repository.lifecycle_policy is None:
            yield Outcome(repository.name, False, "no lifecycle policy: old and untagged images pile up")
            continue
        try:
            rules = parse_policy(repository.lifecycle_policy)
        except PolicyError as exc:
            yield Outcome(repository.name, False, str(exc))
            continue
        yield Outcome(repository.name, True, f"a lifecycle policy of {len(rules)} rule(s)")


def lifecycle_keeps_active_images(snapshot: Snapshot) -> Iterator[Outcome]:
    now = snapshot.taken_at
    for repository in snapshot.scoped_repositories:
        if repository.lifecycle_policy is None:
            yield Outcome(repository.name, True, "no lifecycle policy, so nothing expires")
            continue
        try:
            rules = parse_policy(repository.lifecycle_policy)
        except PolicyError as exc:
            yield Outcome(repository.name, False, f"cannot tell what it expires: {exc}")
            continue
        verdicts = evaluate(rules, snapshot.images_in(repository), now)
        users: dict[str, list[RevisionRecord]] = {}
        for use in snapshot.uses_of(repository):
            if use.image is not None:
                users.setdefault(use.image.digest, []).append(use.revision)
        problems = []
        for digest in sorted(users, key=lambda d: min((r.family, r.revision) for r in users[d])):
            verdict = verdicts.get(digest)
            if verdict is None or (verdict.due is None and verdict.rule.counts):
                continue  # no rule selects it, or a count rule keeps it among the newest
            image = snapshot.image(repository, digest)
            tags = image.tags if image is not None else ()
            named = f"{repository.name}:{tags[0]}" if tags else f"{repository.name}@{short(digest)}"
            assert verdict.due is not None  # a time rule always has one; a count rule that keeps it was skipped
            when = "now" if verdict.removed_by(now) else f"on {_day(verdict.due)}"
            problems.append(f"{verdict.rule.describe()}: it removes {named}, used by {_labels(users[digest])}, {when}")
        message = "; ".join(problems) or f"no rule can expire the {len(users)} image(s) ACTIVE revisions use"
        yield Outcome(repository.name, not problems, message)


# -- families and services -----------------------------------------------------------------------------------------
def one_revision_per_image(snapshot: Snapshot) -> Iterator[Outcome]:
    for family in snapshot.scoped_families:
        revisions = [r for r in snapshot.active_revisions if r.family == family]
        by_images: dict[tuple[str, ...], list[RevisionRecord]] = {}
        for revision in revisions:
            key = tuple(sorted(u.identity for u in snapshot.uses(revision)))
            by_images.setdefault(key, []).append(revision)
        problems = [
            f"{_labels(group)} run the same image(s) {', '.join(short(i) for i in images)}"
            for images, group in by_images.items()
            if len(group) > 1
        ]
        message = "; ".join(problems) or f"{len(revisions)} ACTIVE revision(s), each with its own image(s)"
        yield Outcome(family, not problems, message)


def rollback_target(snapshot: Snapshot) -> Iterator[Outcome]:
    for service in snapshot.scoped_services:
        name = f"{service.cluster}/{service.service}"
        arn = snapshot.rollback_targets.get(service.arn)
        if not arn:
            yield Outcome(name, False, "no other revision ever ran to completion: a rollback has nowhere to go")
            continue
        label = revision_label(arn)
        revision = snapshot.revision_by_arn.get(arn)
        if revision is None:
            yield Outcome(name, False, f"its rollback target {label} no longer exists")
        elif revision.status != "ACTIVE":
            yield Outcome(name, False, f"its rollback target {label} is {revision.status}: it cannot be deployed")
        else:
            missing = [u.container.image for u in snapshot.uses(revision) if u.missing]
            if missing:
                yield Outcome(name, False, f"its rollback target {label} runs {', '.join(missing)}, no longer in ECR")
            else:
                yield Outcome(name, True, f"rolls back to {label}, ACTIVE, its images in ECR")


def live_revision_explained(snapshot: Snapshot) -> Iterator[Outcome]:
    """The revision a service runs comes from a commit (its commit tag, or an image tagged with a commit SHA): one
    registered by hand, or by a tool that does not say which commit, is drift nobody can trace back."""
    for service in snapshot.scoped_services:
        name = f"{service.cluster}/{service.service}"
        if not service.task_definition:
            yield Outcome(name, True, "runs no revision yet")
            continue
        label = revision_label(service.task_definition)
        revision = snapshot.revision_by_arn.get(service.task_definition)
        if revision is None:
            yield Outcome(name, False, f"cannot tell: its revision {label} is not in the library; sync the library")
        elif revision.commit:
            yield Outcome(name, True, f"runs {label}, commit {revision.commit[:12]}")
        else:
            by = f", registered by {revision.registered_by}" if revision.registered_by else ""
            yield Outcome(name, False, f"runs {label}, which no commit explains (no commit tag, no SHA image tag{by})")


def rollback_monitor(snapshot: Snapshot) -> Iterator[Outcome]:
    """The circuit breaker with rollback, or deployment alarms with rollback: either one rolls a failed deployment
    back (REL007 predates the alarms, hence its name)."""
    for service in snapshot.scoped_services:
        name = f"{service.cluster}/{service.service}"
        breaker = service.circuit_breaker and service.circuit_breaker_rollback
        alarms = ", ".join(service.alarm_names)
        if breaker and service.alarms_roll_back:
            yield Outcome(name, True, f"the circuit breaker and alarms {alarms} roll failed deployments back")
        elif breaker:
            yield Outcome(name, True, "the circuit breaker is on and rolls failed deployments back")
        elif service.alarms_roll_back:
            yield Outcome(name, True, f"alarms {alarms} roll failed deployments back (the circuit breaker does not)")
        else:
            problems = "; ".join((_breaker_problem(service), _alarms_problem(service)))
            yield Outcome(
                name,
                False,
                f"{problems}: turn on the circuit breaker with rollback, or deployment alarms with rollback, in "
                "its deploymentConfiguration",
            )


def _breaker_problem(service: ServiceRecord) -> str:
    if service.circuit_breaker:
        return "the circuit breaker stops failed deployments but does not roll them back"
    return "no deployment circuit breaker"


def _alarms_problem(service: ServiceRecord) -> str:
    alarms = ", ".join(service.alarm_names)
    if not service.alarm_names:
        return "no deployment alarms" if not service.alarms_enabled else "deployment alarms name no alarm"
    if not service.alarms_enabled:
        return f"deployment alarms ({alarms}) are not enabled"
    return f"alarms {alarms} fail deployments but do not roll them back"


# ECS's defaults where a service's configuration names none (ECS's API reference; the sandbox deploys by them).
LINEAR_STEP_BAKE_MINUTES = 6
CANARY_BAKE_MINUTES = 10


def bake_time(snapshot: Snapshot) -> Iterator[Outcome]:
    """BLUE_GREEN: a bake time (bakeTimeInMinutes) keeps the old revision running once production traffic moved, so
    a rollback is a traffic shift and alarms have time to go off. LINEAR and CANARY: the pause after each step or
    after the canary, when part of the traffic shows whether the new revision holds (their own bake time after the
    last shift is not asked for). ROLLING has none."""
    for service in snapshot.scoped_services:
        name = f"{service.cluster}/{service.service}"
        final = service.bake_time_minutes or 0
        if service.strategy == "BLUE_GREEN":
            if final > 0:
                yield Outcome(name, True, f"BLUE_GREEN, the old revision kept {final} minute(s) after traffic moves")
            else:
                yield Outcome(
                    name,
                    False,
                    "BLUE_GREEN with no bake time: the old revision stops as soon as production traffic moves, so "
                    "alarms have no time to fail it and a rollback must start it again; set "
                    "deploymentConfiguration.bakeTimeInMinutes above 0",
                )
        elif service.strategy == "LINEAR":
            step = _given(service.step_bake_time_minutes, LINEAR_STEP_BAKE_MINUTES)
            if step > 0:
                yield Outcome(name, True, f"LINEAR, each traffic step baking {step} minute(s)")
            else:
                yield Outcome(
                    name,
                    False,
                    "LINEAR with no step bake time: each traffic step follows the last at once, with no time to see "
                    "one go wrong; set linearConfiguration.stepBakeTimeInMinutes above 0",
                )
        elif service.strategy == "CANARY":
            canary = _given(service.canary_bake_time_minutes, CANARY_BAKE_MINUTES)
            if canary > 0:
                yield Outcome(name, True, f"CANARY, the canary baking {canary} minute(s) before the rest moves")
            else:
                yield Outcome(
                    name,
                    False,
                    "CANARY with no canary bake time: all traffic follows the canary at once, with no time to see "
                    "it go wrong; set canaryConfiguration.canaryBakeTimeInMinutes above 0",
                )
        else:
            yield Outcome(name, True, f"{service.strategy}: no bake time applies (no traffic shift to wait after)")


def _given(minutes: int | None, default: int) -> int:
    return default if minutes is None else minutes


def hook_roles(snapshot: Snapshot) -> Iterator[Outcome]:
    for service in snapshot.scoped_services:
        name = f"{service.cluster}/{service.service}"
        lambdas = [h for h in service.lifecycle_hooks if h.calls_lambda]
        missing = [h for h in lambdas if not h.role_arn]
        if missing:
            named = ", ".join(f"{_function(h.target_arn)} at {'/'.join(h.stages) or 'no stage'}" for h in missing)
            yield Outcome(
                name,
                False,
                f"Lambda hook(s) without a roleArn ({named}): ECS has no role to invoke them with; give each "
                "AWS_LAMBDA hook the roleArn of a role ECS can assume to call its function",
            )
        elif lambdas:
            functions = ", ".join(_function(h.target_arn) for h in lambdas)
            yield Outcome(name, True, f"its Lambda hook(s) ({functions}) name the role ECS invokes them with")
        elif service.lifecycle_hooks:
            yield Outcome(name, True, f"{len(service.lifecycle_hooks)} PAUSE hook(s): no function to call")
        else:
            yield Outcome(name, True, "no lifecycle hooks")


def _function(arn: str | None) -> str:
    """``arn:aws:lambda:...:function:smoke-test`` -> ``smoke-test``."""
    if not arn:
        return "a hook naming no function"
    _, marker, rest = arn.partition(":function:")
    return rest if marker else arn


def version_consistency(snapshot: Snapshot) -> Iterator[Outcome]:
    for service in snapshot.scoped_services:
        if not service.task_definition:
            continue  # nothing runs
        name, label = f"{service.cluster}/{service.service}", revision_label(service.task_definition)
        containers = snapshot.version_consistency.get(service.task_definition)
        if containers is None:
            yield Outcome(
                name,
                False,
                f"cannot tell: {label} is not in the library's cache; sync the library (opskit check without "
                "--no-sync, or Snapshot.from_library) so its container definitions are read",
            )
            continue
        revision = snapshot.revision_by_arn.get(service.task_definition)
        pinned = {c.name for c in revision.containers if c.ref.pinned} if revision is not None else set()
        disabled = [c for c, setting in containers if setting.lower() == "disabled"]
        loose = [c for c in disabled if c not in pinned]
        if loose:
            yield Outcome(
                name,
                False,
                f"{label} has versionConsistency disabled for container(s) {', '.join(loose)}: ECS resolves their "
                "tags at each task start, so one deployment's tasks can run different images; register a revision "
                "without versionConsistency disabled (or pin those images by digest) and deploy it",
            )
        else:
            message = f"{label} has ECS resolve each container's image once per deployment"
            if disabled:
                message += f" (versionConsistency disabled, but pinned by digest: {', '.join(disabled)})"
            yield Outcome(name, True, message)


RELEASE_CHECKS = (
    Check(
        id="REL001",
        name="image-reference",
        group="release",
        severity="high",
        title="Images of ACTIVE revisions are tagged with a commit SHA or pinned by digest",
        remediation="Tag each image with the commit SHA it was built from (opskit release does) or pin it by digest "
        "(repository@sha256:...), register a revision that uses it and deploy that.",
        resource_type="revision",
        evaluate=image_references,
    ),
    Check(
        id="REL002",
        name="tag-immutability",
        group="release",
        severity="high",
        title="Commit SHA tags cannot be overwritten in the repository",
        remediation="aws ecr put-image-tag-mutability --repository-name NAME --image-tag-mutability IMMUTABLE, or "
        "keep only exclusion filters that can never match a commit SHA (such as latest or dev-*).",
        resource_type="repository",
        references=(
            Reference(
                SECURITY_HUB,
                "ECR.2",
                "ECR private repositories should have tag immutability configured",
                "https://docs.aws.amazon.com/securityhub/latest/userguide/ecr-controls.html#ecr-2",
            ),
            Reference(
                AWS_CONFIG,
                "ecr-private-tag-immutability-enabled",
                "",
                "https://docs.aws.amazon.com/config/latest/developerguide/ecr-private-tag-immutability-enabled.html",
            ),
            Reference(CHECKOV, "CKV_AWS_51", "Ensure ECR Image Tags are immutable"),
        ),
        evaluate=tag_immutability,
    ),
    Check(
        id="REL003",
        name="one-image-per-commit",
        group="release",
        severity="high",
        title="Each commit SHA tag names exactly one image",
        remediation="Never push a commit SHA tag twice: make the repository IMMUTABLE, build a wrong image again "
        "from a new commit, and pin revisions to the digest they are meant to run.",
        resource_type="repository",
        evaluate=one_digest_per_sha,
    ),
    Check(
        id="REL004",
        name="one-revision-per-image",
        group="release",
        severity="medium",
        title="Each image has one ACTIVE revision in its family",
        remediation="Release a commit once: reuse the revision that already runs its image (opskit release does) "
        "and deregister the duplicate revisions no service runs or rolls back to.",
        resource_type="family",
        evaluate=one_revision_per_image,
    ),
    Check(
        id="REL005",
        name="images-exist",
        group="release",
        severity="critical",
        title="Every image an ACTIVE revision refers to is in ECR",
        remediation="Push the image again from its commit, or deregister the revision so nothing deploys it.",
        resource_type="revision",
        evaluate=images_exist,
    ),
    Check(
        id="REL006",
        name="rollback-target",
        group="release",
        severity="critical",
        title="Each service's rollback target exists, is ACTIVE and its images are in ECR",
        remediation="Keep the revision a rollback goes back to ACTIVE and its images out of lifecycle rules; a "
        "service with no earlier completed revision gets one with its next release.",
        resource_type="service",
        evaluate=rollback_target,
    ),
    Check(
        id="REL007",
        name="circuit-breaker",  # kept from before alarms counted too: item names and selections rely on it
        group="release",
        severity="high",
        title="A failed deployment rolls back: the circuit breaker or deployment alarms, with rollback",
        remediation="aws ecs update-service --cluster CLUSTER --service SERVICE --deployment-configuration "
        "'deploymentCircuitBreaker={enable=true,rollback=true}', or with "
        "'alarms={alarmNames=[ALARM],enable=true,rollback=true}' and CloudWatch alarms that watch the service.",
        resource_type="service",
        evaluate=rollback_monitor,
    ),
    Check(
        id="REL008",
        name="scan-on-push",
        group="release",
        severity="high",
        title="Images are scanned when pushed",
        remediation="aws ecr put-image-scanning-configuration --repository-name NAME "
        "--image-scanning-configuration scanOnPush=true (or a registry scanning rule that covers it).",
        resource_type="repository",
        references=(
            Reference(
                SECURITY_HUB,
                "ECR.1",
                "ECR private repositories should have image scanning configured",
                "https://docs.aws.amazon.com/securityhub/latest/userguide/ecr-controls.html#ecr-1",
            ),
            Reference(
                AWS_CONFIG,
                "ecr-private-image-scanning-enabled",
                "",
                "https://docs.aws.amazon.com/config/latest/developerguide/ecr-private-image-scanning-enabled.html",
            ),
            Reference(CHECKOV, "CKV_AWS_163", "Ensure ECR image scanning on push is enabled"),
        ),
        evaluate=scan_on_push,
    ),
    Check(
        id="REL009",
        name="lifecycle-policy",
        group="release",
        severity="medium",
        title="The repository has a lifecycle policy",
        remediation="aws ecr put-lifecycle-policy with a rule that expires untagged images (for example after 14 "
        "days) and never selects the commit SHA tags of revisions you keep.",
        resource_type="repository",
        references=(
            Reference(
                SECURITY_HUB,
                "ECR.3",
                "ECR repositories should have at least one lifecycle policy configured",
                "https://docs.aws.amazon.com/securityhub/latest/userguide/ecr-controls.html#ecr-3",
            ),
            Reference(
                AWS_CONFIG,
                "ecr-private-lifecycle-policy-configured",
                "",
                "https://docs.aws.amazon.com/config/latest/developerguide/ecr-private-lifecycle-policy-configured.html",
            ),
        ),
        evaluate=lifecycle_policy,
    ),
    Check(
        id="REL010",
        name="lifecycle-keeps-active-images",
        group="release",
        severity="critical",
        title="No lifecycle rule can expire an image an ACTIVE revision refers to",
        remediation="Select only untagged images or tags releases never use, or put first a rule that selects the "
        "commit SHA tags with a count above the number of revisions you keep ACTIVE.",
        resource_type="repository",
        evaluate=lifecycle_keeps_active_images,
    ),
    Check(
        id="REL011",
        name="bake-time",
        group="release",
        severity="medium",
        title="Traffic-shifting deployments bake: BLUE_GREEN keeps the old revision a while, LINEAR and CANARY "
        "pause after each shift",
        remediation="aws ecs update-service --cluster CLUSTER --service SERVICE --deployment-configuration "
        "'strategy=BLUE_GREEN,bakeTimeInMinutes=10' (LINEAR: linearConfiguration={stepBakeTimeInMinutes=N}, CANARY: "
        "canaryConfiguration={canaryBakeTimeInMinutes=N}), with N above 0.",
        resource_type="service",
        evaluate=bake_time,
    ),
    Check(
        id="REL012",
        name="hook-roles",
        group="release",
        severity="high",
        title="Every Lambda lifecycle hook names the role ECS invokes it with",
        remediation="Give each AWS_LAMBDA entry of deploymentConfiguration.lifecycleHooks a roleArn: a role ECS can "
        "assume (trusting ecs.amazonaws.com) with lambda:InvokeFunction on the hook's function.",
        resource_type="service",
        evaluate=hook_roles,
    ),
    Check(
        id="REL013",
        name="version-consistency",
        group="release",
        severity="high",
        title="ECS resolves each image of the revision a service runs once per deployment (versionConsistency)",
        remediation="Register a revision whose container definitions leave versionConsistency out (or set it to "
        "enabled), or pin their images by digest, and deploy it (opskit release copies the live revision).",
        resource_type="service",
        evaluate=version_consistency,
    ),
    Check(
        id="REL014",
        name="live-revision-explained",
        group="release",
        severity="medium",
        title="The revision each service runs comes from a commit (no drift from hand-made revisions)",
        remediation="Release the service from its repository (opskit release tags each revision with its commit), "
        "and make changes there rather than in the console.",
        resource_type="service",
        evaluate=live_revision_explained,
    ),
)

__all__ = ["RELEASE_CHECKS", "short"]
