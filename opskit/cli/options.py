"""Options shared by commands: where AWS is (region, profile, endpoint) and how to print results."""

from __future__ import annotations

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
    """--timeout and --poll-interval: how every command that follows a deployment to its end waits for it."""
    command = click.option(
        "--poll-interval", type=click.FloatRange(min=0.05), default=5, show_default=True, help="Seconds between polls."
    )(command)
    return click.option(
        "--timeout",
        type=click.FloatRange(min=1),
        default=1800,
        show_default=True,
        help="Seconds to wait for the rollout.",
    )(command)


def wait_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """--wait/--no-wait: follow the deployment after acting on it, or return at once."""
    return click.option("--wait/--no-wait", default=True, show_default=True, help="Follow the deployment to its end.")(
        command
    )
