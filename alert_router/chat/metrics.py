"""Metrics of chat commands, the Alertmanager API client and escalations, on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class ChatMetrics:
    """Counters registered on the application's registry (one set per app)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.commands = Counter(
            "alert_router_chat_commands_total",
            "Chat commands and button presses by platform, command and outcome (ok, refused, error, invalid).",
            ["platform", "command", "outcome"],
            registry=r,
        )
        self.rejected_requests = Counter(
            "alert_router_chat_rejected_requests_total",
            "Chat requests refused before parsing (bad signature, stale timestamp, wrong secret token).",
            ["platform", "reason"],
            registry=r,
        )
        self.alertmanager_requests = Counter(
            "alert_router_alertmanager_requests_total",
            "Alertmanager API requests by operation and outcome (ok, retried, failed).",
            ["operation", "outcome"],
            registry=r,
        )
        self.escalations = Counter(
            "alert_router_escalations_total",
            "Escalation timer outcomes: fired, acked, resolved, stopped (rule or alert gone).",
            ["outcome"],
            registry=r,
        )
