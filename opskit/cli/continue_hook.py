"""``opskit continue``: let a deployment that waits at a PAUSE hook go on, or roll it back there; then follow it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from opskit.cli.options import aws_options, follow_options, format_option, make_aws, wait_option
from opskit.cli.progress import follow_and_report

if TYPE_CHECKING:
    from opskit.release.rollout import Following


@click.command("continue")
@click.option("--cluster", required=True, help="ECS cluster.")
@click.option("--service", required=True, help="ECS service whose deployment waits at a PAUSE hook.")
@click.option("--hook", "hook_id", help="The hook's id, when more than one waits.")
@click.option("--rollback", is_flag=True, help="Roll the deployment back at the hook instead of continuing it.")
@wait_option
@follow_options
@format_option("table", "json")
@aws_options
def command(
    cluster: str,
    service: str,
    hook_id: str | None,
    rollback: bool,
    wait: bool,
    following: Following,
    output_format: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Let a deployment that waits at a PAUSE hook go on (ContinueServiceDeployment), or roll it back there."""
    from opskit.release.control import continue_deployment
    from opskit.release.rollout import Outcome

    aws = make_aws(region, profile, endpoint_url)
    action = "ROLLBACK" if rollback else "CONTINUE"
    rollout, hook = continue_deployment(aws, cluster, service, hook_id=hook_id, action=action)
    click.echo(f"opskit: {action} sent to hook {hook['hookId']} of {rollout.arn.rsplit('/', 1)[-1]}", err=True)
    if wait:
        expected = Outcome.ROLLED_BACK if rollback else Outcome.COMPLETED
        what = f"deployment of {service}"
        follow_and_report(what, rollout, output_format, following, expected=expected)
