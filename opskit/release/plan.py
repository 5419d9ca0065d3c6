"""The release plan: what a release of this commit to this service would do, decided without changing anything.

>>> plan = plan_release(aws, ReleaseOptions(cluster="prod", service="web", path="."))   # doctest: +SKIP
>>> plan.to_frame()            # one row per step: build, push, register, update, wait; then the rollout's stages
>>> print("\\n".join(plan.diff))  # the live revision against the new one
>>> plan.rollout.shortest      # what the deployment goes through, and the least time it takes: bake times
'at least 10 min (bake time 10 min)'
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.aws import Aws
from opskit.errors import AwsError, ConfigError, ConflictError, NotFoundError, OpskitError
from opskit.gateway import Gateway
from opskit.git import Checkout, read_checkout
from opskit.records import COMMIT_SHA, REPOSITORY_NAME, ImageRef, managed_by
from opskit.release.images import OCI_REVISION, BuildSpec
from opskit.release.rollout import strategy_of
from opskit.release.source import read_task_definition
from opskit.release.stages import RolloutPlan, rollout_plan
from opskit.release.taskdef import MAX_BODY_BYTES, MAX_TAGS, body_size, diff, registrable, same_body, with_images

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_SHA_LENGTH = 12
REUSE_LOOKBACK = 20  # newest ACTIVE revisions of the family searched for one that already is this release


@dataclass(frozen=True)
class ReleaseOptions:
    """What to release where. ``path`` is any folder in the git checkout; the build context is ``path``."""

    cluster: str
    service: str
    containers: tuple[str, ...] = ()
    repository: str | None = None
    path: Path = Path(".")
    dockerfile: str = "Dockerfile"
    build_args: dict[str, str] = field(default_factory=dict, repr=False)  # they may carry tokens: never shown
    target: str | None = None
    platform: str | None = None  # default: from the live revision's runtimePlatform, else linux/amd64
    tag: str | None = None  # the commit SHA (a prefix of HEAD's); default HEAD's first sha_length digits
    sha_length: int = DEFAULT_SHA_LENGTH
    allow_dirty: bool = False
    create_repository: bool = False
    tag_latest_locally: bool = False
    force: bool = False
    # A task definition kept in the repository (a path relative to the checkout, or absolute): the new revision is
    # rendered from it with ``variables`` instead of copied from the live one.
    task_definition: Path | None = None
    variables: dict[str, str] = field(default_factory=dict)
    # Container -> the ECR repository its image goes to (--image NAME=REPOSITORY): several containers, from several
    # repositories, get the commit's one image in one release (built once, pushed to each).
    images: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        if not 7 <= self.sha_length <= 40:
            raise ConfigError(f"SHA length {self.sha_length} is out of range: pass a length from 7 to 40")
        for name, value in (("--cluster", self.cluster), ("--service", self.service)):
            if not value or not value.strip():
                raise ConfigError(f"{name} is empty: pass the name of your ECS {name[2:]}")
        if self.tag is not None and not COMMIT_SHA.match(self.tag):
            raise ConfigError(
                f"release tag {self.tag!r} is not a commit SHA: opskit tags each release with its commit; "
                "omit --tag to use HEAD's"
            )
        if self.images and (self.containers or self.repository):
            raise ConfigError("--image names each container and its repository: leave out --container and --repository")
        for name, repository in self.images.items():
            if not REPOSITORY_NAME.match(repository) or len(repository) > 256:
                raise ConfigError(
                    f"--image {name}={repository}: {repository!r} is not a valid ECR repository name: lower-case "
                    "letters, digits, . _ - and /"
                )
        if self.repository is not None and (not REPOSITORY_NAME.match(self.repository) or len(self.repository) > 256):
            raise ConfigError(
                f"{self.repository!r} is not a valid ECR repository name: lower-case letters, digits, . _ - and /"
            )


@dataclass(frozen=True)
class Repository:
    name: str
    uri: str
    exists: bool
    mutability: str | None = None
    scan_on_push: bool | None = None


@dataclass(frozen=True)
class Also:
    """Another repository of a release (``--image``): the commit's one image goes there too, for ``containers``."""

    repository: Repository
    containers: tuple[str, ...]
    existing_digest: str | None  # the commit's image is already there under the release's tag

    def image(self, tag: str) -> str:
        return f"{self.repository.uri}:{tag}"


@dataclass(frozen=True)
class Step:
    name: str
    action: str  # "run", "skip", "create", or "unavailable" (with the reason as its detail)
    detail: str


@dataclass(frozen=True)
class ReleasePlan:
    options: ReleaseOptions
    commit: Checkout
    tag: str
    repository: Repository
    existing_digest: str | None  # the tag is already in ECR: this image is reused, nothing is built or pushed
    cluster_arn: str
    service_arn: str
    live_arn: str
    live_body: dict[str, Any]
    containers: tuple[str, ...]
    new_body: dict[str, Any]  # with the image by tag; a dirty release pins it by digest after the push
    reuse_revision: str | None  # a revision that already is this release
    platform: str
    diff: tuple[str, ...]
    steps: tuple[Step, ...]
    # Why the image cannot be built here (no Docker engine answers), when it must be: build and push are unavailable.
    build_unavailable: OpskitError | None = None
    # The image id of this commit's image in the Docker engine (tagged as the release's image): pushed, not rebuilt.
    local_image: str | None = None
    service_tags: tuple[dict[str, str], ...] = ()  # the service's tags as the plan read them (lock holders among them)
    live_tags: tuple[dict[str, str], ...] = ()  # the live revision's tags
    new_tags: tuple[dict[str, str], ...] = ()  # the new revision's: the live ones (or the file's) and its commit
    source: str = "live"  # where the new revision comes from: "live" (a copy), or the task definition file
    # The other repositories of an --image release, each with its containers and the commit's image if already there.
    also: tuple[Also, ...] = ()
    warnings: tuple[str, ...] = ()  # what a person should know before going ahead (an IaC-managed service ...)
    strategy: str = "ROLLING"  # how ECS deploys the service (deploymentConfiguration.strategy)
    # What the deployment goes through: its stages with their hooks and bake times, its alarms and circuit breaker.
    rollout: RolloutPlan | None = None
    planned_at: float = field(default_factory=time.monotonic)
    # The engine the plan asked (it is asked again only when this is gone): not part of what the plan says.
    docker: Any = field(default=None, compare=False, repr=False)
    # The reads it made, and their credentials, for the apply that carries it out: not part of what the plan says.
    gateway: Gateway | None = field(default=None, compare=False, repr=False)

    @property
    def image(self) -> str:
        return f"{self.repository.uri}:{self.tag}"

    @property
    def family(self) -> str:
        return str(self.live_body["family"])

    def images(self, digests: dict[str, str] | None = None) -> dict[str, str]:
        """Container -> the image reference the new revision gives it: ``repository:tag``, or, with ``digests`` (by
        repository URI) and a dirty tree, ``repository@digest``."""
        also = {c for a in self.also for c in a.containers}
        targets = [(self.repository, tuple(c for c in self.containers if c not in also))]
        targets += [(a.repository, a.containers) for a in self.also]
        out = {}
        for repository, containers in targets:
            digest = (digests or {}).get(repository.uri)
            reference = (
                f"{repository.uri}@{digest}" if self.pin_by_digest and digest else f"{repository.uri}:{self.tag}"
            )
            out.update(dict.fromkeys(containers, reference))
        return out

    @property
    def already_live(self) -> bool:
        return self.reuse_revision == self.live_arn

    @property
    def pin_by_digest(self) -> bool:
        return self.commit.dirty

    def build_spec(self, created: str) -> BuildSpec:
        labels = {OCI_REVISION: self.commit.sha, "org.opencontainers.image.created": created}
        if self.commit.remote_url:
            labels["org.opencontainers.image.source"] = self.commit.remote_url
        return BuildSpec(
            context=self.options.path,
            dockerfile=self.options.dockerfile,
            build_args=dict(self.options.build_args),
            target=self.options.target,
            platform=self.platform,
            labels=labels,
        )

    # -- how it shows itself ----------------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        return {
            "cluster": self.options.cluster,
            "service": self.options.service,
            "commit": self.commit.sha,
            "dirty": self.commit.dirty,
            "image": self.image,
            "existing_digest": self.existing_digest,
            "repository": self.repository.name,
            "live_revision": self.live_arn,
            "source": self.source,
            "also": [
                {
                    "repository": a.repository.name,
                    "containers": list(a.containers),
                    "existing_digest": a.existing_digest,
                }
                for a in self.also
            ],
            "warnings": list(self.warnings),
            "containers": list(self.containers),
            "reuse_revision": self.reuse_revision,
            "platform": self.platform,
            "build_unavailable": str(self.build_unavailable) if self.build_unavailable else None,
            "local_image": self.local_image,
            "rollout": self.rollout.to_dict() if self.rollout else None,
        }

    def rows(self) -> list[tuple[str, str, str]]:
        """(step, action, detail): one per step, in order; then, for a deployment that goes through ECS's lifecycle
        stages, one per stage (action ``stage``) and its alarms and circuit breaker (action ``monitor``). A ROLLING
        deployment is one stage: the wait row says it, with its monitors."""
        rows = [(s.name, s.action, s.detail) for s in self.steps]
        if self.rollout is None:
            return rows
        if self.rollout.staged:
            return [*rows, *self.rollout.rows()]
        said = [detail if action == "stage" else f"{name}: {detail}" for name, action, detail in self.rollout.rows()]
        return [
            (name, action, "; ".join([detail, *said]) if name == "wait" else detail) for name, action, detail in rows
        ]

    def to_frame(self) -> pd.DataFrame:
        """One row per step, in order, then the rollout's stages (:meth:`rows`)."""
        import pandas as pd

        return pd.DataFrame(self.rows(), columns=["step", "action", "detail"]).astype("string")

    def to_dict(self) -> dict[str, Any]:
        return {**self.summary(), "steps": [s.__dict__ for s in self.steps], "diff": list(self.diff)}

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(action)}</td><td>{html.escape(detail)}</td></tr>"
            for name, action, detail in self.rows()
        )
        diff_html = html.escape("\n".join(self.diff)) or "(no change)"
        return (
            f"<div class='opskit-plan'><b>Release {html.escape(self.tag)} to "
            f"{html.escape(self.options.cluster)}/{html.escape(self.options.service)}</b>"
            f"<table><tr><th>step</th><th>action</th><th>detail</th></tr>{rows}</table>"
            f"<pre>{diff_html}</pre></div>"
        )


def plan_release(aws: Aws, options: ReleaseOptions) -> ReleasePlan:
    """Read git, ECR and ECS and decide every step; raises a one-line :class:`OpskitError` when it cannot go ahead."""
    commit = read_checkout(options.path)
    if commit.dirty and not options.allow_dirty:
        raise ConfigError(
            f"{commit.root} has uncommitted changes ({commit.describe_dirt()}): commit them (a release is a commit), "
            "or pass --allow-dirty"
        )
    tag = release_tag(commit, options)
    # Raw: an older botocore drops the deployment configuration's newer fields (strategy, hooks, bake times).
    gateway = Gateway(aws)
    cluster_arn, service = gateway.service(options.cluster, options.service, tags=True, raw=True)
    strategy = strategy_of(service)  # refuses a service that CodeDeploy or an external controller deploys
    live_arn = str(service["taskDefinition"])
    described = aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": live_arn, "include": ["TAGS"]})
    live_body = described["taskDefinition"]
    source, base, base_tags = "live", registrable(live_body), list(described.get("tags") or [])
    if options.task_definition is not None:
        path = options.task_definition
        found = read_task_definition(path if path.is_absolute() else commit.root / path, options.variables)
        source, base, base_tags = str(path), found.body, found.tags
    label = _short(live_arn) if source == "live" else source  # what the messages call the revision copied
    _check_named_containers(options, base, label)
    also: tuple[Also, ...] = ()
    if options.images:
        by_repository: dict[str, list[str]] = {}
        for name, repository_name in options.images.items():
            by_repository.setdefault(repository_name, []).append(name)
        first, *others = by_repository
        repository, containers = _described_repository(gateway, options, first), tuple(by_repository[first])
        for name in others:
            other = _described_repository(gateway, options, name)
            found_digest = existing_digest(gateway, other, tag, commit)
            also += (Also(other, tuple(by_repository[name]), found_digest),)
    else:
        repository = _repository(gateway, options, base)
        containers = _containers(options, base, repository, label)
    existing = existing_digest(gateway, repository, tag, commit)
    platform = options.platform or _platform(base)
    image = f"{repository.uri}:{tag}"
    new_body = with_images(
        base, {**dict.fromkeys(containers, image), **{c: a.image(tag) for a in also for c in a.containers}}
    )
    containers = (*containers, *(c for a in also for c in a.containers))
    new_tags = revision_tags(base_tags, commit.sha)
    # Refused now, before anything is built or pushed, not by RegisterTaskDefinition or at the rollout:
    check_limits(new_body, new_tags)
    warnings = iac_warnings(options, service.get("tags") or [], described.get("tags") or [], _short(live_arn))
    if source != "live":  # a copy of the live revision is proven by its running tasks; a file is not yet
        warnings += preflight(gateway, base, containers, service, platform, source)
    # Only an image already in ECR can already have a revision: a new commit's needs no search (that is 20
    # describes saved on every ordinary release); a re-release or a resumed one finds its revision again.
    reuse = None if commit.dirty or existing is None else _reusable_revision(aws, live_arn, live_body, new_body)
    unavailable, docker, local = None, None, None
    # Only a build (or a copy to another repository) needs the engine: an image already in ECR releases without one.
    if existing is None or any(a.existing_digest is None for a in also):
        from opskit.docker_engine import connect_or_problem
        from opskit.release.images import local_image

        docker, unavailable = connect_or_problem()
        if docker is not None:
            local = local_image(docker, f"{repository.uri}:{tag}", commit.sha, platform)
    plan = ReleasePlan(
        options=options,
        commit=commit,
        tag=tag,
        repository=repository,
        existing_digest=existing,
        cluster_arn=cluster_arn,
        service_arn=str(service["serviceArn"]),
        live_arn=live_arn,
        live_body=live_body,
        containers=containers,
        new_body=new_body,
        reuse_revision=reuse,
        platform=platform,
        diff=tuple(diff(live_body, new_body, live_name=_short(live_arn), new_name=f"{live_body['family']}:new")),
        steps=(),
        build_unavailable=unavailable,
        local_image=local,
        service_tags=tuple(service.get("tags") or ()),
        live_tags=tuple(described.get("tags") or ()),
        new_tags=tuple(new_tags),
        source=source,
        also=also,
        warnings=tuple(warnings),
        strategy=strategy,
        rollout=rollout_plan(service),
        docker=docker,
        gateway=gateway,
    )
    return replace(plan, steps=_steps(plan))


def release_tag(commit: Checkout, options: ReleaseOptions) -> str:
    """The image tag for this commit: its SHA prefix, with a digest of the changes when the tree is dirty."""
    if options.tag is not None:  # a SHA, as the options checked
        if not commit.sha.startswith(options.tag):
            raise ConfigError(
                f"tag {options.tag} is not HEAD's commit ({commit.sha[:12]}): check out {options.tag} first"
            )
        tag = options.tag
    else:
        tag = commit.sha[: options.sha_length]
    if commit.dirty and commit.dirty_digest:
        tag = f"{tag}-dirty-{commit.dirty_digest[:12]}"
    return tag


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _platform(body: dict[str, Any]) -> str:
    arch = (body.get("runtimePlatform") or {}).get("cpuArchitecture", "X86_64")
    return "linux/arm64" if arch == "ARM64" else "linux/amd64"


def _repository(gateway: Gateway, options: ReleaseOptions, live_body: dict[str, Any]) -> Repository:
    name = options.repository
    if name is None:
        images = [ImageRef.parse(c.get("image", "")) for c in live_body.get("containerDefinitions", [])]
        chosen = [
            ref
            for c, ref in zip(live_body.get("containerDefinitions", []), images, strict=True)
            if not options.containers or c.get("name") in options.containers
        ]
        name = chosen[0].repository if len({(r.registry, r.repository) for r in chosen}) == 1 else None
        if name is None:
            raise ConfigError(
                f"cannot tell which ECR repository {options.service}'s containers come from: pass --repository"
            )
    if not REPOSITORY_NAME.match(name) or len(name) > 256:
        raise ConfigError(f"{name!r} is not a valid ECR repository name: lower-case letters, digits, . _ - and /")
    return _described_repository(gateway, options, name)


def _described_repository(gateway: Gateway, options: ReleaseOptions, name: str) -> Repository:
    ecr = gateway.aws.client("ecr")
    try:
        found = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
    except AwsError as exc:
        if exc.code != "RepositoryNotFoundException":
            raise
        if not options.create_repository:
            raise NotFoundError(
                f"ECR repository {name!r} does not exist: create it, or pass --create-repository "
                "(IMMUTABLE tags, scan on push)"
            ) from exc
        registry = gateway.registry_auth().host
        return Repository(name=name, uri=f"{registry}/{name}", exists=False)
    return Repository(
        name=name,
        uri=str(found["repositoryUri"]),
        exists=True,
        mutability=found.get("imageTagMutability"),
        scan_on_push=(found.get("imageScanningConfiguration") or {}).get("scanOnPush"),
    )


def preflight(
    gateway: Gateway,
    body: dict[str, Any],
    containers: tuple[str, ...],
    service: dict[str, Any],
    platform: str,
    source: str,
) -> list[str]:
    """:func:`opskit.release.verify.verify` of a revision from a file, before anything is built: refused on its
    first error, its warnings returned. The images this release builds are not there yet, so not looked for."""
    from opskit.release.verify import verify

    released = {f"image {c.get('image')}" for c in body["containerDefinitions"] if c.get("name") in containers}
    cluster = str(service.get("clusterArn", "")).rsplit("/", 1)[-1] or None
    findings = [
        f
        for f in verify(gateway.aws, body, cluster=cluster, service=service, platform=platform, gateway=gateway)
        if not (f.check == "VER001" and f.resource in released)
    ]
    errors = [f for f in findings if f.error]
    if errors:
        more = f"; {len(errors) - 1} more: `opskit verify --task-definition {source}` lists them" if errors[1:] else ""
        first = errors[0]
        raise ConfigError(f"{source} would fail: {first.check} {first.resource}: {first.message}{more}")
    return [f"{f.check} {f.resource}: {f.message}" for f in findings]


def iac_warnings(
    options: ReleaseOptions, service_tags: list[dict[str, str]], revision_tags: list[dict[str, str]], live: str
) -> list[str]:
    """A release to a service that infrastructure as code manages: refused, unless ``force``, when the tool owns the
    task definition (its live revision carries the tool's tags: the next apply puts its own revision back); a
    warning when it manages only the service."""
    owner = managed_by(revision_tags)
    if owner is not None and not options.force:
        raise ConflictError(
            f"{live} is managed by {owner}: a release would drift from it, and its next apply would undo the "
            "release; release through it, or pass --force"
        )
    said = [f"{live} is managed by {owner}: its next apply may undo this release"] if owner else []
    service_owner = managed_by(service_tags)
    if service_owner is not None:
        said.append(
            f"{options.service} is managed by {service_owner}: keep its task definition out of it (or the release "
            "drifts from it)"
        )
    return said


def revision_tags(tags: list[dict[str, str]], commit: str) -> list[dict[str, str]]:
    """The new revision's tags: ``tags`` (AWS's own and an old commit tag left out) and its ``commit``."""
    kept = [t for t in tags if t["key"] != "commit" and not t["key"].lower().startswith("aws:")]
    return [*kept, {"key": "commit", "value": commit}]


def check_limits(body: dict[str, Any], tags: list[dict[str, str]]) -> None:
    """Refuse a revision ECS would refuse: over 50 tags (``aws:`` ones do not count), or a RegisterTaskDefinition
    request over 64 KiB, counted as opskit sends it: compact UTF-8 JSON, tags included."""
    counted = [t for t in tags if not t["key"].lower().startswith("aws:")]
    if len(counted) > MAX_TAGS:
        raise ConfigError(
            f"the new revision of {body['family']} would have {len(counted)} tags with opskit's commit tag, over "
            f"AWS's {MAX_TAGS}: remove {len(counted) - MAX_TAGS} of its tags, then release"
        )
    size = body_size({**body, "tags": tags})
    if size > MAX_BODY_BYTES:
        raise ConfigError(
            f"the new revision of {body['family']} would be {size} bytes with its tags, over ECS's "
            f"{MAX_BODY_BYTES}-byte limit for a task definition: move large values (environment, commands) to "
            "secrets or files, then release"
        )


def _check_named_containers(options: ReleaseOptions, live_body: dict[str, Any], label: str) -> None:
    names = [str(c.get("name")) for c in live_body.get("containerDefinitions", [])]
    for name in (*options.containers, *options.images):
        if name not in names:
            option = "--image NAME=REPOSITORY" if name in options.images else "--container"
            raise NotFoundError(
                f"container {name!r} is not in {label} "
                f"(its containers: {', '.join(names)}): pass {option} with one of them"
            )


def _containers(
    options: ReleaseOptions, live_body: dict[str, Any], repository: Repository, revision: str
) -> tuple[str, ...]:
    names = [str(c.get("name")) for c in live_body.get("containerDefinitions", [])]
    if options.containers:
        return tuple(options.containers)
    if len(names) == 1:
        return (names[0],)
    # By the full reference, registry host and repository: a Docker Hub web:latest sidecar, a localhost:5000/web or
    # another account's .../web is not this repository's image.
    matching = tuple(
        str(c["name"]) for c in live_body["containerDefinitions"] if _in_repository(c.get("image", ""), repository)
    )
    if not matching:
        raise ConfigError(
            f"{revision} has containers {', '.join(names)}, none from {repository.uri}: pass --container with the "
            "one to release"
        )
    return matching


def _in_repository(image: str, repository: Repository) -> bool:
    ref = ImageRef.parse(image)
    return f"{ref.registry}/{ref.repository}" == repository.uri


def existing_digest(gateway: Gateway, repository: Repository, tag: str, commit: Checkout) -> str | None:
    """The digest already under ``tag``; refuses a tag that holds another commit's image."""
    if not repository.exists:
        return None
    digest = gateway.image_digest(repository.name, {"imageTag": tag})
    if digest is None:
        return None
    labels = _labels(gateway, repository, digest)
    built_from = labels.get(OCI_REVISION)
    if built_from and built_from != commit.sha:
        raise ConflictError(
            f"tag {tag} in {repository.name} already holds an image built from commit {built_from[:12]}, "
            f"not {commit.sha[:12]}: release with a longer --sha-length"
        )
    return digest


def _labels(gateway: Gateway, repository: Repository, digest: str) -> dict[str, str]:
    from opskit.registry import image_labels

    auth = gateway.registry_auth()
    registry, _, name = repository.uri.partition("/")
    try:
        return image_labels(registry, name, digest, auth.username, auth.password)
    except OSError:
        return {}  # unreadable config: the SHA tag is trusted, as opskit is what writes SHA tags


def _reusable_revision(aws: Aws, live_arn: str, live_body: dict[str, Any], new_body: dict[str, Any]) -> str | None:
    if same_body(live_body, new_body):
        return live_arn
    ecs = aws.client("ecs")
    arns = ecs.list_task_definitions(
        familyPrefix=live_body["family"], status="ACTIVE", sort="DESC", maxResults=REUSE_LOOKBACK
    )
    for arn in arns["taskDefinitionArns"]:
        if arn == live_arn:
            continue
        body = aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": arn})["taskDefinition"]
        if same_body(body, new_body):
            return str(arn)
    return None


def _steps(plan: ReleasePlan) -> tuple[Step, ...]:
    steps = []
    if not plan.repository.exists:
        steps.append(Step("repository", "create", f"{plan.repository.name} with IMMUTABLE tags and scan on push"))
    if plan.existing_digest:
        steps.append(Step("build", "skip", f"{plan.image} is already in ECR ({plan.existing_digest[:19]})"))
        steps.append(Step("push", "skip", "the commit's image is reused"))
    elif plan.local_image:
        steps.append(Step("build", "skip", f"{plan.image} is already in the Docker engine ({plan.local_image[:19]})"))
        steps.append(Step("push", "run", plan.image))
    elif plan.build_unavailable is not None:
        steps.append(Step("build", "unavailable", str(plan.build_unavailable)))
        steps.append(Step("push", "unavailable", f"{plan.image} cannot be built here"))
    else:
        spec = f"{plan.options.dockerfile} in {plan.options.path} for {plan.platform}"
        steps.append(Step("build", "run", spec))
        steps.append(Step("push", "run", plan.image))
    for also in plan.also:
        if also.existing_digest:
            steps.append(Step("push", "skip", f"{also.image(plan.tag)} is already in ECR"))
        else:
            how = "" if plan.build_unavailable is None else " (cannot: no Docker engine)"
            steps.append(Step("push", "run" if not how else "unavailable", f"{also.image(plan.tag)}{how}"))
    if plan.reuse_revision:
        steps.append(Step("register", "skip", f"{_short(plan.reuse_revision)} already is this release"))
    else:
        image = f"{plan.repository.uri}@<digest>" if plan.pin_by_digest else plan.image
        origin = f" from {plan.source}" if plan.source != "live" else ""
        family = plan.new_body.get("family", plan.family)
        steps.append(
            Step("register", "run", f"new revision of {family}{origin}: {', '.join(plan.containers)} -> {image}")
        )
    if plan.already_live:
        steps.append(Step("update", "skip", f"{plan.options.service} already runs {_short(plan.live_arn)}"))
    else:
        steps.append(
            Step("update", "run", f"{plan.options.cluster}/{plan.options.service} from {_short(plan.live_arn)}")
        )
    verdict = f"until ECS records the {plan.strategy} deployment's verdict (SUCCESSFUL, or why not)"
    if plan.rollout is not None:
        verdict += f", {plan.rollout.shortest}"
    steps.append(Step("wait", "run", verdict))
    return tuple(steps)
