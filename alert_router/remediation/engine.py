"""The runbook engine: match, guard, ask for approval, run the steps, record everything, report back.

For each ``runbook`` trigger (one changed alert whose routing rule names the runbook):

1. **match** — the runbook's own ``match`` and ``when``; not applicable → one audit record, no run.
2. **target** — rendered from the alert's labels, validated as Kubernetes names, and checked against
   ``guards.allowed_namespaces``; refused → a ``skipped`` run.
   **evidence** — for a Deployment, StatefulSet or Pod target and a runbook that changes something
   (or whose ``when`` reads ``evidence``): one bounded round of reads (see
   :mod:`~alert_router.remediation.evidence`), kept in the run, audited, posted with every report
   of the run, and gathered again right before the steps of a run that waited for approval. A
   failure never stops the run unless ``evidence.required``. A ``when`` that reads ``evidence`` is
   evaluated after it.
3. **admission** (atomic in the store) — the target lock (one active run per target), the cooldown
   and ``max_runs`` per runbook and target, counted in the store so they survive restarts.
4. **approval** — with ``require_approval`` the run waits as ``pending_approval`` until an authorized
   user calls :meth:`RemediationEngine.approve` / :meth:`~RemediationEngine.deny` (chat buttons, the
   API), or until ``approval_timeout`` expires it.
5. **steps** — one after the other, each with a timeout; the step in progress is stored before it
   starts, so a crash leaves a run that is marked ``interrupted`` on restart and never resumed (a
   non-idempotent step is never silently repeated). ``on_failure`` steps run after a failure.
6. **outcome** — final status, lock released, audit record and a ``notify`` item per receiver that
   got the alert, with ``extra["runbook_runs"]``, all in one transaction.

Every decision is one audit record (see :mod:`alert_router.audit`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from alert_router.audit import AuditEntry
from alert_router.config import Config
from alert_router.errors import AlertRouterError, StoreUnavailable
from alert_router.pipeline.route import route_labels
from alert_router.redact import Redactor
from alert_router.remediation.actions import REGISTRY, ActionParams, StepContext, StepFailed, StepResult, Target
from alert_router.remediation.actions.base import run_step
from alert_router.remediation.evidence import gather_with
from alert_router.remediation.failure import failure_report
from alert_router.remediation.kube import KubeClient, KubeSession
from alert_router.remediation.plan import triggers
from alert_router.remediation.runbook import Runbook
from alert_router.remediation.runs import (
    Admission,
    NewRun,
    Refusal,
    RunChange,
    RunEffects,
    RunRecord,
    RunStatus,
)
from alert_router.remediation.templating import (
    TemplateProblem,
    evaluate,
    name_problem,
    namespace_problem,
    render,
)
from alert_router.store.base import NewOutboxItem, OutboxItem, Store

log = structlog.get_logger("alert_router.remediation")

RUNNING = RunStatus.RUNNING.value
PENDING = RunStatus.PENDING_APPROVAL.value


class RemediationError(AlertRouterError):
    """Base of the errors :meth:`RemediationEngine.approve` and friends raise."""


class RunNotFound(RemediationError):
    """No run has this id."""


class RunNotPending(RemediationError):
    """The run is not waiting for a decision (already decided, expired, or never needed one)."""

    def __init__(self, run: RunRecord) -> None:
        super().__init__(f"run #{run.id} is {run.status}, not pending approval")
        self.run = run


class NotAuthorized(RemediationError):
    """The user may not approve or deny this run."""


class ApprovalExpired(RemediationError):
    """The approval window of the run has passed."""


@dataclass(frozen=True, slots=True)
class Check:
    """What the checks before the store decided about one trigger.

    ``not_applicable`` (a reason): the runbook's ``match`` or ``when`` does not accept the alert;
    ``refusal``: a guard that needs no history refused it (target, allowed namespaces); neither: the
    store decides (lock, cooldown, ``max_runs``) on ``target``.
    """

    runbook: Runbook
    target: Target | None = None
    not_applicable: str | None = None
    refusal: Refusal | None = None

    def same_decision(self) -> tuple[Any, ...] | None:
        """Triggers with equal keys in one batch get the same decision (``None``: decided one by one)."""
        if self.not_applicable is not None:
            return ("not_applicable", self.runbook.name, self.not_applicable)
        if self.target is None:
            return None  # a run per alert: nothing in common with another trigger
        if self.refusal is not None:
            return ("refused", self.runbook.name, self.target.key, self.refusal.guard, self.refusal.reason)
        return ("admission", self.runbook.name, self.target.key)


class RemediationMetrics:
    """Metrics of the engine, registered on the application's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "alert_router_runbook_runs_total", "Runbook runs by runbook and status.", ["runbook", "status"],
            registry=registry,
        )
        self.steps = Counter(
            "alert_router_runbook_steps_total", "Runbook steps by action and outcome.", ["action", "outcome"],
            registry=registry,
        )
        self.kube_requests = Counter(
            "alert_router_kube_requests_total", "Kubernetes API requests by verb, resource and outcome.",
            ["verb", "resource", "outcome"], registry=registry,
        )
        self.active = Gauge("alert_router_runbook_runs_active", "Runs executing in this process.", registry=registry)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def alert_variables(runbook: str, alert: Mapping[str, Any]) -> dict[str, Any]:
    """Template variables available in ``when:`` and ``target:``."""
    labels = dict(alert.get("labels") or {})
    return {
        "labels": labels,
        "annotations": dict(alert.get("annotations") or {}),
        "alert": {
            "name": labels.get("alertname", ""),
            "status": alert.get("status", ""),
            "fingerprint": alert.get("fingerprint", ""),
            "starts_at": alert.get("startsAt", ""),
            "generator_url": alert.get("generatorURL", ""),
        },
        "runbook": runbook,
    }


def run_entry(run: RunRecord, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One element of ``extra["runbook_runs"]`` in the notifications about a run.

    ``data`` is the run's data when it is newer than ``run.data`` (a run in progress); a failed step's
    report (:func:`~alert_router.remediation.failure.failure_report`) is carried as ``failure``.
    """
    source = data if data is not None else run.data
    entry: dict[str, Any] = {
        "run_id": run.id,
        "runbook": run.runbook,
        "status": run.status,
        "summary": run.summary,
        "dry_run": run.dry_run,
        "target": run.target,
    }
    if run.status == PENDING and run.approval_expires_at:
        entry["approval_expires_at"] = _iso(run.approval_expires_at)
    evidence = source.get("evidence")
    if isinstance(evidence, dict):
        entry["evidence"] = evidence
    failure = source.get("failure")
    if isinstance(failure, dict) and run.status in (RunStatus.FAILED.value, RUNNING):
        entry["failure"] = failure
    return entry


def _shorten(text: str, limit: int = 600) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class RemediationEngine:
    """Runs runbooks for one process; see the module docstring.

    Public API for other stages (chat commands, the HTTP API):
    :meth:`approve`, :meth:`deny`, :meth:`start` (a manual run), :meth:`runs`, :meth:`run`.
    """

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        owner: str,
        registry: CollectorRegistry | None = None,
        kube: KubeClient | None = None,
        wake_delivery: asyncio.Event | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.settings = config.settings.remediation
        self.owner = owner
        self.metrics = RemediationMetrics(registry or CollectorRegistry())
        self.kube = kube or KubeClient(
            config.settings.kubernetes,
            self.settings.retry,
            base_dir=config.base_dir,
            on_request=lambda verb, res, outcome: self.metrics.kube_requests.labels(verb, res, outcome).inc(),
        )
        self.wake_delivery = wake_delivery
        redact = config.settings.enrich.redact
        self.redactor = Redactor(redact.patterns, defaults=redact.defaults)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._lease_lost: set[int] = set()
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._sem = asyncio.Semaphore(self.settings.max_concurrent_runs)

    # -- triggers ---------------------------------------------------------------------------------

    async def handle_items(self, items: Sequence[OutboxItem]) -> None:
        """Process a batch of claimed ``runbook`` items (each holds the triggers of one webhook body) and finish them.

        Triggers that the checks send the same way (one runbook, and the same target to admit, the same
        refusal of a guard, or the same reason not to apply) share one decision. The first is handled on
        its own: a run, or a skipped run, with its audit records and reports. The others are recorded
        together, in one audit record (``skipped`` or ``not_applicable``) that says how many triggers,
        which alerts (``fingerprints``) and why (the guard and reason; for triggers behind an admitted
        run, the ``lock`` it holds), committed with the batch's outbox items in one transaction; they get
        no run and no report of their own. So a storm of alerts for one target costs one run and one
        record per batch, however many alerts it brings.
        """
        done: list[OutboxItem] = []
        unknown: list[OutboxItem] = []
        alone: list[tuple[str, dict[str, Any], Runbook]] = []
        groups: dict[tuple[Any, ...], list[tuple[str, dict[str, Any], Check]]] = {}
        for item in items:
            runbook = self.config.runbooks.get(item.dest)
            if runbook is None:
                log.error("runbook no longer configured; trigger dropped", runbook=item.dest, outbox_id=item.id)
                unknown.append(item)
                continue
            done.append(item)
            for key, payload in triggers(item):
                alert = payload.get("alert") or {}
                if alert.get("status") == "resolved":
                    self.alert_resolved(str(alert.get("fingerprint", "")))
                    continue
                checked = self.check(runbook, payload)
                same = checked.same_decision()
                if same is None:
                    alone.append((key, payload, runbook))
                else:
                    groups.setdefault(same, []).append((key, payload, checked))
        for key, payload, runbook in alone:
            await self.trigger(runbook, payload, requested_by="alert", trigger=key)
        audit: list[AuditEntry] = []
        for members in groups.values():
            (key, payload, checked), rest = members[0], members[1:]
            record = await self.trigger(checked.runbook, payload, requested_by="alert", trigger=key)
            if not rest:
                continue
            entry = self._shared_record(checked, record, key, payload, [p for _, p, _ in rest])
            if entry is None:  # the first one's outcome says nothing about the others
                for k, p, c in rest:
                    await self.trigger(c.runbook, p, requested_by="alert", trigger=k)
                continue
            audit.append(entry)
            self.metrics.runs.labels(checked.runbook.name, entry.event).inc(len(rest))
            log.info("runbook triggers decided together", runbook=checked.runbook.name, triggers=len(rest),
                     record=entry.event, reason=entry.data.get("reason"))
        if unknown:
            await self.store.finish_outbox_many(unknown, self.owner, ok=False, now=time.time(),
                                                error="runbook not configured")
        if done or audit:
            await self.store.finish_outbox_many(done, self.owner, ok=True, now=time.time(), audit=audit)

    @staticmethod
    def _shared_record(
        checked: Check, first: RunRecord | None, first_key: str, first_payload: Mapping[str, Any],
        rest: Sequence[Mapping[str, Any]],
    ) -> AuditEntry | None:
        """The one audit record for the triggers that share ``first``'s decision, or ``None`` if they do not."""
        alerts = [p.get("alert") or {} for p in rest]
        data: dict[str, Any] = {
            "count": len(rest),
            "fingerprints": [str(a.get("fingerprint", "")) for a in alerts],
            "alertnames": sorted({str((a.get("labels") or {}).get("alertname", "")) for a in alerts}),
            "rule": first_payload.get("rule"),
            "decided_with": first_key,
        }
        name = checked.runbook.name
        target = checked.target.key if checked.target else None
        if checked.not_applicable is not None:
            return AuditEntry("not_applicable", {**data, "reason": checked.not_applicable}, runbook=name)
        if first is None and checked.refusal is None and checked.runbook.when_uses_evidence:
            # The first trigger's `when` read the target's evidence and was false: the same target, moments later.
            reason = f"when: {checked.runbook.when} is false (with the evidence gathered for {first_key})"
            return AuditEntry("not_applicable", {**data, "reason": reason}, runbook=name, target=target)
        refusal = checked.refusal
        if refusal is None and first is not None:
            if first.status in (RUNNING, PENDING):
                refusal = Refusal("lock", f"run #{first.id} on the same target is still {first.status}",
                                  {"run_id": first.id})
            elif first.status == RunStatus.SKIPPED.value and isinstance(first.data.get("refusal"), dict):
                stored = dict(first.data["refusal"])
                refusal = Refusal(str(stored.pop("guard", "")), str(stored.pop("reason", "")), stored)
        if refusal is None:
            return None
        return AuditEntry("skipped", {**data, "guard": refusal.guard, "reason": refusal.reason, **refusal.details},
                          runbook=name, target=target)

    def alert_resolved(self, fingerprint: str) -> None:
        """Wake the ``wait_resolved`` steps of this process that wait for ``fingerprint``."""
        for event in self._watchers.get(fingerprint, ()):
            event.set()

    async def start(
        self, runbook_name: str, labels: Mapping[str, str], user: str, annotations: Mapping[str, str] | None = None
    ) -> RunRecord:
        """Start a run by hand (e.g. a chat command) for an alert-like label set.

        The runbook's ``match`` and ``when`` are not applied (a person chose it); every guard is, and
        so is ``require_approval``. Outcomes go to the receivers that labels would route to.
        """
        runbook = self.config.runbooks.get(runbook_name)
        if runbook is None:
            raise RemediationError(f"unknown runbook {runbook_name!r}")
        now = time.time()
        digest = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
        alert = {
            "status": "firing",
            "labels": dict(labels),
            "annotations": dict(annotations or {}),
            "startsAt": _iso(now),
            "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "",
            "fingerprint": f"manual-{digest}",
        }
        route = route_labels(labels, self.config.rules, self.config.default)
        payload = {
            "alert": alert,
            "status": "firing",
            "rule": "manual",
            "receivers": [[r, rule] for r, rule in route.receivers],
            "group_key": f"manual:{runbook_name}:{digest}",
            "group_labels": {},
            "common_labels": dict(labels),
            "common_annotations": dict(annotations or {}),
            "external_url": "",
            "received_at": _iso(now),
        }
        record = await self.trigger(runbook, payload, requested_by=user, trigger=None, manual=True)
        assert record is not None
        return record

    def check(self, runbook: Runbook, payload: Mapping[str, Any], *, manual: bool = False) -> Check:
        """What the checks before the store decide about one trigger (pure: match, when, target, namespaces)."""
        alert = dict(payload.get("alert") or {})
        labels = dict(alert.get("labels") or {})
        variables = alert_variables(runbook.name, alert)
        if not manual:
            if not runbook.matches(labels):
                return Check(runbook, not_applicable="the runbook's match does not accept the alert's labels")
            if runbook.when and not runbook.when_uses_evidence:  # the rest is decided after the evidence
                try:
                    if not evaluate(runbook.when, variables):
                        return Check(runbook, not_applicable=f"when: {runbook.when} is false")
                except TemplateProblem as exc:
                    return Check(runbook, refusal=Refusal("when", f"cannot evaluate when: {exc}"))
        if runbook.target is None:
            return Check(runbook)
        spec = runbook.target
        try:
            namespace = render(spec.namespace, variables).strip()
            name = render(spec.name, variables).strip()
        except TemplateProblem as exc:
            return Check(runbook, refusal=Refusal("target", f"cannot render the target: {exc}"))
        target = Target(spec.kind, namespace, name)
        why = namespace_problem(namespace) or name_problem(name)
        if why:
            return Check(runbook, target, refusal=Refusal("target", f"invalid target: {why}"))
        allowed = runbook.guards.allowed_namespaces
        if namespace not in allowed:
            return Check(runbook, target, refusal=Refusal(
                "allowed_namespaces", f"namespace {namespace!r} is not in {sorted(allowed)}",
                {"namespace": namespace, "allowed": sorted(allowed)},
            ))
        return Check(runbook, target)

    async def trigger(
        self,
        runbook: Runbook,
        payload: Mapping[str, Any],
        *,
        requested_by: str,
        trigger: str | None,
        manual: bool = False,
    ) -> RunRecord | None:
        """Match, guard and create a run for one alert; start it unless it waits for approval."""
        alert = dict(payload.get("alert") or {})
        labels = dict(alert.get("labels") or {})
        fingerprint = str(alert.get("fingerprint", ""))
        base = {"fingerprint": fingerprint, "alertname": labels.get("alertname", ""), "rule": payload.get("rule")}
        checked = self.check(runbook, payload, manual=manual)
        if checked.not_applicable is not None:
            await self._not_applicable(runbook, base, checked.not_applicable)
            return None
        target = checked.target
        if checked.refusal is not None:
            return await self._refuse(runbook, payload, requested_by, trigger, target, checked.refusal)
        evidence: dict[str, Any] | None = None
        if target is not None and runbook.wants_evidence:
            evidence = await self.gather_evidence(runbook, target)
            if runbook.evidence.required and evidence.get("status") != "ok":
                return await self._refuse(
                    runbook, payload, requested_by, trigger, target,
                    Refusal("evidence", f"evidence is required and could not be gathered: {evidence.get('reason')}"),
                    evidence,
                )
        if not manual and runbook.when and runbook.when_uses_evidence:
            variables = {**alert_variables(runbook.name, alert), "evidence": evidence or {}}
            try:
                applies = evaluate(runbook.when, variables)
            except TemplateProblem as exc:
                return await self._refuse(runbook, payload, requested_by, trigger, target,
                                          Refusal("when", f"cannot evaluate when: {exc}"), evidence)
            if not applies:
                await self._not_applicable(runbook, base, f"when: {runbook.when} is false", evidence)
                return None
        now = time.time()
        guards = runbook.guards
        dry_run = self.config.settings.dry_run or guards.dry_run
        expires = None
        status = RUNNING
        lease_until = now + self.settings.lease
        if guards.require_approval:
            status = PENDING
            expires = now + (guards.approval_timeout or self.settings.approval_timeout)
            lease_until = expires + self.settings.lease
        new = NewRun(
            runbook=runbook.name,
            target=target.key if target else f"runbook/{runbook.name}/{fingerprint}",
            fingerprint=fingerprint,
            group_key=str(payload.get("group_key", "")),
            status=status,
            dry_run=dry_run,
            requested_by=requested_by,
            trigger=trigger,
            data=self._run_data(payload, target, evidence),
            approval_expires_at=expires,
        )
        admission = Admission(guards.cooldown, guards.max_runs.count, guards.max_runs.window, self.owner, lease_until)
        alert_now = await self._current_alert(alert)

        def effects(record: RunRecord, refusal: Refusal | None) -> RunEffects:
            audit: list[AuditEntry]
            if refusal is not None:
                audit = [self._entry(record, "skipped", {**base, "guard": refusal.guard, "reason": refusal.reason,
                                                         **refusal.details}, requested_by)]
            else:
                audit = [self._entry(record, "matched", {**base, "dry_run": record.dry_run,
                                                         "require_approval": guards.require_approval}, requested_by)]
                if evidence is not None:
                    audit.append(self._entry(record, "evidence", evidence))
                if record.status == PENDING:
                    audit.append(self._entry(record, "approval_requested", {
                        "expires_at": _iso(record.approval_expires_at or now),
                        "approvers": list(guards.approvers or self.settings.approvers),
                    }))
            follow = self._notifications(record, alert_now) if record.status != RUNNING else []
            return RunEffects(audit, follow)

        record, created = await self.store.begin_run(new, admission, now, effects)
        if not created:
            log.info("trigger already handled", runbook=runbook.name, run_id=record.id, status=record.status)
            return record
        self.metrics.runs.labels(runbook.name, record.status).inc()
        log.info("runbook run created", runbook=runbook.name, run_id=record.id, status=record.status,
                 target=record.target, dry_run=record.dry_run, summary=record.summary)
        if record.status != RUNNING:
            self._wake()
        if record.status == RUNNING:
            self._launch(record, runbook)
        return record

    async def _refuse(
        self,
        runbook: Runbook,
        payload: Mapping[str, Any],
        requested_by: str,
        trigger: str | None,
        target: Target | None,
        refusal: Refusal,
        evidence: dict[str, Any] | None = None,
    ) -> RunRecord:
        alert = dict(payload.get("alert") or {})
        fingerprint = str(alert.get("fingerprint", ""))
        new = NewRun(
            runbook=runbook.name,
            target=target.key if target else f"{runbook.target.kind if runbook.target else 'runbook'}/?/?",
            fingerprint=fingerprint,
            group_key=str(payload.get("group_key", "")),
            status=RUNNING,
            dry_run=self.config.settings.dry_run or runbook.guards.dry_run,
            requested_by=requested_by,
            trigger=trigger,
            data=self._run_data(payload, target, evidence),
        )
        alert_now = await self._current_alert(alert)
        labels = alert.get("labels") or {}

        def effects(record: RunRecord, _: Refusal | None) -> RunEffects:
            entry = self._entry(record, "skipped", {
                "fingerprint": fingerprint, "alertname": labels.get("alertname", ""), "guard": refusal.guard,
                "reason": refusal.reason, **refusal.details,
            }, requested_by)
            audit = [entry] + ([self._entry(record, "evidence", evidence)] if evidence is not None else [])
            return RunEffects(audit, self._notifications(record, alert_now))

        admission = Admission(0, 0, 0, self.owner, 0, refusal=refusal)
        record, created = await self.store.begin_run(new, admission, time.time(), effects)
        if created:
            self.metrics.runs.labels(runbook.name, record.status).inc()
            log.warning("runbook run refused", runbook=runbook.name, run_id=record.id, guard=refusal.guard,
                        reason=refusal.reason)
            self._wake()
        return record

    async def _not_applicable(
        self, runbook: Runbook, base: dict[str, Any], reason: str, evidence: dict[str, Any] | None = None
    ) -> None:
        details = {**base, "reason": reason}
        if evidence is not None:
            details["evidence"] = evidence.get("summary")
        await self.store.append_audit([AuditEntry("not_applicable", details, runbook=runbook.name)], time.time())
        log.info("runbook not applicable", runbook=runbook.name, fingerprint=base.get("fingerprint"), reason=reason)

    def _session(self, *, dry_run: bool, deadline: float) -> KubeSession:
        return KubeSession(self.kube, dry_run=dry_run, deadline=deadline,
                           server_dry_run=self.config.settings.kubernetes.server_dry_run)

    async def gather_evidence(self, runbook: Runbook, target: Target) -> dict[str, Any]:
        """The evidence about ``target`` under ``runbook.evidence``, bounded by its timeout; never raises.

        Evidence only reads, in dry runs too; without a cluster it says why it is unavailable.
        """
        evidence = await gather_with(self.kube, target, runbook.evidence, self.redactor)
        log.info("evidence gathered", runbook=runbook.name, target=target.key, status=evidence.get("status"),
                 summary=evidence.get("summary"), duration=evidence.get("duration"))
        return evidence

    # -- approvals --------------------------------------------------------------------------------

    def _check_approver(self, run: RunRecord, user: str) -> Runbook | None:
        runbook = self.config.runbooks.get(run.runbook)
        approvers = (runbook.guards.approvers if runbook else []) or self.settings.approvers
        if approvers and user not in approvers:
            raise NotAuthorized(f"{user} may not decide on runbook {run.runbook!r} (approvers: {', '.join(approvers)})")
        return runbook

    async def _pending(self, run_id: int, user: str, decision: str) -> tuple[RunRecord, Runbook | None]:
        run = await self.store.run(run_id)
        if run is None:
            raise RunNotFound(f"no run #{run_id}")
        if run.status != PENDING:
            raise RunNotPending(run)
        try:
            runbook = self._check_approver(run, user)
        except NotAuthorized as exc:
            await self.store.append_audit(
                [self._entry(run, "approval_refused", {"decision": decision, "reason": str(exc)}, user)], time.time()
            )
            raise
        if run.approval_expires_at is not None and run.approval_expires_at <= time.time():
            await self._expire(run)
            raise ApprovalExpired(f"run #{run.id}: the approval window closed at {_iso(run.approval_expires_at)}")
        return run, runbook

    async def approve(self, run_id: int, user: str) -> RunRecord:
        """Approve a pending run as ``user`` and start it.

        Raises :class:`RunNotFound`, :class:`RunNotPending`, :class:`NotAuthorized` (the user is not
        among the runbook's ``approvers``, or ``remediation.approvers``) or :class:`ApprovalExpired`.
        """
        run, runbook = await self._pending(run_id, user, "approve")
        if runbook is None:
            await self._finish(run, RunStatus.FAILED.value, "runbook no longer configured", [PENDING])
            raise RemediationError(f"runbook {run.runbook!r} is no longer configured")
        now = time.time()
        updated = await self.store.update_run(
            run.id,
            expect=[PENDING],
            change=RunChange(status=RUNNING, decided_by=user, owner=self.owner, lease_until=now + self.settings.lease,
                             started=True, take_lock=True, summary=f"approved by {user}; running"),
            now=now,
            effects=RunEffects([self._entry(run, "approval_granted", {}, user)]),
        )
        if updated is None:
            current = await self.store.run(run.id)
            raise RunNotPending(current or run)
        self.metrics.runs.labels(run.runbook, "approved").inc()
        log.info("run approved", run_id=run.id, runbook=run.runbook, user=user)
        self._launch(updated, runbook)
        return updated

    async def deny(self, run_id: int, user: str, reason: str = "") -> RunRecord:
        """Deny a pending run as ``user`` (same errors as :meth:`approve`)."""
        run, _ = await self._pending(run_id, user, "deny")
        summary = f"denied by {user}" + (f": {reason}" if reason else "")
        updated = await self._finish(
            run, RunStatus.DENIED.value, summary, [PENDING], decided_by=user,
            audit=[self._entry(run, "approval_denied", {"reason": reason}, user)],
        )
        if updated is None:
            current = await self.store.run(run.id)
            raise RunNotPending(current or run)
        log.info("run denied", run_id=run.id, runbook=run.runbook, user=user)
        return updated

    async def _expire(self, run: RunRecord) -> RunRecord | None:
        when = _iso(run.approval_expires_at or time.time())
        return await self._finish(
            run, RunStatus.EXPIRED.value, f"no decision before {when}; nothing was done", [PENDING],
            audit=[self._entry(run, "approval_expired", {"expired_at": when})],
        )

    async def expire_approvals(self) -> int:
        """Expire pending runs whose approval window has passed; return how many."""
        now = time.time()
        n = 0
        for run in await self.store.runs(status=PENDING, limit=1000):
            if run.approval_expires_at is not None and run.approval_expires_at <= now and await self._expire(run):
                n += 1
                log.warning("approval expired", run_id=run.id, runbook=run.runbook)
        return n

    # -- recovery ---------------------------------------------------------------------------------

    async def recover(self) -> int:
        """Mark runs whose process died as ``interrupted`` and report them; return how many."""
        n = 0
        for run in await self.store.orphaned_runs(self.owner, time.time()):
            summary = self._interruption(run, "the process running it stopped")
            done = await self._finish(
                run, RunStatus.INTERRUPTED.value, summary, [RUNNING], expect_owner=run.owner,
                audit=[self._entry(run, "interrupted", {"summary": summary, "previous_owner": run.owner})],
            )
            if done is not None:
                n += 1
                log.error("runbook run interrupted by a crash; not resumed", run_id=run.id, runbook=run.runbook,
                          summary=summary)
        return n

    @staticmethod
    def _interruption(run: RunRecord, why: str) -> str:
        steps = run.data.get("steps") or []
        current = next((s for s in steps if s.get("status") == "started"), None)
        if current is None:
            done = [s for s in steps if s.get("status") == "ok"]
            where = f"after {len(done)} completed step(s)" if done else "before its first step"
            return f"interrupted {where} ({why}); not resumed"
        title = f"step {current['index'] + 1} ({current['action']})"
        if current.get("mutating"):
            return (f"interrupted during {title} ({why}): it may or may not have been applied; "
                    "it is not repeated automatically — check the target and re-run by hand if needed")
        return f"interrupted during {title} ({why}); not resumed"

    # -- execution --------------------------------------------------------------------------------

    def _launch(self, run: RunRecord, runbook: Runbook) -> None:
        task = asyncio.create_task(self._execute(run, runbook), name=f"runbook-run-{run.id}")
        self._tasks[run.id] = task
        run_id = run.id

        def forget(_: asyncio.Task[None]) -> None:
            self._tasks.pop(run_id, None)

        task.add_done_callback(forget)

    async def _heartbeat(self, run_id: int, main: asyncio.Task[Any]) -> None:
        interval = max(0.05, self.settings.lease / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                ok = await self.store.renew_run(run_id, self.owner, time.time() + self.settings.lease)
            except StoreUnavailable as exc:
                log.warning("cannot renew the run's lease", run_id=run_id, error=str(exc))
                continue
            if not ok:
                current = await self.store.run(run_id)
                if current is not None and current.status not in (RUNNING, RunStatus.INTERRUPTED.value):
                    return  # the run just finished: nothing was lost
                log.error("lost the run's lease; stopping it", run_id=run_id)
                self._lease_lost.add(run_id)
                main.cancel()
                return

    async def _execute(self, run: RunRecord, runbook: Runbook) -> None:
        me = asyncio.current_task()
        assert me is not None
        heartbeat = asyncio.create_task(self._heartbeat(run.id, me))
        self.metrics.active.inc()
        try:
            async with self._sem:
                await self._run_steps(run, runbook)
        except asyncio.CancelledError:
            if run.id not in self._lease_lost:
                latest = await self.store.run(run.id)
                summary = self._interruption(latest or run, "alert-router was stopped")
                with contextlib.suppress(StoreUnavailable):
                    await self._finish(
                        latest or run, RunStatus.INTERRUPTED.value, summary, [RUNNING], expect_owner=self.owner,
                        audit=[self._entry(run, "interrupted", {"summary": summary})],
                    )
            raise
        except Exception:
            log.exception("unexpected error in a runbook run", run_id=run.id, runbook=run.runbook)
            with contextlib.suppress(StoreUnavailable):
                await self._finish(run, RunStatus.FAILED.value, "internal error; see the logs", [RUNNING],
                                   expect_owner=self.owner, audit=[self._entry(run, "finished", {
                                       "status": "failed", "summary": "internal error"})])
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            self.metrics.active.dec()
            self._lease_lost.discard(run.id)

    async def _run_steps(self, run: RunRecord, runbook: Runbook) -> None:
        data = dict(run.data)
        data["steps"] = list(data.get("steps") or [])
        target = Target(**data["target"]) if data.get("target") else None
        alert = dict(data.get("alert") or {})
        fingerprint = str(alert.get("fingerprint", ""))
        if target is not None and run.decided_by and runbook.wants_evidence:
            # the run waited for a person: what it acts on may have changed since the trigger
            data["evidence"] = await self.gather_evidence(runbook, target)
            refreshed = await self.store.update_run(
                run.id, expect=[RUNNING], expect_owner=self.owner, now=time.time(), change=RunChange(data=data),
                effects=RunEffects([self._entry(run, "evidence", data["evidence"])]),
            )
            if refreshed is None:
                log.error("run changed under us; stopping", run_id=run.id)
                return
        event = asyncio.Event()
        self._watchers.setdefault(fingerprint, set()).add(event)
        variables = {
            **alert_variables(runbook.name, alert),
            "target": target.as_dict() if target else {},
            "run": {"id": run.id, "dry_run": run.dry_run},
            "evidence": data.get("evidence") or {},
        }
        failure: tuple[int, ActionParams, StepFailed] | None = None
        summaries: list[str] = []
        try:
            for section, steps in (("steps", runbook.steps), ("on_failure", runbook.on_failure)):
                if section == "on_failure" and failure is None:
                    break
                for i, step in enumerate(steps):
                    index = len(data["steps"])
                    outcome = await self._one_step(run, runbook, section, i, index, step, target, alert, variables,
                                                   event, data)
                    if outcome is None:
                        return  # the run is no longer ours
                    if isinstance(outcome, StepFailed):
                        if section == "steps":
                            failure = (i, step, outcome)
                            data["failure"] = failure_report(
                                number=i + 1, of=len(runbook.steps), title=step.title, action=step.action,
                                error=str(outcome), reason=outcome.reason.value, done=summaries, target=target,
                            )
                            variables["failure"] = data["failure"]
                            break
                        continue
                    if section == "steps":
                        summaries.append(outcome.summary)
        finally:
            watchers = self._watchers.get(fingerprint)
            if watchers is not None:
                watchers.discard(event)
                if not watchers:
                    self._watchers.pop(fingerprint, None)
        if failure is not None:
            i, step, exc = failure
            status = RunStatus.FAILED.value
            summary = f"step {i + 1} ({step.title}) failed: {exc}"
        else:
            status = RunStatus.DRY_RUN.value if run.dry_run else RunStatus.SUCCEEDED.value
            summary = ("dry run: " if run.dry_run else "") + "; ".join(summaries)
        summary = _shorten(summary)
        latest = await self.store.run(run.id) or run
        await self._finish(
            latest, status, summary, [RUNNING], expect_owner=self.owner, data=data,
            audit=[self._entry(run, "finished", {"status": status, "summary": summary, "steps": len(data["steps"])})],
        )
        log.info("runbook run finished", run_id=run.id, runbook=run.runbook, status=status, summary=summary)

    async def _one_step(
        self,
        run: RunRecord,
        runbook: Runbook,
        section: str,
        i: int,
        index: int,
        step: ActionParams,
        target: Target | None,
        alert: dict[str, Any],
        variables: dict[str, Any],
        event: asyncio.Event,
        data: dict[str, Any],
    ) -> StepResult | StepFailed | None:
        action = REGISTRY[step.action]
        timeout = step.timeout or runbook.guards.step_timeout or self.settings.step_timeout
        record: dict[str, Any] = {
            "index": index, "section": section, "position": i, "action": step.action, "name": step.name,
            "status": "started", "mutating": action.mutating and not run.dry_run, "started_at": time.time(),
        }
        data["steps"].append(record)
        started = await self.store.update_run(
            run.id, expect=[RUNNING], expect_owner=self.owner, now=time.time(),
            change=RunChange(step=index, data=data),
        )
        if started is None:
            log.error("run changed under us; stopping", run_id=run.id)
            return None
        session = self._session(dry_run=run.dry_run, deadline=time.monotonic() + timeout)

        failure = data.get("failure")
        # an on_failure step reports a run that has failed, not one still "running"
        reported = run if not isinstance(failure, dict) else dataclasses.replace(
            run, status=RunStatus.FAILED.value, summary=_shorten(f"step {failure['step']} failed: {failure['error']}"))

        def notification(receiver: str, extra: dict[str, Any]) -> NewOutboxItem:
            return self._notification_item(reported, data, receiver, extra)

        ctx = StepContext(
            run_id=run.id, runbook=runbook.name, index=index, target=target, alert=alert, dry_run=run.dry_run,
            kube=session, store=self.store, variables=variables, deadline=time.monotonic() + timeout,
            poll_interval=self.settings.poll_interval, retry=self.settings.retry, resolved=event,
            receivers=[r for r, _ in data.get("receivers") or []],
            notification=notification,
        )
        t0 = time.monotonic()
        outcome = await run_step(action.run, ctx, step, timeout)
        duration = time.monotonic() - t0
        requests = [c.to_json() for c in session.take_calls()]
        ok = isinstance(outcome, StepResult)
        record.update(
            status="ok" if ok else "failed",
            summary=outcome.summary if isinstance(outcome, StepResult) else str(outcome),
            duration=round(duration, 3),
            requests=requests,
            result=outcome.result,
        )
        if isinstance(outcome, StepFailed):
            record["reason"] = outcome.reason.value
        follow_ups = list(outcome.follow_ups) if isinstance(outcome, StepResult) else []
        self.metrics.steps.labels(step.action, "ok" if ok else f"failed_{record.get('reason', 'unknown')}").inc()
        entry = self._entry(run, "step", {k: v for k, v in record.items() if k not in ("started_at",)})
        done = await self.store.update_run(
            run.id, expect=[RUNNING], expect_owner=self.owner, now=time.time(),
            change=RunChange(step=index + 1, data=data),
            effects=RunEffects([entry], follow_ups),
        )
        if follow_ups:
            self._wake()
        log.info("runbook step done", run_id=run.id, step=index + 1, action=step.action, ok=ok,
                 summary=record["summary"], duration=record["duration"])
        if done is None:
            return None
        return outcome

    async def _finish(
        self,
        run: RunRecord,
        status: str,
        summary: str,
        expect: Sequence[str],
        *,
        expect_owner: str | None = None,
        decided_by: str | None = None,
        data: dict[str, Any] | None = None,
        audit: Sequence[AuditEntry] = (),
    ) -> RunRecord | None:
        """Move a run to a final status, release its lock and report it, in one transaction."""
        final = dataclasses.replace(run, status=status, summary=summary)
        alert_now = await self._current_alert(dict(run.data.get("alert") or {}))
        notify = self._notifications(final, alert_now, data=data)
        updated = await self.store.update_run(
            run.id,
            expect=expect,
            expect_owner=expect_owner,
            now=time.time(),
            change=RunChange(status=status, summary=summary, finished=True, release_lock=True, decided_by=decided_by,
                             data=data),
            effects=RunEffects(list(audit), notify),
        )
        if updated is not None:
            self.metrics.runs.labels(run.runbook, status).inc()
            self._wake()
        return updated

    # -- notifications and records ----------------------------------------------------------------

    def _run_data(
        self, payload: Mapping[str, Any], target: Target | None, evidence: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        data = {
            "alert": dict(payload.get("alert") or {}),
            "rule": payload.get("rule"),
            "receivers": [list(r) for r in payload.get("receivers") or []],
            "group": {k: payload.get(k) for k in ("group_labels", "common_labels", "common_annotations",
                                                  "external_url")},
            "target": target.as_dict() if target else None,
            "steps": [],
        }
        if evidence is not None:
            data["evidence"] = evidence
        return data

    async def _current_alert(self, alert: dict[str, Any]) -> dict[str, Any]:
        """The alert as last stored (a run's report must not show a resolved alert as firing)."""
        fingerprint = str(alert.get("fingerprint", ""))
        try:
            rec = await self.store.alert(fingerprint) if fingerprint else None
        except StoreUnavailable:
            rec = None
        if rec is None:
            return alert
        out = dict(alert)
        out["status"] = rec.status
        if rec.status == "resolved" and rec.ends_at:
            out["endsAt"] = _iso(rec.ends_at)
        return out

    def _notification_item(
        self, run: RunRecord, data: Mapping[str, Any], receiver: str, extra: dict[str, Any],
        alert: dict[str, Any] | None = None,
    ) -> NewOutboxItem:
        alert = alert or dict(data.get("alert") or {})
        group = data.get("group") or {}
        rule = next((rl for r, rl in data.get("receivers") or [] if r == receiver), data.get("rule") or "runbook")
        payload = {
            "receiver": receiver,
            "rule": rule,
            "group_key": run.group_key,
            "status": "resolved" if alert.get("status") == "resolved" else "firing",
            "alerts": [alert],
            "changed": [],
            "group_labels": group.get("group_labels") or {},
            "common_labels": group.get("common_labels") or {},
            "common_annotations": group.get("common_annotations") or {},
            "external_url": group.get("external_url") or "",
            "truncated_alerts": 0,
            "received_at": _iso(time.time()),
            "extra": {"runbook_runs": [run_entry(run, data)], **extra},
        }
        return NewOutboxItem("notify", receiver, run.group_key, payload)

    def _notifications(
        self, run: RunRecord, alert: dict[str, Any], data: Mapping[str, Any] | None = None
    ) -> list[NewOutboxItem]:
        """A ``notify`` item per receiver that got the alert and is switched on."""
        source = data if data is not None else run.data
        receivers = [r for r, _ in source.get("receivers") or [] if self.config.delivers_to(r)]
        return [self._notification_item(run, source, r, {}, alert) for r in receivers]

    def _entry(self, run: RunRecord, event: str, data: Mapping[str, Any], actor: str = "alert-router") -> AuditEntry:
        return AuditEntry(event, dict(data), runbook=run.runbook, run_id=run.id, target=run.target, actor=actor)

    def _wake(self) -> None:
        if self.wake_delivery is not None:
            self.wake_delivery.set()

    # -- queries and lifecycle --------------------------------------------------------------------

    async def run(self, run_id: int) -> RunRecord | None:
        """One run."""
        return await self.store.run(run_id)

    async def runs(self, *, status: str | None = None, runbook: str | None = None, limit: int = 100) -> list[RunRecord]:
        """Runs, newest first."""
        return await self.store.runs(status=status, runbook=runbook, limit=limit)

    @property
    def active_runs(self) -> list[int]:
        """Ids of the runs executing in this process."""
        return sorted(self._tasks)

    async def aclose(self) -> None:
        """Stop every run of this process (each is recorded as interrupted) and close the client."""
        tasks = list(self._tasks.values())
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(self.kube.close)
