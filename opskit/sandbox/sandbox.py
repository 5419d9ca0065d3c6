"""The embedded sandbox: a local ECS/ECR that speaks the AWS wire protocol.

>>> with Sandbox(seed=None, time_scale=60) as sandbox:            # doctest: +SKIP
...     ecs = sandbox.client("ecs")
...     ecs.create_cluster(clusterName="prod")
...     sandbox.clock.advance(3600)                                 # an hour passes; rollouts catch up

Pieces (each replaceable, each with its own module):

- the control plane: :class:`~opskit.sandbox.server.app.SandboxApp` over moto's server application, on 127.0.0.1, served
  by cheroot (HTTP/1.1 keep-alive: boto3's pooled connections are reused, not opened anew for every call);
- the models moto gets wrong: task definitions, services/deployments/tasks, ECR images;
- the data plane: a real distribution registry behind the ECR proxy at ``/v2/`` (when the binary is there);
- the user's Docker engine (DOCKER_HOST or the default socket) to run tasks' containers, when reachable;
- the knobs: :attr:`clock`, :attr:`throttle`, :attr:`faults`, :attr:`calls`.
"""

from __future__ import annotations

import base64
import errno
import logging
import math
import shutil
import socket
import tempfile
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cheroot import wsgi as cheroot_wsgi
from werkzeug.wrappers import Request, Response

from opskit.aws import Aws
from opskit.errors import ConfigError
from opskit.sandbox.clock import SandboxClock
from opskit.sandbox.ecr.registry_proxy import issued_passwords
from opskit.sandbox.region import Region
from opskit.sandbox.server.app import CONNECTION_SOCKET, Observer, SandboxApp
from opskit.sandbox.server.faults import Faults
from opskit.sandbox.server.throttle import Throttle

log = logging.getLogger("opskit.sandbox")

DEFAULT_ACCOUNT = "123456789012"
DEFAULT_REGION = "us-east-1"
# Credentials the sandbox accepts; they open nothing anywhere else.
ACCESS_KEY_ID = "AKIAOPSKITSANDBOX000"
SECRET_ACCESS_KEY = "opskit-sandbox-secret-key-not-a-real-secret"
TICK_SECONDS = 0.05
LISTEN_BACKLOG = 128
# The HTTP server. A worker thread is held only while a request is in flight (idle keep-alive connections wait in
# cheroot's selector, holding none), so this bounds requests served at once: several boto3 clients with pools of 10,
# parallel layer uploads and stalled test requests stay far below it; past it, requests queue, none is refused.
HTTP_WORKERS = 64
KEEP_ALIVE_CONNECTIONS = 512  # idle connections kept open at once; past that an answer closes its connection
IDLE_SECONDS = 60  # an idle keep-alive connection is closed after this (AWS's load balancers' default)
SHUTDOWN_SECONDS = 5  # close() gives requests in flight this long, then shuts their connections

_accounts_lock = threading.Lock()
_accounts_in_use: set[str] = set()


def issued_secrets() -> frozenset[str]:
    """Every secret the sandboxes of this process handed out (closed ones too): the secret access key, and each
    registry password with the ECR authorization token that carried it. Tests look for them in what opskit shows.

    >>> SECRET_ACCESS_KEY in issued_secrets()
    True
    """
    return _secrets_of(issued_passwords())


def _secrets_of(passwords: Iterable[str]) -> frozenset[str]:
    out = {SECRET_ACCESS_KEY}
    for password in passwords:
        out.update((password, base64.b64encode(f"AWS:{password}".encode()).decode()))
    return frozenset(out)


def _claim_account(preferred: str) -> str:
    """moto keeps clusters and repositories per account in one process-wide store: concurrent sandboxes in one
    process each take their own account so they never see each other's resources."""
    with _accounts_lock:
        candidate = int(preferred)
        while f"{candidate:012d}" in _accounts_in_use:
            candidate += 1
        account = f"{candidate:012d}"
        _accounts_in_use.add(account)
        return account


class _Gateway(cheroot_wsgi.Gateway_10):
    """cheroot's WSGI 1.0 environ, plus two keys the sandbox's app reads: ``RAW_URI``, the request target as sent
    (werkzeug's and gunicorn's name: the registry proxy forwards it unchanged, query string included), and
    :data:`~opskit.sandbox.server.app.CONNECTION_SOCKET`, the connection's socket, which the dropped-connection fault
    shuts so that no answer reaches the client."""

    def get_environ(self) -> dict[str, Any]:  # type: ignore[override]  # cheroot's stub of the base says None
        environ: dict[str, Any] = super().get_environ()  # type: ignore[no-untyped-call]
        environ["RAW_URI"] = environ["REQUEST_URI"]
        environ[CONNECTION_SOCKET] = self.req.conn.socket
        if self.req.chunked_read:
            # cheroot drains an unread body before the next request on the connection only when its length is known:
            # a chunked upload (docker's layer PATCHes) ends its connection rather than risk reading leftovers.
            self.req.close_connection = True
        return environ


class _HttpServer(cheroot_wsgi.Server):
    """cheroot's WSGI server on a socket the sandbox bound and listens on itself (so a taken port is a
    :class:`ConfigError` of the sandbox's, not cheroot's), its errors in the sandbox's log."""

    keep_alive_conn_limit = KEEP_ALIVE_CONNECTIONS
    expiration_interval = 0.1  # how often idle connections are looked at; stop() waits for one look at most

    def __init__(self, listener: socket.socket, app: Any) -> None:
        self.listener = listener
        self.port: int = listener.getsockname()[1]
        super().__init__(
            listener.getsockname(),
            app,
            numthreads=HTTP_WORKERS,
            request_queue_size=LISTEN_BACKLOG,
            timeout=IDLE_SECONDS,
            shutdown_timeout=SHUTDOWN_SECONDS,
        )
        self.gateway = _Gateway

    def bind(self, family: int, type: int, proto: int = 0) -> socket.socket:
        """Serve the listener given (cheroot's prepare() calls this to make its socket): bound already."""
        self.socket = self.listener
        return self.listener

    def error_log(self, msg: str = "", level: int = logging.INFO, traceback: bool = False) -> None:
        """Errors of the app (cheroot answers 500) go to the sandbox's log with their traceback; what cheroot says of
        clients that hang up, time out or speak TLS to it (docker tries TLS on every registry host first) stays at
        debug level."""
        if level >= logging.ERROR:
            log.error("sandbox HTTP server: %s", msg, exc_info=traceback)
        else:
            log.debug("sandbox HTTP server: %s", msg, exc_info=traceback)


def _moto_serves(service: str, action: str) -> bool:
    from moto.core.utils import camelcase_to_underscores
    from moto.ecr.responses import ECRResponse
    from moto.ecs.responses import EC2ContainerServiceResponse

    cls = {"ecs": EC2ContainerServiceResponse, "ecr": ECRResponse}[service]
    return callable(getattr(cls, camelcase_to_underscores(action), None))


class Sandbox:
    """A local ECS/ECR on 127.0.0.1; a context manager.

    ``seed="demo"`` lays down the demo history (:func:`opskit.sandbox.demo.seed_demo`); ``seed=None`` starts empty.
    ``time_scale`` makes the clock, the throttle refills and the rollouts run that many times faster than wall time.
    ``registry``/``docker``: ``"auto"`` uses what is there, ``False`` does without.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        seed: str | None = "demo",
        time_scale: float = 1.0,
        region: str = DEFAULT_REGION,
        account_id: str = DEFAULT_ACCOUNT,
        throttle: bool = True,
        registry: str | bool = "auto",
        docker: str | bool = "auto",
        fault_seed: int | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ConfigError(f"port {port} is out of range: pass a port from 1 to 65535, or 0 for any free port")
        if not (time_scale > 0 and math.isfinite(time_scale)):
            raise ConfigError(f"time scale {time_scale} is not a finite number above 0: pass one, such as 1 or 60")
        if seed not in (None, "demo"):
            raise ConfigError(f"unknown seed {seed!r}: pass 'demo' or nothing")
        self._port = port
        self._seed = seed
        self._want_registry = registry
        self._want_docker = docker
        self.region_name = region
        self.account_id = _claim_account(account_id)
        self.clock = SandboxClock(time_scale=time_scale)
        self.throttle = Throttle(self.clock, enabled=throttle)
        self.faults = Faults(seed=fault_seed)
        self.region: Region | None = None
        self.registry: Any = None  # opskit.sandbox.ecr.registry.Registry when one runs
        self.docker: Any = None  # docker.DockerClient when an engine answers
        self.docker_host: str | None = None
        self.notices: list[str] = []  # one-line notes on what is unavailable, for the CLI to print
        self._server: _HttpServer | None = None
        self._serving_error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._workdir: Path | None = None
        self.app: SandboxApp | None = None

    # -- lifecycle ----------------------------------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Sandbox:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        self._workdir = Path(tempfile.mkdtemp(prefix="opskit-sandbox-"))
        self._server = _HttpServer(self._listen(), self._dispatch)
        self._start_docker()
        self._start_registry()
        self.region = Region(
            name=self.region_name,
            account_id=self.account_id,
            clock=self.clock,
            registry=self.registry,
            registry_host=self.registry_host,
            docker=self.docker,
            runner_id=f"{self.account_id}-{self.port}",
            lambda_env=self.env,
        )
        self.app = SandboxApp(
            clock=self.clock,
            throttle=self.throttle,
            faults=self.faults,
            account_id=self.account_id,
            default_region=self.region_name,
            handlers=self.region.handlers,
            moto_app=DomainDispatcherApplication(create_backend_app),
            moto_serves=_moto_serves,
            registry=self.region.registry_app,
            admin=self._admin,
        )
        self._serve_http()
        self._spawn("opskit-sandbox-engine", self._run_engine)
        self.clock.on_change(self.tick)
        if self._seed == "demo":
            from opskit.sandbox.demo import seed_demo

            seed_demo(self)
        return self

    def _listen(self) -> socket.socket:
        """The sandbox's socket on 127.0.0.1, bound and listening: a taken port is one clear error."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            # As servers do (cheroot among them): a port whose last connections are still in TIME_WAIT can be
            # bound again at once; a port another socket listens on still cannot.
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # inherited by accepted connections
            listener.bind(("127.0.0.1", self._port))
            listener.listen(LISTEN_BACKLOG)
        except OSError as exc:
            listener.close()
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {self._port} on 127.0.0.1 is taken: pass another --port, or 0 for any free port"
                ) from exc
            raise
        return listener

    def _serve_http(self) -> None:
        """Serve HTTP in a daemon thread. cheroot's worker threads are made in there, by prepare(), and so are
        daemon threads too (a thread takes its creator's flag): a sandbox never closed (a kernel's, closed by atexit,
        which runs only once the other threads have ended) cannot hold the process open at exit."""
        server = self._server
        assert server is not None
        prepared = threading.Event()

        def serve() -> None:
            try:
                server.prepare()
            except BaseException as exc:  # handed to start(), which raises it
                self._serving_error = exc
                return
            finally:
                prepared.set()
            server.serve()

        self._spawn("opskit-sandbox-http", serve)
        prepared.wait()
        if self._serving_error is not None:
            raise self._serving_error

    def close(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.stop()  # waits for requests in flight (SHUTDOWN_SECONDS), then for every worker thread
            self._server.listener.close()  # stop() closes it only when it served
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        if self.region is not None:
            self.region.close()
        if self.registry is not None:
            self.registry.stop()
            self.registry = None
        if self.docker is not None:
            self.docker.close()
            self.docker = None
        self._reset_moto()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
        with _accounts_lock:
            _accounts_in_use.discard(self.account_id)

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Any:
        assert self.app is not None
        return self.app(environ, start_response)

    def _spawn(self, name: str, target: Any) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_engine(self) -> None:
        while not self._stopping.wait(TICK_SECONDS):
            self.tick()

    def tick(self) -> None:
        """Advance rollouts, tasks and pending deletions to the clock's now."""
        if self.region is not None and not self._stopping.is_set():
            try:
                self.region.tick()
            except Exception:  # keep the engine alive; the traceback is a sandbox bug to report
                log.exception("sandbox engine tick failed")

    def _reset_moto(self) -> None:
        """Forget this account's resources in moto's process-wide store: the next sandbox to take the account starts
        empty (its functions, roles, log groups, alarms, parameters and secrets too, which users create with plain
        boto3)."""
        from moto.awslambda.models import lambda_backends
        from moto.cloudwatch.models import cloudwatch_backends
        from moto.ecr.models import ecr_backends
        from moto.ecs.models import ecs_backends
        from moto.iam.models import iam_backends
        from moto.logs.models import logs_backends
        from moto.secretsmanager.models import secretsmanager_backends
        from moto.ssm.models import ssm_backends

        for backends in (
            ecs_backends,
            ecr_backends,
            lambda_backends,
            iam_backends,
            logs_backends,
            cloudwatch_backends,
            ssm_backends,
            secretsmanager_backends,
        ):
            if self.account_id in backends:
                backends[self.account_id].reset()

    def _start_docker(self) -> None:
        if self._want_docker is False:
            return
        from opskit.docker_engine import engine_or_none

        self.docker, self.docker_host = engine_or_none()
        if self.docker is None:
            self.notices.append(
                "no Docker engine answered (DOCKER_HOST or the default socket): tasks run simulated, without containers"
            )

    def _start_registry(self) -> None:
        if self._want_registry is False:
            return
        from opskit.sandbox.ecr.registry import Registry

        assert self._workdir is not None
        self.registry = Registry.start(self._workdir / "registry", docker=self.docker)
        if self.registry is None:
            self.notices.append(
                "no registry binary (docker-registry) and no registry:2 image: image pushes are unavailable"
            )

    # -- where to reach it --------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "start the sandbox first"
        return self._server.port

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def registry_host(self) -> str:
        """Where images are pushed: the host part of every repositoryUri."""
        return f"127.0.0.1:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The environment that points boto3, the aws CLI and opskit at this sandbox."""
        env = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region_name,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
        return env

    def aws(self, **options: Any) -> Aws:
        """An :class:`opskit.aws.Aws` pointed at this sandbox, with its credentials."""
        return Aws(
            region=self.region_name,
            endpoint_url=self.endpoint_url,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            **options,
        )

    def client(self, service: str, **options: Any) -> Any:
        """A boto3 client for ``service`` at this sandbox (the sandbox's keys unless ``options`` name others, e.g.
        an IAM user's: the calls are then that user's)."""
        import boto3

        credentials = {"aws_access_key_id": ACCESS_KEY_ID, "aws_secret_access_key": SECRET_ACCESS_KEY}
        return boto3.client(
            service, region_name=self.region_name, endpoint_url=self.endpoint_url, **{**credentials, **options}
        )

    # -- knobs --------------------------------------------------------------------------------------------------------
    @property
    def calls(self) -> Counter[str]:
        """API calls received per action since the start or the last :meth:`reset_calls`."""
        assert self.app is not None
        return Counter(self.app.calls)

    @property
    def throttled(self) -> Counter[str]:
        assert self.app is not None
        return Counter(self.app.throttled)

    def expire_credentials(self, access_key_id: str) -> None:
        """Answer every call signed with ``access_key_id`` as AWS answers an expired session token."""
        assert self.app is not None
        self.app.expired_keys.add(access_key_id)

    def secrets(self) -> frozenset[str]:
        """What this sandbox handed out that no output may show: its secret access key, and every registry password
        (GetAuthorizationToken's, or a task's image pull) with the authorization token that carried it."""
        return _secrets_of(self.region.images.tokens.issued if self.region is not None else ())

    def reset_calls(self) -> None:
        assert self.app is not None
        self.app.reset_counters()

    @contextmanager
    def observing(self, observer: Observer) -> Iterator[None]:
        """Inside the block, ``observer`` sees every AWS and registry request on arrival and once served (before its
        answer is sent), in the thread that serves it: a test hook to stop or stall a client at an exact point.

        >>> with sandbox.observing(lambda seen: print(seen.action, seen.served)):   # doctest: +SKIP
        ...     sandbox.client("ecs").list_clusters()
        ListClusters False
        ListClusters True
        """
        assert self.app is not None
        self.app.observer = observer
        try:
            yield
        finally:
            self.app.observer = None

    def _admin(self, request: Request) -> Response | None:
        import json

        if request.path == "/_opskit/health":
            return Response(
                json.dumps({"ok": True, "registry": self.registry is not None}),
                content_type="application/json",
            )
        if request.path == "/_opskit/clock":
            if request.method == "POST":
                body = request.get_json(force=True, silent=True) or {}
                self.clock.advance(float(body.get("advance", 0)))
            return Response(
                json.dumps({"now": self.clock.now().isoformat(), "time_scale": self.clock.time_scale}),
                content_type="application/json",
            )
        return None
