"""ECR's data plane: real images built and pushed with the Docker SDK through the sandbox's port.

The engine is the one DOCKER_HOST names; the registry is the real distribution registry behind the ECR proxy.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import http.client
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import docker
import pytest
import requests

from opskit.docker_engine import engine_host
from opskit.sandbox import Sandbox
from tests.conftest import make_context

pytestmark = [pytest.mark.docker, pytest.mark.registry]


@pytest.fixture(scope="module")
def images(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two tiny images with different content (so different digests), built once for this module."""
    built = {}
    for name in ("one", "two"):
        unique = f"{name}-{os.getpid()}"  # xdist workers share the engine: each builds and removes its own
        context = make_context(tmp_path_factory.mktemp(name), marker=unique)
        built[name], _ = docker_client.images.build(path=str(context), tag=f"opskit-test/ecr-push:{unique}", rm=True)
    yield built
    for image in built.values():
        docker_client.images.remove(image.id, force=True, noprune=True)  # with every tag and digest it gained


@pytest.fixture
def local_tags(docker_client: Any) -> Iterator[list[str]]:
    """Tags this test adds to the engine's images; removed afterwards (the images stay for other tests)."""
    tags: list[str] = []
    yield tags
    for tag in tags:
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(tag, noprune=True)


@pytest.fixture
def ecr(sandbox: Sandbox) -> Any:
    assert sandbox.registry is not None, "these tests need the registry binary (docker-registry) on PATH"
    return sandbox.client("ecr")


def credentials(ecr: Any) -> dict[str, str]:
    token = ecr.get_authorization_token()["authorizationData"][0]["authorizationToken"]
    user, _, password = base64.b64decode(token).decode().partition(":")
    return {"username": user, "password": password}


def push(
    docker_client: Any, image: Any, repository_uri: str, tag: str, local_tags: list[str], auth: dict[str, str] | None
) -> tuple[str | None, str | None]:
    """Push ``image`` as ``repository_uri:tag``: (digest, None) or (None, the engine's error line)."""
    image.tag(repository_uri, tag)
    local_tags.append(f"{repository_uri}:{tag}")
    kwargs = {"auth_config": auth} if auth else {}
    digest = error = None
    for line in docker_client.images.push(repository_uri, tag=tag, stream=True, decode=True, **kwargs):
        if "error" in line:
            error = line["error"]
        digest = line.get("aux", {}).get("Digest", digest)
    return (None, error) if error else (digest, None)


def basic(auth: dict[str, str]) -> dict[str, str]:
    pair = f"{auth['username']}:{auth['password']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode()}


# -- the main path ----------------------------------------------------------------------------------------------
def test_a_built_image_pushed_through_the_sandbox_shows_up_in_describe_images(
    sandbox: Sandbox, ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = ecr.create_repository(repositoryName="team/web")["repository"]["repositoryUri"]
    assert uri == f"{sandbox.registry_host}/team/web"
    auth = credentials(ecr)
    before = sandbox.clock.now()
    digest, error = push(docker_client, images["one"], uri, "3f2a9c1", local_tags, auth)
    assert error is None and digest and digest.startswith("sha256:")

    by_tag = ecr.describe_images(repositoryName="team/web", imageIds=[{"imageTag": "3f2a9c1"}])["imageDetails"]
    by_digest = ecr.describe_images(repositoryName="team/web", imageIds=[{"imageDigest": digest}])["imageDetails"]
    assert by_tag == by_digest and len(by_tag) == 1
    detail = by_tag[0]
    assert detail["imageDigest"] == digest
    assert detail["imageTags"] == ["3f2a9c1"]
    assert before <= detail["imagePushedAt"] <= sandbox.clock.now()
    assert detail["imageManifestMediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    manifest_text = ecr.batch_get_image(repositoryName="team/web", imageIds=[{"imageDigest": digest}])["images"][0][
        "imageManifest"
    ]
    assert "sha256:" + hashlib.sha256(manifest_text.encode()).hexdigest() == digest
    manifest = json.loads(manifest_text)
    assert detail["imageSizeInBytes"] == manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])

    images_model = sandbox.region.images  # type: ignore[union-attr]
    assert images_model.pullable(f"{uri}:3f2a9c1") and images_model.pullable(f"{uri}@{digest}")

    # and back: the engine pulls it by tag through the proxy
    docker_client.images.remove(f"{uri}:3f2a9c1", noprune=True)
    local_tags.remove(f"{uri}:3f2a9c1")
    pulled = docker_client.images.pull(uri, tag="3f2a9c1", auth_config=images_model.pull_credentials())
    local_tags.append(f"{uri}:3f2a9c1")
    assert pulled.id == images["one"].id
    # a manifest GET is what ECR records as a pull (the engine above may have needed only a HEAD)
    manifest_url = f"{sandbox.endpoint_url}/v2/team/web/manifests/3f2a9c1"
    assert requests.get(manifest_url, headers=basic(auth), timeout=5).status_code == 200
    detail = ecr.describe_images(repositoryName="team/web")["imageDetails"][0]
    assert detail["lastRecordedPullTime"] >= detail["imagePushedAt"]


def test_docker_login_with_the_authorization_token(sandbox: Sandbox, ecr: Any) -> None:
    auth = credentials(ecr)
    client = docker.DockerClient(base_url=engine_host())  # its own client: login caches credentials in it
    try:
        answer = client.login(registry=f"http://{sandbox.registry_host}", reauth=True, **auth)
        assert answer["Status"] == "Login Succeeded"
        with pytest.raises(docker.errors.APIError):
            client.login(registry=sandbox.registry_host, username="AWS", password="wrong", reauth=True)
    finally:
        client.close()


def test_the_data_plane_refuses_missing_wrong_and_expired_credentials(sandbox: Sandbox, ecr: Any) -> None:
    base = f"{sandbox.endpoint_url}/v2/"
    anonymous = requests.get(base, timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"
    auth = credentials(ecr)
    assert requests.get(base, headers=basic({"username": "AWS", "password": "guess"}), timeout=5).status_code == 401
    assert requests.get(base, headers=basic({**auth, "username": "root"}), timeout=5).status_code == 401
    assert requests.get(base, headers=basic(auth), timeout=5).status_code == 200
    sandbox.clock.advance(11 * 3600)
    assert requests.get(base, headers=basic(auth), timeout=5).status_code == 200
    sandbox.clock.advance(2 * 3600)  # ECR tokens last 12 hours
    expired = requests.get(base, headers=basic(auth), timeout=5)
    assert expired.status_code == 403
    assert expired.json()["errors"][0]["code"] == "DENIED"
    assert requests.get(base, headers=basic(credentials(ecr)), timeout=5).status_code == 200


def test_push_without_login_is_refused(
    ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = ecr.create_repository(repositoryName="web")["repository"]["repositoryUri"]
    digest, error = push(docker_client, images["one"], uri, "v1", local_tags, auth=None)
    assert digest is None and error is not None
    assert "basic auth credentials" in error or "unauthorized" in error.lower()
    assert ecr.list_images(repositoryName="web")["imageIds"] == []


def test_push_to_a_repository_ecr_does_not_have_is_refused(
    sandbox: Sandbox, ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = f"{sandbox.registry_host}/never-created"
    digest, error = push(docker_client, images["one"], uri, "v1", local_tags, credentials(ecr))
    assert digest is None
    assert error is not None and "The repository with name 'never-created' does not exist" in error
    answer = requests.post(
        f"{sandbox.endpoint_url}/v2/never-created/blobs/uploads/", headers=basic(credentials(ecr)), timeout=5
    )
    assert answer.status_code == 404 and answer.json()["errors"][0]["code"] == "NAME_UNKNOWN"


# -- tag mutability through docker push -------------------------------------------------------------------------
def test_immutable_tag_conflict_through_docker_push(
    ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = ecr.create_repository(repositoryName="frozen", imageTagMutability="IMMUTABLE")["repository"]["repositoryUri"]
    auth = credentials(ecr)
    first, error = push(docker_client, images["one"], uri, "v1", local_tags, auth)
    assert error is None
    _, error = push(docker_client, images["two"], uri, "v1", local_tags, auth)
    assert error == (
        "tag invalid: The image tag 'v1' already exists in the 'frozen' repository "
        "and cannot be overwritten because the repository is immutable."
    )
    details = ecr.describe_images(repositoryName="frozen")["imageDetails"]
    assert [(d["imageDigest"], d.get("imageTags")) for d in details] == [(first, ["v1"])]


def test_the_same_image_pushed_again_under_an_immutable_tag_is_refused(
    ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    """ECR does not compare digests before it refuses: a CI job that pushes its image again fails on an immutable
    tag, however identical the image. Only a tag an exclusion filter makes mutable takes the push again."""
    ecr.create_repository(
        repositoryName="frozen-again",
        imageTagMutability="IMMUTABLE_WITH_EXCLUSION",
        imageTagMutabilityExclusionFilters=[{"filterType": "WILDCARD", "filter": "dev-*"}],
    )
    uri = ecr.describe_repositories(repositoryNames=["frozen-again"])["repositories"][0]["repositoryUri"]
    auth = credentials(ecr)
    first, error = push(docker_client, images["one"], uri, "v1", local_tags, auth)
    assert error is None and first
    again, error = push(docker_client, images["one"], uri, "v1", local_tags, auth)
    assert again is None
    assert error == (
        "tag invalid: The image tag 'v1' already exists in the 'frozen-again' repository "
        "and cannot be overwritten because the repository is immutable."
    )
    dev, error = push(docker_client, images["one"], uri, "dev-1", local_tags, auth)
    assert error is None and dev == first
    dev_again, error = push(docker_client, images["one"], uri, "dev-1", local_tags, auth)  # excluded: mutable
    assert error is None and dev_again == first
    details = ecr.describe_images(repositoryName="frozen-again")["imageDetails"]
    assert [(d["imageDigest"], sorted(d.get("imageTags", []))) for d in details] == [(first, ["dev-1", "v1"])]


def test_the_same_image_pushed_again_to_a_mutable_repository_is_accepted(
    ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = ecr.create_repository(repositoryName="thawed")["repository"]["repositoryUri"]
    auth = credentials(ecr)
    first, _ = push(docker_client, images["one"], uri, "v1", local_tags, auth)
    again, error = push(docker_client, images["one"], uri, "v1", local_tags, auth)
    assert error is None and again == first
    details = ecr.describe_images(repositoryName="thawed")["imageDetails"]
    assert [(d["imageDigest"], d.get("imageTags")) for d in details] == [(first, ["v1"])]


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_docker_cli_push_of_the_same_image_under_an_immutable_tag_fails(
    sandbox: Sandbox, ecr: Any, images: dict[str, Any], local_tags: list[str], tmp_path: Path
) -> None:
    """What a CI log shows: ``docker login`` with the token, ``docker push`` twice, the second one exits non-zero."""
    uri = ecr.create_repository(repositoryName="ci", imageTagMutability="IMMUTABLE")["repository"]["repositoryUri"]
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}  # login writes there, nowhere else

    def docker_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], input=stdin, env=env, capture_output=True, text=True, timeout=120)

    auth = credentials(ecr)
    login = docker_cli("login", "--username", "AWS", "--password-stdin", sandbox.registry_host, stdin=auth["password"])
    assert login.returncode == 0, login.stderr
    assert docker_cli("tag", images["one"].id, f"{uri}:v1").returncode == 0
    local_tags.append(f"{uri}:v1")
    first = docker_cli("push", f"{uri}:v1")
    assert first.returncode == 0, first.stderr
    second = docker_cli("push", f"{uri}:v1")
    assert second.returncode != 0
    assert (
        "tag invalid: The image tag 'v1' already exists in the 'ci' repository "
        "and cannot be overwritten because the repository is immutable." in second.stderr
    )
    assert len(ecr.list_images(repositoryName="ci")["imageIds"]) == 1


def test_mutable_retag_through_docker_push_leaves_the_old_image_untagged(
    sandbox: Sandbox, ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = ecr.create_repository(repositoryName="moving")["repository"]["repositoryUri"]
    auth = credentials(ecr)
    old, _ = push(docker_client, images["one"], uri, "latest", local_tags, auth)
    new, _ = push(docker_client, images["two"], uri, "latest", local_tags, auth)
    assert old and new and old != new
    details = {d["imageDigest"]: d for d in ecr.describe_images(repositoryName="moving")["imageDetails"]}
    assert "imageTags" not in details[old] and details[new]["imageTags"] == ["latest"]
    head = requests.head(
        f"{sandbox.endpoint_url}/v2/moving/manifests/latest",
        headers={**basic(auth), "Accept": "application/vnd.docker.distribution.manifest.v2+json"},
        timeout=5,
    )
    assert head.status_code == 200 and head.headers["Docker-Content-Digest"] == new
    listed = requests.get(f"{sandbox.endpoint_url}/v2/moving/tags/list", headers=basic(auth), timeout=5)
    assert listed.json() == {"name": "moving", "tags": ["latest"]}


# -- deletes and PutImage reach the registry --------------------------------------------------------------------
def test_batch_delete_image_takes_the_manifest_out_of_the_registry(
    sandbox: Sandbox, ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = ecr.create_repository(repositoryName="gone")["repository"]["repositoryUri"]
    auth = credentials(ecr)
    digest, _ = push(docker_client, images["one"], uri, "v1", local_tags, auth)
    assert sandbox.registry is not None
    direct = f"{sandbox.registry.url}/v2/gone/manifests/{digest}"
    accept = {"Accept": "application/vnd.docker.distribution.manifest.v2+json"}
    assert requests.get(direct, headers=accept, timeout=5).status_code == 200
    with pytest.raises(botocore.exceptions.ClientError, match="RepositoryNotEmptyException"):
        ecr.delete_repository(repositoryName="gone")

    out = ecr.batch_delete_image(repositoryName="gone", imageIds=[{"imageDigest": digest}])
    assert out["imageIds"] == [{"imageDigest": digest, "imageTag": "v1"}]
    assert requests.get(direct, headers=accept, timeout=5).status_code == 404  # the registry itself
    proxied = requests.get(f"{sandbox.endpoint_url}/v2/gone/manifests/v1", headers={**accept, **basic(auth)}, timeout=5)
    assert proxied.status_code == 404 and proxied.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert not sandbox.region.images.pullable(f"{uri}:v1")  # type: ignore[union-attr]
    ecr.delete_repository(repositoryName="gone")


def test_put_image_writes_the_manifest_to_the_registry(
    sandbox: Sandbox, ecr: Any, docker_client: Any, images: dict[str, Any], local_tags: list[str]
) -> None:
    uri = ecr.create_repository(repositoryName="promoted", imageTagMutability="IMMUTABLE")["repository"][
        "repositoryUri"
    ]
    auth = credentials(ecr)
    digest, _ = push(docker_client, images["one"], uri, "3f2a9c1", local_tags, auth)
    got = ecr.batch_get_image(repositoryName="promoted", imageIds=[{"imageTag": "3f2a9c1"}])["images"][0]
    # promote without docker: the same manifest under a second tag, the way release tools retag in ECR
    ecr.put_image(repositoryName="promoted", imageManifest=got["imageManifest"], imageTag="prod")
    served = requests.get(
        f"{sandbox.endpoint_url}/v2/promoted/manifests/prod",
        headers={**basic(auth), "Accept": got["imageManifestMediaType"]},
        timeout=5,
    )
    assert served.status_code == 200 and served.text == got["imageManifest"]
    assert served.headers["Docker-Content-Digest"] == digest
    with pytest.raises(botocore.exceptions.ClientError, match="ImageAlreadyExistsException"):
        ecr.put_image(repositoryName="promoted", imageManifest=got["imageManifest"], imageTag="prod")
    other = json.loads(got["imageManifest"])
    other["layers"][0]["digest"] = "sha256:" + "0" * 64
    with pytest.raises(botocore.exceptions.ClientError, match="LayersNotFoundException"):
        ecr.put_image(repositoryName="promoted", imageManifest=json.dumps(other), imageTag="broken")
    with pytest.raises(botocore.exceptions.ClientError, match="ImageTagAlreadyExistsException"):
        ecr.put_image(repositoryName="promoted", imageManifest=json.dumps(other), imageTag="prod")


def test_uploads_stream_chunked_and_locations_keep_the_sandbox_port(sandbox: Sandbox, ecr: Any) -> None:
    """What docker does for a layer, by hand: POST, a chunked PATCH, PUT ?digest=, then HEAD."""
    ecr.create_repository(repositoryName="blobs")
    headers = basic(credentials(ecr))
    blob = bytes(range(256)) * 4096  # 1 MiB
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    conn.request("POST", "/v2/blobs/blobs/uploads/", headers={**headers, "Content-Length": "0"})
    started = conn.getresponse()
    started.read()
    assert started.status == 202
    location = started.getheader("Location") or ""
    assert location.startswith(f"http://{sandbox.registry_host}/v2/blobs/blobs/uploads/")
    conn.close()

    conn = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    path = location.removeprefix(f"http://{sandbox.registry_host}")
    parts = (blob[i : i + 100_000] for i in range(0, len(blob), 100_000))
    conn.request("PATCH", path, body=parts, headers={**headers, "Content-Type": "application/octet-stream"})
    patched = conn.getresponse()
    patched.read()
    assert patched.status == 202, patched.status
    location = patched.getheader("Location") or ""
    assert location.startswith(f"http://{sandbox.registry_host}/")
    conn.close()

    put = requests.put(f"{location}&digest={digest}", headers=headers, timeout=10)
    assert put.status_code == 201
    head = requests.head(f"{sandbox.endpoint_url}/v2/blobs/blobs/{digest}", headers=headers, timeout=5)
    assert head.status_code == 200 and int(head.headers["Content-Length"]) == len(blob)
    fetched = requests.get(f"{sandbox.endpoint_url}/v2/blobs/blobs/{digest}", headers=headers, timeout=5)
    assert fetched.content == blob


def test_sandbox_without_a_registry_serves_ecr_from_the_model(tmp_path: Path) -> None:
    with Sandbox(seed=None, registry=False, docker=False) as sandbox:
        ecr = sandbox.client("ecr")
        ecr.create_repository(repositoryName="web")
        from tests.sandbox.test_ecr_api import schema2_manifest

        ecr.put_image(repositoryName="web", imageManifest=schema2_manifest("x"), imageTag="v1")
        assert sandbox.region.images.pullable(f"{sandbox.registry_host}/web:v1")  # type: ignore[union-attr]
        assert requests.get(f"{sandbox.endpoint_url}/v2/", timeout=5).status_code == 503
