"""Prometheus metrics, one registry per application (so tests can build several apps in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Every metric alert-router exports, on its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = Counter("alert_router_webhooks_total", "Webhook requests by outcome.", ["outcome"], registry=r)
        self.body_incomplete = Counter(
            "alert_router_body_incomplete_total",
            "Request bodies that did not arrive whole (client gone, cut short or too slow), answered 503, by endpoint.",
            ["endpoint"],
            registry=r,
        )
        self.inbox_failed = Counter(
            "alert_router_inbox_failed_total",
            "Stored webhook bodies set aside as failed at ingest (unparseable, refused by the store, or out of"
            " attempts); alert-router inbox failed lists them.",
            registry=r,
        )
        self.alerts_received = Counter(
            "alert_router_alerts_received_total", "Alerts received in accepted webhooks.", registry=r
        )
        self.alerts_deduplicated = Counter(
            "alert_router_alerts_deduplicated_total",
            "Alerts whose state was already known (repeats, retries, HA duplicates).",
            registry=r,
        )
        self.alerts_changed = Counter(
            "alert_router_alerts_changed_total", "Alerts whose state changed, by new status.", ["status"], registry=r
        )
        self.alerts_unrouted = Counter(
            "alert_router_alerts_unrouted_total",
            "Changed alerts that matched no rule and no default route.",
            registry=r,
        )
        self.notifications = Counter(
            "alert_router_notifications_total",
            "Notification delivery outcomes by receiver.",
            ["receiver", "outcome"],
            registry=r,
        )
        self.delivery_failures = Counter(
            "alert_router_delivery_failures_total",
            "Failed delivery attempts by receiver and reason.",
            ["receiver", "reason"],
            registry=r,
        )
        self.queue_depth = Gauge("alert_router_queue_depth", "Pending work items by queue.", ["queue"], registry=r)
        self.queue_oldest_age = Gauge(
            "alert_router_queue_oldest_age_seconds",
            "Age of the oldest pending item by queue (inbox, notify, runbook); 0 when the queue is empty.",
            ["queue"],
            registry=r,
        )
        self.reclaimed = Counter(
            "alert_router_reclaimed_total",
            "Claimed items taken back from a process that stopped (its heartbeat lapsed, or it crashed), by queue.",
            ["queue"],
            registry=r,
        )
        self.replicas_alive = Gauge(
            "alert_router_replicas_alive", "Processes sharing the store whose heartbeat is current.", registry=r
        )
        self.store_up = Gauge(
            "alert_router_store_up", "1 while the store answers (checked every heartbeat).", registry=r
        )
        self.deliveries_in_flight = Gauge(
            "alert_router_deliveries_in_flight", "Notifications being delivered by this process now.", registry=r
        )
        self.last_delivery = Gauge(
            "alert_router_last_delivery_timestamp_seconds",
            "When this process last delivered a notification to the receiver (Unix time).",
            ["receiver"],
            registry=r,
        )
        self.deadman_firing = Gauge(
            "alert_router_deadman_firing",
            "1 while the dead-man's switch pages that Alertmanager's heartbeat (Watchdog) stopped arriving.",
            registry=r,
        )
        self.deadman_last_heartbeat = Gauge(
            "alert_router_deadman_last_heartbeat_timestamp_seconds",
            "When Alertmanager's heartbeat alert (Watchdog) last arrived, at any replica (Unix time).",
            registry=r,
        )
        self.deadman_heartbeats = Counter(
            "alert_router_deadman_heartbeats_total", "Heartbeat alerts (Watchdog) received by this process.", registry=r
        )
        self.accept_seconds = Histogram(
            "alert_router_webhook_accept_seconds",
            "Time to validate and durably store a webhook.",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.processing_seconds = Histogram(
            "alert_router_processing_seconds",
            "Time from webhook receipt to confirmed delivery.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
