"""Where a runbook acts: the embedded sandbox (the default) or an AWS account, in one call, so notebooks stay short.

``connect()`` gives a :class:`Session` with an :class:`~opskit.aws.Aws` for one of:

- ``"sandbox"``: the sandbox ``opskit runbooks`` started (``$OPSKIT_SANDBOX_ENDPOINT``), or one at ``endpoint_url``
  (``opskit sandbox``), else an embedded sandbox with the demo history, started once per kernel and closed when the
  kernel exits;
- ``"aws"``: the usual AWS environment, or ``profile``/``region``/``endpoint_url``; with ``account`` set, the
  credentials must be that account's (a runbook never acts on the wrong account by accident).

It also makes user errors (:class:`~opskit.errors.OpskitError`) in notebook cells show as one line, not a traceback.

>>> here = connect()                                                   # doctest: +SKIP
>>> here.aws, here.library(), here.demo_app()                          # doctest: +SKIP
>>> here = connect("aws", profile="prod", region="eu-west-1", account="123456789012")   # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import html
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from opskit.aws import Aws
from opskit.errors import AwsError, ConfigError, OpskitError

if TYPE_CHECKING:
    from opskit.library import RevisionLibrary
    from opskit.sandbox import Sandbox

SANDBOX_ENDPOINT_ENV = "OPSKIT_SANDBOX_ENDPOINT"  # set by `opskit runbooks` for the kernels it serves
TARGETS = ("sandbox", "aws")
DEMO_APP_DOCKERFILE = """\
# The demo app: one file and no base image, so it builds anywhere without pulling;
# the label tells the sandbox to run its tasks simulated (there is no program to run).
FROM scratch
COPY release.txt /release.txt
LABEL org.opskit.sandbox.simulated=true
CMD ["/release"]
"""

_lock = threading.Lock()
_sandbox: Sandbox | None = None
_demo_app: Path | None = None


@dataclass(frozen=True)
class Session:
    """An :class:`Aws` and what it points at. ``time_scale`` is the sandbox's (1 on AWS); pass it and ``clock``
    to the panels that measure ages or pace themselves (cleanup, policy)."""

    aws: Aws
    target: str
    account_id: str
    time_scale: float = 1.0
    started_here: bool = False  # this kernel started the sandbox (and closes it at exit)
    # "Now" for ages (cleanup, lifecycle rules): the sandbox's own clock, which runs time_scale times faster; None
    # on AWS (the wall clock).
    clock: Callable[[], datetime] | None = field(default=None, repr=False, compare=False)

    @property
    def is_sandbox(self) -> bool:
        return self.target == "sandbox"

    @property
    def poll_interval(self) -> float:
        """Seconds between rollout polls: AWS's pace, or the sandbox's compressed one."""
        return max(0.2, 5.0 / self.time_scale) if self.is_sandbox else 5.0

    def library(self, **options: Any) -> RevisionLibrary:
        """The revision library here: kept in memory and paced to the sandbox's clock on a sandbox, cached on disk
        (the user cache directory) on AWS. ``options`` go to :class:`~opskit.library.RevisionLibrary`."""
        from opskit.library import RevisionLibrary

        if self.is_sandbox:
            options.setdefault("cache_path", ":memory:")
            options.setdefault("rate_scale", self.time_scale)
        return RevisionLibrary(self.aws, account_id=self.account_id, **options)

    def demo_app(self) -> Path:
        """A git checkout of a tiny app for releases to the sandbox (made once per kernel, a new commit each time)."""
        if not self.is_sandbox:
            raise ConfigError("the demo app is for the sandbox: pass the path of your own git checkout")
        return demo_app()

    def describe(self) -> str:
        if self.is_sandbox:
            where = "started in this kernel" if self.started_here else "shared"
            return (
                f"the opskit sandbox at {self.aws.custom_endpoint} ({where}, {self.time_scale:g}x AWS's pace), "
                f"account {self.account_id}, region {self.aws.region}"
            )
        profile = f", profile {self.aws.profile}" if self.aws.profile else ""
        endpoint = f", endpoint {self.aws.custom_endpoint}" if self.aws.custom_endpoint else ""
        return f"AWS account {self.account_id}, region {self.aws.region}{profile}{endpoint}"

    def __repr__(self) -> str:
        return f"<opskit session: {self.describe()}>"

    def _repr_html_(self) -> str:
        return f"<div class='opskit-session'>Acting on <b>{html.escape(self.describe())}</b></div>"


def connect(
    target: str = "sandbox",
    *,
    account: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    time_scale: float = 60.0,
) -> Session:
    """The session a runbook's parameters describe (see the module's docstring); raises one-line errors."""
    one_line_errors()
    if target not in TARGETS:
        raise ConfigError(f"target {target!r} is neither 'sandbox' nor 'aws': pick one of them")
    started_here = False
    clock: Callable[[], datetime] | None = None
    if target == "sandbox":
        shared = endpoint_url or os.environ.get(SANDBOX_ENDPOINT_ENV)
        if shared:
            aws, scale = _join_sandbox(shared.rstrip("/"), region)
            clock = partial(_sandbox_now, shared.rstrip("/"))
        else:
            sandbox, started_here = _embedded_sandbox(time_scale)
            aws, scale, clock = sandbox.aws(), sandbox.clock.time_scale, sandbox.clock.now
    else:
        aws, scale = Aws(region=region, profile=profile, endpoint_url=endpoint_url), 1.0
    try:
        account_id = aws.account_id
    except AwsError as exc:
        where = aws.custom_endpoint or f"AWS in {aws.region}"
        raise AwsError(f"cannot read the account at {where} ({exc}): check the target") from exc
    if account and str(account) != account_id:
        raise ConfigError(
            f"the credentials are for account {account_id}, not {account}: "
            "use the profile of the account this runbook is for, or change `account`"
        )
    return Session(
        aws=aws, target=target, account_id=account_id, time_scale=scale, started_here=started_here, clock=clock
    )


def _sandbox_now(endpoint: str) -> datetime:
    """The shared sandbox's clock (its admin endpoint), so ages match its compressed time."""
    try:
        with urllib.request.urlopen(f"{endpoint}/_opskit/clock", timeout=10) as answer:
            return datetime.fromisoformat(json.load(answer)["now"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"the sandbox at {endpoint} no longer answers: start the runbooks again") from exc


def _join_sandbox(endpoint: str, region: str | None) -> tuple[Aws, float]:
    from opskit.sandbox.sandbox import ACCESS_KEY_ID, DEFAULT_REGION, SECRET_ACCESS_KEY

    try:
        with urllib.request.urlopen(f"{endpoint}/_opskit/clock", timeout=10) as answer:
            scale = float(json.load(answer)["time_scale"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            f"no opskit sandbox answers at {endpoint}: start one (`opskit sandbox`), or leave endpoint_url None"
        ) from exc
    aws = Aws(
        region=region or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION,
        endpoint_url=endpoint,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
    )
    return aws, scale


def _embedded_sandbox(time_scale: float) -> tuple[Sandbox, bool]:
    """This kernel's sandbox with the demo history: started on first use, closed at exit."""
    global _sandbox
    with _lock:
        if _sandbox is not None:
            return _sandbox, True
        from opskit.sandbox import Sandbox

        sandbox = Sandbox(seed="demo", time_scale=time_scale)
        sandbox.start()
        atexit.register(sandbox.close)
        _sandbox = sandbox
        return sandbox, True


def embedded_sandbox() -> Sandbox | None:
    """The sandbox this kernel started, if it did (its clock, faults and call counters are knobs to play with)."""
    return _sandbox


def demo_app() -> Path:
    """A git checkout (in a temporary folder, removed at exit) of an app that builds FROM scratch."""
    global _demo_app
    with _lock:
        if _demo_app is None:
            folder = Path(tempfile.mkdtemp(prefix="opskit-demo-app-"))
            atexit.register(shutil.rmtree, folder, True)
            (folder / "Dockerfile").write_text(DEMO_APP_DOCKERFILE)
            _git(folder, "init", "-q")
            _demo_app = folder
        change_demo_app(_demo_app)
        return _demo_app


def change_demo_app(folder: Path) -> str:
    """Commit a change to the demo app (so the next release has a new commit to release); returns its SHA."""
    moment = datetime.now(UTC).isoformat()
    (folder / "release.txt").write_text(f"released from a runbook at {moment}\n")
    _git(folder, "add", "-A")
    _git(folder, "commit", "-qm", f"demo change at {moment}")
    return _git(folder, "rev-parse", "HEAD").strip()


def _git(folder: Path, *args: str) -> str:
    try:
        answer = subprocess.run(
            [
                "git",
                "-C",
                str(folder),
                "-c",
                "user.name=opskit runbook",
                "-c",
                "user.email=runbook@opskit.invalid",
                *args,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed: install git, releases are tagged with the commit SHA") from exc
    except subprocess.CalledProcessError as exc:
        raise ConfigError(f"git {args[0]} failed in {folder}: {exc.stderr.strip() or exc}") from exc
    return answer.stdout


def one_line_errors() -> None:
    """In IPython, show :class:`OpskitError` from a cell as one line (``ConfigError: ...``), not a traceback."""
    shell = _ipython() if "IPython" in sys.modules else None
    if shell is None or OpskitError in getattr(shell, "custom_exceptions", ()):
        return

    def show(shell: Any, etype: type[BaseException], value: BaseException, tb: Any, tb_offset: Any = None) -> Any:
        line = f"{etype.__name__}: {value}"
        # IPython's display hook for a traceback (the one kernels override to send it): one line, as an error.
        shell._showtraceback(etype, value, [line])
        return [line]

    shell.set_custom_exc((OpskitError,), show)


def _ipython() -> Any:
    from IPython.core.getipython import get_ipython

    shell: Any = cast(Any, get_ipython)()  # typed in newer IPython only
    return shell


__all__ = ["SANDBOX_ENDPOINT_ENV", "Session", "change_demo_app", "connect", "demo_app", "embedded_sandbox"]
