"""The sandbox's Lambda functions: created with plain boto3 (moto keeps them), run by the sandbox in child processes.

:mod:`~opskit.sandbox.lambdas.runner` invokes them; :mod:`~opskit.sandbox.lambdas.hooks` builds the event ECS sends a
deployment's lifecycle hook and reads the hook's answer.
"""

from opskit.sandbox.lambdas.hooks import HookOutcome, hook_event, hook_outcome
from opskit.sandbox.lambdas.runner import InvokeResult, LambdaRunner

__all__ = ["HookOutcome", "InvokeResult", "LambdaRunner", "hook_event", "hook_outcome"]
