"""Worlds for the reliability scenarios: the release world (tests/release) and the cleanup world (tests/cleanup),
each under a test's own state folder so journals and caches never leak between tests; and a wire log, a proxy in
front of the sandbox's AWS endpoint that records every attempt of every call, for what the sandbox cannot tell
(which attempts belong to one call, and how each one ended)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from opskit.sandbox import Sandbox
from tests.cleanup.conftest import World as CleanupWorld
from tests.cleanup.conftest import build_world, quiet, state_dirs  # noqa: F401  (quiet, state_dirs: fixtures)
from tests.release.conftest import World as ReleaseWorld
from tests.release.conftest import build_release_world


@pytest.fixture
def release_world(sandbox: Sandbox, docker_client: Any, tmp_path: Path) -> ReleaseWorld:
    """Cluster prod, service web (circuit breaker on) on an IMMUTABLE repository web, and a git checkout."""
    return build_release_world(sandbox, docker_client, tmp_path)


@pytest.fixture
def cleanup_world(quiet: Sandbox) -> CleanupWorld:  # noqa: F811
    """Two families (web, api) of 14 revisions with services, rollback history, a pinned revision and images."""
    return build_world(quiet)


# -- the wire log ---------------------------------------------------------------------------------------------------
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


@dataclass(frozen=True)
class Attempt:
    """One attempt of one call, as botocore numbers it (``amz-sdk-invocation-id``, ``amz-sdk-request``) and as the
    sandbox answered it: ``status`` None when it dropped the connection without an answer."""

    action: str
    invocation: str
    number: int
    limit: int
    status: int | None
    code: str

    @property
    def failed(self) -> bool:
        return self.status is None or self.status >= 400

    @property
    def outcome(self) -> str:
        return "dropped" if self.status is None else f"{self.status} {self.code}".strip()


class WireLog:
    """An HTTP proxy at :attr:`endpoint_url` that forwards every request to ``upstream`` unchanged (headers, the
    signature's Host included) and answers as it answered: a dropped connection is dropped in turn. It records
    each request's :class:`Attempt`; the registry (``/v2``, reached at the repository URIs' host) never passes."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._attempts: list[Attempt] = []
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self._forward, threaded=True)
        self._server.daemon_threads = True  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, name="wire-log", daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)

    def clear(self) -> None:
        with self._lock:
            self._attempts.clear()

    @property
    def attempts(self) -> list[Attempt]:
        with self._lock:
            return list(self._attempts)

    def calls(self, action: str | None = None) -> dict[str, list[Attempt]]:
        """``action``'s calls (every action's with None): each one's attempts in the order made, by invocation id."""
        out: dict[str, list[Attempt]] = {}
        for attempt in self.attempts:
            if action is None or attempt.action == action:
                out.setdefault(attempt.invocation, []).append(attempt)
        return out

    def _forward(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        request = Request(environ)
        body = request.get_data()
        upstream = http.client.HTTPConnection(*self._upstream, timeout=300)
        try:
            path = environ.get("RAW_URI") or request.path
            upstream.putrequest(request.method, path, skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.items():
                if name.lower() not in ("connection", "content-length"):
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            answer = upstream.getresponse()
            content = answer.read()
        except (http.client.HTTPException, ConnectionError):  # the sandbox dropped it: so does the proxy
            self._record(request, body, None, "")
            sock = environ.get("werkzeug.socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            start_response("500 Dropped", [("Connection", "close"), ("Content-Length", "0")])
            return [b""]
        finally:
            upstream.close()
        self._record(request, body, answer.status, answer.getheader("x-amzn-ErrorType", "") or "")
        headers = [(name, value) for name, value in answer.getheaders() if name.lower() not in HOP_BY_HOP]
        return Response(content, status=answer.status, headers=headers)(environ, start_response)

    def _record(self, request: Request, body: bytes, status: int | None, code: str) -> None:
        sdk_request = request.headers.get("amz-sdk-request", "")  # "attempt=2; max=3"
        retry = dict(part.strip().split("=", 1) for part in sdk_request.split(";") if "=" in part)
        attempt = Attempt(
            action=_action(request, body),
            invocation=request.headers.get("amz-sdk-invocation-id", ""),
            number=int(retry.get("attempt", 0)),
            limit=int(retry.get("max", 0)),
            status=status,
            code=code.split(":", 1)[0] if status is not None and status >= 400 else "",
        )
        with self._lock:
            self._attempts.append(attempt)


def _action(request: Request, body: bytes) -> str:
    """The AWS action: X-Amz-Target's (JSON protocol), else the form's Action (query protocol: STS)."""
    target = request.headers.get("X-Amz-Target", "")
    if "." in target:
        return target.rsplit(".", 1)[1]
    for pair in body.decode(errors="replace").split("&"):
        if pair.startswith("Action="):
            return pair[len("Action=") :]
    return "Unknown"


@pytest.fixture
def wire_log() -> Iterator[Any]:
    """``wire_log(sandbox)``: a :class:`WireLog` in front of ``sandbox``, closed after the test."""
    logs: list[WireLog] = []

    def start(sandbox: Sandbox) -> WireLog:
        logs.append(WireLog(sandbox.endpoint_url))
        return logs[-1]

    yield start
    for log in logs:
        log.close()
