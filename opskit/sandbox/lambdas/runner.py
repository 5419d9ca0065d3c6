"""Runs the sandbox's Lambda functions: each invocation in a child Python process, as Lambda's Python runtime would.

Users create functions with plain boto3 (``lambda.create_function(..., Code={"ZipFile": ...})``); moto stores them.
moto's own Invoke needs a Docker image of the Lambda runtime, which no machine here can pull, so the sandbox runs
functions itself: the function's code, handler, timeout and environment come from moto's model in this process
(``GetFunction``'s ``Code.Location`` points at an S3 host nothing serves), its zip is unpacked once per code digest,
and each invocation is a child ``sys.executable`` running :mod:`opskit.sandbox.lambdas.bootstrap`.

The child gets the function's environment variables, then Lambda's own (``AWS_LAMBDA_FUNCTION_NAME``,
``LAMBDA_TASK_ROOT`` ...), then the sandbox's AWS environment (endpoint, credentials, region), which win as Lambda's
reserved variables do: a function's own boto3 calls reach the sandbox, never AWS. Nothing else of this process's
environment is passed on (no real credentials, no proxies, no ``~/.aws`` files).

A function never runs in the sandbox's process: a hook calls the sandbox over HTTP, and the server must serve it
meanwhile. :meth:`LambdaRunner.invoke` blocks its caller until the function ends (up to its timeout), so it must be
called holding no lock of the sandbox's; :meth:`LambdaRunner.start` runs it in a thread of its own and calls back.

The timeout is the function's ``Timeout`` in wall seconds, not sandbox seconds: the function's code (its sleeps,
its HTTP calls, boto3's retries) runs in real time whatever the sandbox clock's scale, and a 3-second timeout scaled
by 60 would leave 50 ms to every hook. As in Lambda it starts once the handler's module is imported (the init
phase, given up to :data:`INIT_SECONDS` of its own).

>>> runner = LambdaRunner(account_id="123456789012", region="us-east-1", aws_env=sandbox.env)  # doctest: +SKIP
>>> runner.invoke("my-hook", {"lifecycleStage": "POST_SCALE_UP"}).payload                      # doctest: +SKIP
{'hookStatus': 'SUCCEEDED'}
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit.sandbox.server.wire import ApiError

log = logging.getLogger("opskit.sandbox")

BOOTSTRAP = Path(__file__).with_name("bootstrap.py")
INIT_SECONDS = 10.0  # Lambda's limit on the init phase (importing the handler's module), not counted in Timeout
LOG_TAIL_BYTES = 4096  # as much of the function's output as Invoke's LogResult carries
CLOSE_JOIN_SECONDS = 5.0
FUNCTION_ERROR = "Unhandled"  # Invoke's X-Amz-Function-Error for an error the function did not handle itself


@dataclass(frozen=True)
class InvokeResult:
    """One invocation's outcome, as Lambda's Invoke reports it.

    - the function returned: ``payload`` is its return value (decoded JSON), ``function_error`` is None;
    - the function failed (raised, timed out, could not be imported, exited): ``function_error`` is ``"Unhandled"``
      and ``payload`` is Lambda's error object ``{"errorType", "errorMessage", ...}``;
    - the call itself failed (no such function ...): ``error`` holds it in AWS's words and the function never ran
      (:meth:`LambdaRunner.invoke` raises it; :meth:`LambdaRunner.start` hands it over in this form).
    """

    function_arn: str
    request_id: str
    payload: Any = None
    function_error: str | None = None
    logs: str = ""  # the tail of what the function printed (stdout and stderr)
    error: ApiError | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None or self.function_error is not None

    @property
    def error_type(self) -> str | None:
        if self.error is not None:
            return self.error.code
        if self.function_error is not None and isinstance(self.payload, dict):
            return str(self.payload.get("errorType", "Unknown"))
        return None

    @property
    def error_message(self) -> str | None:
        if self.error is not None:
            return self.error.message
        if self.function_error is not None and isinstance(self.payload, dict):
            return str(self.payload.get("errorMessage", ""))
        return None


@dataclass(frozen=True)
class _Function:
    """What an invocation needs of a function, read from moto's model."""

    arn: str
    name: str
    version: str
    handler: str
    timeout: int
    memory_mb: int
    runtime: str
    environment: dict[str, str]
    code_digest: str
    code: bytes


class LambdaRunner:
    """Invokes the functions of one account's region; :meth:`close` kills what still runs.

    ``aws_env`` is the environment that points boto3 at the sandbox (:attr:`Sandbox.env`); only its ``AWS_``
    variables reach functions.
    """

    def __init__(self, *, account_id: str, region: str, aws_env: Mapping[str, str]) -> None:
        self.account_id = account_id
        self.region = region
        self._aws_env = {key: value for key, value in aws_env.items() if key.startswith("AWS_")}
        self._aws_env.setdefault("AWS_DEFAULT_REGION", region)
        self._aws_env["AWS_REGION"] = self._aws_env["AWS_DEFAULT_REGION"]
        self._lock = threading.Lock()  # the runner's own state only; never held while a function runs
        self._closed = False
        self._root: Path | None = None
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._threads: set[threading.Thread] = set()

    # -- invoking -----------------------------------------------------------------------------------------------------
    def invoke(self, function: str, payload: Mapping[str, Any]) -> InvokeResult:
        """Run ``function`` (a name, an ARN, a partial ARN, with a version or alias or not) on ``payload`` and wait
        for it to end. Raises :class:`ApiError` in Lambda's words when the call itself fails
        (``ResourceNotFoundException`` for a function that does not exist). Blocks for as long as the function runs:
        hold no sandbox lock."""
        event = _event_json(payload)
        found = self._function(function)
        task_root = self._unpacked(found)
        return self._run(found, task_root, event)

    def start(self, function: str, payload: Mapping[str, Any], on_done: Callable[[InvokeResult], None]) -> None:
        """Invoke in a thread of the runner's and call ``on_done`` with the result once the function ends, from that
        thread (never from within this call, so the caller may hold its own lock here and take it in ``on_done``).
        An invocation that cannot start gives a result whose ``error`` says why. ``on_done`` is called once for each
        call, except for invocations that :meth:`close` ends: the sandbox is going away, and nobody is told."""

        def run() -> None:
            try:
                result = self.invoke(function, payload)
            except ApiError as exc:
                result = InvokeResult(function_arn=function, request_id=str(uuid.uuid4()), error=exc)
            except Exception as exc:  # a sandbox bug: say so in the result, keep the traceback in the log
                log.exception("sandbox Lambda invocation of %s failed", function)
                result = InvokeResult(
                    function_arn=function,
                    request_id=str(uuid.uuid4()),
                    error=ApiError("ServiceException", f"sandbox error invoking {function}: {exc}", 500),
                )
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())
                    closed = self._closed
            if not closed:
                try:
                    on_done(result)
                except Exception:
                    log.exception("the callback of a Lambda invocation of %s failed", function)

        thread = threading.Thread(target=run, name=f"opskit-sandbox-lambda-{function.rsplit(':', 1)[-1]}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the invocations :meth:`start` began to end; True when none still runs.
        (A callback may still be on its way when this returns.)"""
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in threads)

    def close(self) -> None:
        """Kill every function still running, wait for their threads, remove the unpacked code."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
            threads = list(self._threads)
        for process in running:
            _kill(process)
        for thread in threads:
            thread.join(timeout=CLOSE_JOIN_SECONDS)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    # -- the function, from moto's model ------------------------------------------------------------------------------
    def _function(self, name_or_arn: str) -> _Function:
        from moto.awslambda.models import lambda_backends
        from moto.core.exceptions import JsonRESTError

        try:
            model = lambda_backends[self.account_id][self.region].get_function(name_or_arn)
        except JsonRESTError as exc:
            raise ApiError(exc.error_type, exc.message, exc.code) from exc
        config = model.get_configuration()
        runtime = str(config.get("Runtime") or "")
        if config.get("PackageType", "Zip") != "Zip" or not runtime.startswith("python"):
            raise ApiError(
                "InvalidRuntimeException",
                f"The opskit sandbox runs Python functions packaged as a zip file, not {config['FunctionArn']} "
                f"(runtime {runtime or 'none'}, package type {config.get('PackageType')}): create the hook with "
                "Runtime python3.x and Code ZipFile, or run it against AWS.",
            )
        return _Function(
            arn=str(config["FunctionArn"]),
            name=str(config["FunctionName"]),
            version=str(config.get("Version", "$LATEST")),
            handler=str(config.get("Handler") or ""),
            timeout=int(config.get("Timeout") or 3),
            memory_mb=int(config.get("MemorySize") or 128),
            runtime=runtime,
            environment={str(k): str(v) for k, v in (config.get("Environment") or {}).get("Variables", {}).items()},
            code_digest=str(model.code_digest),
            code=bytes(model.code_bytes),
        )

    def _workdir(self) -> Path:
        with self._lock:
            if self._closed:
                raise ApiError("ServiceException", "The opskit sandbox is closed: start another to invoke functions.")
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="opskit-sandbox-lambda-"))
            return self._root

    def _unpacked(self, function: _Function) -> Path:
        """The function's code unpacked, once per code digest (the same zip under several names is unpacked once)."""
        target = self._workdir() / "code" / function.code_digest
        if target.is_dir():
            return target
        staging = target.with_name(f"{function.code_digest}.{uuid.uuid4().hex}")
        try:
            with zipfile.ZipFile(io.BytesIO(function.code)) as archive:
                archive.extractall(staging)
        except zipfile.BadZipFile as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ApiError(
                "InvalidZipFileException",
                f"Lambda could not unzip the code of {function.arn}: {exc}; "
                "update it with UpdateFunctionCode and a zip file.",
                502,
            ) from exc
        try:
            staging.rename(target)
        except OSError:  # unpacked meanwhile by another invocation of the same code
            shutil.rmtree(staging, ignore_errors=True)
        return target

    # -- the child ----------------------------------------------------------------------------------------------------
    def _run(self, function: _Function, task_root: Path, event: Any) -> InvokeResult:
        request_id = str(uuid.uuid4())
        folder = self._workdir() / "invocations" / request_id
        folder.mkdir(parents=True)
        try:
            return self._run_in(function, task_root, event, request_id, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def _run_in(self, function: _Function, task_root: Path, event: Any, request_id: str, folder: Path) -> InvokeResult:
        request, response, output = folder / "request.json", folder / "response.json", folder / "output.log"
        log_stream = f"{time.strftime('%Y/%m/%d')}/[{function.version}]{uuid.uuid4().hex}"
        request.write_text(
            json.dumps(
                {
                    "event": event,
                    "handler": function.handler,
                    "task_root": str(task_root),
                    "timeout_seconds": function.timeout,
                    "context": {
                        "function_name": function.name,
                        "function_version": function.version,
                        "invoked_function_arn": function.arn,
                        "memory_limit_in_mb": str(function.memory_mb),
                        "aws_request_id": request_id,
                        "log_group_name": f"/aws/lambda/{function.name}",
                        "log_stream_name": log_stream,
                    },
                }
            ),
            encoding="utf-8",
        )
        ready_read, ready_write = os.pipe()
        try:
            with output.open("wb") as sink:
                process = subprocess.Popen(
                    [sys.executable, "-I", "-u", str(BOOTSTRAP), str(request), str(response), str(ready_write)],
                    cwd=task_root,
                    env=self._environment(function, task_root, log_stream),
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                    pass_fds=(ready_write,),
                    start_new_session=True,  # its own process group: a timeout kills what it started too
                )
            os.close(ready_write)
            ready_write = -1
            timed_out = self._wait(process, request_id, ready_read, function.timeout)
        finally:
            os.close(ready_read)
            if ready_write >= 0:
                os.close(ready_write)
        logs = _tail(output)
        if timed_out:
            message = f"RequestId: {request_id} Error: Task timed out after {function.timeout:.2f} seconds"
            return _failed(function, request_id, "Sandbox.Timedout", message, logs)
        if response.is_file():
            answer = json.loads(response.read_text(encoding="utf-8"))
            if "error" in answer:
                return InvokeResult(function.arn, request_id, answer["error"], FUNCTION_ERROR, logs)
            return InvokeResult(function.arn, request_id, answer["payload"], None, logs)
        if self._closed:
            message = f"RequestId: {request_id} Error: the opskit sandbox closed while the function ran"
            return _failed(function, request_id, "Runtime.ExitError", message, logs)
        message = f"RequestId: {request_id} Error: Runtime exited with error: exit status {process.returncode}"
        return _failed(function, request_id, "Runtime.ExitError", message, logs)

    def _wait(self, process: subprocess.Popen[bytes], request_id: str, ready: int, timeout: int) -> bool:
        """Wait for the child to end; True when its timeout ran out first (it is killed then). The timeout starts
        once the handler's module is imported, or once the init phase's own limit is over."""
        with self._lock:
            if self._closed:
                _kill(process)
            self._running[request_id] = process
        try:
            select.select([ready], [], [], INIT_SECONDS)  # a byte: imported; end of file: it failed or exited
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill(process)
                return True
            return False
        finally:
            with self._lock:
                self._running.pop(request_id, None)

    def _environment(self, function: _Function, task_root: Path, log_stream: str) -> dict[str, str]:
        """The function's variables, then Lambda's, then the sandbox's AWS ones (reserved in Lambda: they win)."""
        return {
            **function.environment,
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(task_root),
            "LAMBDA_RUNTIME_DIR": str(BOOTSTRAP.parent),
            "_HANDLER": function.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{function.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": function.name,
            "AWS_LAMBDA_FUNCTION_VERSION": function.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            # no ~/.aws files: a profile there must not send the function's calls anywhere but the sandbox
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **self._aws_env,
        }


def _event_json(payload: Mapping[str, Any]) -> Any:
    """The payload as the function will see it: JSON, as Lambda carries it."""
    try:
        return json.loads(json.dumps(payload))
    except (TypeError, ValueError) as exc:
        raise ApiError(
            "InvalidRequestContentException", f"Could not parse request body into json: {exc}: pass a JSON object."
        ) from exc


def _failed(function: _Function, request_id: str, error_type: str, message: str, logs: str) -> InvokeResult:
    payload = {"errorType": error_type, "errorMessage": message}
    return InvokeResult(function.arn, request_id, payload, FUNCTION_ERROR, logs)


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the child and everything it started (its process group), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=CLOSE_JOIN_SECONDS)


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError), path.open("rb") as source:
        source.seek(0, os.SEEK_END)
        source.seek(max(0, source.tell() - LOG_TAIL_BYTES))
        return source.read().decode("utf-8", errors="replace")
    return ""
