"""``alert-router runbook test FILE --alert LABEL=VALUE ...``: a runbook rehearsed against the configured cluster.

For a label set (an alert as Alertmanager would send it) it shows, changing nothing:

1. whether the runbook's ``match`` accepts the alert, the rendered target and the namespace guard;
2. the evidence a run would gather first (real reads against the cluster of ``kubernetes:``), and
   the outcome of ``when:`` with it;
3. every step as a dry run: reads are sent, mutating requests go with ``dryRun=All`` (the API server
   authorizes, admits and validates them, and persists nothing; ``kubernetes.server_dry_run: false``
   only records them), waits do not wait, ``http`` sends nothing, ``notify`` delivers nothing;
   each step's requests with what the API server answered.

Guards that depend on history (cooldown, ``max_runs``, the target lock) are listed, not checked:
the rehearsal does not open the store. Exit status: 0 when every step would go ahead, 1 when the
runbook is invalid or a step failed (a 403, a validation error...).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO, cast

from alert_router.config import Config
from alert_router.durations import format_duration
from alert_router.redact import Redactor
from alert_router.remediation.actions import REGISTRY, StepContext, StepResult, Target
from alert_router.remediation.actions.base import run_step
from alert_router.remediation.engine import alert_variables
from alert_router.remediation.evidence import gather_with, planned_requests
from alert_router.remediation.kube import KubeClient, KubeError, KubeSession
from alert_router.remediation.runbook import Runbook, load_runbook
from alert_router.remediation.templating import TemplateProblem, evaluate, name_problem, namespace_problem, render
from alert_router.store.base import NewOutboxItem
from alert_router.yamlfile import load_yaml

__all__ = ["rehearse", "runbook_test_command"]


def _alert(labels: dict[str, str]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:16]
    return {"status": "firing", "labels": labels, "annotations": {}, "fingerprint": f"test-{digest}",
            "startsAt": datetime.now(UTC).isoformat(), "endsAt": "0001-01-01T00:00:00Z", "generatorURL": ""}


def _request_line(call: dict[str, Any]) -> str:
    query = "&".join(f"{k}={v}" for k, v in (call.get("query") or {}).items())
    line = f"{call['method']} {call['path']}" + (f"?{query}" if query else "")
    if call.get("status"):
        line += f" -> {call['status']}"
    if call.get("error"):
        line += f" ({call['error']})"
    if call.get("note"):
        line += f"  [{call['note']}]"
    return line


async def rehearse(config: Config, runbook: Runbook, labels: dict[str, str]) -> dict[str, Any]:
    """Rehearse ``runbook`` for an alert with ``labels``; a JSON-ready report (see the module docstring)."""
    alert = _alert(labels)
    variables = alert_variables(runbook.name, alert)
    report: dict[str, Any] = {"runbook": runbook.name, "file": runbook.file, "labels": labels,
                              "matches": runbook.matches(labels), "ok": True}
    target: Target | None = None
    if runbook.target is not None:
        try:
            target = Target(runbook.target.kind, render(runbook.target.namespace, variables).strip(),
                            render(runbook.target.name, variables).strip())
        except TemplateProblem as exc:
            return {**report, "ok": False, "refused": f"cannot render the target: {exc}"}
        why = namespace_problem(target.namespace) or name_problem(target.name)
        if not why and target.namespace not in runbook.guards.allowed_namespaces:
            why = f"namespace {target.namespace!r} is not in {sorted(runbook.guards.allowed_namespaces)}"
        report["target"] = target.key
        if why:
            return {**report, "ok": False, "refused": f"invalid target: {why}"}
    settings = config.settings
    client = KubeClient(settings.kubernetes, settings.remediation.retry, base_dir=config.base_dir)
    redactor = Redactor(settings.enrich.redact.patterns, defaults=settings.enrich.redact.defaults)
    try:
        try:
            await client.api()
            report["cluster"] = "reachable"
        except KubeError as exc:
            report["cluster"] = f"not available ({exc.args[0]}): nothing was sent, the plan is unchecked"
        evidence: dict[str, Any] | None = None
        if target is not None and runbook.wants_evidence:
            report["evidence_requests"] = planned_requests(target, runbook.evidence)
            evidence = await gather_with(client, target, runbook.evidence, redactor)
            report["evidence"] = evidence
        if runbook.when:
            try:
                report["when"] = bool(evaluate(runbook.when, {**variables, "evidence": evidence or {}}))
            except TemplateProblem as exc:
                report["when"] = f"cannot evaluate: {exc}"
        report["steps"] = await _steps(client, config, runbook, target, alert, variables, evidence)
    finally:
        await asyncio.to_thread(client.close)
    report["ok"] = all(s["status"] == "ok" for s in report["steps"])
    return report


async def _steps(client: KubeClient, config: Config, runbook: Runbook, target: Target | None,
                 alert: dict[str, Any], variables: dict[str, Any], evidence: dict[str, Any] | None
                 ) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    step_vars = {**variables, "target": target.as_dict() if target else {}, "run": {"id": 0, "dry_run": True},
                 "evidence": evidence or {}}

    def notification(receiver: str, extra: dict[str, Any]) -> NewOutboxItem:
        return NewOutboxItem("notify", receiver, "runbook-test", {"extra": extra})

    for section, steps in (("steps", runbook.steps), ("on_failure", runbook.on_failure)):
        for i, step in enumerate(steps):
            timeout = step.timeout or runbook.guards.step_timeout or config.settings.remediation.step_timeout
            session = KubeSession(client, dry_run=True, deadline=time.monotonic() + timeout,
                                  server_dry_run=config.settings.kubernetes.server_dry_run)
            ctx = StepContext(
                run_id=0, runbook=runbook.name, index=len(out), target=target, alert=alert, dry_run=True,
                kube=session, store=cast(Any, None), variables=step_vars, deadline=time.monotonic() + timeout,
                poll_interval=config.settings.remediation.poll_interval, retry=config.settings.remediation.retry,
                resolved=asyncio.Event(), receivers=[], notification=notification,
            )
            outcome = await run_step(REGISTRY[step.action].run, ctx, step, timeout)
            ok = isinstance(outcome, StepResult)
            out.append({
                "section": section, "position": i + 1, "action": step.action, "name": step.name,
                "status": "ok" if ok else "failed",
                "summary": outcome.summary if isinstance(outcome, StepResult) else str(outcome),
                "requests": [c.to_json() for c in session.take_calls()],
            })
    return out


def format_report(report: dict[str, Any], runbook: Runbook) -> list[str]:
    """The report as people read it."""
    lines = [f"runbook {report['runbook']} ({report['file']})",
             f"alert: {', '.join(f'{k}={v}' for k, v in report['labels'].items())}",
             "match: " + ("accepts the alert" if report["matches"]
                          else "does NOT accept the alert (shown anyway; a real trigger would not apply)")]
    if "target" in report:
        lines.append(f"target: {report['target']}")
    if report.get("refused"):
        lines.append(f"refused: {report['refused']}")
        return lines
    lines.append(f"cluster: {report.get('cluster')}")
    g = runbook.guards
    lines.append(
        f"guards: cooldown {format_duration(g.cooldown)}, at most {g.max_runs.count} runs in "
        f"{format_duration(g.max_runs.window)}, one run per target at a time"
        + (", approval required" if g.require_approval else "") + " (not checked here: the store is not read)"
    )
    ev = report.get("evidence")
    if ev is not None:
        lines.append("evidence (gathered first, within "
                     f"{format_duration(runbook.evidence.timeout)}):")
        lines += [f"  would read: {r}" for r in report.get("evidence_requests") or []]
        lines.append(f"  {ev.get('status')}: {ev.get('summary')}")
        for key in ("current_revision", "previous_revision"):
            r = ev.get(key)
            if r:
                lines.append(f"  {key.replace('_', ' ')}: {r['revision']} {', '.join(r['images'])}"
                             + (f" ({r['change_cause']})" if r.get("change_cause") else ""))
        if ev.get("last_rollout_age") is not None:
            lines.append(f"  last_rollout_age: {ev['last_rollout_age']:.0f}s")
        for p in ev.get("pods") or []:
            term = p.get("last_termination") or {}
            lines.append(f"  pod {p['name']}: {p['state']}, ready {p['ready']}, {p['restarts']} restarts"
                         + (f", last {term.get('reason')} (exit {term.get('exit_code')})" if term else ""))
        for e in (ev.get("events") or [])[:5]:
            lines.append(f"  event {e['type']} {e['reason']} {e['object']}: {e['message']} (x{e['count']})")
        for log in ev.get("previous_logs") or []:
            lines.append(f"  previous log of {log['pod']}/{log['container']}: {log['status']}"
                         + (f" ({log['reason']})" if log.get("reason") else f", {len(log['lines'])} lines, ending:"))
            lines += [f"    | {ln}" for ln in (log.get("lines") or [])[-3:]]
        said = {str(ev.get("reason"))}
        for err in ev.get("errors") or []:
            if err["error"] not in said:
                said.add(err["error"])
                lines.append(f"  missing {err['part']}: {err['error']}")
    if runbook.when:
        lines.append(f"when: {runbook.when} -> {report.get('when')}")
    lines.append("steps (dry run: nothing is changed):")
    for s in report.get("steps") or []:
        where = "on_failure (after a failed step) " if s["section"] == "on_failure" else ""
        lines.append(f"  {where}{s['position']}. {s['name'] or s['action']}: {s['status']}: {s['summary']}")
        lines += [f"     {_request_line(c)}" for c in s["requests"]]
    if not report["ok"]:
        lines.append("plan FAILED: see the steps above")
    elif report.get("cluster") != "reachable":
        lines.append("plan unchecked: no cluster answered")
    else:
        lines.append("plan OK: the API server accepted every request")
    return lines


def runbook_test_command(config: Config, path: str, alert: list[str], *, as_json: bool = False,
                         out: TextIO | None = None) -> int:
    """``alert-router runbook test FILE --alert LABEL=VALUE ...``."""
    out = out or sys.stdout
    labels: dict[str, str] = {}
    for item in alert:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"error: --alert takes LABEL=VALUE, got {item!r}", file=sys.stderr)
            return 2
        labels[name] = value
    doc, problems = load_yaml(Path(path))
    runbook = None
    if doc is not None:
        runbook, problems = load_runbook(doc, receivers=set(config.receivers))
    if runbook is None:
        for p in problems:
            print(p, file=sys.stderr)
        return 1
    report = asyncio.run(rehearse(config, runbook, labels))
    if as_json:
        print(json.dumps(report, indent=2, default=str), file=out)
    else:
        for line in format_report(report, runbook):
            print(line, file=out)
    return 0 if report["ok"] else 1
