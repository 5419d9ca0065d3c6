"""Hardening of ACTIVE revisions: what Security Hub's ECS controls ask of a task definition. Off by default (the
``hardening`` group); each check reads the :class:`~opskit.checks.snapshot.RevisionSettings` a snapshot took with
``hardening=True``. Secrets are reported by variable name, never by value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from opskit.checks.model import AWS_CONFIG, CHECKOV, SECURITY_HUB, Check, Outcome, Reference
from opskit.checks.snapshot import ContainerSettings, RevisionSettings, Snapshot, revision_label

ROOT_USERS = frozenset({"root", "0"})
WINDOWS_ADMIN = "containeradministrator"


def _per_revision(snapshot: Snapshot, judge: Callable[[RevisionSettings], tuple[bool, str]]) -> Iterator[Outcome]:
    for revision in snapshot.active_revisions:
        settings = snapshot.settings.get(revision.arn)
        label = revision_label(revision.arn)
        if settings is None:
            yield Outcome(label, False, "its settings were not read: take the snapshot with hardening=True")
            continue
        passed, message = judge(settings)
        yield Outcome(label, passed, message)


def _per_container(
    settings: RevisionSettings, bad: Callable[[ContainerSettings], str | None], good: str
) -> tuple[bool, str]:
    problems = [f"container {c.name} {why}" for c in settings.containers if (why := bad(c))]
    return (not problems, "; ".join(problems) or good)


def secrets_in_environment(snapshot: Snapshot) -> Iterator[Outcome]:
    def bad(container: ContainerSettings) -> str | None:
        if not container.secret_variables:
            return None
        return "passes " + ", ".join(f"{name} ({why})" for name, why in container.secret_variables)

    return _per_revision(snapshot, lambda s: _per_container(s, bad, "no plain environment variable holds a secret"))


def privileged(snapshot: Snapshot) -> Iterator[Outcome]:
    return _per_revision(
        snapshot,
        lambda s: _per_container(s, lambda c: "is privileged" if c.privileged else None, "no container is privileged"),
    )


def readonly_root_filesystem(snapshot: Snapshot) -> Iterator[Outcome]:
    def judge(settings: RevisionSettings) -> tuple[bool, str]:
        if settings.windows:
            return True, "not applicable: Windows containers have no read-only root filesystem"
        return _per_container(
            settings,
            lambda c: None if c.readonly_root_filesystem else "can write to its root filesystem",
            "every container's root filesystem is read-only",
        )

    return _per_revision(snapshot, judge)


def log_configuration(snapshot: Snapshot) -> Iterator[Outcome]:
    return _per_revision(
        snapshot,
        lambda s: _per_container(
            s, lambda c: None if c.log_driver else "has no log configuration", "every container sends its logs"
        ),
    )


def non_root_user(snapshot: Snapshot) -> Iterator[Outcome]:
    def judge(settings: RevisionSettings) -> tuple[bool, str]:
        def bad(container: ContainerSettings) -> str | None:
            user = (container.user or "").split(":")[0]
            if settings.windows:
                if not user or user.lower() == WINDOWS_ADMIN:
                    return f"runs as {user or 'the default user'} ({WINDOWS_ADMIN})"
                return None
            if not user:
                return "sets no user, so it runs as root"
            return f"runs as {container.user}" if user in ROOT_USERS else None

        return _per_container(settings, bad, "every container runs as a user other than root")

    return _per_revision(snapshot, judge)


def host_network(snapshot: Snapshot) -> Iterator[Outcome]:
    def judge(settings: RevisionSettings) -> tuple[bool, str]:
        if settings.network_mode == "host":
            return False, "network mode host: its containers share the host's network stack"
        return True, f"network mode {settings.network_mode or 'default'}"

    return _per_revision(snapshot, judge)


def host_pid(snapshot: Snapshot) -> Iterator[Outcome]:
    def judge(settings: RevisionSettings) -> tuple[bool, str]:
        if settings.pid_mode == "host":
            return False, "pid mode host: its containers see and can signal every process on the host"
        return True, f"pid mode {settings.pid_mode or 'task-private (default)'}"

    return _per_revision(snapshot, judge)


def _hub(control: str, title: str) -> Reference:
    anchor = control.lower().replace(".", "-")
    return Reference(
        SECURITY_HUB,
        control,
        title,
        f"https://docs.aws.amazon.com/securityhub/latest/userguide/ecs-controls.html#{anchor}",
    )


def _config(rule: str) -> Reference:
    return Reference(AWS_CONFIG, rule, "", f"https://docs.aws.amazon.com/config/latest/developerguide/{rule}.html")


HARDENING_CHECKS = (
    Check(
        id="HARD001",
        name="no-secrets-in-environment",
        group="hardening",
        severity="high",
        title="Secrets are not passed as plain environment variables",
        remediation="Store the value in Secrets Manager or SSM Parameter Store and pass it in the container "
        "definition's secrets (valueFrom), then release a new revision.",
        resource_type="revision",
        references=(
            _hub("ECS.8", "Secrets should not be passed as container environment variables"),
            _config("ecs-no-environment-secrets"),
        ),
        evaluate=secrets_in_environment,
    ),
    Check(
        id="HARD002",
        name="not-privileged",
        group="hardening",
        severity="high",
        title="No container runs privileged",
        remediation="Remove privileged: true from the container definition (grant the Linux capabilities it needs "
        "instead).",
        resource_type="revision",
        references=(
            _hub("ECS.4", "ECS containers should run as non-privileged"),
            _config("ecs-containers-nonprivileged"),
            Reference(CHECKOV, "CKV_AWS_334", "Ensure ECS containers should run as non-privileged"),
        ),
        evaluate=privileged,
    ),
    Check(
        id="HARD003",
        name="read-only-root-filesystem",
        group="hardening",
        severity="medium",
        title="Containers have a read-only root filesystem",
        remediation="Set readonlyRootFilesystem: true and mount a volume where the container must write.",
        resource_type="revision",
        references=(
            _hub("ECS.5", "ECS containers should be limited to read-only access to root filesystems"),
            _config("ecs-containers-readonly-access"),
            Reference(
                CHECKOV, "CKV_AWS_336", "Ensure ECS containers are limited to read-only access to root filesystems"
            ),
        ),
        evaluate=readonly_root_filesystem,
    ),
    Check(
        id="HARD004",
        name="log-configuration",
        group="hardening",
        severity="medium",
        title="Every container has a log configuration",
        remediation="Add a logConfiguration (for example the awslogs driver with a log group) to each container.",
        resource_type="revision",
        references=(
            _hub("ECS.9", "ECS task definitions should have a logging configuration"),
            _config("ecs-task-definition-log-configuration"),
        ),
        evaluate=log_configuration,
    ),
    Check(
        id="HARD005",
        name="non-root-user",
        group="hardening",
        severity="medium",
        title="Containers run as a user other than root",
        remediation="Set user to an unprivileged UID (such as 1000:1000) in the container definition or USER in "
        "the image.",
        resource_type="revision",
        references=(
            _hub("ECS.20", "ECS Task Definitions should configure non-root users in Linux container definitions"),
            _config("ecs-task-definition-linux-user-non-root"),
            _hub(
                "ECS.21",
                "ECS Task Definitions should configure non-administrator users in Windows container definitions",
            ),
        ),
        evaluate=non_root_user,
    ),
    Check(
        id="HARD006",
        name="no-host-network",
        group="hardening",
        severity="medium",
        title="Tasks do not use the host network mode",
        remediation="Use the awsvpc network mode (or bridge) instead of host.",
        resource_type="revision",
        references=(
            _hub("ECS.17", "ECS task definitions should not use host network mode"),
            _config("ecs-task-definition-network-mode-not-host"),
        ),
        evaluate=host_network,
    ),
    Check(
        id="HARD007",
        name="no-host-pid",
        group="hardening",
        severity="high",
        title="Tasks do not share the host's process namespace",
        remediation="Remove pidMode: host (use task if the task's containers must see each other's processes).",
        resource_type="revision",
        references=(
            _hub("ECS.3", "ECS task definitions should not share the host's process namespace"),
            _config("ecs-task-definition-pid-mode-check"),
            Reference(
                CHECKOV, "CKV_AWS_335", "Ensure ECS task definitions should not share the host's process namespace"
            ),
        ),
        evaluate=host_pid,
    ),
)

__all__ = ["HARDENING_CHECKS"]
