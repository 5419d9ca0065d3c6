"""ECR's data plane on the sandbox's port: a streaming reverse proxy from ``/v2/...`` to the registry.

It adds what ECR adds to a plain registry:

- Basic auth with user ``AWS`` and a password from GetAuthorizationToken, valid 12 hours on the sandbox
  clock (401 with a Basic challenge without one, so ``docker login`` and the Docker SDK's ``auth_config``
  work; 403 once it has expired);
- repositories must exist in ECR (NAME_UNKNOWN otherwise);
- a manifest PUT obeys the repository's tag mutability (TAG_INVALID, even for the very image an immutable tag
  already holds) and is recorded in the image model, which is then the truth for tags: pulls by tag resolve
  through it, so untagging and deleting through the ECR API show at once;
- deletes go through BatchDeleteImage, as on ECR (UNSUPPORTED here).

Bodies stream both ways (layer uploads are chunked PATCHes); the client's Host header is forwarded, so the
registry's Location headers keep pointing at the sandbox's port.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, quote

from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.ecr.images import MAX_MANIFEST_BYTES, ImageStore, Manifest
from opskit.sandbox.ecr.registry import Registry
from opskit.sandbox.server.wire import ApiError

log = logging.getLogger("opskit.sandbox")

TOKEN_LIFETIME = timedelta(hours=12)
CHUNK = 256 * 1024
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
        "content-length",
        "authorization",  # the registry has no auth of its own; the password stays here
    }
)
_FROM_REGISTRY_DROP = frozenset({"connection", "keep-alive", "transfer-encoding", "date", "server"})
_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<reference>[^/]+)$")
_UPLOAD = re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<reference>[^/]*)$")
_BLOB = re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<reference>[^/]+)$")
_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")

StartResponse = Callable[..., Any]


# Every registry password a sandbox of this process issued: what tests look for in outputs, where none may appear.
_issued_lock = threading.Lock()
_issued_passwords: set[str] = set()


def issued_passwords() -> frozenset[str]:
    """Every registry password the sandboxes of this process have issued (closed ones too)."""
    with _issued_lock:
        return frozenset(_issued_passwords)


class AuthorizationTokens:
    """Registry passwords issued by GetAuthorizationToken; checked by hash, never logged. The passwords themselves
    are kept too (:attr:`issued`, :func:`issued_passwords`), so tests can prove no output shows one."""

    def __init__(self, clock: SandboxClock) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._expiry: dict[str, float] = {}  # sha256(password) -> expiry (sandbox POSIX seconds)
        self.issued: list[str] = []  # by this sandbox, in order

    def issue(self) -> tuple[str, datetime]:
        password = secrets.token_urlsafe(48)
        expires = self.clock.now() + TOKEN_LIFETIME
        with self._lock:
            now = self.clock.timestamp()
            self._expiry = {k: v for k, v in self._expiry.items() if v > now}
            self._expiry[_hash(password)] = expires.timestamp()
            self.issued.append(password)
        with _issued_lock:
            _issued_passwords.add(password)
        return password, expires

    def check(self, password: str) -> str:
        """``"valid"``, ``"expired"`` or ``"unknown"``."""
        with self._lock:
            expiry = self._expiry.get(_hash(password))
        if expiry is None:
            return "unknown"
        return "valid" if self.clock.timestamp() < expiry else "expired"


def _hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


class RegistryProxy:
    """The WSGI app for ``/v2/...``."""

    def __init__(
        self,
        *,
        store: ImageStore,
        tokens: AuthorizationTokens,
        registry: Registry,
        registry_host: str,
        account_id: str,
    ) -> None:
        self.store = store
        self.tokens = tokens
        self.registry = registry
        self.registry_host = registry_host
        self.account_id = account_id

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        denied = self._authenticate(environ)
        if denied is not None:
            return denied(start_response)
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "GET")
        try:
            if match := _MANIFEST.match(path):
                return self._manifest(environ, start_response, match["name"], match["reference"])
            if match := _TAGS.match(path):
                return self._tags(environ, start_response, match["name"])
            match = _UPLOAD.match(path) or _BLOB.match(path)
            if match:
                self._require_repository(match["name"])
                if method == "DELETE" and _BLOB.match(path) and not _UPLOAD.match(path):
                    return _unsupported("Deleting blobs is not supported: delete images with BatchDeleteImage.")(
                        start_response
                    )
            return self._forward(environ, start_response)
        except _Refusal as refusal:
            return refusal(start_response)

    # -- auth ------------------------------------------------------------------------------------------------
    def _authenticate(self, environ: dict[str, Any]) -> _Refusal | None:
        scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                user = ""
        state = self.tokens.check(password) if user == "AWS" and password else "unknown"
        if state == "valid":
            return None
        if state == "expired":
            return _Refusal(403, "DENIED", "Your authorization token has expired. Reauthenticate and try again.")
        challenge = f'Basic realm="http://{self.registry_host}/",service="ecr.amazonaws.com"'
        return _Refusal(
            401,
            "UNAUTHORIZED",
            "authentication required: log in with the password from ECR GetAuthorizationToken (user AWS)",
            headers=[("WWW-Authenticate", challenge)],
        )

    def _require_repository(self, name: str) -> None:
        if not self.store.exists(name):
            raise _Refusal(
                404,
                "NAME_UNKNOWN",
                f"The repository with name '{name}' does not exist in the registry with id '{self.account_id}'",
            )

    # -- manifests and tags: the ECR model decides -----------------------------------------------------------
    def _manifest(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, reference: str
    ) -> Iterable[bytes]:
        self._require_repository(name)
        method = environ.get("REQUEST_METHOD", "GET")
        if method == "PUT":
            return self._put_manifest(environ, start_response, name, reference)
        if method == "DELETE":
            return _unsupported("Deleting manifests is not supported: delete images with BatchDeleteImage.")(
                start_response
            )
        image = self.store.resolve(name, reference)
        if image is None:
            raise _Refusal(404, "MANIFEST_UNKNOWN", "Requested image not found")
        on_ok = (lambda: self.store.note_pull(name, image.digest)) if method == "GET" else None
        path = f"/v2/{name}/manifests/{quote(image.digest, safe=':')}"
        return self._forward(environ, start_response, path=path, on_ok=on_ok)

    def _put_manifest(
        self, environ: dict[str, Any], start_response: StartResponse, name: str, reference: str
    ) -> Iterable[bytes]:
        body = _read_limited(environ, MAX_MANIFEST_BYTES)
        if body is None:
            raise _Refusal(400, "MANIFEST_INVALID", f"manifest invalid: larger than {MAX_MANIFEST_BYTES} bytes")
        try:
            manifest = Manifest.parse(body, environ.get("CONTENT_TYPE"))
        except ValueError as exc:
            raise _Refusal(400, "MANIFEST_INVALID", f"manifest invalid: {exc}") from exc
        tag = None if ":" in reference else reference
        if tag is None and reference != manifest.digest:
            raise _Refusal(400, "DIGEST_INVALID", "provided digest did not match uploaded content")
        with self.store.lock:
            try:
                self.store.check_push(name, tag)
            except ApiError as exc:
                if exc.code == "ImageTagAlreadyExistsException":
                    raise _Refusal(400, "TAG_INVALID", exc.message) from exc
                raise
            headers = dict(_request_headers(environ))
            try:
                status, reply_headers, reply = self.registry.request(
                    "PUT", environ.get("RAW_URI") or environ.get("PATH_INFO", ""), body, headers
                )
            except (OSError, http.client.HTTPException) as exc:
                raise _unavailable() from exc
            if status == 201:
                self.store.record(name, manifest, tag)
        drop = _FROM_REGISTRY_DROP | {"content-length"}
        out = [(k.title(), v) for k, v in reply_headers.items() if k not in drop]
        start_response(_status(status), [*out, ("Content-Length", str(len(reply)))])
        return [reply]

    def _tags(self, environ: dict[str, Any], start_response: StartResponse, name: str) -> Iterable[bytes]:
        self._require_repository(name)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        with self.store.lock:
            _, state = self.store.repository(name)
            tags = sorted(state.tags)
        last = (query.get("last") or [""])[0]
        if last:
            tags = [t for t in tags if t > last]
        headers = [("Content-Type", "application/json"), ("Docker-Distribution-Api-Version", "registry/2.0")]
        n = (query.get("n") or [""])[0]
        if n.isdigit() and len(tags) > int(n):
            tags = tags[: int(n)]
            headers.append(("Link", f'</v2/{name}/tags/list?n={n}&last={quote(tags[-1])}>; rel="next"'))
        body = json.dumps({"name": name, "tags": tags}).encode()
        headers.append(("Content-Length", str(len(body))))
        start_response("200 OK", headers)
        return [body]

    # -- everything else: stream to the registry and back ----------------------------------------------------
    def _forward(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        *,
        path: str | None = None,
        on_ok: Callable[[], None] | None = None,
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        target = path or environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
        if path is not None and environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        conn = self.registry.connection()
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for key, value in _request_headers(environ):
                conn.putheader(key, value)
            chunked = bool(environ.get("wsgi.input_terminated")) and not environ.get("CONTENT_LENGTH")
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if chunked:
                conn.putheader("Transfer-Encoding", "chunked")
            elif length or method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", str(length))
            conn.endheaders()
            source = environ["wsgi.input"]
            if chunked:
                while data := source.read(CHUNK):
                    conn.send(b"%x\r\n%b\r\n" % (len(data), data))
                conn.send(b"0\r\n\r\n")
            else:
                while length > 0 and (data := source.read(min(CHUNK, length))):
                    conn.send(data)
                    length -= len(data)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            log.warning("the registry did not answer %s %s: %s", method, environ.get("PATH_INFO"), exc)
            return _unavailable()(start_response)
        headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _FROM_REGISTRY_DROP]
        start_response(_status(response.status, response.reason), headers)
        if on_ok is not None and response.status == 200:
            on_ok()
        if method == "HEAD":
            conn.close()
            return []
        return _stream(response, conn)


def _stream(response: http.client.HTTPResponse, conn: http.client.HTTPConnection) -> Iterator[bytes]:
    try:
        while data := response.read(CHUNK):
            yield data
    finally:
        conn.close()


def _request_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    """The client's headers for the registry, Host included (the registry builds Location URLs from it)."""
    out = []
    for key, value in environ.items():
        if not isinstance(value, str):
            continue
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
        elif key == "CONTENT_TYPE" and value:
            name = "Content-Type"
        else:
            continue
        if name.lower() in _HOP_BY_HOP or name.lower().startswith("proxy-") or name.lower().startswith("x-moto"):
            continue
        out.append((name, value))
    return out


def _read_limited(environ: dict[str, Any], limit: int) -> bytes | None:
    source = environ["wsgi.input"]
    if environ.get("CONTENT_LENGTH"):
        length = int(environ["CONTENT_LENGTH"])
        if length > limit:
            return None
        chunks, left = [], length
        while left > 0 and (data := source.read(min(CHUNK, left))):
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)
    if environ.get("wsgi.input_terminated"):
        data = source.read(limit + 1)
        return None if len(data) > limit else bytes(data)
    return b""


def _status(code: int, reason: str | None = None) -> str:
    return f"{code} {reason or http.client.responses.get(code, 'Unknown')}"


class _Refusal(Exception):  # a response, raised to unwind
    """An answer in the registry's error format: ``{"errors": [{"code", "message"}]}``."""

    def __init__(self, status: int, code: str, message: str, headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or []

    def __call__(self, start_response: StartResponse) -> Iterable[bytes]:
        body = json.dumps({"errors": [{"code": self.code, "message": self.message, "detail": None}]}).encode()
        start_response(
            _status(self.status),
            [
                ("Content-Type", "application/json; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Docker-Distribution-Api-Version", "registry/2.0"),
                *self.headers,
            ],
        )
        return [body]


def _unsupported(message: str) -> _Refusal:
    return _Refusal(405, "UNSUPPORTED", message)


def _unavailable() -> _Refusal:
    return _Refusal(503, "UNAVAILABLE", "the sandbox registry is not answering; restart the sandbox")
