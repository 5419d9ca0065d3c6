"""``opskit cleanup``: old revisions (and images) cleaned up without ever breaking a rollback; a dry run by default.

Run again after an interruption (Ctrl-C, a crash, lost network), with the same options: it resumes the run.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import click

from opskit.cli.options import aws_options, format_option, make_aws
from opskit.errors import ConfigError, OpskitError

ROWS_SHOWN = 50
AS_PLANNED = ("kept", "deregistered", "deleted")


class _Command(click.Command):
    """Errors a user can cause: one line on stderr, exit 2 (also when run on its own, outside ``opskit``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpskitError as exc:
            click.echo(f"opskit: error: {exc}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("\nopskit: cleanup interrupted: run the same command again to resume it", err=True)
            sys.exit(130)


def _number(value: str | None, option: str, *, whole: bool) -> Any:
    """Numbers are parsed here, not by click, so a bad one is a one-line error like every other."""
    if value is None:
        return None
    kind = "a whole number" if whole else "a number"
    try:
        number = int(value) if whole else float(value)
    except ValueError:
        raise ConfigError(f"{option} {value!r} is not {kind}: pass {kind}, such as 10") from None
    if not whole and not math.isfinite(number):
        raise ConfigError(f"{option} {value!r} is not {kind}: pass {kind}, such as 10")
    return number


@click.command("cleanup", cls=_Command)
@click.option("--family", "families", multiple=True, help="Only this family (repeat for more; default: all).")
@click.option("--keep", help="Keep the newest N revisions of each family.  [default: 10]")
@click.option("--keep-days", help="Keep revisions registered less than D days ago (0: no age rule).  [default: 30]")
@click.option("--rollback-depth", help="Keep the last K revisions each service ran to completion.  [default: 3]")
@click.option("--delete-deregistered", is_flag=True, help="Also delete, in this run, the revisions it deregisters.")
@click.option("--images", is_flag=True, help="Also delete ECR images nothing kept refers to.")
@click.option("--untagged-days", help="With --images: untagged images older than this go.  [default: 14]")
@click.option(
    "--unreferenced-days", help="With --images: images no revision refers to, older than this, go.  [default: 90]"
)
@click.option("--repository", "repositories", multiple=True, help="With --images: only this repository (repeatable).")
@click.option("--apply", "apply_", is_flag=True, help="Carry the plan out (default: only show it).")
@click.option("--yes", is_flag=True, help="With --apply: do not ask for confirmation.")
@click.option(
    "--rate-scale",
    default="1",
    hidden=True,
    help="Start at ECS's rates times this (a time-scaled sandbox); the pacer learns what the endpoint allows anyway.",
)
@format_option("table", "json")
@aws_options
def command(
    families: tuple[str, ...],
    keep: str | None,
    keep_days: str | None,
    rollback_depth: str | None,
    delete_deregistered: bool,
    images: bool,
    untagged_days: str | None,
    unreferenced_days: str | None,
    repositories: tuple[str, ...],
    apply_: bool,
    yes: bool,
    rate_scale: str,
    output_format: str,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
) -> None:
    """Deregister and delete old task-definition revisions (and, with --images, ECR images), keeping everything
    in use, every rollback target, the newest of each family, recent ones and pinned ones (tag opskit:keep).

        opskit cleanup --family web --keep 20            # the plan: what would go, and why
        opskit cleanup --family web --keep 20 --apply    # do it (asks first; --yes does not)
    """
    from opskit.cleanup import CleanupOptions, apply_cleanup, plan_cleanup
    from opskit.cli.progress import TerminalProgress

    given = {
        "keep": _number(keep, "--keep", whole=True),
        "keep_days": _number(keep_days, "--keep-days", whole=False),
        "rollback_depth": _number(rollback_depth, "--rollback-depth", whole=True),
        "untagged_days": _number(untagged_days, "--untagged-days", whole=False),
        "unreferenced_days": _number(unreferenced_days, "--unreferenced-days", whole=False),
    }
    if (repositories or untagged_days is not None or unreferenced_days is not None) and not images:
        raise ConfigError("--repository, --untagged-days and --unreferenced-days apply to images: add --images")
    scale = _number(rate_scale, "--rate-scale", whole=False)
    if not scale > 0:
        raise ConfigError(f"--rate-scale {rate_scale} is not positive: pass a number above 0")
    options = CleanupOptions(
        families=families,
        delete_deregistered=delete_deregistered,
        images=images,
        repositories=repositories,
        **{k: v for k, v in given.items() if v is not None},
    )
    aws = make_aws(region, profile, endpoint_url)
    plan = plan_cleanup(aws, options, rate_scale=scale)
    if plan.resumed is None:
        _mention_other_unfinished_runs(aws)
    if not apply_:
        _show_plan(plan, output_format)
        return
    if plan.empty and plan.resumed is None:
        _show_plan(plan, output_format)
        return
    if not yes:
        _show_plan(plan, "table", err=True)
        calls = plan.calls
        click.confirm(
            f"Deregister {calls['DeregisterTaskDefinition']} and delete {len(plan.to_delete)} revisions"
            + (f" and {len(plan.images_to_delete)} images" if options.images else "")
            + "?",
            abort=True,
            err=True,
        )
    result = apply_cleanup(plan, aws, progress=TerminalProgress(), rate_scale=scale)
    if output_format == "json":
        click.echo(result.to_json())
    else:
        click.echo(f"Cleanup: {result.describe()}\n")
        # What went as planned is in the counts; the rows worth reading are the others (--format json has all).
        attention = result.to_frame().query(f"outcome not in {list(AS_PLANNED)}")
        columns = ["family", "revision", "fate", "outcome", "detail", "failure_reason", "failure_detail"]
        click.echo(_text(attention[columns], "revisions") if len(attention) else "(every revision went as planned)")
        if options.images:
            odd = result.images_frame().query(f"outcome not in {list(AS_PLANNED)}")
            columns = ["repository", "digest", "outcome", "detail", "failure_reason", "failure_detail"]
            click.echo("\n" + (_text(odd[columns], "images") if len(odd) else "(every image went as planned)"))
        click.echo(f"\njournal: {result.journal}")
    if not result.ok:
        click.echo("opskit: cleanup finished with failures: see the outcome column", err=True)
        sys.exit(1)


def _mention_other_unfinished_runs(aws: Any) -> None:
    from opskit.cleanup import runs_folder, unfinished_runs

    for run in unfinished_runs(runs_folder(aws)):
        options = run.started.get("plan", {}).get("options", {})
        shown = " ".join(f"{k}={v}" for k, v in options.items() if v not in ([], None) and v is not False)
        click.echo(
            f"opskit: note: an interrupted cleanup with other options is unfinished ({shown}); run it again with "
            f"those options to finish it, or delete {run.path} to drop it",
            err=True,
        )


def _show_plan(plan: Any, output_format: str, *, err: bool = False) -> None:
    if output_format == "json":
        click.echo(json.dumps(plan.to_dict(), indent=2), err=err)
        return
    if plan.resumed is not None:
        click.echo(
            f"Resuming the cleanup started {plan.resumed.started_at} ({plan.resumed.done} actions done; "
            f"journal {plan.resumed.journal})",
            err=err,
        )
    click.echo(f"Cleanup plan: {plan.describe()}\n", err=err)
    click.echo(_text(plan.summary()), err=err)
    changing = plan.to_frame().query("fate != 'keep'")
    click.echo("\n" + _text(changing[["family", "revision", "status", "fate", "reason"]], "revisions"), err=err)
    if plan.options.images:
        going = plan.images_frame().query("fate == 'delete'")
        click.echo("\n" + _text(going[["repository", "digest", "tags", "pushed_at", "reason"]], "images"), err=err)
    if not err:
        click.echo("\n(dry run: nothing changed; --apply carries the plan out)", err=True)


def _text(frame: Any, what: str = "rows") -> str:
    import pandas as pd

    from opskit.cli.library_view import as_text

    if not len(frame):
        return f"(no {what} change)" if what != "rows" else "(none)"
    head = frame.head(ROWS_SHOWN).copy()
    for name in head.columns:
        if isinstance(head[name].dtype, pd.StringDtype):
            head[name] = head[name].astype(object).where(head[name].notna(), "-")
    shown = as_text(head)
    if len(frame) > ROWS_SHOWN:
        shown += f"\n... and {len(frame) - ROWS_SHOWN} more {what} (--format json lists them all)"
    return shown
