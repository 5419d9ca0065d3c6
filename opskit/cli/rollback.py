"""``opskit rollback``: back to the revision the service last ran to completion (or --to), and wait."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from opskit.cli.options import aws_options, ci_option, follow_options, format_option, make_aws
from opskit.cli.progress import TerminalProgress, follow_and_report, report_record, text_table

if TYPE_CHECKING:
    from opskit.release.rollout import Following, Rollout


@click.command("rollback")
@click.option("--cluster", required=True, help="ECS cluster.")
@click.option("--service", required=True, help="ECS service to roll back.")
@click.option("--to", "to", help="Revision to go back to: a number, family:number or an ARN.")
@click.option("--dry-run", is_flag=True, help="Show the plan; change nothing.")
@click.option("--force", is_flag=True, help="Go ahead although the service changed or another release holds it.")
@follow_options
@ci_option
@format_option("table", "json")
@aws_options
def command(
    cluster: str,
    service: str,
    to: str | None,
    dry_run: bool,
    force: bool,
    following: Following,
    ci: bool | None,
    output_format: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Roll a service back to what it last ran well, after checking the images still exist in ECR; a deployment
    still in progress is rolled back by ECS (StopServiceDeployment ROLLBACK) to the revision it came from."""
    from opskit.release import apply_rollback, plan_rollback
    from opskit.release.control import going

    aws = make_aws(region, profile, endpoint_url)
    rollout = going(aws, cluster, service) if to is None else None
    if rollout is not None:
        _stop_and_follow(rollout, dry_run, following, output_format)
        return
    plan = plan_rollback(aws, cluster, service, to=to, force=force)
    if dry_run:
        if output_format == "json":
            click.echo(json.dumps(plan.to_dict(), indent=2))
        else:
            click.echo(
                f"Roll {cluster}/{service} back from {plan.live_arn.rsplit('/', 1)[-1]} "
                f"to {plan.target_arn.rsplit('/', 1)[-1]} ({plan.chosen_by})"
            )
            if plan.pins:
                click.echo("with the images it ran, pinned by digest in a copy of it: their tags have moved since")
            click.echo("")
            click.echo(text_table(plan.to_frame()))
        return
    record = apply_rollback(
        plan,
        aws,
        progress=TerminalProgress(),
        timeout=following.timeout,
        poll_interval=following.poll_interval,
        until=following.until,
    )
    report_record(record, output_format, ci=ci)


def _stop_and_follow(rollout: Rollout, dry_run: bool, following: Following, output_format: str) -> None:
    from opskit.release.rollout import Outcome

    name = rollout.arn.rsplit("/", 1)[-1]
    if dry_run:
        click.echo(
            f"{rollout.service}'s deployment {name} is in progress: ECS would roll it back (StopServiceDeployment)"
        )
        return
    rollout.stop("ROLLBACK")
    click.echo(f"opskit: ROLLBACK requested for {name}, in progress", err=True)
    what = f"rollback of {rollout.service}"
    follow_and_report(what, rollout, output_format, following, expected=Outcome.ROLLED_BACK)
