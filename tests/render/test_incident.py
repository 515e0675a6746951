"""Pager pieces: Alertmanager's group hash, one-line headlines, label picks, acks, links."""

from __future__ import annotations

import hashlib

from alert_router.render.context import build_context
from alert_router.render.incident import acked_by, first_label, group_hash, headline, links
from tests.channels.helpers import alert, notification

GROUP = '{}:{alertname="ModelServiceDown", namespace="prod"}'


def test_group_hash_is_alertmanagers_key_hash() -> None:
    """notify.Key.Hash() in Alertmanager: hex SHA-256 of the group key string."""
    assert group_hash(GROUP) == hashlib.sha256(GROUP.encode()).hexdigest()
    assert len(group_hash(GROUP * 100)) == 64


def test_headline() -> None:
    firing = build_context(notification([alert(annotations={"summary": "down\nfor real"})], group_key=GROUP))
    assert headline(firing, 1024) == "[FIRING:1] ModelServiceDown · prod: down for real"
    assert len(headline(firing, 20)) == 20
    resolved = build_context(notification([alert(status="resolved"), alert("B", status="resolved")]))
    assert headline(resolved, 1024) == "[RESOLVED] ModelServiceDown · prod (fired for 3h12m)"


def test_first_label_prefers_group_then_alert_labels() -> None:
    ctx = build_context(notification([alert(labels={"pod": "p1", "instance": "i1"})]))
    assert first_label(ctx, ("instance", "pod")) == "i1"
    assert first_label(ctx, ("namespace",)) == "prod"
    assert first_label(ctx, ("nope",)) == ""


def test_acked_by_needs_every_firing_alert_acked() -> None:
    a, b = alert("A"), alert("B")
    some = build_context(notification([a, b], extra={"acked_by": {a.fingerprint: "rita"}}))
    every = build_context(notification([a, b], extra={"acked_by": {a.fingerprint: "rita", b.fingerprint: "al"}}))
    assert acked_by(some) == [] and acked_by(every) == ["al", "rita"]


def test_links_are_http_only_and_named() -> None:
    ctx = build_context(notification([alert(annotations={"runbook_url": "javascript:x"})]),
                        links={"grafana_url": "https://g"})
    assert [t for t, _ in links(ctx)] == ["Prometheus graph", "Grafana", "Alertmanager", "Silence in Alertmanager"]
