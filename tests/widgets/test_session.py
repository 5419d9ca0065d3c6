"""session.connect: joining a sandbox, the account guard, and errors as one line."""

from __future__ import annotations

import subprocess

import pytest

from opskit.errors import ConfigError
from opskit.sandbox import Sandbox
from opskit.widgets import session


def test_joins_the_sandbox_runbooks_started(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(session.SANDBOX_ENDPOINT_ENV, sandbox.endpoint_url)
    here = session.connect(account=sandbox.account_id)
    assert here.is_sandbox and not here.started_here
    assert here.aws.endpoint_url == sandbox.endpoint_url and here.account_id == sandbox.account_id
    assert here.time_scale == 60 and here.poll_interval == 0.2  # 5 s at AWS pace, 60x faster, at least 0.2 s
    assert here.aws.client("ecs").list_clusters()["clusterArns"] == []
    assert "the opskit sandbox at" in here._repr_html_() and "shared" in here.describe()
    library = here.library()
    assert library.cache_path == ":memory:" and library.pacer is not None


def test_an_explicit_endpoint_wins_and_the_account_guard_holds(sandbox: Sandbox) -> None:
    here = session.connect("sandbox", endpoint_url=sandbox.endpoint_url + "/")
    assert here.aws.endpoint_url == sandbox.endpoint_url
    with pytest.raises(ConfigError, match=rf"^the credentials are for account {sandbox.account_id}, not 999999999999"):
        session.connect("sandbox", endpoint_url=sandbox.endpoint_url, account="999999999999")


def test_errors_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"^target 'prod' is neither 'sandbox' nor 'aws'"):
        session.connect("prod")
    with pytest.raises(ConfigError, match=r"^no opskit sandbox answers at http://127\.0\.0\.1:9"):
        session.connect("sandbox", endpoint_url="http://127.0.0.1:9")


def test_the_demo_app_is_a_clean_checkout_with_a_new_commit_each_time() -> None:
    app = session.demo_app()
    first = subprocess.run(["git", "-C", str(app), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert session.demo_app() == app
    second = subprocess.run(["git", "-C", str(app), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert first != second
    status = subprocess.run(["git", "-C", str(app), "status", "--porcelain"], capture_output=True, text=True).stdout
    assert status == "" and (app / "Dockerfile").read_text().startswith("# The demo app")
    aws_session = session.Session(aws=None, target="aws", account_id="123456789012")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"^the demo app is for the sandbox"):
        aws_session.demo_app()
