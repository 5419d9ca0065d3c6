"""A local ECS/ECR that speaks the AWS wire protocol: see :class:`Sandbox`."""

from opskit.sandbox.sandbox import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Sandbox, issued_secrets

__all__ = ["ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "Sandbox", "issued_secrets"]
