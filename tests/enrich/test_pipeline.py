"""Through the real service: a webhook goes in, the file receiver's JSON line carries the log excerpt."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alert_router.enrich.logql import escape_string
from tests.enrich.support import NS, enrich_config, ns
from tests.helpers import fixture_json, read_jsonl, running_app, wait_for
from tests.standins.loki import LokiStandin, parse_logql

ERR = '|~ "(?i)(error|exception|traceback|fatal)"'


def body(starts: datetime, labels: dict[str, str] | None = None) -> bytes:
    """The captured ModelServiceDown webhook, starting at ``starts`` (optionally with other labels)."""
    data: dict[str, Any] = fixture_json("firing-service-down.json")
    data["alerts"][0]["startsAt"] = starts.isoformat().replace("+00:00", "Z")
    if labels is not None:
        data["alerts"][0]["labels"] = labels
        data["commonLabels"] = labels
    return json.dumps(data).encode()


async def deliver(tmp_path: Path, config: Any, payload: bytes, timeout: float = 8.0) -> tuple[dict[str, Any], float]:
    out = tmp_path / "data" / "out.jsonl"
    async with running_app(config) as (client, _):
        t = time.monotonic()
        r = await client.post("/webhook", data=payload, headers={"Content-Type": "application/json"})
        assert r.status == 200
        await wait_for(lambda: read_jsonl(out), timeout=timeout)
        elapsed = time.monotonic() - t
    (record,) = read_jsonl(out)
    return record, elapsed


async def test_excerpt_appears_in_the_file_receivers_output(loki_standin: LokiStandin, tmp_path: Path) -> None:
    starts = datetime.now(UTC) - timedelta(minutes=1)
    base = ns(starts)
    labels = {"namespace": "prod", "app": "model-api"}
    loki_standin.push({**labels, "pod": "model-api-7d9f-1"}, base - 5 * NS, "ERROR CUDA error: out of memory")
    loki_standin.push({**labels, "pod": "model-api-7d9f-2"}, base - 3 * NS, "INFO request served")
    loki_standin.push({**labels, "pod": "model-api-7d9f-2"}, base - 2 * NS, "Exception in worker: token=abc123XYZ")
    config = enrich_config(tmp_path, loki_standin.url)
    record, _ = await deliver(tmp_path, config, body(starts))

    enrichment = record["extra"]["enrichment"]
    (entry,) = enrichment["logs"]
    assert entry["query"] == '{namespace="prod", app="model-api"} ' + ERR
    assert entry["status"] == "ok" and entry["fingerprints"] == ["2bb1035c662c69e0"]
    assert [(x["pod"], x["line"]) for x in entry["lines"]] == [
        ("model-api-7d9f-1", "ERROR CUDA error: out of memory"),
        ("model-api-7d9f-2", "Exception in worker: token=[REDACTED]"),
    ]
    links = enrichment["links"]["2bb1035c662c69e0"]
    assert links["generator"] == "http://prometheus:9090/graph?g0.expr=rate%28model_requests_total%5B5m%5D%29+%3C+1"
    assert links["silence"].startswith("http://alertmanager.monitoring:9093/#/silences/new?filter=")
    assert links["grafana"].startswith("http://grafana.example/explore?schemaVersion=1&panes=")
    assert loki_standin.query_count == 1


async def test_loki_failing_still_delivers_saying_why(loki_standin: LokiStandin, tmp_path: Path) -> None:
    loki_standin.fail_next(5, status=500, body="too many outstanding requests")
    config = enrich_config(tmp_path, loki_standin.url)
    record, _ = await deliver(tmp_path, config, body(datetime.now(UTC)))
    (entry,) = record["extra"]["enrichment"]["logs"]
    assert entry["status"] == "unavailable"
    assert entry["reason"] == "server_error: HTTP 500: too many outstanding requests"
    assert record["alerts"][0]["labels"]["alertname"] == "ModelServiceDown"


async def test_slow_loki_delays_the_notification_no_more_than_the_timeout(
    loki_standin: LokiStandin, tmp_path: Path
) -> None:
    loki_standin.delay = 5.0
    config = enrich_config(tmp_path, loki_standin.url, "timeout: 0.5s")
    record, elapsed = await deliver(tmp_path, config, body(datetime.now(UTC)))
    (entry,) = record["extra"]["enrichment"]["logs"]
    assert entry["status"] == "unavailable" and entry["reason"] == "timeout: Loki did not answer within 0.5s"
    assert elapsed < 0.5 + 1.5  # the bound plus intake and file write, far below Loki's 5 s


async def test_hostile_labels_in_a_webhook_cannot_alter_the_query(loki_standin: LokiStandin, tmp_path: Path) -> None:
    hostile_ns = 'prod"} or {namespace=~".+'
    hostile_app = 'x\\" |= "\n.*'
    labels = {"alertname": "ModelServiceDown", "namespace": hostile_ns, "app": hostile_app, "severity": "critical"}
    config = enrich_config(tmp_path, loki_standin.url)
    record, _ = await deliver(tmp_path, config, body(datetime.now(UTC), labels))
    sent = loki_standin.last_query.query
    assert sent == f'{{namespace="{escape_string(hostile_ns)}", app="{escape_string(hostile_app)}"}} {ERR}'
    parsed = parse_logql(sent or "")
    assert [(m.name, m.op, m.value) for m in parsed.matchers] == [
        ("namespace", "=", hostile_ns),
        ("app", "=", hostile_app),
    ]
    assert [(f.op, f.value) for f in parsed.filters] == [("|~", "(?i)(error|exception|traceback|fatal)")]
    assert record["extra"]["enrichment"]["logs"][0]["status"] == "empty"


async def test_default_config_without_loki_sends_links_and_no_query(tmp_path: Path) -> None:
    config = enrich_config(tmp_path, "${LOKI_URL:-}")
    record, _ = await deliver(tmp_path, config, body(datetime.now(UTC)))
    enrichment = record["extra"]["enrichment"]
    assert enrichment["logs"] == []
    assert enrichment["links"]["2bb1035c662c69e0"]["alertmanager"].startswith("http://alertmanager.monitoring:9093/")
