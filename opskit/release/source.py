"""A task definition kept in the repository: read from a file in any of the forms people keep, rendered with the
values that differ per environment, and turned into the body RegisterTaskDefinition takes.

The forms: a register body (``family``, ``containerDefinitions``, ...), as ``aws ecs register-task-definition
--cli-input-json`` takes it; a describe output (``aws ecs describe-task-definition``), with its ``taskDefinition``
envelope (its ``tags`` kept) or without it. Read-only fields (``taskDefinitionArn``, ``revision``, ``status`` ...) are
dropped, whatever the form.

Templating is Jinja's (``{{ name }}``), with undefined names an error: ``${AWS_REGION}`` or ``$(cat x)`` in a
command is shell syntax that reaches the container untouched, and ``{{ account }}`` with no value for ``account``
names what is missing.

>>> definition = read_task_definition(Path(".aws/task-definition.json"), {"env": "prod"})   # doctest: +SKIP
>>> definition.body["family"], definition.tags
('web', [{'key': 'team', 'value': 'payments'}])
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opskit.errors import ConfigError
from opskit.release.taskdef import registrable


@dataclass(frozen=True)
class TaskDefinitionFile:
    """A task definition read from ``path``: ``body`` to register (read-only fields dropped, tags apart), its
    ``tags``, and which ``form`` the file had."""

    path: Path
    body: dict[str, Any]
    tags: list[dict[str, str]] = field(default_factory=list)
    form: str = "register"  # "register" | "describe" (with the taskDefinition envelope) | "described" (without)

    @property
    def family(self) -> str:
        return str(self.body["family"])


def render(text: str, variables: dict[str, str], *, name: str = "the task definition") -> str:
    """``text`` with ``{{ name }}`` replaced from ``variables``; an undefined name is a one-line error naming it."""
    if "{{" not in text and "{%" not in text:
        return text
    import jinja2

    environment = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False)
    try:
        return environment.from_string(text).render(**variables)
    except jinja2.UndefinedError as exc:
        missing = str(exc.message or exc).split("'")[1] if "'" in str(exc.message or exc) else str(exc)
        raise ConfigError(f"{name} uses {{{{ {missing} }}}}, which has no value: pass --var {missing}=VALUE") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{name} is not a valid template at line {exc.lineno}: {exc.message}") from exc


def parse(text: str, *, name: str = "the task definition") -> TaskDefinitionFile:
    """The task definition in ``text`` (JSON, in any of the forms above)."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{name} is not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): fix it") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{name} holds a JSON {type(data).__name__}, not a task definition object: fix it")
    tags: list[dict[str, str]] = []
    form = "register"
    if isinstance(data.get("taskDefinition"), dict):
        tags = list(data.get("tags") or [])
        data, form = data["taskDefinition"], "describe"
    elif "taskDefinitionArn" in data or "revision" in data:
        form = "described"
    if "tags" in data and form == "register":
        tags = list(data.get("tags") or [])
    body = {k: v for k, v in registrable(data).items() if k != "tags"}
    for required in ("family", "containerDefinitions"):
        if not body.get(required):
            raise ConfigError(f"{name} has no {required}: a task definition needs one; add it")
    if not isinstance(body["containerDefinitions"], list) or not all(
        isinstance(c, dict) and c.get("name") and c.get("image") for c in body["containerDefinitions"]
    ):
        raise ConfigError(f"{name}'s containerDefinitions must each have a name and an image: add them")
    for tag in tags:
        if not isinstance(tag, dict) or "key" not in tag or "value" not in tag:
            raise ConfigError(f"{name}'s tags must be {{'key': ..., 'value': ...}} objects: fix {tag!r}")
    return TaskDefinitionFile(Path(name), body, tags, form)


def read_task_definition(path: Path, variables: dict[str, str] | None = None) -> TaskDefinitionFile:
    """The task definition in the file at ``path``, rendered with ``variables``."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise ConfigError(f"task definition file {path} does not exist: check --task-definition") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read task definition file {path}: {exc}") from exc
    found = parse(render(text, variables or {}, name=str(path)), name=str(path))
    return TaskDefinitionFile(Path(path), found.body, found.tags, found.form)


def parse_variables(values: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``--var NAME=VALUE`` (repeatable) as a dict; a malformed one is a one-line error."""
    out: dict[str, str] = {}
    for value in values:
        name, sep, setting = value.partition("=")
        if not sep or not name.strip().isidentifier():
            raise ConfigError(f"--var {value!r} is not NAME=VALUE (NAME a template name): pass --var NAME=VALUE")
        out[name.strip()] = setting
    return out


__all__ = ["TaskDefinitionFile", "parse", "parse_variables", "read_task_definition", "render"]
