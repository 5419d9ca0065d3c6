"""``opskit verify``: what ECS would refuse in a service's revision, or what would fail at its rollout, before anything
is built or registered.

Exit status: 0 when nothing is wrong (warnings alone included), 1 when an error was found, 2 for an error you can
fix (one line on stderr).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from opskit.cli.options import aws_options, format_option, make_aws


@click.command("verify")
@click.option("--cluster", required=True, help="ECS cluster.")
@click.option("--service", required=True, help="ECS service whose revision (and load balancers) to verify.")
@click.option(
    "--task-definition",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Verify the revision in this file instead of the service's live one.",
)
@click.option("--var", "variables", multiple=True, help="NAME=VALUE for {{ NAME }} in --task-definition; repeatable.")
@format_option("table", "json")
@aws_options
def command(
    cluster: str,
    service: str,
    task_definition: Path | None,
    variables: tuple[str, ...],
    output_format: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Check a revision before a release: its ECR images (and their platform), its roles and their trust, its
    secrets, its awslogs groups, the service's load balancers and Fargate's task sizes. Prints what is wrong and
    what to do; exits 1 on an error, 0 with warnings alone.

        opskit verify --cluster prod --service web
        opskit verify --cluster prod --service web --task-definition task-definition.json --var env=prod
    """
    from opskit.gateway import Gateway
    from opskit.release.source import parse_variables, read_task_definition
    from opskit.release.taskdef import registrable
    from opskit.release.verify import verify

    values = parse_variables(variables)  # a bad --var is refused before any call
    aws = make_aws(region, profile, endpoint_url)
    gateway = Gateway(aws)
    # Raw: the load balancers' advancedConfiguration and other newer fields, whatever the installed botocore.
    _, described = gateway.service(cluster, service, raw=True)
    if task_definition is not None:
        body, what = read_task_definition(task_definition, values).body, str(task_definition)
    else:
        live = str(described["taskDefinition"])
        answer = aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": live})
        body, what = registrable(answer["taskDefinition"]), live.rsplit("/", 1)[-1]
    findings = verify(aws, body, cluster=cluster, service=described, gateway=gateway)
    if output_format == "json":
        click.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    elif findings:
        width = max(len(f.resource) for f in findings)
        click.echo("\n".join(f.line(width).rstrip() for f in findings))
    errors = sum(f.error for f in findings)
    click.echo(f"opskit: verified {what} for {cluster}/{service}: {_counted(errors, len(findings) - errors)}", err=True)
    sys.exit(1 if errors else 0)


def _counted(errors: int, warnings: int) -> str:
    if not errors and not warnings:
        return "nothing found wrong"
    return f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
