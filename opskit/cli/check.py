"""``opskit check``: the release policy (and optionally hardening) over the revision library, as a table or JSON.

Exit status: 0 when every check passed, 1 when one failed, 2 for an error you can fix (one line on stderr).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from opskit.cli.options import aws_options, format_option
from opskit.errors import OpskitError


@click.command("check")
@click.option("--hardening", is_flag=True, help="Add the hardening checks (Security Hub's ECS controls).")
@click.option("--cluster", help="Only the services of this cluster.")
@click.option("--service", "services", multiple=True, help="Only this service, name or cluster/name (repeat for more).")
@click.option("--family", "families", multiple=True, help="Only this task-definition family (repeat for more).")
@click.option("--repository", "repositories", multiple=True, help="Only this ECR repository (repeat for more).")
@click.option("--check", "check_ids", multiple=True, help="Only this check, ID or name (repeat for more).")
@click.option("--all", "show_all", is_flag=True, help="Print the checks that passed too.")
@format_option("table", "json")
@click.option("--no-sync", is_flag=True, help="Check what the cache holds without calling AWS.")
@click.option(
    "--cache",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="OPSKIT_CACHE",
    help="Cache file (default: one per account, region and endpoint in the user cache directory).",
)
@aws_options
def command(
    hardening: bool,
    cluster: str | None,
    services: tuple[str, ...],
    families: tuple[str, ...],
    repositories: tuple[str, ...],
    check_ids: tuple[str, ...],
    show_all: bool,
    output_format: str,
    no_sync: bool,
    cache: Path | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Check the release invariants: SHA-tagged or digest-pinned images, immutable tags, one image per commit and
    one revision per image, images still in ECR, a rollback target for every service, the circuit breaker, scan on
    push, and lifecycle policies that cannot expire an image in use. Prints what failed; exits 1 if anything did.

        opskit check --cluster prod --hardening
        opskit check --format json --all > findings.json
    """
    from opskit.checks import Snapshot, Target, checks_for, findings_json, findings_table, run_checks, summary
    from opskit.cli.library_view import opened_library

    target = Target(cluster=cluster, services=services, families=families, repositories=repositories)
    try:
        chosen = checks_for(("release", "hardening") if hardening else ("release",), check_ids or None)
        with opened_library(region, profile, endpoint_url, cache) as library:
            if not no_sync:
                click.echo(f"opskit: syncing the library ({target.describe()})", err=True)
            snapshot = Snapshot.from_library(
                library, target, hardening=any(c.group == "hardening" for c in chosen), sync=not no_sync
            )
    except OpskitError as exc:  # as the opskit group does; kept here for the command run on its own
        click.echo(f"opskit: error: {exc}", err=True)
        sys.exit(2)
    findings = run_checks(snapshot, ids=[c.id for c in chosen])
    render = findings_json if output_format == "json" else findings_table
    click.echo(render(findings, failed_only=not show_all))
    click.echo(f"opskit: {summary(findings)}", err=True)
    sys.exit(1 if any(f.failed for f in findings) else 0)
