"""Options shared by commands: where AWS is (region, profile, endpoint) and how to print results."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from opskit.aws import Aws


def aws_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--region``, ``--profile``, ``--endpoint-url``; unset ones come from the usual AWS environment."""
    for option in reversed(
        (
            click.option(
                "--region", envvar=None, help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / profile)."
            ),
            click.option("--profile", help="AWS profile (default: AWS_PROFILE)."),
            click.option(
                "--endpoint-url",
                help="AWS endpoint, e.g. the sandbox's (default: AWS_ENDPOINT_URL_<SERVICE> or AWS_ENDPOINT_URL).",
            ),
        )
    ):
        command = option(command)
    return command


def make_aws(region: str | None, profile: str | None, endpoint_url: str | None) -> Aws:
    return Aws(region=region, profile=profile, endpoint_url=endpoint_url)


def format_option(*choices: str, default: str = "table") -> Callable[..., Any]:
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(list(choices)),
        default=default,
        show_default=True,
        help="How to print the result.",
    )


def follow_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--timeout, --poll-interval and --wait-until: how every command that follows a deployment waits for it, given
    to the command as one ``following`` (:class:`opskit.release.rollout.Following`, which holds the defaults)."""
    from opskit.release.rollout import DEFAULT_POLL_INTERVAL, DEFAULT_TIMEOUT, Following, Until

    wrapped = command

    @functools.wraps(wrapped)
    def with_following(*args: Any, timeout: float, poll_interval: float, until: Until, **kwargs: Any) -> Any:
        return wrapped(*args, following=Following(timeout, poll_interval, until), **kwargs)

    command = click.option(
        "--wait-until",
        "until",
        default="deployed",
        show_default=True,
        metavar="deployed|stable|paused|stage:NAME",
        callback=lambda _ctx, _param, value: Until.parse(value),
        help="Where following ends: ECS's verdict; and the service steady; at a PAUSE hook; at a lifecycle stage.",
    )(with_following)
    command = click.option(
        "--poll-interval",
        type=click.FloatRange(min=0.05),
        default=DEFAULT_POLL_INTERVAL,
        show_default=True,
        help="Seconds between polls.",
    )(command)
    return click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        default=DEFAULT_TIMEOUT,
        show_default=True,
        help="Seconds to wait for the rollout.",
    )(command)


def ci_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--ci/--no-ci: tell the CI system about the result (on GitHub Actions: the step summary, the step's outputs, an
    annotation on failure); by default when the environment says which CI runs the command."""
    return click.option(
        "--ci/--no-ci",
        default=None,
        help="Write the CI system's summary and outputs (default: when GITHUB_ACTIONS or CI says one runs this).",
    )(command)


def wait_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--wait/--no-wait: follow the deployment after acting on it, or return at once."""
    return click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the deployment to its end.")(
        command
    )
