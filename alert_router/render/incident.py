"""Plain-text pieces for incident platforms (PagerDuty, Opsgenie): keys, one-line summaries, structured details.

Pagers show a short line on a phone and keep the rest as structured data, so these helpers build plain text
(no markup: values are shown as they are) and JSON-ready dicts from the template context
(:func:`alert_router.render.context.build_context`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from alert_router.render.escape import clip, oneline, safe_url

SOURCE_LABELS = ("instance", "pod", "node", "host", "service", "job")
"""Labels that name the affected system, in order of preference (PagerDuty ``source``, Opsgenie ``entity``)."""
COMPONENT_LABELS = ("deployment", "service", "container", "app", "job")
GROUP_LABELS = ("namespace", "cluster", "env", "environment")


def group_hash(group_key: str) -> str:
    """SHA-256 of the Alertmanager group key, in hex: the key Alertmanager's own PagerDuty/Opsgenie notifiers use.

    It is stable for the group's life (a repeat never opens a second incident, a resolve closes the right one)
    and equal to Alertmanager's ``dedup_key``/``alias``, so moving a receiver from Alertmanager to alert-router
    keeps the incidents that are open.
    """
    return hashlib.sha256(group_key.encode("utf-8")).hexdigest()


def first_label(ctx: Mapping[str, Any], names: Iterable[str]) -> str:
    """The value of the first of ``names`` that the group's labels (then its first alert's) carry, or ``""``."""
    alerts = ctx.get("all_alerts") or []
    scopes = [ctx.get("group_labels") or {}, ctx.get("common_labels") or {}, (alerts[0]["labels"] if alerts else {})]
    for name in names:
        for labels in scopes:
            if labels.get(name):
                return str(labels[name])
    return ""


def headline(ctx: Mapping[str, Any], limit: int) -> str:
    """``[FIRING:1] ModelServiceDown · prod: Model service might be down!`` on one line, at most ``limit`` characters.

    A resolved group says how long it fired; a group of one alert adds that alert's summary.
    """
    text = str(ctx["title"])
    if ctx.get("resolved") and ctx.get("fired_for"):
        text += f" (fired for {ctx['fired_for']})"
    alerts = ctx.get("all_alerts") or []
    if not ctx.get("digest") and len(alerts) == 1 and alerts[0].get("summary"):
        text += f": {alerts[0]['summary']}"
    return clip(oneline(text), limit)


def acked_by(ctx: Mapping[str, Any]) -> list[str]:
    """Who acknowledged the group's firing alerts (sorted, unique); empty unless every firing alert is acked."""
    if not ctx.get("acked"):
        return []
    return sorted({str(a["acked_by"]) for a in ctx.get("firing_alerts") or [] if a.get("acked_by")})


def alert_record(a: Mapping[str, Any], text_limit: int = 1000) -> dict[str, Any]:
    """One alert as structured details: name, state, labels, summary, description, times, links."""
    record: dict[str, Any] = {
        "name": a["name"],
        "status": a["status"],
        "severity": a["severity"],
        "fingerprint": a["fingerprint"],
        "labels": dict(a["labels"]),
        "starts_at": a["starts_at"],
        "duration": a["duration"],
    }
    if a.get("ends_at"):
        record["ends_at"] = a["ends_at"]
    if a.get("summary"):
        record["summary"] = clip(str(a["summary"]), text_limit)
    if a.get("description"):
        record["description"] = clip(str(a["description"]), text_limit)
    if a.get("acked_by"):
        record["acked_by"] = a["acked_by"]
    links = {k: v for k, v in (a.get("links") or {}).items() if safe_url(v)}
    if links:
        record["links"] = links
    return record


def log_records(ctx: Mapping[str, Any], max_lines: int = 20, line_limit: int = 500) -> list[dict[str, Any]]:
    """The Loki excerpts as ``{query, status, reason?, lines}`` (at most ``max_lines`` lines per query)."""
    out = []
    for entry in ctx.get("logs") or []:
        record: dict[str, Any] = {"query": entry["query"], "status": entry["status"]}
        if entry.get("reason"):
            record["reason"] = entry["reason"]
        if entry.get("text"):
            record["lines"] = [clip(str(line), line_limit) for line in entry["text"][:max_lines]]
        out.append(record)
    return out


def links(ctx: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The group's links worth a button: ``(text, url)`` (Prometheus graph, Grafana, Alertmanager, silence, runbook)."""
    alerts = ctx.get("all_alerts") or []
    own = alerts[0].get("links", {}) if alerts else {}
    group = ctx.get("links") or {}
    names = (("generator", "Prometheus graph"), ("grafana", "Grafana"), ("alertmanager", "Alertmanager"),
             ("silence", "Silence in Alertmanager"), ("runbook", "Runbook"))
    out = []
    for key, text in names:
        url = own.get(key) or group.get(key) or ""
        if safe_url(url):
            out.append((text, str(url)))
    return out


def compact_text_line(a: Mapping[str, Any]) -> str:
    """One bounded plain-text line per alert (≤ about 160 characters), for storm digests."""
    parts = [a["marker"], a["short_id"], clip(oneline(a["name"]), 50)]
    parts += [clip(oneline(str(kv[1])), 25) for kv in a["key_labels"][:2]]
    line = " ".join(parts)
    if a.get("summary"):
        line += f" - {clip(oneline(a['summary']), 50)}"
    return line + (" (acked)" if a.get("acked_by") else "")
