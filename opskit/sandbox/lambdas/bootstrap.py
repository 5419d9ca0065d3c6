"""The child side of one Lambda invocation: import the handler, call it with the event and a context, write what it
returned (or how it failed) as Lambda's Python runtime reports it.

Run as a script (``python -I -u bootstrap.py REQUEST RESPONSE READY_FD``), never imported by the sandbox: it needs
nothing of opskit, so the function's code, not opskit's, is what the child's imports find. The request file holds the
event, the handler and the context's fields; the response file is written once, whole, at the end. The ready pipe gets
one byte once the handler's module is imported: the runner starts the function's timeout from there, as Lambda starts
it after the init phase.

Errors are Lambda's: ``Runtime.MalformedHandlerName``, ``Runtime.ImportModuleError``, ``Runtime.UserCodeSyntaxError``,
``Runtime.HandlerNotFound``, ``Runtime.MarshalError``, and for an exception the handler raised, its class name, its
message and its stack trace.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any


class LambdaContext:
    """The context object of Lambda's Python runtime (the fields hooks use; ``memory_limit_in_mb`` is a string there
    too, read from the environment)."""

    def __init__(self, fields: dict[str, Any], deadline_ms: float) -> None:
        self.function_name: str = fields["function_name"]
        self.function_version: str = fields["function_version"]
        self.invoked_function_arn: str = fields["invoked_function_arn"]
        self.memory_limit_in_mb: str = fields["memory_limit_in_mb"]
        self.aws_request_id: str = fields["aws_request_id"]
        self.log_group_name: str = fields["log_group_name"]
        self.log_stream_name: str = fields["log_stream_name"]
        self.identity: Any = None
        self.client_context: Any = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message


def _load(handler: str) -> Callable[..., Any]:
    """The handler ``path/module.function``, as the Python runtime finds it."""
    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from exc
    module_name = module_name.replace("/", ".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _InitError("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from exc
    except SyntaxError as exc:
        raise _InitError("Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}") from exc
    function = getattr(module, function_name, None)
    if not callable(function):
        raise _InitError("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return function  # type: ignore[no-any-return]


def _error(error_type: str, message: str, request_id: str, stack: list[str] | None = None) -> dict[str, Any]:
    return {"errorMessage": message, "errorType": error_type, "requestId": request_id, "stackTrace": stack or []}


def _write(path: str, text: str) -> None:
    """Whole or not at all: a child killed while writing leaves no half answer behind."""
    partial = f"{path}.partial"
    with open(partial, "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(partial, path)


def _signal_ready(ready_fd: int) -> None:
    try:
        os.write(ready_fd, b"r")
    finally:
        os.close(ready_fd)


def main(request_path: str, response_path: str, ready_fd: int) -> int:
    with open(request_path, encoding="utf-8") as source:
        request = json.load(source)
    fields = request["context"]
    request_id = fields["aws_request_id"]
    sys.path.insert(0, request["task_root"])
    try:
        handler = _load(request["handler"])
    except _InitError as exc:
        print(f"[ERROR] {exc.error_type}: {exc.message}", file=sys.stderr)
        _write(response_path, json.dumps({"error": _error(exc.error_type, exc.message, request_id)}))
        return 0
    _signal_ready(ready_fd)
    context = LambdaContext(fields, time.time() * 1000 + request["timeout_seconds"] * 1000)
    try:
        result = handler(request["event"], context)
    except Exception as exc:
        stack = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
        print(f"[ERROR] {type(exc).__name__}: {exc}", file=sys.stderr)
        traceback.print_exc()
        _write(response_path, json.dumps({"error": _error(type(exc).__name__, str(exc), request_id, stack)}))
        return 0
    try:
        payload = json.dumps(result)
    except (TypeError, ValueError) as exc:
        error = _error("Runtime.MarshalError", f"Unable to marshal response: {exc}", request_id)
        _write(response_path, json.dumps({"error": error}))
        return 0
    _write(response_path, '{"payload": ' + payload + "}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
