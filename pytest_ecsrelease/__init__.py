"""pytest_ecsrelease: release invariants for Amazon ECS as pytest fixtures, on AWS or on opskit's sandbox."""
