"""ECR in the sandbox. State: repositories (:mod:`.repositories`), images and tags (:mod:`.images`), scans
(:mod:`.scans`). Wire handlers: :mod:`.api`. The data plane: a real registry (:mod:`.registry`) behind a proxy
that speaks ECR's auth and keeps the image model in step (:mod:`.registry_proxy`)."""
