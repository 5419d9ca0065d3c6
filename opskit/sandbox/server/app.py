"""The sandbox's HTTP front door: one port for the AWS APIs, the registry and the sandbox's own knobs.

Every AWS request is counted, then meets the injected faults and the throttle, then goes to the sandbox's own
model for the actions where moto is not faithful enough, or to moto's server application for the rest
(clusters, repositories, load balancers, VPCs, STS ...). The sandbox's own actions are ECS's and ECR's (JSON) and
a few of Elastic Load Balancing's (query protocol, answered in XML). ``/v2/`` is the ECR data plane (the registry
proxy); ``/_opskit/`` holds the knobs (call counter, clock, faults) for tests and benchmarks over HTTP.

A test may set an ``observer``: the front door then shows it every AWS and registry request twice, on arrival
(nothing has acted on it) and once it is served (the answer is ready, not yet sent), so a test can stop or stall
a client at an exact point of its work: for instance kill it while a call it made has acted but not answered.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from werkzeug.wrappers import Request, Response

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.server.faults import Faults
from opskit.sandbox.server.throttle import Throttle
from opskit.sandbox.server.wire import (
    JSON_CONTENT_TYPE,
    SERVICE_BY_TARGET,
    ApiError,
    ApiRequest,
    Handler,
    encode,
    error_body,
    query_body,
    query_error_body,
    query_params,
    query_service,
    region_from_authorization,
)

log = logging.getLogger("opskit.sandbox")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
# The environ key of the request's connection socket, set by the sandbox's HTTP server: the dropped-connection fault
# shuts it. werkzeug's development server (the speed benchmark serves this app with it too) names it werkzeug.socket.
CONNECTION_SOCKET = "opskit.connection_socket"
_ACTION_IN_FORM = re.compile(rb"(?:^|&)Action=([A-Za-z0-9]+)")


class Forward(Exception):
    """Raised by a sandbox handler to let moto answer this call after all (e.g. tags on a cluster ARN)."""


@dataclass(frozen=True)
class Seen:
    """A request at the front door, as an observer sees it."""

    action: str  # the AWS action ("RegisterTaskDefinition"), or "registry" for the ECR data plane at /v2
    method: str
    path: str
    served: bool = False  # False: it just arrived, nothing acted on it; True: served, its answer not yet sent


Observer = Callable[[Seen], None]


class SandboxApp:
    """WSGI application; ``handlers(service, region)`` gives the sandbox's own actions for a region."""

    def __init__(
        self,
        *,
        clock: SandboxClock,
        throttle: Throttle,
        faults: Faults,
        account_id: str,
        default_region: str,
        handlers: Callable[[str, str], dict[str, Handler]],
        moto_app: WSGIApp,
        moto_serves: Callable[[str, str], bool],
        registry: WSGIApp | None = None,
        admin: Callable[[Request], Response | None] | None = None,
    ) -> None:
        self.clock = clock
        self.throttle = throttle
        self.faults = faults
        self.account_id = account_id
        self.default_region = default_region
        self.handlers = handlers
        self.moto_app = moto_app
        self.moto_serves = moto_serves
        self.registry = registry
        self.admin = admin
        self._lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.throttled: Counter[str] = Counter()
        self.expired_keys: set[str] = set()  # access keys answered with ExpiredTokenException
        self.observer: Observer | None = None  # a test hook: see the module's docstring

    def reset_counters(self) -> None:
        with self._lock:
            self.calls.clear()
            self.throttled.clear()

    # -- routing ------------------------------------------------------------------------------------------------------
    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        observer = self.observer
        if observer is None or environ.get("PATH_INFO", "").startswith("/_opskit/"):
            return self._route(environ, start_response)
        return self._observed(observer, environ, start_response)

    def _observed(
        self, observer: Observer, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterator[bytes]:
        path = environ.get("PATH_INFO", "")
        action = "registry" if path.startswith("/v2") else _service_action(environ, _body(environ))[1]
        seen = Seen(action, environ.get("REQUEST_METHOD", "GET"), path)
        observer(seen)
        answer = iter(self._route(environ, start_response))
        try:
            first = next(answer, None)  # ready: whatever serves it has acted (a streamed answer, its first chunk)
            observer(replace(seen, served=True))
            if first is not None:
                yield first
                yield from answer
        finally:
            close = getattr(answer, "close", None)
            if close is not None:
                close()

    def _route(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith("/v2"):
            if self.registry is None:
                return Response(
                    json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "this sandbox has no registry"}]}),
                    status=503,
                    content_type="application/json",
                )(environ, start_response)
            return self.registry(environ, start_response)
        if path.startswith("/_opskit/"):
            return self._admin(environ, start_response)
        return self._aws(environ, start_response)

    def _admin(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        response: Response | None = None
        if request.path == "/_opskit/calls":
            if request.method == "DELETE":
                self.reset_counters()
            with self._lock:
                response = _json(dict(self.calls))
        elif request.path == "/_opskit/throttled":
            with self._lock:
                response = _json(dict(self.throttled))
        elif self.admin is not None:
            response = self.admin(request)
        if response is None:
            response = _json({"message": f"no such sandbox endpoint: {request.method} {request.path}"}, 404)
        return response(environ, start_response)

    def _aws(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = _body(environ)
        service, action = _service_action(environ, body)
        with self._lock:
            self.calls[action] += 1

        fate = self.faults.draw(action)
        if fate.delay:
            time.sleep(fate.delay)
        if fate.drop:
            return self._drop(environ, start_response)
        if fate.error:
            return _aws_error("ServerException", "Injected fault: internal error, retry the call.", 500)(
                environ, start_response
            )
        if fate.throttle or (service is not None and not self.throttle.admit(action, service)):
            with self._lock:
                self.throttled[action] += 1
            return _aws_error("ThrottlingException", "Rate exceeded", 400)(environ, start_response)

        access_key = _access_key(environ.get("HTTP_AUTHORIZATION"))
        if access_key in self.expired_keys:
            return _aws_error("ExpiredTokenException", "The security token included in the request is expired", 400)(
                environ, start_response
            )
        region = region_from_authorization(environ.get("HTTP_AUTHORIZATION"), self.default_region)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.account_id
        if service is not None:
            own = self.handlers(service, region).get(action)
            if own is not None:
                try:
                    params = json.loads(body or b"{}")
                    if not isinstance(params, dict):
                        raise ValueError
                except ValueError:
                    return _aws_error("SerializationException", "The request body is not a JSON object.", 400)(
                        environ, start_response
                    )
                request = ApiRequest(service, action, params, region, self.account_id, body, access_key=access_key)
                answer = _own(own, request, lambda result: _json(result, content_type=JSON_CONTENT_TYPE))
                if answer is not None:
                    return answer(environ, start_response)
            elif not self.moto_serves(service, action):
                return _aws_error(
                    "UnknownOperationException",
                    f"The opskit sandbox does not serve {service.upper()} {action}; "
                    "run this call against AWS, or ask for it in an opskit issue.",
                    400,
                )(environ, start_response)
        elif (query := query_service(environ.get("HTTP_AUTHORIZATION"), body)) is not None:
            # A query-protocol service: the sandbox answers the few actions it models, moto the rest.
            own = self.handlers(query, region).get(action)
            if own is not None:
                request = ApiRequest(
                    query, action, query_params(body), region, self.account_id, body, access_key=access_key
                )
                answer = _own(own, request, lambda result: _xml(query_body(query, action, result)))
                if answer is not None:
                    return answer(environ, start_response)
        return self._moto(environ, start_response, action)

    def _moto(self, environ: dict[str, Any], start_response: Callable[..., Any], action: str) -> Iterable[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], Any]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        try:
            chunks = b"".join(self.moto_app(environ, capture))
        except NotImplementedError:
            captured["status"] = "501"
            chunks = b""
        status = int(str(captured.get("status", "500")).split()[0])
        headers = dict(captured.get("headers", []))
        if status >= 500 and "html" in headers.get("Content-Type", "html"):
            # moto answers what it cannot do with an HTML 500 that botocore would retry for minutes.
            return _aws_error(
                "UnknownOperationException",
                f"The opskit sandbox does not serve {action}; run this call against AWS.",
                400,
            )(environ, start_response)
        response = Response(chunks, status=status, headers=list(captured.get("headers", [])))
        return response(environ, start_response)

    @staticmethod
    def _drop(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        sock = environ.get(CONNECTION_SOCKET) or environ.get("werkzeug.socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # Nothing reaches the client; the server fails to write this answer to the shut socket, closes the
        # connection and moves on.
        start_response("500 Dropped", [("Connection", "close"), ("Content-Length", "0")])
        return [b""]


def _own(own: Handler, request: ApiRequest, render: Callable[[dict[str, Any]], Response]) -> WSGIApp | None:
    """The sandbox's answer to a call it serves, in the service's protocol; None when its handler lets moto answer
    (raises :class:`Forward`)."""
    try:
        return render(own(request))
    except ApiError as exc:
        return _aws_error(exc.code, exc.message, exc.status)
    except Forward:
        return None
    except Exception as exc:  # a sandbox bug: answer like AWS would, keep the traceback in the log
        log.error("sandbox failed on %s:\n%s", request.action, traceback.format_exc())
        return _aws_error("ServerException", f"sandbox error in {request.action}: {exc}", 500)


def _body(environ: dict[str, Any]) -> bytes:
    """The request's body, left in place for whoever reads it next (moto reads it again)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return bytes(body)


def _service_action(environ: dict[str, Any], body: bytes) -> tuple[str | None, str]:
    """(ecs, ecr or None, the action) of an AWS request: from X-Amz-Target (JSON protocol), else the form."""
    prefix, _, action = environ.get("HTTP_X_AMZ_TARGET", "").partition(".")
    if not action:
        match = _ACTION_IN_FORM.search(body)
        action = match.group(1).decode() if match else "Unknown"
    return SERVICE_BY_TARGET.get(prefix), action


def _access_key(authorization: str | None) -> str | None:
    match = re.search(r"Credential=([^/]+)/", authorization or "")
    return match.group(1) if match else None


def _json(body: Any, status: int = 200, content_type: str = "application/json") -> Response:
    return Response(
        encode(body) if isinstance(body, dict) else json.dumps(body), status=status, content_type=content_type
    )


def _xml(body: bytes) -> Response:
    return Response(body, content_type="text/xml")


def _aws_error(code: str, message: str, status: int) -> WSGIApp:
    """An error in the protocol of the service called: JSON for ECS and ECR, XML for query-protocol ones (STS, ELB)."""

    def answer(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {"x-amzn-ErrorType": code, "x-amzn-RequestId": "opskit-sandbox"}
        if not environ.get("HTTP_X_AMZ_TARGET") and "form-urlencoded" in environ.get("CONTENT_TYPE", ""):
            body, content_type = query_error_body(code, message), "text/xml"
        else:
            body, content_type = error_body(code, message), JSON_CONTENT_TYPE
        return Response(body, status=status, content_type=content_type, headers=headers)(environ, start_response)

    return answer
