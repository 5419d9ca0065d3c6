"""The registry process: the real distribution registry, as a binary or as a container, started and stopped."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from opskit.sandbox.ecr.registry import Registry

pytestmark = pytest.mark.registry

REGISTRY_BINARY = shutil.which("docker-registry")
STAND_IN_IMAGE = f"opskit-test/registry-stand-in:{os.getpid()}"  # one per process: xdist workers share the engine


def test_the_binary_starts_answers_and_stops_by_its_pid(tmp_path: Path) -> None:
    assert REGISTRY_BINARY, "the registry binary (Debian's docker-registry) is needed: apt-get install docker-registry"
    registry = Registry.start(tmp_path / "registry", docker=None)  # how fast: benchmarks/sandbox_speed.py
    assert registry is not None
    try:
        assert registry.url == f"http://127.0.0.1:{registry.port}"
        answer = requests.get(f"{registry.url}/v2/", timeout=5)
        assert answer.status_code == 200 and answer.headers["Docker-Distribution-Api-Version"] == "registry/2.0"
        config = (tmp_path / "registry" / "config.yml").read_text()
        assert "delete:\n    enabled: true" in config and f"127.0.0.1:{registry.port}" in config
        assert str(tmp_path / "registry") in config  # storage stays under root
        pid = registry.pid
        assert pid is not None
        os.kill(pid, 0)  # alive
    finally:
        registry.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not registry.running
    assert (tmp_path / "registry" / "registry.log").stat().st_size > 0
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{registry.url}/v2/", timeout=2)


def test_a_registry_does_not_outlive_a_killed_sandbox_process(tmp_path: Path) -> None:
    """kill -9 (a CI timeout) gives the sandbox no chance to stop it: the registry goes with its parent."""
    script = (
        "import sys; from pathlib import Path; from opskit.sandbox.ecr.registry import Registry; "
        "r = Registry.start(Path(sys.argv[1]), docker=None); print(r.pid, flush=True); sys.stdin.read()"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path / "registry")], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    os.kill(pid, 0)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)  # gone, or a zombie until init reaps it: either way it serves nothing
        except ProcessLookupError:
            break
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGTERM)  # we started it: stop it by its pid before failing
        pytest.fail("the registry outlived the process that started it")


def test_no_registry_without_a_binary_or_an_image(tmp_path: Path, docker_client: Any) -> None:
    assert Registry.start(tmp_path / "a", docker=None, binary=None) is None
    assert Registry.start(tmp_path / "b", docker=None, binary="opskit-no-such-registry") is None
    assert Registry.start(tmp_path / "c", docker=docker_client, binary=None, image="opskit-test/absent:0") is None


@pytest.fixture(scope="module")
def stand_in_image(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A stand-in for ``registry:2`` (no public registry is reachable here): the same registry binary, the same
    config path and default command as the official image, so the container path runs for real."""
    assert REGISTRY_BINARY
    context = tmp_path_factory.mktemp("registry-image")
    shutil.copy(REGISTRY_BINARY, context / "registry")
    for library in ("/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"):
        if not Path(library).exists():
            pytest.fail(f"building the stand-in registry image needs {library}")
        shutil.copy(library, context / Path(library).name)
    (context / "config.yml").write_text(
        "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: /var/lib/registry\nhttp:\n  addr: :5000\n"
    )
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY libc.so.6 /lib/x86_64-linux-gnu/libc.so.6\n"
        "COPY ld-linux-x86-64.so.2 /lib64/ld-linux-x86-64.so.2\n"
        "COPY registry /bin/registry\n"
        "COPY config.yml /etc/docker/registry/config.yml\n"
        'ENTRYPOINT ["/bin/registry", "serve"]\n'
        'CMD ["/etc/docker/registry/config.yml"]\n'
    )
    docker_client.images.build(path=str(context), tag=STAND_IN_IMAGE, rm=True)
    yield STAND_IN_IMAGE
    docker_client.images.remove(STAND_IN_IMAGE, noprune=True)


def test_without_the_binary_the_registry_image_runs_in_the_engine(
    tmp_path: Path, docker_client: Any, stand_in_image: str
) -> None:
    registry = Registry.start(tmp_path / "registry", docker=docker_client, binary=None, image=stand_in_image)
    assert registry is not None
    try:
        assert registry.pid is None and registry.running
        assert requests.get(f"{registry.url}/v2/", timeout=5).status_code == 200
        running = docker_client.containers.list(filters={"label": "opskit.sandbox=registry"})
        assert any(c.attrs["Config"]["Image"] == stand_in_image for c in running)
    finally:
        registry.stop()
    assert not registry.running
    assert not [
        c
        for c in docker_client.containers.list(all=True, filters={"label": "opskit.sandbox=registry"})
        if c.attrs["Config"]["Image"] == stand_in_image
    ]
    assert (tmp_path / "registry" / "registry.log").exists()
