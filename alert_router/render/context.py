"""The template context: what every channel's templates see, built once from a :class:`Notification`.

Only plain data goes in (``dict``, ``list``, ``str``, numbers), so the sandboxed templates cannot reach
into the service. The keys are documented in ``docs/channels.md``; the ``extra`` contracts filled by
other stages are read here and nowhere else:

* ``extra["enrichment"]`` (logs and links, from the Loki stage),
* ``extra["runbook_runs"]`` (remediation outcomes),
* ``extra["acked_by"]`` (``{fingerprint: user}`` from chat commands),
* ``extra["digest"]`` (set by storm control when several notifications are coalesced),
* ``extra["graphs"]`` (pictures of the alerts' metrics, from the graph stage),
* ``extra["runbook_message"]`` (the text of a runbook's ``notify`` step),
* ``extra["escalation"]`` (set by the escalation timers: rule, step, repeat, after, unacked_for).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from alert_router.models import Alert, Notification

SEVERITY_MARKERS = {"critical": "🔴", "error": "🔴", "high": "🔴", "warning": "🟠", "info": "🔵"}
RESOLVED_MARKER = "✅"
ACKED_MARKER = "👀"
SEVERITY_ORDER = {"critical": 0, "error": 1, "high": 1, "warning": 2, "info": 3}
KEY_LABEL_ORDER = ("namespace", "service", "deployment", "job", "pod", "instance", "container", "cluster", "env")
HIDDEN_LABELS = frozenset({"alertname", "severity"})
MAX_KEY_LABELS = 8


def format_duration(seconds: float) -> str:
    """A short human duration: ``45s``, ``12m``, ``3h12m``, ``2d4h``."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    m, _ = divmod(s, 60)
    if m < 60:
        return f"{m}m"
    h, m = divmod(m, 60)
    if h < 24:
        return f"{h}h{m}m" if m else f"{h}h"
    d, h = divmod(h, 24)
    return f"{d}d{h}h" if h else f"{d}d"


def short_id(fingerprint: str) -> str:
    """The first 8 characters of a fingerprint: how buttons and people name an alert."""
    return fingerprint[:8]


def group_id(group_key: str) -> str:
    """A short stable id for an Alertmanager group key (8 hex digits of its SHA-256)."""
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()[:8]


def severity_marker(severity: str, firing: bool = True) -> str:
    """The emoji shown before an alert."""
    if not firing:
        return RESOLVED_MARKER
    return SEVERITY_MARKERS.get(severity.lower(), "⚪")


def key_labels(labels: Mapping[str, str], limit: int = MAX_KEY_LABELS) -> list[list[str]]:
    """The labels worth showing, as ``[name, value]`` pairs: well-known ones first, then the rest by name."""
    names = [n for n in KEY_LABEL_ORDER if n in labels]
    names += sorted(n for n in labels if n not in HIDDEN_LABELS and n not in names)
    return [[n, labels[n]] for n in names[:limit]]


def _ts(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _alertmanager_link(base: str, labels: Mapping[str, str]) -> str:
    if not base:
        return ""
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k in ("alertname", "namespace"))
    return f"{base.rstrip('/')}/#/alerts?filter={quote('{' + matchers + '}', safe='')}"


def _silence_link(base: str, labels: Mapping[str, str]) -> str:
    if not base:
        return ""
    matchers = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return f"{base.rstrip('/')}/#/silences/new?filter={quote('{' + matchers + '}', safe='')}"


def alert_context(
    alert: Alert,
    now: datetime,
    *,
    external_url: str = "",
    links: Mapping[str, Any] | None = None,
    enrichment_links: Mapping[str, Any] | None = None,
    acked_by: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """One alert as the templates see it."""
    firing = alert.is_firing
    ends = alert.ends_at_or_none()
    end = ends if (ends is not None and not firing) else now
    am_base = external_url or str((links or {}).get("alertmanager_url", "") or "")
    grafana = str((links or {}).get("grafana_url", "") or "")
    own = dict((enrichment_links or {}).get(alert.fingerprint) or {})
    alert_links = {
        "generator": own.get("generator") or alert.generator_url,
        "alertmanager": own.get("alertmanager") or _alertmanager_link(am_base, alert.labels),
        "grafana": own.get("grafana") or grafana,
        "silence": own.get("silence") or _silence_link(am_base, alert.labels),
        "runbook": alert.annotations.get("runbook_url", ""),
    }
    ack = (acked_by or {}).get(alert.fingerprint)
    return {
        "fingerprint": alert.fingerprint,
        "short_id": short_id(alert.fingerprint),
        "status": alert.status,
        "firing": firing,
        "name": alert.name,
        "severity": alert.severity,
        "marker": ACKED_MARKER if (firing and ack) else severity_marker(alert.severity, firing),
        "labels": dict(alert.labels),
        "key_labels": key_labels(alert.labels),
        "annotations": dict(alert.annotations),
        "summary": alert.annotations.get("summary", "") or alert.annotations.get("message", ""),
        "description": alert.annotations.get("description", ""),
        "starts_at": _ts(alert.starts_at),
        "since": alert.starts_at.strftime("%Y-%m-%d %H:%M UTC"),
        "ends_at": _ts(ends) if not firing else None,
        "duration_seconds": max(0.0, (end - alert.starts_at).total_seconds()),
        "duration": format_duration((end - alert.starts_at).total_seconds()),
        "generator_url": alert.generator_url,
        "links": {k: v for k, v in alert_links.items() if v},
        "acked_by": str(ack) if ack else None,
    }


def _scope(alerts: Sequence[Alert]) -> str:
    for label in ("namespace", "cluster", "env", "environment"):
        values = {a.labels.get(label, "") for a in alerts}
        if len(values) == 1 and (value := values.pop()):
            return value
    return ""


def digest_headline(alerts: Sequence[Alert], top: int = 3) -> str:
    """``37 alerts firing in prod: HighLatency x20, Down x5, and 12 more`` (resolved ones counted too)."""
    firing = [a for a in alerts if a.is_firing]
    resolved = len(alerts) - len(firing)
    scope = _scope(alerts)
    parts = []
    if firing:
        parts.append(f"{len(firing)} alert{'s' if len(firing) != 1 else ''} firing")
    if resolved:
        parts.append(f"{resolved} resolved")
    head = ", ".join(parts) + (f" in {scope}" if scope else "")
    counts = Counter(a.name for a in (firing or alerts)).most_common()
    named = counts[:top]
    rest = sum(c for _, c in counts[top:])
    names = ", ".join(f"{n} ×{c}" if c > 1 else n for n, c in named)  # noqa: RUF001 - a times sign
    if rest:
        names += f", and {rest} more"
    return f"{head}: {names}" if names else head


def escalation_context(extra: Mapping[str, Any]) -> dict[str, Any] | None:
    """``extra["escalation"]`` as the templates see it, or ``None`` when the notification is not an escalation.

    ``text`` is the line every default renderer shows: ``Escalation 2 of 3: not acknowledged for 30m (rule
    model-serving escalates after 10m)``.
    """
    raw = extra.get("escalation")
    if not isinstance(raw, Mapping):
        return None
    try:
        step = max(1, int(raw.get("step", 1) or 1))
        repeat = max(step, int(raw.get("repeat", step) or step))
        after = max(0.0, float(raw.get("after", 0) or 0))
        unacked = max(0.0, float(raw.get("unacked_for", 0) or 0))
    except (TypeError, ValueError):
        return None
    rule = str(raw.get("rule", "") or "")
    by = str(raw.get("by", "") or "")
    text = f"Escalation {step} of {repeat}: not acknowledged for {format_duration(unacked)}"
    if by:
        text = f"Escalated by {by}: not acknowledged for {format_duration(unacked)}"
    elif rule:
        text += f" (rule {rule} escalates after {format_duration(after)})"
    return {
        "rule": rule,
        "step": step,
        "repeat": repeat,
        "after_seconds": after,
        "after": format_duration(after),
        "unacked_for_seconds": unacked,
        "unacked_for": format_duration(unacked),
        "by": by,
        "label": f"ESCALATED BY {by.upper()}" if by else f"ESCALATION {step}/{repeat}",
        "text": text,
    }


def title(notification: Notification, alerts: Sequence[Alert]) -> str:
    """Alertmanager-style title: ``[FIRING:3] ModelServiceDown · prod``.

    An escalation says so first: ``[ESCALATION 1/3] [FIRING:1] ModelServiceDown · prod``.
    """
    escalation = escalation_context(notification.extra)
    prefix = f"[{escalation['label']}] " if escalation else ""
    return prefix + _plain_title(notification, alerts)


def _plain_title(notification: Notification, alerts: Sequence[Alert]) -> str:
    digest = notification.extra.get("digest")
    if isinstance(digest, Mapping):
        parts = int(digest.get("parts", 1) or 1)
        suffix = f" (part {int(digest.get('part', 1) or 1)}/{parts})" if parts > 1 else ""
        return digest_headline(alerts) + suffix
    firing = [a for a in alerts if a.is_firing]
    status = f"FIRING:{len(firing)}" if firing else "RESOLVED"
    gl = dict(notification.group_labels)
    name = gl.pop("alertname", "") or notification.common_labels.get("alertname", "")
    if not name:
        names = sorted({a.name for a in alerts})
        name = names[0] if len(names) == 1 else f"{len(names)} alert names"
    extra = " · ".join(v for _, v in sorted(gl.items()) if v)
    return f"[{status}] {name}" + (f" · {extra}" if extra else "")


def _logs(enrichment: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for entry in enrichment.get("logs") or []:
        if not isinstance(entry, Mapping):
            continue
        lines = [
            {"ts": str(line.get("ts", "")), "pod": str(line.get("pod", "") or ""), "line": str(line.get("line", ""))}
            for line in entry.get("lines") or []
            if isinstance(line, Mapping)
        ]
        out.append(
            {
                "query": str(entry.get("query", "")),
                "status": str(entry.get("status", "ok")),
                "reason": str(entry["reason"]) if entry.get("reason") else None,
                "lines": lines,
                "text": [(f"{x['pod']} " if x["pod"] else "") + x["line"] for x in lines],
                "fingerprints": [str(f) for f in entry.get("fingerprints") or []],
            }
        )
    return out


def _kubernetes(enrichment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The Kubernetes evidence of the enrichment: one line per workload (the details stay in ``extra``)."""
    out = []
    for entry in enrichment.get("kubernetes") or []:
        if isinstance(entry, Mapping):
            out.append(
                {
                    "target": str(entry.get("target", "")),
                    "status": str(entry.get("status", "")),
                    "summary": str(entry.get("summary", "") or ""),
                    "fingerprints": [str(f) for f in entry.get("fingerprints") or []],
                }
            )
    return out


def graph_cid(graph_id: str) -> str:
    """The ``Content-ID`` (without angle brackets) under which a mail carries picture ``graph_id``."""
    return f"graph-{graph_id}@alert-router"


def _graphs(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for g in extra.get("graphs") or []:
        if not isinstance(g, Mapping):
            continue
        ok = g.get("status") == "ok" and bool(g.get("id"))
        out.append(
            {
                "status": "ok" if ok else "unavailable",
                "reason": None if ok else str(g.get("reason") or "unavailable"),
                "url": str(g.get("url") or ""),
                "title": str(g.get("title") or ""),
                "alt": str(g.get("alt") or "graph"),
                "describe": str(g.get("describe") or ""),
                "query": str(g.get("query") or ""),
                "cid": graph_cid(str(g["id"])) if ok else "",
                "width": int(g.get("width") or 0),
                "height": int(g.get("height") or 0),
            }
        )
    return out


def _runbook_runs(extra: Mapping[str, Any]) -> list[dict[str, Any]]:
    runs = []
    for run in extra.get("runbook_runs") or []:
        if isinstance(run, Mapping):
            evidence = run.get("evidence")
            if not isinstance(evidence, Mapping):
                evidence = {}
            runs.append(
                {
                    "run_id": str(run.get("run_id", "")),
                    "runbook": str(run.get("runbook", "")),
                    "status": str(run.get("status", "")),
                    "summary": str(run.get("summary", "") or ""),
                    "dry_run": bool(run.get("dry_run", False)),
                    "evidence": str(evidence.get("summary", "") or ""),
                    "failure": _failure(run.get("failure")),
                }
            )
    return runs


def _failure(raw: Any) -> dict[str, str] | None:
    """A failed run's report: ``step`` (``1 (rollout_restart)``), ``error``, ``reason``, ``outcome``, ``next``."""
    if not isinstance(raw, Mapping):
        return None
    return {k: str(raw.get(k, "") or "") for k in ("step", "action", "error", "reason", "outcome", "next")}


def build_context(
    notification: Notification,
    *,
    links: Mapping[str, Any] | None = None,
    max_alerts: int | None = None,
) -> dict[str, Any]:
    """The template context for ``notification``.

    ``alerts`` holds at most ``max_alerts`` alerts (firing first, then resolved) and ``more`` says how
    many were left out; ``all_alerts`` has every alert. ``links`` are the configured base URLs
    (``alertmanager_url``, ``grafana_url``).
    """
    extra = notification.extra
    enrichment = extra.get("enrichment") if isinstance(extra.get("enrichment"), Mapping) else {}
    assert isinstance(enrichment, Mapping)
    acked = extra.get("acked_by") if isinstance(extra.get("acked_by"), Mapping) else {}
    now = notification.received_at
    ordered = sorted(
        notification.alerts,
        key=lambda a: (not a.is_firing, SEVERITY_ORDER.get(a.severity.lower(), 9), a.name, a.starts_at),
    )
    all_alerts = [
        alert_context(
            a,
            now,
            external_url=notification.external_url,
            links=links,
            enrichment_links=enrichment.get("links") if isinstance(enrichment.get("links"), Mapping) else None,
            acked_by=acked,
        )
        for a in ordered
    ]
    shown = all_alerts if max_alerts is None else all_alerts[: max(0, max_alerts)]
    firing = [a for a in all_alerts if a["firing"]]
    resolved = [a for a in all_alerts if not a["firing"]]
    ranked = sorted((SEVERITY_ORDER.get(a["severity"].lower(), 9), a["severity"]) for a in all_alerts)
    top = ranked[0][1] if ranked else ""
    is_firing = bool(firing)
    span = 0.0
    if not is_firing and notification.alerts:
        start = min(a.starts_at for a in notification.alerts)
        end = max((a.ends_at_or_none() or now) for a in notification.alerts)
        span = max(0.0, (end - start).total_seconds())
    all_acked = is_firing and all(a["acked_by"] for a in firing)
    digest = extra.get("digest") if isinstance(extra.get("digest"), Mapping) else None
    digest_ctx = None
    if digest:
        digest_ctx = {
            "headline": digest_headline(notification.alerts),
            "count": len(all_alerts),
            "firing": len(firing),
            "resolved": len(resolved),
            "groups": int(digest.get("groups", 0)),
            "notifications": int(digest.get("notifications", 0)),
            "part": int(digest.get("part", 1)),
            "parts": int(digest.get("parts", 1)),
            "by_name": [
                {"name": n, "count": c} for n, c in Counter(a.name for a in notification.alerts).most_common()
            ],
        }
    first_links = all_alerts[0]["links"] if all_alerts else {}
    group_links = {k: v for k, v in first_links.items() if k != "runbook"}
    if notification.external_url and "alertmanager" not in group_links:
        group_links["alertmanager"] = notification.external_url
    return {
        "receiver": notification.receiver,
        "rule": notification.rule,
        "group_key": notification.group_key,
        "group_id": group_id(notification.group_key),
        "status": "firing" if is_firing else "resolved",
        "firing": is_firing,
        "resolved": not is_firing,
        "acked": all_acked,
        "title": title(notification, notification.alerts),
        "marker": (ACKED_MARKER if all_acked else severity_marker(top)) if is_firing else RESOLVED_MARKER,
        "severity": top,
        "alerts": shown,
        "more": len(all_alerts) - len(shown),
        "all_alerts": all_alerts,
        "firing_alerts": firing,
        "resolved_alerts": resolved,
        "count": len(all_alerts),
        "fired_for": format_duration(span) if not is_firing else "",
        "group_labels": dict(notification.group_labels),
        "common_labels": dict(notification.common_labels),
        "common_annotations": dict(notification.common_annotations),
        "external_url": notification.external_url,
        "truncated_alerts": notification.truncated_alerts,
        "changed": list(notification.changed),
        "links": group_links,
        "logs": _logs(enrichment),
        "kubernetes": _kubernetes(enrichment),
        "runbook_runs": _runbook_runs(extra),
        "runbook_message": str(extra.get("runbook_message") or ""),
        "graphs": _graphs(extra),
        "digest": digest_ctx,
        "escalation": escalation_context(extra),
        "fallback_from": extra.get("fallback_from"),
        "fallback_reason": extra.get("fallback_reason"),
        "received_at": _ts(now),
    }
