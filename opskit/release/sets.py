"""Release sets declared in the repository: one commit released to several services, in ordered waves, with one-off
tasks (a migration) before a wave. This module reads and validates the declaration; releasing a set builds on it.

The declaration lives in ``opskit.toml`` (``[sets.NAME]``) or in ``pyproject.toml`` (``[tool.opskit.sets.NAME]``),
never both::

    [sets.prod]
    cluster = "prod"
    repository = "app"                 # the one image, built once from path/dockerfile
    path = "."
    dockerfile = "Dockerfile"

    [[sets.prod.waves]]
    services = ["api"]
    before = [{ name = "migrate", service = "api", command = ["python", "manage.py", "migrate"] }]

    [[sets.prod.waves]]
    services = ["web", "worker"]       # roll out together

    [sets.prod.services.worker]        # per-service overrides
    container = "worker"
    task_definition = ".aws/worker.json"
    wait_until = "stable"

Every mistake is one line naming the file, the key and what to do.

>>> release_set = load_set(Path("."), "prod")                     # doctest: +SKIP
>>> [wave.services for wave in release_set.waves]
[('api',), ('web', 'worker')]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError
from opskit.release.rollout import DEPLOYED, Until

SET_KEYS = {"cluster", "repository", "path", "dockerfile", "waves", "services"}
WAVE_KEYS = {"services", "before"}
TASK_KEYS = {"name", "service", "container", "command"}
SERVICE_KEYS = {"container", "task_definition", "wait_until"}


@dataclass(frozen=True)
class OneOff:
    """A task run once, to its exit, before a wave (a migration): the new revision of ``service``, with its network
    configuration, ``command`` overriding ``container``'s."""

    name: str
    service: str
    command: tuple[str, ...]
    container: str | None = None


@dataclass(frozen=True)
class Wave:
    services: tuple[str, ...]
    before: tuple[OneOff, ...] = ()


@dataclass(frozen=True)
class ServiceSettings:
    container: str | None = None
    task_definition: Path | None = None
    until: Until = DEPLOYED


@dataclass(frozen=True)
class ReleaseSet:
    name: str
    source: Path  # the file it was declared in
    cluster: str
    waves: tuple[Wave, ...]
    repository: str | None = None
    path: Path = Path(".")
    dockerfile: str = "Dockerfile"
    services: dict[str, ServiceSettings] = field(default_factory=dict)

    @property
    def all_services(self) -> tuple[str, ...]:
        """Every service of the set, in wave order."""
        return tuple(s for wave in self.waves for s in wave.services)

    def settings(self, service: str) -> ServiceSettings:
        return self.services.get(service, ServiceSettings())


def declarations(root: Path) -> tuple[Path, dict[str, Any]]:
    """The file that declares the repository's release sets and its sets table (``{}`` when none does)."""
    own, project = root / "opskit.toml", root / "pyproject.toml"
    tables: list[tuple[Path, dict[str, Any]]] = []
    if own.is_file():
        tables.append((own, _read(own).get("sets") or {}))
    if project.is_file():
        found = ((_read(project).get("tool") or {}).get("opskit") or {}).get("sets")
        if found is not None:
            tables.append((project, found))
    if len(tables) > 1:
        raise ConfigError(
            f"release sets are declared in both {own.name} and {project.name} ([tool.opskit.sets]): keep one"
        )
    return tables[0] if tables else (own, {})


def load_set(root: Path, name: str) -> ReleaseSet:
    """The release set ``name`` declared under ``root`` (opskit.toml or pyproject.toml)."""
    source, sets = declarations(root)
    if not isinstance(sets, dict) or name not in sets:
        known = ", ".join(sorted(sets)) if isinstance(sets, dict) and sets else "none"
        raise ConfigError(
            f"no release set {name!r} in {source.name} (sets: {known}): declare [sets.{name}] in opskit.toml or "
            f"[tool.opskit.sets.{name}] in pyproject.toml"
        )
    return parse_set(name, sets[name], source)


def parse_set(name: str, table: Any, source: Path) -> ReleaseSet:
    where = f"{source.name}: set {name}"
    body = _table(table, where, SET_KEYS)
    cluster = _text(body.get("cluster"), f"{where}: cluster", required=True)
    waves_table = body.get("waves")
    if not isinstance(waves_table, list) or not waves_table:
        raise ConfigError(f"{where} has no waves: add [[...waves]] with services = [...]")
    waves = tuple(_wave(w, f"{where}: wave {i}") for i, w in enumerate(waves_table, start=1))
    seen: set[str] = set()
    for i, wave in enumerate(waves, start=1):
        for service in wave.services:
            if service in seen:
                raise ConfigError(f"{where}: service {service!r} is in more than one wave: keep it in one")
            seen.add(service)
        for task in wave.before:
            if task.service not in seen:
                raise ConfigError(
                    f"{where}: wave {i}: task {task.name!r} runs {task.service!r}'s revision, which no wave up to it "
                    "releases: name a service of this wave or an earlier one"
                )
    services_table = _table(body.get("services") or {}, f"{where}: services", None)
    services = {}
    for service, settings in services_table.items():
        if service not in seen:
            raise ConfigError(f"{where}: services.{service} is in no wave: add it to a wave or remove its settings")
        services[service] = _settings(settings, f"{where}: services.{service}")
    return ReleaseSet(
        name=name,
        source=source,
        cluster=cluster,
        waves=waves,
        repository=_text(body.get("repository"), f"{where}: repository"),
        path=Path(_text(body.get("path"), f"{where}: path") or "."),
        dockerfile=_text(body.get("dockerfile"), f"{where}: dockerfile") or "Dockerfile",
        services=services,
    )


def _wave(table: Any, where: str) -> Wave:
    body = _table(table, where, WAVE_KEYS)
    services = body.get("services")
    if not isinstance(services, list) or not services or not all(isinstance(s, str) and s for s in services):
        raise ConfigError(f"{where}: services must be a list of service names: add them")
    if len(set(services)) != len(services):
        raise ConfigError(f"{where}: a service is listed twice: list each once")
    before = body.get("before") or []
    if not isinstance(before, list):
        raise ConfigError(f"{where}: before must be a list of tasks ({{ name = ..., service = ..., command = [...] }})")
    return Wave(tuple(services), tuple(_task(t, f"{where}: before[{i}]") for i, t in enumerate(before)))


def _task(table: Any, where: str) -> OneOff:
    body = _table(table, where, TASK_KEYS)
    command = body.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) for c in command):
        raise ConfigError(f'{where}: command must be a list of strings, e.g. ["python", "manage.py", "migrate"]')
    return OneOff(
        name=_text(body.get("name"), f"{where}: name", required=True),
        service=_text(body.get("service"), f"{where}: service", required=True),
        command=tuple(command),
        container=_text(body.get("container"), f"{where}: container"),
    )


def _settings(table: Any, where: str) -> ServiceSettings:
    body = _table(table, where, SERVICE_KEYS)
    definition = _text(body.get("task_definition"), f"{where}: task_definition")
    until = _text(body.get("wait_until"), f"{where}: wait_until")
    try:
        parsed = Until.parse(until) if until else DEPLOYED
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    return ServiceSettings(
        container=_text(body.get("container"), f"{where}: container"),
        task_definition=Path(definition) if definition else None,
        until=parsed,
    )


def _table(value: Any, where: str, keys: set[str] | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a table: fix it")
    unknown = sorted(set(value) - keys) if keys is not None else []
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r}: use any of {', '.join(sorted(keys or ()))}")
    return value


def _text(value: Any, where: str, *, required: bool = False) -> Any:
    if value is None:
        if required:
            raise ConfigError(f"{where} is missing: add it")
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty string: fix it")
    return value.strip()


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name} is not valid TOML ({exc}): fix it") from exc


@dataclass(frozen=True)
class SetPlan:
    """What releasing a set would do: each service's own release plan (its steps, diff and rollout), wave by wave,
    for the one commit and its one image."""

    release_set: ReleaseSet
    plans: dict[str, Any]  # service -> its ReleasePlan, in wave order

    @property
    def tag(self) -> str:
        return str(next(iter(self.plans.values())).tag)

    def to_frame(self) -> Any:
        """One row per service and step: wave, service, step, action, detail (one-off tasks as action ``task``)."""
        import pandas as pd

        rows = []
        for number, wave in enumerate(self.release_set.waves, start=1):
            for task in wave.before:
                detail = f"{' '.join(task.command)} with {task.service}'s new revision, to its exit"
                rows.append(
                    {"wave": number, "service": task.service, "step": task.name, "action": "task", "detail": detail}
                )
            for service in wave.services:
                for name, action, detail in self.plans[service].rows():
                    rows.append({"wave": number, "service": service, "step": name, "action": action, "detail": detail})
        return pd.DataFrame(rows, columns=["wave", "service", "step", "action", "detail"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "set": self.release_set.name,
            "cluster": self.release_set.cluster,
            "tag": self.tag,
            "waves": [
                {
                    "services": list(wave.services),
                    "before": [{"name": t.name, "service": t.service, "command": list(t.command)} for t in wave.before],
                }
                for wave in self.release_set.waves
            ],
            "plans": {service: plan.to_dict() for service, plan in self.plans.items()},
        }


def plan_set(aws: Any, release_set: ReleaseSet, *, root: Path, allow_dirty: bool = False) -> SetPlan:
    """Plan the release of ``release_set`` from the checkout at ``root``: every service's plan, read before anything
    is built, so a service the set cannot release refuses the whole set (one line, naming the service)."""
    from opskit.errors import OpskitError
    from opskit.release.plan import ReleaseOptions, plan_release

    plans: dict[str, Any] = {}
    for service in release_set.all_services:
        settings = release_set.settings(service)
        options = ReleaseOptions(
            cluster=release_set.cluster,
            service=service,
            containers=(settings.container,) if settings.container else (),
            repository=release_set.repository,
            path=(root / release_set.path).resolve(),
            dockerfile=release_set.dockerfile,
            allow_dirty=allow_dirty,
            task_definition=settings.task_definition,
        )
        try:
            plans[service] = plan_release(aws, options)
        except OpskitError as exc:
            raise type(exc)(f"set {release_set.name}: {service}: {exc}") from exc
    tags = {plan.tag for plan in plans.values()}
    if len(tags) > 1:
        raise ConfigError(f"set {release_set.name} would release {', '.join(sorted(tags))}: one commit, one tag")
    return SetPlan(release_set, plans)


__all__ = [
    "OneOff",
    "ReleaseSet",
    "ServiceSettings",
    "SetPlan",
    "Wave",
    "declarations",
    "load_set",
    "parse_set",
    "plan_set",
]
