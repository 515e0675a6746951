"""Links: Grafana Explore with the same query and window, Alertmanager alert and silence form, safe generator URLs."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from alert_router.enrich.links import (
    alert_filter,
    alertmanager_alert_url,
    alertmanager_silence_url,
    grafana_explore_url,
    safe_http_url,
)
from alert_router.matchers import parse_matchers


def test_grafana_explore_url_carries_query_datasource_and_absolute_window() -> None:
    q = '{namespace="prod", app="a\\"b"} |~ "(?i)(error|fatal)"'
    url = grafana_explore_url(
        "https://grafana.example/", "loki-uid", q, 1_700_000_000_123_456_789, 1_700_000_600_000_000_001, org_id=3
    )
    parts = urlsplit(url)
    assert parts.scheme == "https" and parts.netloc == "grafana.example" and parts.path == "/explore"
    params = parse_qs(parts.query)
    assert params["schemaVersion"] == ["1"] and params["orgId"] == ["3"]
    panes = json.loads(params["panes"][0])
    (pane,) = panes.values()
    assert pane["datasource"] == "loki-uid"
    (query,) = pane["queries"]
    assert query["expr"] == q
    assert query["datasource"] == {"type": "loki", "uid": "loki-uid"}
    # ms, start rounded down and end rounded up so the window covers what was queried
    assert pane["range"] == {"from": "1700000000123", "to": "1700000600001"}


def test_grafana_link_needs_a_url_and_a_datasource() -> None:
    assert grafana_explore_url("", "loki", '{a="b"}', 0, 1) == ""
    assert grafana_explore_url("http://g", "", '{a="b"}', 0, 1) == ""
    assert grafana_explore_url("javascript:alert(1)", "loki", '{a="b"}', 0, 1) == ""


def test_alertmanager_links_filter_exactly_this_alert() -> None:
    labels = {"severity": "critical", "alertname": "ModelServiceDown", "pod": 'we"ird\\pod\nx'}
    alert = alertmanager_alert_url("http://am.example:9093/", labels)
    silence = alertmanager_silence_url("http://am.example:9093", labels)
    assert alert.startswith("http://am.example:9093/#/alerts?filter=")
    assert silence.startswith("http://am.example:9093/#/silences/new?filter=")
    for url in (alert, silence):
        filt = unquote(url.split("filter=", 1)[1])
        assert filt.startswith('{alertname="ModelServiceDown"')
        # Alertmanager's matcher syntax parses back to exactly the labels
        assert {m.name: m.value for m in parse_matchers(filt)} == labels
    assert alert_filter({"b": "1", "a": "2"}) == '{a="2", b="1"}'


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://prometheus:9090/graph?g0.expr=up", True),
        ("https://p.example/x", True),
        ("javascript:alert(1)", False),
        ("data:text/html,hi", False),
        ("/relative/path", False),
        ("http://", False),
        ("", False),
        ("http://x/\nInjected: 1", False),
    ],
)
def test_only_absolute_http_urls_are_used(url: str, ok: bool) -> None:
    assert safe_http_url(url) == (url if ok else "")
    link = alertmanager_alert_url(url, {"a": "b"})
    assert link.startswith(url + "/#/alerts?filter=") if ok else link == ""
