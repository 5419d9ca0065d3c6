"""``opskit release``: build the checkout's commit, push it to ECR, register a revision, roll it out, wait."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from opskit.cli.options import aws_options, ci_option, follow_options, format_option, make_aws
from opskit.cli.progress import TerminalProgress, report_record, text_table
from opskit.errors import ConfigError

if TYPE_CHECKING:
    from opskit.release.rollout import Following, Pause, PauseAnswer


def pause_answer(approve: bool) -> PauseAnswer | None:
    """How the release answers a PAUSE hook: CONTINUE with --approve; asked at a terminal; else it waits for
    ``opskit continue`` (or the hook's timeout)."""
    if approve:
        return lambda pause: "CONTINUE"
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return None

    def ask(pause: Pause) -> str | None:
        choice = click.prompt(
            f"{pause.describe()}: continue, rollback, or wait",
            type=click.Choice(["continue", "rollback", "wait"]),
            default="wait",
            err=True,
        )
        return None if choice == "wait" else str(choice).upper()

    return ask


def _pairs(option: str, values: tuple[str, ...], form: str, *, empty: bool = False) -> dict[str, str]:
    """``NAME=VALUE`` options (repeatable) as a dict; ``empty``: a value may be empty (``--build-arg NAME=``)."""
    out = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name or not (setting or empty):
            raise ConfigError(f"{option} {value!r} is not {form}: pass it as {option} {form}")
        out[name] = setting
    return out


@click.command("release")
@click.option("--cluster", required=True, help="ECS cluster.")
@click.option("--service", required=True, help="ECS service to release to.")
@click.option(
    "--container", "containers", multiple=True, help="Container(s) to update (default: the one using the repository)."
)
@click.option("--repository", help="ECR repository (default: the container's current one).")
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="NAME=REPOSITORY",
    help="Container NAME gets the commit's image from REPOSITORY (repeat: several containers and repositories).",
)
@click.option(
    "--path",
    type=click.Path(path_type=Path),
    default=Path("."),
    show_default=True,
    help="Git checkout and build context.",
)
@click.option("--dockerfile", default="Dockerfile", show_default=True, help="Dockerfile, relative to --path.")
@click.option(
    "--task-definition",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Render the revision from this file (relative to the checkout) instead of copying the live one.",
)
@click.option("--var", "variables", multiple=True, help="NAME=VALUE for {{ NAME }} in --task-definition; repeatable.")
@click.option("--build-arg", "build_args", multiple=True, help="NAME=VALUE, repeatable.")
@click.option("--target", help="Build stage to stop at.")
@click.option("--platform", help="Image platform (default: the revision's runtimePlatform, else linux/amd64).")
@click.option("--tag", help="The commit SHA to tag with (default: HEAD's); must be HEAD's.")
@click.option(
    "--sha-length", type=click.IntRange(7, 40), default=12, show_default=True, help="Digits of the SHA in the tag."
)
@click.option(
    "--allow-dirty", is_flag=True, help="Release uncommitted changes (tag says dirty, image pinned by digest)."
)
@click.option("--create-repository", is_flag=True, help="Create a missing ECR repository (IMMUTABLE, scan on push).")
@click.option("--tag-latest-locally", is_flag=True, help="Also tag the local image 'latest' (never used in ECS).")
@click.option("--dry-run", is_flag=True, help="Show the plan and the diff; change nothing.")
@click.option("--force", is_flag=True, help="Go ahead although the service changed or another release holds it.")
@click.option("--approve", is_flag=True, help="Continue at every PAUSE hook without asking.")
@follow_options
@ci_option
@format_option("table", "json")
@aws_options
def command(
    cluster: str,
    service: str,
    containers: tuple[str, ...],
    repository: str | None,
    images: tuple[str, ...],
    path: Path,
    dockerfile: str,
    task_definition: Path | None,
    variables: tuple[str, ...],
    build_args: tuple[str, ...],
    target: str | None,
    platform: str | None,
    tag: str | None,
    sha_length: int,
    allow_dirty: bool,
    create_repository: bool,
    tag_latest_locally: bool,
    dry_run: bool,
    force: bool,
    approve: bool,
    following: Following,
    ci: bool | None,
    output_format: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Release the commit checked out at --path to a service: one commit, one image, one revision."""
    from opskit.release import ReleaseOptions, apply_release, plan_release
    from opskit.release.source import parse_variables

    options = ReleaseOptions(
        cluster=cluster,
        service=service,
        containers=containers,
        repository=repository,
        images=_pairs("--image", images, "NAME=REPOSITORY"),
        path=path,
        dockerfile=dockerfile,
        task_definition=task_definition,
        variables=parse_variables(variables),
        build_args=_pairs("--build-arg", build_args, "NAME=VALUE", empty=True),
        target=target,
        platform=platform,
        tag=tag,
        sha_length=sha_length,
        allow_dirty=allow_dirty,
        create_repository=create_repository,
        tag_latest_locally=tag_latest_locally,
        force=force,
    )
    aws = make_aws(region, profile, endpoint_url)
    plan = plan_release(aws, options)
    for warning in plan.warnings:
        click.echo(f"opskit: warning: {warning}", err=True)
    if dry_run:
        if output_format == "json":
            click.echo(json.dumps(plan.to_dict(), indent=2))
        else:
            click.echo(f"Release {plan.tag} ({plan.commit.sha}) to {cluster}/{service}\n")
            click.echo(text_table(plan.to_frame()))
            click.echo("\n" + ("\n".join(plan.diff) or "(the new revision is the live one)"))
        return
    record = apply_release(
        plan,
        aws,
        progress=TerminalProgress(),
        timeout=following.timeout,
        poll_interval=following.poll_interval,
        until=following.until,
        on_pause=pause_answer(approve),
    )
    report_record(record, output_format, ci=ci)
