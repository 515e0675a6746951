"""The ingest planner on the shipped configuration: what one webhook body turns into."""

import json
from pathlib import Path

from alert_router.config import load
from alert_router.models import parse_payload
from alert_router.pipeline.ingest import planner
from tests.helpers import fixture_bytes, fixture_json

ROOT = Path(__file__).resolve().parents[2]


def test_switched_off_receivers_get_no_work_on_the_shipped_config() -> None:
    """slack, telegram and email are off by default: a critical group plans nothing for them."""
    config = load(ROOT / "alert-router.yaml", {})
    assert not config.delivers_to("slack") and config.delivers_to("file")
    body = fixture_bytes("firing-service-down.json")
    payload = parse_payload(body)
    items = planner(config, payload, 0.0)(frozenset(a.fingerprint for a in payload.alerts))
    notify = sorted(i.dest for i in items if i.kind == "notify")
    assert notify == ["console", "file"]
    (runbook,) = [i for i in items if i.kind == "runbook"]  # one item per body and runbook, a trigger per alert
    assert runbook.dest == "restart-model-api" and len(runbook.payload["triggers"]) == len(payload.alerts)
    assert {i.priority for i in items if i.kind == "notify"} == {0}  # ModelServiceDown is critical


def test_switched_on_receivers_get_their_items() -> None:
    config = load(ROOT / "alert-router.yaml", {"SLACK_ENABLED": "true", "SLACK_BOT_TOKEN": "xoxb-1",
                                               "SLACK_CHANNEL": "C1"})
    payload = parse_payload(fixture_bytes("firing-service-down.json"))
    items = planner(config, payload, 0.0)(frozenset(a.fingerprint for a in payload.alerts))
    assert sorted(i.dest for i in items if i.kind == "notify") == ["console", "file", "slack"]


def test_priority_follows_the_most_severe_alert_of_the_receivers_share() -> None:
    config = load(ROOT / "alert-router.yaml", {})
    body = fixture_json("firing-latency-truncated.json")  # warnings
    payload = parse_payload(json.dumps(body).encode())
    items = planner(config, payload, 0.0)(frozenset(a.fingerprint for a in payload.alerts))
    assert {i.priority for i in items if i.kind == "notify"} == {2}
