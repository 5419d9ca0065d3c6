"""``opskit abort``: stop a deployment in progress where it stands (nothing rolled back), then follow it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opskit.cli.options import aws_options, follow_options, format_option, make_aws, wait_option
from opskit.cli.progress import follow_and_report

if TYPE_CHECKING:
    from opskit.release.rollout import Following


@click.command("abort")
@click.option("--cluster", required=True, help="ECS cluster.")
@click.option("--service", required=True, help="ECS service whose deployment to stop where it stands.")
@wait_option
@follow_options
@format_option("table", "json")
@aws_options
def command(
    cluster: str,
    service: str,
    wait: bool,
    following: Following,
    output_format: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Stop a deployment in progress where it stands (StopServiceDeployment ABORT): nothing is rolled back."""
    from opskit.release.control import stop_deployment
    from opskit.release.rollout import Outcome

    aws = make_aws(region, profile, endpoint_url)
    rollout = stop_deployment(aws, cluster, service, "ABORT")
    click.echo(f"opskit: ABORT requested for {rollout.arn.rsplit('/', 1)[-1]}", err=True)
    if wait:
        what = f"deployment of {service}"
        follow_and_report(what, rollout, output_format, following, expected=Outcome.STOPPED)
