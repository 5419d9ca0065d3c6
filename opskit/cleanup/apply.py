"""Applying a cleanup plan: deregister, delete in batches of 10, then images; paced, re-checked, journaled.

Each action waits for its token in ECS's bucket (task-definition modify: a burst of 20, then 1 per second;
deletion: a burst of 5, then 1 per second, as AWS publishes them; the pacer finds out how much more the endpoint
allows, :mod:`opskit.library.pacing`), re-reads what is in use right before it acts (a revision that a
service or a task took up since the plan is skipped and reported), and is written to the run's journal once AWS
answered. Deregistering and deleting interleave: each goes whenever its own bucket has a token, so a cleanup
takes as long as the slower bucket allows, not the sum of both. A run that stops (Ctrl-C, a crash, lost network)
resumes from its journal: plan again with the same options (or rerun the same command) and apply.

>>> result = apply_cleanup(plan, aws, progress=print)                    # doctest: +SKIP
>>> result.to_frame().outcome.value_counts()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from opskit.aws import Aws
from opskit.cleanup.guard import Guard
from opskit.cleanup.images_apply import apply_images
from opskit.cleanup.plan import CleanupPlan
from opskit.cleanup.result import CleanupResult, outcome
from opskit.cleanup.revisions import DELETE, DELETING, KEEP, RevisionDecision, revision_key
from opskit.cleanup.runs import CleanupRun, exclusive, runs_folder
from opskit.errors import AwsError, ConflictError
from opskit.library.pacing import (
    TASK_DEFINITION_DELETE,
    TASK_DEFINITION_MODIFY,
    TASK_DEFINITION_READ,
    Pacer,
    paced_aws,
)
from opskit.progress import Progress, ProgressEvent, ignore

DELETE_BATCH = 10
INACTIVE_NOW = ("deregistered", "already")  # a deregistration outcome after which the revision can be deleted
T = TypeVar("T")
STAGE = "revisions"
_FATAL = {
    "AccessDeniedException",
    "AccessDenied",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "ExpiredTokenException",
    "ExpiredToken",
    "RequestExpired",
}


def apply_cleanup(
    plan: CleanupPlan,
    aws: Aws,
    *,
    progress: Progress = ignore,
    journal_dir: Path | None = None,
    rate_scale: float = 1.0,
    pacer: Pacer | None = None,
) -> CleanupResult:
    """Carry out ``plan`` (or finish it, when it is an interrupted run's); returns every revision's outcome.

    ``rate_scale`` multiplies ECS's refill rates as a hint (a sandbox with ``time_scale``: the pacer starts there
    and learns what the endpoint allows either way). Errors that stop the run
    (credentials, permissions, a network that stays down) raise a one-line :class:`~opskit.errors.OpskitError`;
    what was done is in the journal, and the same plan resumes from there.
    """
    started = time.monotonic()
    pacer = pacer or Pacer(rate_scale=rate_scale)
    calls_before, throttled_before = Counter(pacer.calls), Counter(pacer.throttled)
    folder = runs_folder(aws, journal_dir)
    with exclusive(folder):
        run = _open_run(folder, plan)
        wire = paced_aws(aws)  # the pacer's calls: each throttle reaches it, and slows it down
        try:
            guard = Guard(wire, pacer, run, plan, rate_scale)
            revisions = _Revisions(plan, wire, pacer, run, progress, guard)
            revisions.run()
            images = apply_images(plan, wire, pacer, run, progress, revisions.final, guard.live)
        except AwsError as exc:
            raise _stopped(exc, run) from exc
        result = CleanupResult(
            plan=plan,
            revision_outcomes=revisions.final,
            image_outcomes=images,
            journal=str(run.path),
            seconds=time.monotonic() - started,
            calls=dict(Counter(pacer.calls) - calls_before),
            throttled=dict(Counter(pacer.throttled) - throttled_before),
            resumed=plan.resumed is not None,
        )
        run.finish(counts=result.counts, image_counts=result.image_counts)
        result.journal = str(run.path)
        return result


def _open_run(folder: Path, plan: CleanupPlan) -> CleanupRun:
    if plan.resumed is None:
        return CleanupRun.start(folder, plan)
    path = Path(plan.resumed.journal)
    if not path.exists():
        raise ConflictError(f"the interrupted cleanup {path.name} was finished meanwhile: plan the cleanup again")
    run = CleanupRun(path)
    run.repair()
    return run


def _stopped(exc: AwsError, run: CleanupRun) -> AwsError:
    """Why the run stopped, with where its journal is: a rerun resumes from there."""
    if exc.code is None:  # AWS never answered (the network, the endpoint) or opskit could not ask
        return AwsError(
            f"lost AWS ({exc}): what was done is journaled in {run.path}; run the cleanup again to resume",
            transient=True,
        )
    detail = f"{exc.operation} ({exc.code}: {exc.aws_message})"
    if exc.transient:  # nothing for the user to fix: AWS's own trouble, retried already
        return AwsError(
            f"AWS kept failing {detail}: run the cleanup again later to resume (journal: {run.path})",
            code=exc.code,
            operation=exc.operation,
            aws_message=exc.aws_message,
            transient=True,
        )
    return AwsError(
        f"AWS refused {detail}: fix that, then run the cleanup again to resume (journal: {run.path})",
        code=exc.code,
        operation=exc.operation,
        aws_message=exc.aws_message,
    )


class _Revisions:
    """The revision actions of one run, in one thread: whichever bucket can go first goes."""

    def __init__(
        self, plan: CleanupPlan, aws: Aws, pacer: Pacer, run: CleanupRun, progress: Progress, guard: Guard
    ) -> None:
        self.plan = plan
        self.ecs = aws.client("ecs")
        self.pacer = pacer
        self.run_ = run
        self.progress = progress
        self.guard = guard
        self.modify = pacer.buckets[TASK_DEFINITION_MODIFY]
        self.deletion = pacer.buckets[TASK_DEFINITION_DELETE]
        self.decisions = {d.arn: d for d in plan.revisions}
        self.final: dict[str, dict[str, Any]] = {}
        self.total = sum(1 for d in plan.revisions if d.acts)
        self.finished = 0  # revisions whose actions are all done (or will not happen)
        self.later = 0  # revisions waiting to be deregistered that will then be deleted
        self.tally: Counter[str] = Counter()
        self.check_seconds = 0.0  # how long a re-check takes (moving average)

    # -- the loop ----------------------------------------------------------------------------------------------
    def run(self) -> None:
        deregistered: dict[str, dict[str, Any]] = {}
        deleted: dict[str, dict[str, Any]] = {}
        for entry in self.run_.outcomes(STAGE):
            if entry["outcome"] != "failed":  # what AWS refused is tried again when a run resumes
                (deregistered if entry["step"] == "deregister" else deleted)[entry["key"]] = entry
        to_deregister = deque(d for d in self.plan.to_deregister if d.arn not in deregistered)
        ready = deque(
            d
            for d in self.plan.to_delete
            if d.arn not in deleted and (d.fate == DELETE or deregistered.get(d.arn, {}).get("outcome") in INACTIVE_NOW)
        )
        self.later = sum(1 for d in to_deregister if d.deletes)
        for d in self.plan.revisions:
            self.final[d.arn] = deleted.get(d.arn) or deregistered.get(d.arn) or _initial(d)
            if d.acts and self._finishes(d, self.final[d.arn]):
                self.finished += 1
        self._report("started", self._headline(len(to_deregister), len(ready)))
        try:
            if to_deregister or ready:
                self.guard.start()
            while to_deregister or ready:
                full = len(ready) >= DELETE_BATCH or (ready and not to_deregister)
                if full and (not to_deregister or self.deletion.ready_in() <= self.modify.ready_in()):
                    self._delete([ready.popleft() for _ in range(min(DELETE_BATCH, len(ready)))])
                else:
                    decision = to_deregister.popleft()
                    self.later -= decision.deletes
                    if self._deregister(decision) in INACTIVE_NOW and decision.deletes:
                        ready.append(decision)
                self._running(len(to_deregister), len(ready))
            self._verify_deletions()
        except BaseException as exc:
            self._report_quietly("failed", f"stopped: {exc or type(exc).__name__}")
            raise
        self._report("done", ", ".join(f"{k} {n}" for k, n in sorted(self.tally.items())) or "nothing to do")

    # -- one deregistration --------------------------------------------------------------------------------------
    def _deregister(self, d: RevisionDecision) -> str:
        def act(protected: dict[str, str]) -> dict[str, Any]:
            if d.key in protected:
                return outcome(d.arn, "skipped", step="deregister", detail=protected[d.key], status_after=d.status)
            try:
                self.ecs.deregister_task_definition(taskDefinition=d.arn)
            except AwsError as exc:
                return _refused(d, exc, "deregister")
            return outcome(d.arn, "deregistered", step="deregister", status_after="INACTIVE")

        result = self._checked(TASK_DEFINITION_MODIFY, "deregister_task_definition", [d.key], act)
        self._record([result])
        return str(result["outcome"])

    # -- one DeleteTaskDefinitions call --------------------------------------------------------------------------
    def _delete(self, batch: list[RevisionDecision]) -> None:
        def act(protected: dict[str, str]) -> list[dict[str, Any]]:
            out = [
                outcome(d.arn, "skipped", step="delete", detail=protected[d.key]) for d in batch if d.key in protected
            ]
            go = [d for d in batch if d.key not in protected]
            if not go:
                return out
            try:
                answer = self.ecs.delete_task_definitions(taskDefinitions=[d.arn for d in go])
            except AwsError as exc:
                return out + [_refused(d, exc, "delete") for d in go]
            return out + _delete_outcomes(go, answer)

        self._record(self._checked(TASK_DEFINITION_DELETE, "delete_task_definitions", [d.key for d in batch], act))

    def _checked(self, category: str, operation: str, keys: list[str], act: Callable[[dict[str, str]], T]) -> T:
        """Re-check ``keys`` right before the action's turn in its bucket, then act at once.

        The check is timed to end when the token is due (it starts that long before, by how long checks take),
        so what it saw is fresh and the call itself goes out exactly on the bucket's schedule: a check between
        the token and the call would send calls out unevenly, and AWS's bucket would refuse some.
        """
        lead = self.pacer.buckets[category].ready_in() - 1.5 * self.check_seconds
        if lead > 0:
            time.sleep(lead)
        started = time.monotonic()
        protected = self.guard.check(keys)
        self.check_seconds = 0.7 * self.check_seconds + 0.3 * (time.monotonic() - started)
        if all(key in protected for key in keys):
            return act(protected)  # nothing to send: no token spent
        attempts = [0]

        def paced() -> T:
            nonlocal protected
            attempts[0] += 1
            if attempts[0] > 1:  # throttled after all: look again before trying again
                protected = self.guard.check(keys)
            return act(protected)

        paced.__name__ = operation  # the pacer counts calls by operation
        return self.pacer.call(category, paced)

    def _verify_deletions(self) -> None:
        """Deleted revisions that ECS still lists as DELETE_IN_PROGRESS, and why: ECS removes an unused one a few
        minutes after the call (that one is deleted), and holds one a task or service still uses (that one is in
        progress). What is in use is read again once, when anything is still listed."""
        checked = [d for d in self.plan.revisions if self.final[d.arn]["outcome"] == "deleted" or d.fate == DELETING]
        held: set[str] = set()
        for family in sorted({d.family for d in checked}):
            params: dict[str, Any] = {"status": "DELETE_IN_PROGRESS", "familyPrefix": family, "maxResults": 100}
            while True:
                page = self.pacer.call(TASK_DEFINITION_READ, self.ecs.list_task_definitions, **params)
                held.update(revision_key(arn) for arn in page.get("taskDefinitionArns") or [])
                if not page.get("nextToken"):
                    break
                params["nextToken"] = page["nextToken"]
        using = self.guard.live.read().in_use if any(d.key in held for d in checked) else None
        for d in checked:
            entry, listed = self.final[d.arn], d.key in held
            still = listed and using is not None and (using.reason(d.key) is not None or d.fate == DELETING)
            if still:
                detail = "ECS finishes the deletion once no task or service uses it"
            elif listed:
                detail = "nothing uses it: ECS removes it within minutes"
            else:
                detail = entry["detail"]
            self.final[d.arn] = {
                **entry,
                "outcome": "delete_in_progress" if still else ("gone" if d.fate == DELETING else "deleted"),
                "status_after": "DELETE_IN_PROGRESS" if listed else "gone",
                "detail": detail,
            }

    # -- bookkeeping ---------------------------------------------------------------------------------------------
    def _record(self, results: list[dict[str, Any]]) -> None:
        self.run_.record(STAGE, results)  # first the journal (AWS has answered), then the world hears of it
        for result in results:
            self.final[result["key"]] = result
            self.finished += self._finishes(self.decisions[result["key"]], result)
            self.tally[result["outcome"]] += 1
            if result["outcome"] in ("skipped", "failed"):
                name = revision_key(result["key"])
                why = result["detail"] or f"{result['failure_reason']}: {result['failure_detail']}"
                self.progress(ProgressEvent(STAGE, "log", f"{result['outcome']} {name}: {why}"))

    @staticmethod
    def _finishes(d: RevisionDecision, result: dict[str, Any]) -> bool:
        """Is this the revision's last step? (A deregistration is not, when a deletion follows it.)"""
        if result["outcome"] in ("pending", "kept"):
            return False
        return result["step"] == "delete" or not d.deletes or result["outcome"] not in INACTIVE_NOW

    def _headline(self, deregisters: int, deletes: int) -> str:
        eta = self._eta(deregisters, deletes + self.later)
        deleting = deletes + self.later
        return f"deregistering {deregisters} and deleting {deleting} revisions (about {eta:.0f} s at ECS's rates)"

    def _eta(self, deregisters: int, deletes: int) -> float:
        return max(self.modify.ready_in(deregisters), self.deletion.ready_in(-(-deletes // DELETE_BATCH)))

    def _running(self, deregisters: int, ready: int) -> None:
        message = ", ".join(f"{k} {n}" for k, n in sorted(self.tally.items()))
        eta = self._eta(deregisters, ready + self.later)
        self.progress(ProgressEvent(STAGE, "running", message, self.finished, self.total, eta))

    def _report(self, state: Any, message: str) -> None:
        self.progress(ProgressEvent(STAGE, state, message))

    def _report_quietly(self, state: Any, message: str) -> None:
        with contextlib.suppress(Exception):  # the reporter itself may be what failed
            self._report(state, message)


def _initial(d: RevisionDecision) -> dict[str, Any]:
    if d.fate in (KEEP, DELETING):
        return outcome(d.arn, "kept", detail=d.reason, status_after=d.status)
    return outcome(d.arn, "pending", status_after=d.status)


def _refused(d: RevisionDecision, exc: AwsError, step: str) -> dict[str, Any]:
    code, message = exc.code or "", exc.aws_message
    if exc.code is None or exc.transient or code in _FATAL:
        raise exc  # throttles: the pacer waits and tries again; the rest stop the run (it resumes later)
    if step == "deregister" and "inactive" in message.lower():
        return outcome(d.arn, "already", step=step, detail="already INACTIVE", status_after="INACTIVE")
    if "unable to describe" in message.lower() or "does not exist" in message.lower():
        return outcome(d.arn, "gone", step=step, detail="it no longer exists", status_after="gone")
    return outcome(d.arn, "failed", step=step, failure_reason=code, failure_detail=message, status_after=d.status)


def _delete_outcomes(batch: list[RevisionDecision], answer: dict[str, Any]) -> list[dict[str, Any]]:
    accepted = {revision_key(t["taskDefinitionArn"]): t for t in answer.get("taskDefinitions") or []}
    failures = {revision_key(f.get("arn")): f for f in answer.get("failures") or []}
    out = []
    for d in batch:
        if d.key in accepted:
            status = str(accepted[d.key].get("status") or "DELETE_IN_PROGRESS")
            out.append(outcome(d.arn, "deleted", step="delete", status_after=status))
            continue
        failure = failures.get(d.key)
        if failure is None:
            out.append(
                outcome(d.arn, "failed", step="delete", failure_reason="missing", failure_detail="not in the answer")
            )
            continue
        reason, detail = str(failure.get("reason") or ""), str(failure.get("detail") or "")
        if "does not exist" in reason.lower() or "not found" in reason.lower():
            out.append(outcome(d.arn, "gone", step="delete", detail=reason, status_after="gone"))
        else:
            out.append(
                outcome(
                    d.arn, "failed", step="delete", failure_reason=reason, failure_detail=detail, status_after=d.status
                )
            )
    return out


__all__ = ["DELETE_BATCH", "apply_cleanup"]
