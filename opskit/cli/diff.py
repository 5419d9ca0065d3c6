"""``opskit diff``: what differs between the revision a service runs and the task definition kept in a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from opskit.cli.options import aws_options, format_option, make_aws

if TYPE_CHECKING:
    from opskit.aws import Aws


@click.command("diff")
@click.option("--cluster", required=True, help="ECS cluster.")
@click.option("--service", required=True, help="ECS service whose live revision to compare.")
@click.option(
    "--task-definition",
    "task_definition",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Task definition file to compare with (any form `opskit release --task-definition` reads). Default: the "
    "family's newest ACTIVE revision.",
)
@click.option("--var", "variables", multiple=True, metavar="NAME=VALUE", help="Template value for the file (repeat).")
@click.option(
    "--images/--no-images",
    default=False,
    show_default=True,
    help="Also compare the images a release sets (a container's image from the same repository, another tag).",
)
@format_option("table", "json")
@aws_options
def command(
    cluster: str,
    service: str,
    task_definition: Path | None,
    variables: tuple[str, ...],
    images: bool,
    output_format: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Compare a service's live revision with a task definition file, as ECS means both (read-only fields and ECS's
    defaults aside, environment and secrets in any order, values masked); exits 0 when they are the same, 1 when
    they differ.

    Against a file, the images a release sets (a container's image from the live one's repository, another tag) are
    not a difference unless --images: the file is compared as a release would register it. Without
    --task-definition the live revision is compared with the newest ACTIVE revision of its family: what a release
    registers from the live revision is that revision with only its images changed.

    \b
        opskit diff --cluster prod --service web --task-definition .aws/task-definition.json
    """
    from opskit.errors import ConfigError
    from opskit.gateway import Gateway
    from opskit.release.normalise import comparable, differences
    from opskit.release.source import parse_variables, read_task_definition
    from opskit.release.taskdef import diff

    values = parse_variables(variables)
    if values and task_definition is None:
        raise ConfigError("--var fills in a task definition file's templates: pass --task-definition FILE with it")
    aws = make_aws(region, profile, endpoint_url)
    _, described_service = Gateway(aws).service(cluster, service)
    live_arn = str(described_service["taskDefinition"])
    live = _described(aws, live_arn)
    live_name = _short(live_arn)
    other_tags: list[dict[str, str]] | None
    if task_definition is not None:
        found = read_task_definition(task_definition, values)
        other, other_tags, other_name = found.body, found.tags, str(task_definition)
        if not images:  # what a release would register: the file, its images set to this commit's
            other = released_images(other, live["taskDefinition"])
    else:
        newest_arn = _newest_active(aws, str(live["taskDefinition"]["family"]), live_name)
        newest = live if newest_arn == live_arn else _described(aws, newest_arn)
        other, other_tags, other_name = newest["taskDefinition"], newest.get("tags"), _short(newest_arn)
    left = comparable(live["taskDefinition"], live.get("tags"))
    right = comparable(other, other_tags)
    found_differences = differences(left, right)
    if output_format == "json":
        answer: dict[str, Any] = {
            "equal": not found_differences,
            "live": live_name,
            "file": other_name,
            "differences": [d.to_dict() for d in found_differences],
        }
        click.echo(json.dumps(answer, indent=2, default=str))
    elif not found_differences:
        click.echo(f"{live_name} and {other_name} are the same (read-only fields and ECS's defaults aside)")
    else:
        for line in diff(left, right, live_name=live_name, new_name=other_name):
            click.echo(line)
        # Values that differ only where masked show in no diff line: the summary says where.
        paths = ", ".join(d.path + (" (masked)" if d.live == d.file else "") for d in found_differences)
        count = len(found_differences)
        click.echo(f"{count} difference{'s' if count > 1 else ''} ({live_name} -> {other_name}): {paths}")
    sys.exit(1 if found_differences else 0)


def released_images(body: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """``body`` with each container's image that names the live container's repository (another tag or digest)
    set to the live one: a release sets those, so they are not drift; an image from another repository is."""
    from opskit.records import ImageRef
    from opskit.release.taskdef import with_images

    def repository(image: str) -> tuple[str | None, str]:
        ref = ImageRef.parse(image)
        return ref.registry, ref.repository

    running = {str(c.get("name")): str(c.get("image", "")) for c in live.get("containerDefinitions", [])}
    same = {
        str(c["name"]): running[str(c["name"])]
        for c in body.get("containerDefinitions", [])
        if str(c.get("name")) in running and repository(str(c.get("image", ""))) == repository(running[str(c["name"])])
    }
    return with_images(body, same)


def _described(aws: Aws, arn: str) -> dict[str, Any]:
    """DescribeTaskDefinition with the revision's tags, raw: every field, even those botocore does not model."""
    return aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": arn, "include": ["TAGS"]})


def _newest_active(aws: Aws, family: str, live_name: str) -> str:
    from opskit.errors import NotFoundError

    answer = aws.client("ecs").list_task_definitions(familyPrefix=family, status="ACTIVE", sort="DESC", maxResults=1)
    arns: list[str] = answer.get("taskDefinitionArns") or []
    if not arns:
        raise NotFoundError(
            f"{family} has no ACTIVE revision to compare the live {live_name} with: pass --task-definition FILE"
        )
    return arns[0]


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
