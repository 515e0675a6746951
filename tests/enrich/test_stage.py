"""The enrichment stage against the Loki stand-in: merged lines, cache, bounds, degradation, safety, links."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from structlog.testing import capture_logs

from alert_router.config import Config
from alert_router.enrich.logql import escape_string, quote_meta
from alert_router.enrich.stage import EnrichmentStage, rfc3339_ns
from alert_router.redact import MASK
from tests.enrich.support import NS, alert, enrich_config, notification, ns
from tests.standins.loki import LokiStandin, parse_logql

ERR = '|~ "(?i)(error|exception|traceback|fatal)"'
WORKLOAD = {"alertname": "ModelServiceDown", "namespace": "prod", "deployment": "model-api", "severity": "critical"}


def logs_of(n: Any) -> list[dict[str, Any]]:
    return n.extra["enrichment"]["logs"]


async def test_lines_merge_across_streams_newest_last_with_timestamp_and_pod(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url))
    starts = datetime.now(UTC) - timedelta(minutes=2)
    base = ns(starts)
    pods = {"namespace": "prod", "app": "model-api"}
    loki_standin.push({**pods, "pod": "model-api-1"}, base - 30 * NS, "ERROR cuda out of memory")
    loki_standin.push({**pods, "pod": "model-api-2"}, base - 20 * NS, "INFO healthy")  # filtered by the template
    loki_standin.push({**pods, "pod": "model-api-2"}, base - 10 * NS + 5, "Traceback (most recent call last):")
    loki_standin.push({**pods, "pod": "model-api-1"}, base + 1 * NS, "FATAL giving up")
    loki_standin.push({"namespace": "staging", "app": "model-api", "pod": "x"}, base, "ERROR other namespace")
    loki_standin.push({**pods, "pod": "model-api-1"}, base - 11 * 60 * NS, "ERROR before the look-back")
    n = notification([alert("fp1", WORKLOAD, starts=starts)])

    await stage(n)

    (entry,) = logs_of(n)
    assert entry["query"] == '{namespace="prod", app="model-api"} ' + ERR
    assert entry["status"] == "ok" and entry["reason"] is None and entry["fingerprints"] == ["fp1"]
    assert entry["lines"] == [
        {"ts": rfc3339_ns(base - 30 * NS), "pod": "model-api-1", "line": "ERROR cuda out of memory"},
        {"ts": rfc3339_ns(base - 10 * NS + 5), "pod": "model-api-2", "line": "Traceback (most recent call last):"},
        {"ts": rfc3339_ns(base + 1 * NS), "pod": "model-api-1", "line": "FATAL giving up"},
    ]
    assert entry["lines"][1]["ts"].endswith(f"{(base - 10 * NS + 5) % NS:09d}Z")
    rec = loki_standin.last_query
    assert rec.params["direction"] == "backward" and rec.params["limit"] == "50"
    start, end = int(rec.params["start"]), int(rec.params["end"])
    assert start <= base - 600 * NS < start + 30 * NS  # look-back 10m, aligned down to the 30s step
    assert end >= time.time_ns() - 5 * NS


async def test_a_50_alert_group_costs_one_query_and_so_do_50_concurrent_notifications(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url))
    starts = datetime.now(UTC) - timedelta(minutes=3)
    loki_standin.push({"namespace": "prod", "app": "model-api", "pod": "p"}, ns(starts), "ERROR x")
    group = [
        alert(f"fp{i}", {**WORKLOAD, "pod": f"model-api-{i}"}, starts=starts + timedelta(seconds=i % 7))
        for i in range(50)
    ]
    n = notification(group)
    await stage(n)
    assert loki_standin.query_count == 1
    (entry,) = logs_of(n)
    assert entry["status"] == "ok" and len(entry["fingerprints"]) == 50

    # 50 notifications of the same workload at once: the in-flight query is joined, then the cache answers
    loki_standin.delay = 0.1
    singles = [notification([a]) for a in group]
    await asyncio.gather(*(stage(s) for s in singles))
    assert loki_standin.query_count == 1
    assert all(logs_of(s)[0]["lines"] == entry["lines"] for s in singles)

    # once the cache entry expires, the next notification asks again
    real = stage.cache.clock
    stage.cache.clock = lambda: real() + 31
    await stage(notification([group[0]]))
    assert loki_standin.query_count == 2


async def test_timeout_degrades_within_the_bound(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, "timeout: 0.3s"))
    loki_standin.delay = 2.0
    n = notification([alert("fp1", WORKLOAD)])
    t = time.monotonic()
    await stage(n)
    elapsed = time.monotonic() - t
    assert 0.25 <= elapsed < 0.6
    (entry,) = logs_of(n)
    assert entry["status"] == "unavailable"
    assert entry["reason"] == "timeout: Loki did not answer within 0.3s"
    assert entry["lines"] == [] and entry["fingerprints"] == ["fp1"]
    # links are still there
    assert n.extra["enrichment"]["links"]["fp1"]["alertmanager"].startswith("http://alertmanager.monitoring:9093/")


async def test_server_error_degrades_and_is_remembered_briefly(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url))
    loki_standin.fail_next(1, status=500, body="internal server error")
    n = notification([alert("fp1", WORKLOAD)])
    await stage(n)
    (entry,) = logs_of(n)
    assert entry["status"] == "unavailable"
    assert entry["reason"] == "server_error: HTTP 500: internal server error"
    # during a storm a failing Loki is not hammered: the failure is cached for a few seconds
    again = notification([alert("fp2", WORKLOAD, starts=n.alerts[0].starts_at)])
    await stage(again)
    assert loki_standin.query_count == 1
    assert logs_of(again)[0]["status"] == "unavailable"


async def test_empty_answer_says_so(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url))
    loki_standin.push({"namespace": "prod", "app": "model-api"}, time.time_ns() - NS, "INFO all good")
    n = notification([alert("fp1", WORKLOAD)])
    await stage(n)
    (entry,) = logs_of(n)
    assert (entry["status"], entry["reason"], entry["lines"]) == ("empty", "no matching log lines", [])
    assert loki_standin.query_count == 1


async def test_empty_compatible_selector_is_refused_before_sending_with_a_log_line(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url))
    node_alert = alert("fpnode", {"alertname": "NodeDown", "instance": "10.0.0.1:9100"})
    ok_alert = alert("fpok", WORKLOAD)
    n = notification([node_alert, ok_alert])
    with capture_logs() as logs:
        await stage(n)
    refused = [e for e in logs_of(n) if e["fingerprints"] == ["fpnode"]]
    (entry,) = refused
    assert entry["status"] == "unavailable"
    assert entry["query"] == '{namespace="", app=""} ' + ERR
    assert entry["reason"].startswith("query refused before sending: every matcher of")
    assert "{{ app }} (tried app, app_kubernetes_io_name, deployment, job)" in entry["reason"]
    # only the good query reached Loki
    assert [q.query for q in loki_standin.queries] == ['{namespace="prod", app="model-api"} ' + ERR]
    (event,) = [e for e in logs if "refused before sending" in e["event"]]
    assert event["log_level"] == "warning"
    assert event["query"] == entry["query"] and event["fingerprint"] == "fpnode" and event["alertname"] == "NodeDown"


HOSTILE_NS = 'prod"} or {x=~".*'
HOSTILE_APP = 'a\\"b\nc.*(x|y)`{{ namespace }}'


async def test_hostile_label_values_cannot_alter_the_query(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    config = enrich_config(
        tmp_path,
        loki_standin.url,
        'query: \'{namespace="{{ namespace }}", app=~"{{ app }}"} |= "{{ app }}"\'',
    )
    stage = make_stage(config)
    now = time.time_ns()
    loki_standin.push({"namespace": HOSTILE_NS, "app": HOSTILE_APP, "pod": "p1"}, now - 2 * NS, f"boom {HOSTILE_APP}")
    loki_standin.push({"namespace": "prod", "app": "a", "pod": "p2"}, now - NS, f"other {HOSTILE_APP}")
    loki_standin.push({"namespace": HOSTILE_NS, "app": "ab", "pod": "p3"}, now - NS, f"near miss {HOSTILE_APP}")
    n = notification([alert("fp1", {"namespace": HOSTILE_NS, "app": HOSTILE_APP})])
    await stage(n)

    expected = (
        f'{{namespace="{escape_string(HOSTILE_NS)}", app=~"{escape_string(quote_meta(HOSTILE_APP))}"}}'
        f' |= "{escape_string(HOSTILE_APP)}"'
    )
    assert loki_standin.last_query.query == expected
    assert loki_standin.last_query.status == 200
    parsed = parse_logql(expected)
    assert [(m.name, m.op, m.value) for m in parsed.matchers] == [
        ("namespace", "=", HOSTILE_NS),
        ("app", "=~", quote_meta(HOSTILE_APP)),
    ]
    assert [(f.op, f.value) for f in parsed.filters] == [("|=", HOSTILE_APP)]
    (entry,) = logs_of(n)
    assert entry["query"] == expected
    assert [(line["pod"], line["line"]) for line in entry["lines"]] == [("p1", f"boom {HOSTILE_APP}")]


async def test_secrets_are_redacted_and_lines_trimmed(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, "max_line_chars: 70\nmax_total_chars: 400"))
    now = time.time_ns()
    labels = {"namespace": "prod", "app": "model-api", "pod": "p"}
    for i in range(30):
        loki_standin.push(labels, now - (40 - i) * NS, f"ERROR {i:02d} " + "x" * 100)
    loki_standin.push(labels, now - NS, "ERROR db connect password=hunter2 Authorization: Bearer eyAbc123.def")
    n = notification([alert("fp1", WORKLOAD)])
    await stage(n)
    (entry,) = logs_of(n)
    lines = [x["line"] for x in entry["lines"]]
    assert lines[-1] == f"ERROR db connect password={MASK} Authorization: Bearer {MASK}"
    assert "hunter2" not in json.dumps(n.extra)
    assert all(len(x) <= 70 for x in lines)
    assert lines[-2] == "ERROR 29 " + "x" * 60 + "…"
    assert sum(len(x) for x in lines) <= 400
    assert lines[0] == "ERROR 26 " + "x" * 60 + "…"  # the oldest lines gave way to the budget; newest last
    assert [x["ts"] for x in entry["lines"]] == sorted(x["ts"] for x in entry["lines"])


async def test_concurrency_limit_protects_loki(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, "max_concurrency: 2\nmax_queries: 10\ntimeout: 3s"))
    loki_standin.delay = 0.2
    n = notification([alert(f"fp{i}", {**WORKLOAD, "deployment": f"app-{i}"}) for i in range(6)])
    t = time.monotonic()
    await stage(n)
    elapsed = time.monotonic() - t
    assert loki_standin.query_count == 6
    assert elapsed >= 0.55  # 6 queries, 2 at a time, 0.2 s each: three rounds
    assert all(e["status"] == "empty" for e in logs_of(n))


async def test_queue_wait_counts_against_the_timeout(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, "max_concurrency: 1\nmax_queries: 10\ntimeout: 0.5s"))
    loki_standin.delay = 0.3
    n = notification([alert(f"fp{i}", {**WORKLOAD, "deployment": f"app-{i}"}) for i in range(4)])
    t = time.monotonic()
    await stage(n)
    assert time.monotonic() - t < 0.9
    statuses = [e["status"] for e in logs_of(n)]
    assert statuses[0] == "empty" and statuses[-1] == "unavailable"
    assert logs_of(n)[-1]["reason"].startswith("timeout")


async def test_distinct_queries_per_notification_are_capped(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, "max_queries: 2"))
    n = notification([alert(f"fp{i}", {**WORKLOAD, "deployment": f"app-{i}"}) for i in range(3)])
    await stage(n)
    assert loki_standin.query_count == 2
    last = logs_of(n)[-1]
    assert last["fingerprints"] == ["fp2"] and last["status"] == "unavailable"
    assert last["reason"] == "not queried: more than 2 distinct log queries in one notification"


async def test_links_per_fingerprint(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url))
    n = notification(
        [
            alert("fp1", WORKLOAD),
            alert("fp2", {"alertname": "NodeDown"}, generator="javascript:alert(1)"),
        ]
    )
    await stage(n)
    links = n.extra["enrichment"]["links"]
    assert set(links) == {"fp1", "fp2"}
    g = urlsplit(links["fp1"]["grafana"])
    assert g.netloc == "grafana.example" and g.path == "/explore"
    (pane,) = json.loads(parse_qs(g.query)["panes"][0]).values()
    rec = loki_standin.last_query
    assert pane["queries"][0]["expr"] == rec.query
    assert pane["range"] == {
        "from": str(int(rec.params["start"]) // 1_000_000),
        "to": str(int(rec.params["end"]) // 1_000_000),
    }
    assert links["fp1"]["generator"] == "http://prometheus:9090/graph?g0.expr=up"
    assert links["fp1"]["silence"].startswith("http://alertmanager.monitoring:9093/#/silences/new?filter=%7B")
    # no query for the node alert (refused), no unsafe generator URL
    assert links["fp2"]["grafana"] == "" and links["fp2"]["generator"] == ""
    assert links["fp2"]["alertmanager"].startswith("http://alertmanager.monitoring:9093/#/alerts?filter=")
    # without an externalURL in the webhook the configured links.alertmanager_url is used
    n2 = notification([alert("fp3", WORKLOAD)], external_url="")
    await stage(n2)
    assert n2.extra["enrichment"]["links"]["fp3"]["alertmanager"].startswith("http://am.example:9093/#/alerts")


async def test_resolved_alert_window_ends_at_ends_at(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, "window_step: 1s\nlookback: 5m"))
    starts = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    ends = starts + timedelta(minutes=7)
    n = notification([alert("fp1", WORKLOAD, starts=starts, ends=ends)])
    await stage(n)
    rec = loki_standin.last_query
    assert int(rec.params["start"]) == ns(starts - timedelta(minutes=5))
    assert int(rec.params["end"]) == ns(ends)


RULES_WITH_OVERRIDES = """\
rules:
  - name: quiet
    match: ['alertname="Quiet"']
    receivers: [file]
    enrich: {loki: null}
  - name: small
    match: ['alertname="Small"']
    receivers: [file]
    enrich:
      loki: {limit: 7, labels: {app: [service]}}
  - name: everything
    match: []
    receivers: [file]
default:
  receivers: [file]
"""


async def test_rule_enrich_blocks_override_the_default(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, rules=RULES_WITH_OVERRIDES))
    quiet = notification([alert("fq", {**WORKLOAD, "alertname": "Quiet"})], rule="quiet")
    await stage(quiet)
    assert quiet.extra["enrichment"]["logs"] == [] and "fq" in quiet.extra["enrichment"]["links"]
    assert loki_standin.query_count == 0
    small = notification([alert("fs", {"alertname": "Small", "namespace": "prod", "service": "svc"})], rule="small")
    await stage(small)
    assert loki_standin.last_query.params["limit"] == "7"
    assert loki_standin.last_query.query == '{namespace="prod", app="svc"} ' + ERR
    # the default route and unknown rules use the global settings
    other = notification([alert("fd", WORKLOAD)], rule="default")
    await stage(other)
    assert loki_standin.last_query.params["limit"] == "50"


async def test_loki_not_configured_means_links_only_and_no_network(tmp_path: Path) -> None:
    config = enrich_config(tmp_path, "${LOKI_URL:-}")
    assert not config.settings.enrich.loki_enabled
    stage = EnrichmentStage(config)
    try:
        n = notification([alert("fp1", WORKLOAD)])
        await stage(n)
        assert n.extra["enrichment"]["logs"] == []
        assert set(n.extra["enrichment"]["links"]["fp1"]) == {"grafana", "alertmanager", "silence", "generator"}
        assert stage._session is None
    finally:
        await stage.aclose()


async def test_a_cached_wider_window_answers_a_narrower_one_cut_to_its_window(
    loki_standin: LokiStandin, tmp_path: Path, make_stage: Callable[[Config], EnrichmentStage]
) -> None:
    stage = make_stage(enrich_config(tmp_path, loki_standin.url, "window_step: 1s\nlookback: 1m"))
    t0 = datetime(2026, 1, 2, 3, 0, 0, tzinfo=UTC)
    labels = {"namespace": "prod", "app": "model-api", "pod": "p"}
    for minute in range(10):
        loki_standin.push(labels, ns(t0 + timedelta(minutes=minute)), f"ERROR at minute {minute}")
    wide = notification([alert("a", WORKLOAD, starts=t0 + timedelta(minutes=1), ends=t0 + timedelta(minutes=9))])
    await stage(wide)
    assert loki_standin.query_count == 1
    narrow = notification([alert("b", WORKLOAD, starts=t0 + timedelta(minutes=4), ends=t0 + timedelta(minutes=6))])
    await stage(narrow)
    assert loki_standin.query_count == 1  # answered from the wider window...
    got = [x["line"] for x in logs_of(narrow)[0]["lines"]]
    assert got == ["ERROR at minute 3", "ERROR at minute 4", "ERROR at minute 5"]  # ...cut to [start-1m, end)
    earlier = notification([alert("c", WORKLOAD, starts=t0, ends=t0 + timedelta(minutes=2))])
    await stage(earlier)
    assert loki_standin.query_count == 2  # not covered: starts before the cached window
    outside = notification([alert("d", WORKLOAD, starts=t0 + timedelta(minutes=20), ends=t0 + timedelta(minutes=21))])
    await stage(outside)
    assert loki_standin.query_count == 3
    assert logs_of(outside)[0]["status"] == "empty"
