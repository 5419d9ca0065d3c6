"""ECR's image and repository APIs as the sandbox answers them, over HTTP with boto3.

These run without a registry (``registry=False``): the image model alone answers, as it does when neither
the registry binary nor an engine is there. Pushes through the registry are in test_ecr_push.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import botocore.exceptions
import pytest

from opskit.sandbox import Sandbox

SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"


def schema2_manifest(marker: str, layer_sizes: tuple[int, ...] = (1000, 2000), config_size: int = 300) -> str:
    """A schema2 manifest; ``marker`` makes its digest unique. Blobs need not exist without a registry."""

    def digest(text: str) -> str:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": SCHEMA2,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": config_size,
                "digest": digest(f"config-{marker}"),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": size,
                    "digest": digest(f"layer-{marker}-{i}"),
                }
                for i, size in enumerate(layer_sizes)
            ],
        },
        indent=3,
    )


def digest_of(manifest: str) -> str:
    return "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()


def error_code(exc: pytest.ExceptionInfo[botocore.exceptions.ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=None, registry=False, docker=False, time_scale=60, throttle=False) as sb:
        yield sb


@pytest.fixture
def ecr(sandbox: Sandbox) -> Any:
    return sandbox.client("ecr")


@pytest.fixture
def repo(ecr: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh MUTABLE repository named after the test."""
    name = request.node.name.lower().replace("_", "-")[:60]
    ecr.create_repository(repositoryName=name)
    yield name
    ecr.delete_repository(repositoryName=name, force=True)


def put(ecr: Any, repository: str, marker: str, tag: str | None = None, **extra: Any) -> str:
    manifest = schema2_manifest(marker, **extra)
    kwargs = {"imageTag": tag} if tag else {}
    ecr.put_image(repositoryName=repository, imageManifest=manifest, **kwargs)
    return digest_of(manifest)


# -- repositories -----------------------------------------------------------------------------------------------
def test_repository_uri_and_proxy_endpoint_point_at_the_sandbox(sandbox: Sandbox, ecr: Any, repo: str) -> None:
    described = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]
    assert described["repositoryUri"] == f"{sandbox.registry_host}/{repo}"
    data = ecr.get_authorization_token()["authorizationData"][0]
    assert data["proxyEndpoint"] == f"http://{sandbox.registry_host}"
    user, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    assert user == "AWS" and len(password) > 40
    hours = (data["expiresAt"] - sandbox.clock.now()).total_seconds() / 3600
    assert 11.9 < hours <= 12


def test_describe_repositories_pages_and_reports_missing_names(ecr: Any) -> None:
    names = [f"paged/r{i:02}" for i in range(7)]
    for name in names:
        ecr.create_repository(repositoryName=name)
    try:
        seen, token = [], None
        while True:
            page = ecr.describe_repositories(maxResults=3, **({"nextToken": token} if token else {}))
            seen += [r["repositoryName"] for r in page["repositories"]]
            token = page.get("nextToken")
            if not token:
                break
        assert [n for n in seen if n.startswith("paged/")] == names
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ecr.describe_repositories(repositoryNames=["paged/r00", "nope"])
        assert error_code(exc) == "RepositoryNotFoundException"
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            ecr.describe_repositories(maxResults=1001)
        assert error_code(exc) == "InvalidParameterException"
    finally:
        for name in names:
            ecr.delete_repository(repositoryName=name)


def test_delete_repository_refuses_while_images_remain(ecr: Any) -> None:
    ecr.create_repository(repositoryName="full")
    put(ecr, "full", "a", "v1")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecr.delete_repository(repositoryName="full")
    assert error_code(exc) == "RepositoryNotEmptyException"
    ecr.delete_repository(repositoryName="full", force=True)
    ecr.create_repository(repositoryName="full")  # the same name again starts empty
    assert ecr.describe_images(repositoryName="full")["imageDetails"] == []
    ecr.delete_repository(repositoryName="full")


# -- PutImage and tag mutability --------------------------------------------------------------------------------
def test_put_image_records_digest_size_and_push_time(sandbox: Sandbox, ecr: Any, repo: str) -> None:
    before = sandbox.clock.now()
    manifest = schema2_manifest("sized", layer_sizes=(1000, 2000), config_size=300)
    image = ecr.put_image(repositoryName=repo, imageManifest=manifest, imageTag="v1")["image"]
    assert image["imageId"] == {"imageDigest": digest_of(manifest), "imageTag": "v1"}
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}])["imageDetails"][0]
    assert detail["imageDigest"] == digest_of(manifest)
    assert detail["imageTags"] == ["v1"]
    assert detail["imageSizeInBytes"] == 3300  # layers + config, compressed, as ECR counts
    assert detail["imageManifestMediaType"] == SCHEMA2
    assert detail["artifactMediaType"] == "application/vnd.docker.container.image.v1+json"
    assert before <= detail["imagePushedAt"] <= sandbox.clock.now()
    assert "imageScanStatus" not in detail
    got = ecr.batch_get_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}, {"imageTag": "nope"}])
    assert got["images"][0]["imageManifest"] == manifest
    assert got["failures"] == [
        {"imageId": {"imageTag": "nope"}, "failureCode": "ImageNotFound", "failureReason": "Requested image not found"}
    ]


def test_immutable_repository_refuses_to_move_a_tag(ecr: Any) -> None:
    ecr.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")
    try:
        first = put(ecr, "frozen", "one", "v1")
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            put(ecr, "frozen", "two", "v1")
        assert error_code(exc) == "ImageTagAlreadyExistsException"
        assert "cannot be overwritten because the repository is immutable" in str(exc.value)
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            put(ecr, "frozen", "one", "v1")  # the same manifest and tag again: a different error
        assert error_code(exc) == "ImageAlreadyExistsException"
        put(ecr, "frozen", "one", "v1-alias")  # another tag for the same image is fine
        tags = ecr.describe_images(repositoryName="frozen", imageIds=[{"imageDigest": first}])["imageDetails"][0]
        assert tags["imageTags"] == ["v1", "v1-alias"]
    finally:
        ecr.delete_repository(repositoryName="frozen", force=True)


def test_put_image_again_in_a_mutable_repository_is_refused_too(ecr: Any, repo: str) -> None:
    digest = put(ecr, repo, "same", "v1")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        put(ecr, repo, "same", "v1")
    assert error_code(exc) == "ImageAlreadyExistsException"
    assert f"Image with digest '{digest}' and tag 'v1' already exists" in str(exc.value)
    assert ecr.list_images(repositoryName=repo)["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}]


def test_mutable_retag_leaves_the_old_image_untagged(ecr: Any, repo: str) -> None:
    old = put(ecr, repo, "old", "latest")
    new = put(ecr, repo, "new", "latest")
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName=repo)["imageDetails"]}
    assert set(details) == {old, new}
    assert "imageTags" not in details[old]
    assert details[new]["imageTags"] == ["latest"]
    untagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "UNTAGGED"})["imageIds"]
    assert untagged == [{"imageDigest": old}]


@pytest.mark.parametrize(
    ("mutability", "pattern", "tag", "immutable"),
    [
        ("IMMUTABLE_WITH_EXCLUSION", "*-dev", "feature-dev", False),  # moto crashes on this one (regex)
        ("IMMUTABLE_WITH_EXCLUSION", "*-dev", "v1", True),
        ("IMMUTABLE_WITH_EXCLUSION", "release.*", "releaseX1", True),  # "." is literal, not "any character"
        ("IMMUTABLE_WITH_EXCLUSION", "release.*", "release.1", False),
        ("MUTABLE_WITH_EXCLUSION", "v*", "v1.2.3", True),
        ("MUTABLE_WITH_EXCLUSION", "v*", "latest", False),
    ],
)
def test_exclusion_filters_match_as_wildcards(
    ecr: Any, mutability: str, pattern: str, tag: str, immutable: bool
) -> None:
    name = "excluded"
    ecr.create_repository(
        repositoryName=name,
        imageTagMutability=mutability,
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": pattern}],
    )
    try:
        put(ecr, name, "first", tag)
        if immutable:
            with pytest.raises(botocore.exceptions.ClientError) as exc:
                put(ecr, name, "second", tag)
            assert error_code(exc) == "ImageTagAlreadyExistsException"
        else:
            put(ecr, name, "second", tag)
        described = ecr.describe_repositories(repositoryNames=[name])["repositories"][0]
        assert described["imageTagMutability"] == mutability
        assert described["imageTagMutabilityExclusionFilters"] == [{"filterType": "WILDCARD", "filter": pattern}]
    finally:
        ecr.delete_repository(repositoryName=name, force=True)


def test_exclusion_filters_are_validated_and_can_be_changed(ecr: Any, repo: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecr.put_image_tag_mutability(
            repositoryName=repo,
            imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
            imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "v[0-9]+"}],
        )
    assert error_code(exc) == "InvalidParameterException"
    put(ecr, repo, "a", "dev-1")
    answer = ecr.put_image_tag_mutability(
        repositoryName=repo,
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}],
    )
    assert answer["imageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION"
    put(ecr, repo, "b", "dev-1")  # excluded: still mutable
    put(ecr, repo, "c", "v1")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        put(ecr, repo, "d", "v1")
    assert error_code(exc) == "ImageTagAlreadyExistsException"


# -- listings ---------------------------------------------------------------------------------------------------
def test_describe_and_list_images_page_with_aws_limits(sandbox: Sandbox, ecr: Any, repo: str) -> None:
    digests = []
    for i in range(23):
        digests.append(put(ecr, repo, f"img{i}", f"t{i}" if i % 3 else None))
        sandbox.clock.advance(1)
    ecr.put_image(repositoryName=repo, imageManifest=schema2_manifest("img1"), imageTag="extra")  # 2 tags

    def pages(call: Any, key: str, **kwargs: Any) -> list[list[Any]]:
        out, token = [], None
        while True:
            page = call(repositoryName=repo, **kwargs, **({"nextToken": token} if token else {}))
            out.append(page[key])
            token = page.get("nextToken")
            if not token:
                return out

    described = pages(ecr.describe_images, "imageDetails", maxResults=10)
    assert [len(p) for p in described] == [10, 10, 3]
    assert [d["imageDigest"] for p in described for d in p] == digests  # push order, nothing twice
    listed = pages(ecr.list_images, "imageIds", maxResults=5)
    ids = [i for p in listed for i in p]
    assert len(ids) == 24  # one entry per tag, one per untagged image
    assert {"imageDigest": digests[1], "imageTag": "extra"} in ids
    untagged = pages(ecr.describe_images, "imageDetails", filter={"tagStatus": "UNTAGGED"})
    assert [d["imageDigest"] for d in untagged[0]] == digests[::3]
    tagged = ecr.list_images(repositoryName=repo, filter={"tagStatus": "TAGGED"})["imageIds"]
    assert all("imageTag" in i for i in tagged) and len(tagged) == 24 - 8
    for call in (ecr.describe_images, ecr.list_images):
        with pytest.raises(botocore.exceptions.ClientError) as exc:
            call(repositoryName=repo, maxResults=1001)
        assert error_code(exc) == "InvalidParameterException"
    assert len(ecr.describe_images(repositoryName=repo, maxResults=1000)["imageDetails"]) == 23


def test_describe_images_names_what_is_missing(ecr: Any, repo: str) -> None:
    put(ecr, repo, "a", "v1")
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecr.describe_images(repositoryName=repo, imageIds=[{"imageTag": "v1"}, {"imageTag": "v2"}])
    assert error_code(exc) == "ImageNotFoundException"
    assert "imageTag:'v2'" in str(exc.value)
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecr.describe_images(repositoryName="no-such-repository")
    assert error_code(exc) == "RepositoryNotFoundException"
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecr.list_images(repositoryName="no-such-repository")
    assert error_code(exc) == "RepositoryNotFoundException"


# -- deletes ----------------------------------------------------------------------------------------------------
def test_batch_delete_image_limits_and_tag_semantics(ecr: Any, repo: str) -> None:
    with pytest.raises(botocore.exceptions.ClientError) as exc:
        ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": f"t{i}"} for i in range(101)])
    assert error_code(exc) == "InvalidParameterException"
    both = put(ecr, repo, "both", "a")
    put(ecr, repo, "both", "b")
    lone = put(ecr, repo, "lone", "c")
    out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "a"}, {"imageTag": "missing"}])
    assert out["imageIds"] == [{"imageDigest": both, "imageTag": "a"}]
    assert out["failures"][0]["failureCode"] == "ImageNotFound"
    detail = ecr.describe_images(repositoryName=repo, imageIds=[{"imageDigest": both}])["imageDetails"][0]
    assert detail["imageTags"] == ["b"]  # one tag gone, the image stays
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "b"}])  # its last tag: the image goes
    out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": lone, "imageTag": "a"}])
    assert out["failures"][0]["failureCode"] in ("ImageNotFound", "ImageTagDoesNotMatchDigest")
    out = ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": lone}])
    assert out["imageIds"] == [{"imageDigest": lone, "imageTag": "c"}]
    assert ecr.list_images(repositoryName=repo)["imageIds"] == []


# -- what tasks can pull, scans ---------------------------------------------------------------------------------
def test_pullable_answers_from_the_model(sandbox: Sandbox, ecr: Any, repo: str) -> None:
    images = sandbox.region.images  # type: ignore[union-attr]
    host = sandbox.registry_host
    digest = put(ecr, repo, "pull", "v1")
    put(ecr, repo, "latest", "latest")
    assert images.pullable(f"{host}/{repo}:v1")
    assert images.pullable(f"{host}/{repo}@{digest}")
    assert images.pullable(f"{host}/{repo}:v1@{digest}")
    assert images.pullable(f"{host}/{repo}")  # latest
    assert not images.pullable(f"{host}/{repo}:v2")
    assert not images.pullable(f"{host}/other:v1")
    assert not images.pullable(f"public.ecr.aws/{repo}:v1")
    assert not images.pullable(f"{repo}:v1")
    ecr.batch_delete_image(repositoryName=repo, imageIds=[{"imageTag": "v1"}])
    assert not images.pullable(f"{host}/{repo}:v1")
    assert not images.pullable(f"{host}/{repo}@{digest}")


def test_scan_on_push_completes_shortly_after_the_push(sandbox: Sandbox, ecr: Any) -> None:
    ecr.create_repository(repositoryName="scanned", imageScanningConfiguration={"scanOnPush": True})
    try:
        put(ecr, "scanned", "s", "v1")
        detail = ecr.describe_images(repositoryName="scanned")["imageDetails"][0]
        assert detail["imageScanStatus"]["status"] == "IN_PROGRESS"
        sandbox.clock.advance(60)
        detail = ecr.describe_images(repositoryName="scanned")["imageDetails"][0]
        assert detail["imageScanStatus"]["status"] == "COMPLETE"
        assert detail["imageScanFindingsSummary"]["findingSeverityCounts"] == {}
        findings = ecr.describe_image_scan_findings(repositoryName="scanned", imageId={"imageTag": "v1"})
        assert findings["imageScanStatus"]["status"] == "COMPLETE"
        config = ecr.batch_get_repository_scanning_configuration(repositoryNames=["scanned"])
        assert config["scanningConfigurations"][0]["scanOnPush"] is True
    finally:
        ecr.delete_repository(repositoryName="scanned", force=True)


def test_what_stays_with_moto_still_works(ecr: Any, repo: str) -> None:
    """Scanning settings changed later, lifecycle policies and tags are moto's; they meet the image model."""
    ecr.put_image_scanning_configuration(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True})
    put(ecr, repo, "scan-later", "v1")
    assert "imageScanStatus" in ecr.describe_images(repositoryName=repo)["imageDetails"][0]
    policy = json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "selection": {"tagStatus": "untagged", "countType": "imageCountMoreThan", "countNumber": 5},
                    "action": {"type": "expire"},
                }
            ]
        }
    )
    ecr.put_lifecycle_policy(repositoryName=repo, lifecyclePolicyText=policy)
    assert json.loads(ecr.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"]) == json.loads(policy)
    arn = ecr.describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryArn"]
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": "team", "Value": "web"}])
    assert ecr.list_tags_for_resource(resourceArn=arn)["tags"] == [{"Key": "team", "Value": "web"}]
