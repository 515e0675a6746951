"""``create_job_from_cronjob``: what ``kubectl create job NAME --from=cronjob/CRONJOB`` does.

kubectl copies ``spec.jobTemplate.spec`` and the job template's labels, sets the annotation
``cronjob.kubernetes.io/instantiate: manual`` (the template's own annotations win), and adds a
controller ownerReference to the CronJob (``controller: true``): the CronJob controller counts the
Jobs it controls (``metav1.GetControllerOf``) against ``successfulJobsHistoryLimit`` and
``failedJobsHistoryLimit``, so these Jobs are pruned like scheduled ones. Like kubectl since 1.31,
``blockOwnerDeletion`` is not set: with the OwnerReferencesPermissionEnforcement admission plugin
(OpenShift) it needs ``update`` on ``cronjobs/finalizers``, and it only matters to a foreground
deletion of the CronJob. alert-router also records the run in the annotation
``alert-router.io/run-id``. The Job name is deterministic per run (``<cronjob>-ar-<run id>``, at most
63 characters, or ``job_name``), so a retried create that meets ``AlreadyExists`` recognises its own
Job instead of creating a second one. With ``wait: true`` the step waits for the Job to finish.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

from alert_router.errors import FailureReason
from alert_router.remediation.actions.base import ActionParams, ActionType, StepContext, StepFailed, StepResult
from alert_router.remediation.kube import KubeError
from alert_router.remediation.templating import TemplateProblem, name_problem, render

INSTANTIATE = "cronjob.kubernetes.io/instantiate"
RUN_ANNOTATION = "alert-router.io/run-id"


class Params(ActionParams):
    """An optional ``job_name`` template; ``wait`` for completion."""

    TEMPLATED = ("job_name",)

    action: Literal["create_job_from_cronjob"]
    job_name: str = ""
    wait: bool = False


def default_job_name(cronjob: str, run_id: int) -> str:
    """``<cronjob>-ar-<run id>``, the CronJob name shortened so the whole stays within 63 characters."""
    suffix = f"-ar-{run_id}"
    return cronjob[: 63 - len(suffix)].rstrip("-.") + suffix


def job_from_cronjob(cronjob: dict[str, Any], name: str, run_id: int) -> dict[str, Any]:
    """The Job kubectl would build from ``cronjob``, plus the run annotation."""
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    tmeta = template.get("metadata") or {}
    annotations = {INSTANTIATE: "manual", **(tmeta.get("annotations") or {}), RUN_ANNOTATION: str(run_id)}
    meta = cronjob.get("metadata") or {}
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "annotations": annotations,
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "CronJob", "name": meta.get("name"), "uid": meta.get("uid"),
                 "controller": True}
            ],
        },
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    if tmeta.get("labels"):
        job["metadata"]["labels"] = dict(tmeta["labels"])
    return job


def _finished(job: dict[str, Any]) -> tuple[str, str] | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return str(cond["type"]), str(cond.get("message") or cond.get("reason") or "")
    return None


async def run(ctx: StepContext, params: Params) -> StepResult:
    """Read the CronJob, create the Job (recognising our own on AlreadyExists), optionally wait."""
    t = ctx.require_target("CronJob")
    try:
        name = render(params.job_name, ctx.variables) if params.job_name else default_job_name(t.name, ctx.run_id)
    except TemplateProblem as exc:
        raise StepFailed(FailureReason.TEMPLATE, str(exc)) from None
    problem = name_problem(name, 63)
    if problem:
        raise StepFailed(FailureReason.INVALID, f"job name: {problem}")
    try:
        cronjob = await ctx.kube.read_cronjob(t.namespace, t.name)
    except KubeError as exc:
        raise StepFailed.from_kube(exc, f"reading {t.key}") from None
    where = f"Job/{t.namespace}/{name}"
    if cronjob is None:  # dry run without a cluster
        placeholder = {"metadata": {"name": t.name, "uid": "<uid of the CronJob>"},
                       "spec": {"jobTemplate": {"spec": "<copied from the CronJob>"}}}
        await ctx.kube.create_job(t.namespace, job_from_cronjob(placeholder, name, ctx.run_id))
        return StepResult(f"would create {where} from {t.key}", {"job": name})
    body = job_from_cronjob(cronjob, name, ctx.run_id)
    try:
        created = await ctx.kube.create_job(t.namespace, body)
    except KubeError as exc:
        if exc.status == 409 and exc.k8s_reason == "AlreadyExists":
            try:
                existing = await ctx.kube.read_job(t.namespace, name)
            except KubeError as exc2:
                raise StepFailed.from_kube(exc2, f"reading {where}") from None
            run_of = ((existing or {}).get("metadata") or {}).get("annotations", {}).get(RUN_ANNOTATION)
            if run_of != str(ctx.run_id):
                raise StepFailed(
                    FailureReason.REJECTED, f"{where} already exists and was not created by this run"
                ) from None
            created = existing
        else:
            raise StepFailed.from_kube(exc, f"creating {where} from {t.key}") from None
    if created is None:
        return StepResult(f"would create {where} from {t.key}", {"job": name})
    if not params.wait:
        return StepResult(f"created {where} from {t.key}", {"job": name, "uid": created["metadata"].get("uid")})
    while True:
        try:
            job = await ctx.kube.read_job(t.namespace, name)
        except KubeError as exc:
            raise StepFailed.from_kube(exc, f"reading {where}") from None
        done = _finished(job or {})
        if done is not None:
            kind, message = done
            if kind == "Failed":
                raise StepFailed(FailureReason.REJECTED, f"{where} failed: {message}", {"job": name})
            return StepResult(f"{where} created from {t.key} and completed", {"job": name})
        if ctx.remaining() <= 0:
            raise StepFailed(FailureReason.TIMEOUT, f"{where} did not finish in time", {"job": name})
        await ctx.sleep()


ACTION = ActionType(
    "create_job_from_cronjob",
    Params,
    run,
    "start a Job from a CronJob like `kubectl create job --from=cronjob/NAME` (e.g. retraining)",
    target_kinds=frozenset({"CronJob"}),
    mutating=True,
)
