"""ECS in the sandbox. State: task-definition revisions (:mod:`.taskdefs`), services, deployments and tasks
(:mod:`.records`), moved along by the scheduler (:mod:`.scheduler` over :mod:`.task_lifecycle`), with containers on
a Docker engine when there is one (:mod:`.runner`). Wire handlers: :mod:`.services`, :mod:`.tasks_api`,
:mod:`.deployments_api` (and the task-definition actions in :mod:`.taskdefs`)."""
