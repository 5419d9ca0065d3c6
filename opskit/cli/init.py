"""``opskit init``: the task definition and deployment settings a service runs, written as files for the repository."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import click

from opskit.cli.options import aws_options, make_aws

# The service's deployment settings that service.json keeps, in this order (as CreateService and UpdateService
# name them); launchType or capacityProviderStrategy, whichever the service uses.
SERVICE_FIELDS = (
    "deploymentConfiguration",
    "deploymentController",
    "desiredCount",
    "launchType",
    "capacityProviderStrategy",
    "networkConfiguration",
    "loadBalancers",
    "healthCheckGracePeriodSeconds",
    "enableExecuteCommand",
    "propagateTags",
    "serviceConnectConfiguration",
)

_TEMPLATE_MARKERS = re.compile(r"\{[{%#]")


@click.command("init")
@click.option("--cluster", required=True, help="ECS cluster.")
@click.option("--service", required=True, help="ECS service whose live revision and settings to write.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".aws"),
    show_default=True,
    help="Where to write task-definition.json and service.json.",
)
@click.option("--force", is_flag=True, help="Overwrite files that are already there.")
@aws_options
def command(
    cluster: str,
    service: str,
    output_dir: Path,
    force: bool,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Write a service's live revision as task-definition.json (read-only fields and ECS's defaults left out, its
    tags in `tags`) and its deployment settings as service.json, for `opskit release --task-definition` and
    `opskit diff` to read.

    \b
        opskit init --cluster prod --service web && git add .aws
    """
    from opskit.errors import ConfigError
    from opskit.gateway import Gateway

    targets = (output_dir / "task-definition.json", output_dir / "service.json")
    if not force:
        for path in targets:
            if path.exists():
                raise ConfigError(f"{path} already exists: pass --force to overwrite it")
    aws = make_aws(region, profile, endpoint_url)
    _, described_service = Gateway(aws).service(cluster, service, raw=True)
    live_arn = str(described_service["taskDefinition"])
    described = aws.call_json("ecs", "DescribeTaskDefinition", {"taskDefinition": live_arn, "include": ["TAGS"]})
    task_text = task_definition_text(described["taskDefinition"], described.get("tags"))
    settings = service_settings(described_service)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        targets[0].write_text(task_text, encoding="utf-8")
        targets[1].write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write to {output_dir}: {exc.strerror or exc}: check --output-dir") from exc
    containers = len(described["taskDefinition"].get("containerDefinitions") or [])
    click.echo(
        f"wrote {targets[0]}: {live_arn.rsplit('/', 1)[-1]} ({containers} container{'s' if containers != 1 else ''}, "
        "read-only fields and ECS's defaults left out)"
    )
    click.echo(f"wrote {targets[1]}: {service}'s deployment settings ({', '.join(settings) or 'none'})")


def task_definition_text(live: dict[str, Any], tags: list[dict[str, str]] | None) -> str:
    """The register form of ``live`` as the file to keep: defaults left out, keys in a stable order, 2-space indent,
    a trailing newline. Read back with :func:`opskit.release.source.read_task_definition`, it is ``live`` again."""
    from opskit.release.normalise import comparable, comparable_tags, minimal, ordered
    from opskit.release.source import parse, render

    kept_tags = comparable_tags(tags)
    body = ordered({**minimal(live), **({"tags": kept_tags} if kept_tags else {})})
    text = json.dumps(body, indent=2, ensure_ascii=False) + "\n"
    # The file is read as a Jinja template: a literal {{, {% or {# (in a command, say) is written as an expression
    # that gives it back.
    text = _TEMPLATE_MARKERS.sub(lambda m: "{{ '" + m.group() + "' }}", text)
    again = parse(render(text, {}, name="the written task definition"), name="the written task definition")
    if comparable(again.body, again.tags) != comparable(live, tags):  # a bug, never the user's
        raise AssertionError(f"the task definition written for {live.get('family')} does not read back the same")
    return text


def service_settings(service: dict[str, Any]) -> dict[str, Any]:
    """The deployment settings of a service as DescribeServices tells them (raw), in :data:`SERVICE_FIELDS` order."""
    settings = {key: service[key] for key in SERVICE_FIELDS if service.get(key) is not None}
    if settings.get("capacityProviderStrategy"):
        settings.pop("launchType", None)
    else:
        settings.pop("capacityProviderStrategy", None)
    if "serviceConnectConfiguration" not in settings:  # DescribeServices keeps it on the deployments
        primary = [d for d in service.get("deployments") or [] if d.get("status") == "PRIMARY"]
        if primary and primary[0].get("serviceConnectConfiguration"):
            settings["serviceConnectConfiguration"] = primary[0]["serviceConnectConfiguration"]
            settings = {key: settings[key] for key in SERVICE_FIELDS if key in settings}
    return settings
