"""Applying a release plan, stage by stage: build, tag, push, register, update, wait.

Every stage checks the world before acting, so a release that was interrupted (or run twice) finishes from
where it is: an image already in ECR is not pushed again, a revision that already is this release is reused, a
service already on it is not updated again. Each completed stage is written to a journal.

>>> record = apply_release(plan, aws, progress=print)     # doctest: +SKIP
>>> record.outcome, record.revision_arn
('COMPLETED', 'arn:aws:ecs:...:task-definition/web:31')
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opskit.aws import Aws
from opskit.errors import AwsError, ConflictError, OpskitError
from opskit.gateway import Gateway, RegistryAuth
from opskit.journal import Journal, state_dir
from opskit.lock import holders_in, service_lock
from opskit.progress import Progress, ProgressEvent, ignore
from opskit.release import images
from opskit.release.failure import diagnose
from opskit.release.plan import ReleasePlan, existing_digest
from opskit.release.record import ReleaseRecord
from opskit.release.rollout import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_TIMEOUT,
    DEPLOYED,
    Outcome,
    PauseAnswer,
    Rollout,
    Until,
    Verdict,
    strategy_of,
)
from opskit.release.taskdef import with_images

FRESH_PLAN_SECONDS = 30.0  # a plan younger than this is the world as it is; an older one is read again where it matters


def _now() -> str:
    return datetime.now(UTC).isoformat()


class Stages:
    """Reports each stage's start and end through the progress protocol and times it."""

    def __init__(self, progress: Progress, record: ReleaseRecord) -> None:
        self.progress = progress
        self.record = record

    @contextmanager
    def stage(self, name: str, message: str) -> Iterator[None]:
        self.progress(ProgressEvent(name, "started", message))
        started = time.monotonic()
        try:
            yield
        except BaseException as exc:
            self.record.stages[name] = round(time.monotonic() - started, 3)
            self.progress(ProgressEvent(name, "failed", str(exc)))
            raise
        self.record.stages[name] = round(time.monotonic() - started, 3)
        self.progress(ProgressEvent(name, "done", message))

    def skip(self, name: str, message: str) -> None:
        self.record.stages[name] = 0.0
        self.progress(ProgressEvent(name, "skipped", message))

    def log(self, name: str) -> Any:
        return lambda line: self.progress(ProgressEvent(name, "log", line))


def journal_for(kind: str, cluster: str, service: str, key: str, folder: Path | None = None) -> Journal:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in f"{cluster}-{service}-{key}")
    return Journal((folder or state_dir()) / "journal" / kind / f"{safe}.jsonl")


def apply_release(
    plan: ReleasePlan,
    aws: Aws,
    *,
    progress: Progress = ignore,
    docker: Any = None,
    timeout: float = DEFAULT_TIMEOUT,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    journal_dir: Path | None = None,
    on_pause: PauseAnswer | None = None,
    until: Until = DEPLOYED,
) -> ReleaseRecord:
    """Carry out ``plan``. Returns the record; a failed rollout is a record with ``ok`` False, not an exception.
    ``on_pause`` answers the PAUSE hooks the deployment waits at, and ``until`` says where following it ends (see
    :meth:`Rollout.follow`).

    Errors that stop a release before it deploys (build failure, refused push, a service that changed since the
    plan, another release holding the lock) raise one-line :class:`~opskit.errors.OpskitError`.
    """
    record, journal, stages = begin(plan, progress, journal_dir)
    # The plan's read of the service's tags is the lock's first read while the plan is fresh.
    fresh = time.monotonic() - plan.planned_at < FRESH_PLAN_SECONDS
    holders = holders_in(plan.service_tags) if fresh else None
    gateway = plan.gateway or Gateway(aws)
    with refusals(record, journal), service_lock(aws, plan.service_arn, force=plan.options.force, holders=holders):
        prepare(plan, aws, gateway, stages, record, journal, docker)
        rollout, since = roll_out(plan, gateway, stages, record, journal)
        verdict = follow(rollout, stages, record, since, timeout, poll_interval, on_pause, until)
    return settle(record, journal, verdict)


def begin(plan: ReleasePlan, progress: Progress, journal_dir: Path | None) -> tuple[ReleaseRecord, Journal, Stages]:
    """The record, the journal (its ``started`` entry written) and the stages of a release of ``plan``."""
    options = plan.options
    record = ReleaseRecord(
        kind="release",
        cluster=options.cluster,
        service=options.service,
        commit=plan.commit.sha,
        image=plan.image,
        digest=plan.existing_digest,
        revision_arn=plan.reuse_revision,
        deployment_id=None,
        outcome="IN_PROGRESS",
        reason="",
        started_at=_now(),
    )
    journal = journal_for("release", options.cluster, options.service, plan.tag, journal_dir)
    journal.write("started", plan=plan.summary())
    return record, journal, Stages(progress, record)


def prepare(
    plan: ReleasePlan,
    aws: Aws,
    gateway: Gateway,
    stages: Stages,
    record: ReleaseRecord,
    journal: Journal,
    docker: Any = None,
) -> None:
    """Everything before the service changes: the repository, the image in ECR, the revision registered
    (``record.revision_arn``)."""
    _ensure_repository(plan, aws, stages)
    digests = _build_and_push(plan, gateway, stages, record, journal, docker if docker is not None else plan.docker)
    _register(plan, aws, stages, record, journal, digests)


def roll_out(
    plan: ReleasePlan, gateway: Gateway, stages: Stages, record: ReleaseRecord, journal: Journal
) -> tuple[Rollout, Any]:
    """Point the service at the prepared revision (see :func:`deploy`)."""
    assert record.revision_arn is not None, "prepare() registers the revision first"
    return deploy(
        gateway,
        plan.options.cluster,
        plan.options.service,
        expected_live=plan.live_arn,
        revision_arn=record.revision_arn,
        force=plan.options.force,
        stages=stages,
        record=record,
        journal=journal,
    )


@contextmanager
def refusals(record: ReleaseRecord, journal: Journal) -> Iterator[None]:
    """A release or rollback stopped before its rollout settled: record and journal why, raise one line."""
    try:
        yield
    except OpskitError as exc:  # a user's error, or AWS refused or was lost (opskit.aws translated it)
        _refuse(record, journal, exc)
        raise


def _refuse(record: ReleaseRecord, journal: Journal, error: OpskitError) -> None:
    record.outcome, record.reason, record.finished_at = Outcome.REFUSED.value, str(error), _now()
    journal.write("refused", reason=str(error))


def settle(record: ReleaseRecord, journal: Journal, verdict: Verdict) -> ReleaseRecord:
    """The rollout's verdict, in the record and the journal."""
    record.outcome, record.reason, record.finished_at = verdict.outcome.value, verdict.reason, _now()
    cause = {"cause": record.cause} if record.cause else {}
    journal.write("finished", outcome=verdict.outcome.value, reason=verdict.reason, **cause)
    return record


def _ensure_repository(plan: ReleasePlan, aws: Aws, stages: Stages) -> None:
    for repository in (plan.repository, *(a.repository for a in plan.also)):
        if repository.exists:
            continue
        with stages.stage("repository", f"creating {repository.name} (IMMUTABLE, scan on push)"):
            try:
                aws.client("ecr").create_repository(
                    repositoryName=repository.name,
                    imageTagMutability="IMMUTABLE",
                    imageScanningConfiguration={"scanOnPush": True},
                )
            except AwsError as exc:
                if exc.code != "RepositoryAlreadyExistsException":
                    raise


def _build_and_push(
    plan: ReleasePlan, gateway: Gateway, stages: Stages, record: ReleaseRecord, journal: Journal, docker: Any
) -> dict[str, str]:
    """The commit's image in ECR: reused when the plan found it there, else built (unless the engine has it) and
    pushed; then in each other repository of an --image release. An image of this commit that another release
    pushes meanwhile is reused, never overwritten: an IMMUTABLE repository refuses our push then, and any other is
    asked before the push. Returns each repository's digest of it, by repository URI."""
    if plan.existing_digest:
        stages.skip("build", f"{plan.image} is already in ECR")
        stages.skip("push", f"reusing {plan.existing_digest}")
        record.digest = plan.existing_digest
        return {plan.repository.uri: plan.existing_digest, **_push_also(plan, gateway, stages, journal, docker, None)}
    if docker is None:
        from opskit.docker_engine import connect

        docker = connect()
    if plan.local_image:
        stages.skip("build", f"{plan.image} is already in the Docker engine ({plan.local_image[:19]})")
        image_id = plan.local_image
    else:
        with stages.stage("build", f"building {plan.options.dockerfile} for {plan.platform}"):
            image_id = images.build(docker, plan.build_spec(_now()), plan.image, stages.log("build"))
            journal.write("built", image_id=image_id)
    with stages.stage("tag", f"tagged {plan.image}"):
        if plan.options.tag_latest_locally:
            docker.api.tag(image_id, plan.repository.uri, "latest")  # for local use; never in a task definition
    auth = gateway.registry_auth()
    with stages.stage("push", f"pushing {plan.image}"):
        record.digest = _push(plan, gateway, docker, auth, stages)
        journal.write("pushed", digest=record.digest)
    return {plan.repository.uri: record.digest, **_push_also(plan, gateway, stages, journal, docker, image_id)}


def _push_also(
    plan: ReleasePlan, gateway: Gateway, stages: Stages, journal: Journal, docker: Any, image_id: str | None
) -> dict[str, str]:
    """The commit's one image in each other repository of an --image release (already there, or pushed: pulled
    from the first repository first when this release built nothing), by repository URI."""
    digests: dict[str, str] = {}
    for also in plan.also:
        if also.existing_digest:
            stages.log("push")(f"{also.image(plan.tag)} is already in ECR ({also.existing_digest[:19]})")
            digests[also.repository.uri] = also.existing_digest
            continue
        if docker is None:
            from opskit.docker_engine import connect

            docker = connect()
        auth = gateway.registry_auth()
        with stages.stage("push", f"pushing {also.image(plan.tag)}"):
            if image_id is None:  # the first repository had it: the same image, not a rebuild
                docker.api.pull(plan.repository.uri, tag=plan.tag, auth_config=auth.docker_config())
                image_id = str(docker.api.inspect_image(plan.image)["Id"])
            docker.api.tag(image_id, also.repository.uri, plan.tag)
            digests[also.repository.uri] = images.push(docker, also.repository.uri, plan.tag, auth, stages.log("push"))
            journal.write("pushed", repository=also.repository.name, digest=digests[also.repository.uri])
    return digests


def _push(plan: ReleasePlan, gateway: Gateway, docker: Any, auth: RegistryAuth, stages: Stages) -> str:
    """The digest of the commit's image in ECR after pushing it (or finding another push of it there)."""
    if plan.repository.mutability != "IMMUTABLE":  # a tag that can move is looked at before it is pushed over
        found = existing_digest(gateway, plan.repository, plan.tag, plan.commit)
        if found:
            return found
    try:
        pushed = images.push(docker, plan.repository.uri, plan.tag, auth, stages.log("push"))
    except images.TagTakenError:
        found = existing_digest(gateway, plan.repository, plan.tag, plan.commit)  # refuses another commit's image
        if found is None:
            raise
        return found
    if plan.repository.mutability == "IMMUTABLE":
        return pushed  # the registry took our manifest under a tag that cannot move: ECR holds what we pushed
    confirmed = gateway.image_digest(plan.repository.name, {"imageTag": plan.tag})
    if confirmed != pushed:
        raise ConflictError(
            f"ECR holds {confirmed} under {plan.tag}, not the pushed {pushed}: check the repository and release again"
        )
    return pushed


def _register(
    plan: ReleasePlan, aws: Aws, stages: Stages, record: ReleaseRecord, journal: Journal, digests: dict[str, str]
) -> None:
    if plan.reuse_revision:
        stages.skip("register", f"{plan.reuse_revision.rsplit('/', 1)[-1]} already is this release")
        record.revision_arn = plan.reuse_revision
        return
    chosen = plan.images({**digests, plan.repository.uri: record.digest or ""})
    body = with_images(plan.new_body, chosen)
    body["tags"] = list(plan.new_tags)
    image = ", ".join(dict.fromkeys(chosen.values()))
    with stages.stage("register", f"registering a revision of {plan.family} with {image}"):
        answer = aws.call_json("ecs", "RegisterTaskDefinition", body)
        record.revision_arn = str(answer["taskDefinition"]["taskDefinitionArn"])
        journal.write("registered", revision_arn=record.revision_arn)


def deploy(
    gateway: Gateway,
    cluster: str,
    service: str,
    *,
    expected_live: str,
    revision_arn: str,
    force: bool,
    stages: Stages,
    record: ReleaseRecord,
    journal: Journal,
) -> tuple[Rollout, Any]:
    """Point the service at ``revision_arn`` after re-reading it; returns the rollout to follow and when it began
    (to hide older events).

    Refuses, unless ``force``, when the service moved off ``expected_live`` since the plan or a deployment is
    still in progress: that is someone else releasing at the same time. A deployment of ``revision_arn`` itself,
    in progress or done, is followed instead. A service whose deployments ECS does not run is refused.
    """
    aws = gateway.aws
    _, current_service = gateway.service(cluster, service)
    strategy_of(current_service)
    current = str(current_service["taskDefinition"])
    deployments = current_service.get("deployments", [])
    primary: dict[str, Any] = next((d for d in deployments if d.get("status") == "PRIMARY"), {})
    short = revision_arn.rsplit("/", 1)[-1]
    if current == revision_arn and primary.get("taskDefinition") == revision_arn:
        # Already deployed, perhaps by a run of this release killed before it heard ECS answer: follow that
        # deployment (still rolling out or done) rather than refuse it as someone else's or start another.
        rolling = len(deployments) > 1 or primary.get("rolloutState") == "IN_PROGRESS"
        stages.skip("update", f"{service} already {'rolls out' if rolling else 'runs'} {short}")
        record.deployment_id = primary.get("id")
        rollout = Rollout.for_service(aws, current_service)
        record.service_deployment_arn = rollout.arn
        return rollout, primary.get("createdAt") if rolling else None
    if not force:
        if current != expected_live:
            raise ConflictError(
                f"{service} moved from {expected_live.rsplit('/', 1)[-1]} to {current.rsplit('/', 1)[-1]} "
                "since the plan: plan again, or pass --force"
            )
        if len(deployments) > 1 or primary.get("rolloutState") == "IN_PROGRESS":
            raise ConflictError(
                f"{service} has a deployment in progress ({primary.get('id')}): wait for it to finish, or pass --force"
            )
    with stages.stage("update", f"updating {service} to {short}"):
        answer = aws.client("ecs").update_service(cluster=cluster, service=service, taskDefinition=revision_arn)
        updated = answer["service"]
        ours = next(d for d in updated["deployments"] if d.get("status") == "PRIMARY")
        record.deployment_id = str(ours["id"])
        rollout = Rollout.for_service(aws, updated)
        record.service_deployment_arn = rollout.arn
        journal.write("updated", deployment_id=record.deployment_id, service_deployment_arn=rollout.arn)
        return rollout, ours.get("createdAt")


def follow(
    rollout: Rollout,
    stages: Stages,
    record: ReleaseRecord,
    since: Any,
    timeout: float,
    poll: float,
    on_pause: PauseAnswer | None = None,
    until: Until = DEPLOYED,
) -> Verdict:
    """Follow the rollout to ECS's verdict (or where ``until`` says); the wait stage fails (in the progress) when the
    rollout does."""
    stages.progress(ProgressEvent("wait", "started", f"following {rollout.strategy} deployment {record.deployment_id}"))
    started = time.monotonic()
    verdict = rollout.follow(
        progress=stages.progress, timeout=timeout, poll_interval=poll, since=since, on_pause=on_pause, until=until
    )
    record.stages["wait"] = round(time.monotonic() - started, 3)
    if not verdict.ok:
        failure = diagnose(
            rollout.aws, verdict.record, record.revision_arn, cluster=rollout.cluster, service=rollout.service
        )
        record.failure = failure.to_dict()
        if failure.cause and failure.cause != failure.reason:
            stages.progress(ProgressEvent("wait", "log", f"cause: {failure.cause}"))
    stages.progress(ProgressEvent("wait", "done" if verdict.ok else "failed", verdict.reason))
    return verdict
