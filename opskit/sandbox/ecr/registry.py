"""The sandbox's data plane: a real distribution registry (the one behind Docker Hub and, in spirit, ECR).

It runs as Debian's ``docker-registry`` binary when that is on PATH, else as the ``registry:2`` image in the
user's Docker engine when the engine already has it (nothing is ever pulled). Either way it listens on a free
port of 127.0.0.1, keeps its storage under ``root`` (binary) or inside its container (image), has deletes
enabled and no auth of its own: clients never reach it directly, they go through the ECR proxy on the
sandbox's port (:mod:`opskit.sandbox.ecr.registry_proxy`), which checks ECR credentials and ECR's rules.

>>> registry = Registry.start(Path("/tmp/reg"), docker=None)        # doctest: +SKIP
>>> registry.url if registry else "no registry here"                 # doctest: +SKIP
'http://127.0.0.1:41234'
>>> registry.stop()                                                  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import http.client
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("opskit.sandbox")

BINARY = "docker-registry"
IMAGE = "registry:2"
START_TIMEOUT = 8.0  # seconds; the binary answers in ~50 ms, a container in ~1 s
STOP_TIMEOUT = 5.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PORT_ATTEMPTS = 3  # a free port can be taken between our probe and the registry's bind


class Registry:
    """A running registry on ``127.0.0.1:port``; stop it with :meth:`stop` (by its pid or container id)."""

    def __init__(
        self,
        root: Path,
        port: int,
        *,
        process: subprocess.Popen[bytes] | None = None,
        container: Any = None,
    ) -> None:
        self.root = root
        self.host = "127.0.0.1"
        self.port = port
        self._process = process
        self._container = container

    # -- lifecycle -------------------------------------------------------------------------------------------
    @classmethod
    def start(
        cls,
        root: Path,
        docker: Any = None,
        *,
        binary: str | None = BINARY,
        image: str = IMAGE,
    ) -> Registry | None:
        """Start a registry, or return None (no exception) when neither the binary nor the image is there.

        ``binary`` is looked up on PATH (``None`` skips it); ``image`` is used only if the engine ``docker``
        already holds it.
        """
        root.mkdir(parents=True, exist_ok=True)
        path = shutil.which(binary) if binary else None
        if path:
            registry = cls._start_binary(root, path)
            if registry is not None:
                return registry
        if docker is not None:
            return cls._start_container(root, docker, image)
        return None

    @classmethod
    def _start_binary(cls, root: Path, binary: str) -> Registry | None:
        for _ in range(_PORT_ATTEMPTS):
            port = _free_port()
            config = root / "config.yml"
            config.write_text(_config(storage=root / "storage", addr=f"127.0.0.1:{port}"))
            with open(root / "registry.log", "ab") as logfile:
                process = subprocess.Popen(
                    [binary, "serve", str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=logfile,
                    stderr=subprocess.STDOUT,
                    preexec_fn=_die_with_parent(),
                )
            registry = cls(root, port, process=process)
            if registry._wait_until_up():
                return registry
            registry.stop()
        log.warning("the registry binary %s did not start; see %s", binary, root / "registry.log")
        return None

    @classmethod
    def _start_container(cls, root: Path, engine: Any, image: str) -> Registry | None:
        """Run ``image`` on the host's network (the only network an engine started with --bridge=none offers,
        and the one where 127.0.0.1 is ours). Storage stays inside the container and goes with it."""
        from docker.errors import DockerException, ImageNotFound

        try:
            engine.images.get(image)
        except ImageNotFound:
            return None
        except DockerException:
            log.warning("the Docker engine did not say whether it has %s", image, exc_info=True)
            return None
        port = _free_port()
        try:
            container = engine.containers.run(
                image,
                detach=True,
                auto_remove=False,
                network_mode="host",
                name=f"opskit-registry-{port}-{secrets.token_hex(3)}",
                labels={"opskit.sandbox": "registry"},
                environment={
                    "REGISTRY_HTTP_ADDR": f"127.0.0.1:{port}",
                    "REGISTRY_HTTP_SECRET": secrets.token_hex(16),
                    "REGISTRY_STORAGE_DELETE_ENABLED": "true",
                    "REGISTRY_LOG_ACCESSLOG_DISABLED": "true",
                },
            )
        except DockerException:
            log.warning("could not run %s", image, exc_info=True)
            return None
        registry = cls(root, port, container=container)
        if registry._wait_until_up():
            return registry
        log.warning("%s did not answer on 127.0.0.1:%s (is the engine on another host?)", image, port)
        registry.stop()
        return None

    def _wait_until_up(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.running:
            with contextlib.suppress(OSError, http.client.HTTPException):
                status, _, _ = self.request("GET", "/v2/", timeout=1.0)
                if status == 200:
                    return True
            time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Stop the process by its pid (or the container by its id); its log stays under ``root``."""
        if self._process is not None:
            process, self._process = self._process, None
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        if self._container is not None:
            container, self._container = self._container, None
            with contextlib.suppress(Exception):
                container.stop(timeout=int(STOP_TIMEOUT))
            with contextlib.suppress(Exception), open(self.root / "registry.log", "ab") as logfile:
                logfile.write(container.logs())
            with contextlib.suppress(Exception):
                container.remove(force=True)

    @property
    def running(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        return self._container is not None and _container_running(self._container)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # -- talking to it ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connection(self, timeout: float = 300.0) -> http.client.HTTPConnection:
        """A fresh connection to the registry (one per proxied request: loopback connections are cheap)."""
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        *,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """One small request (manifests, deletes): status, headers (lower-case names), body."""
        conn = self.connection(timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            data = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            conn.close()


def _config(*, storage: Path, addr: str) -> str:
    # No blob-descriptor cache: images are deleted through the API; a stale cache would contradict the disk.
    return (
        "version: 0.1\n"
        "log:\n"
        "  level: info\n"
        "  accesslog:\n"
        "    disabled: true\n"
        "storage:\n"
        "  filesystem:\n"
        f"    rootdirectory: {storage}\n"
        "  delete:\n"
        "    enabled: true\n"
        "  maintenance:\n"
        "    uploadpurging:\n"
        "      enabled: false\n"
        "http:\n"
        f"  addr: {addr}\n"
        f"  secret: {secrets.token_hex(16)}\n"
    )


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, started from the main thread: the registry gets SIGTERM if our process dies without stopping
    it (kill -9, a CI timeout), so no registry outlives its sandbox. The signal follows the starting *thread*,
    hence main thread only (its end is the process's end)."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _container_running(container: Any) -> bool:
    try:
        container.reload()
        return bool(container.status in ("created", "running"))
    except Exception:
        return False


__all__ = ["BINARY", "IMAGE", "Registry"]
