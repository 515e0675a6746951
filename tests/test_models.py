"""Webhook payload validation against real Alertmanager bodies and broken ones."""

import json
from pathlib import Path

import pytest

from alert_router.errors import PayloadError
from alert_router.models import parse_payload

# Bodies captured from a real Alertmanager 0.25 (see tests/fixtures/alertmanager-0.25/README.md).
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "alertmanager-0.25"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
def test_real_bodies_parse(name: str) -> None:
    p = parse_payload((FIXTURES / name).read_bytes())
    assert p.version == "4" and p.alerts and p.group_key.startswith("{}:")


def test_firing_alert_has_no_end() -> None:
    p = parse_payload((FIXTURES / "firing-service-down.json").read_bytes())
    assert p.alerts[0].ends_at_or_none() is None
    r = parse_payload((FIXTURES / "resolved-service-down.json").read_bytes())
    assert r.alerts[0].ends_at_or_none() is not None
    assert p.alerts[0].fingerprint == r.alerts[0].fingerprint


def test_unknown_fields_accepted() -> None:
    body = fixture("firing-service-down.json")
    body["notification_reason"] = "new"
    body["routeLabels"] = {"x": "y"}
    body["alerts"][0]["somethingNew"] = 1
    assert parse_payload(json.dumps(body).encode()).alerts[0].fingerprint == "2bb1035c662c69e0"


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: b.update(version="3"), "version"),
        (lambda b: b.pop("groupKey"), "groupKey"),
        (lambda b: b.update(alerts=[]), "alerts"),
        (lambda b: b["alerts"][0].update(status="pending"), "alerts.0.status"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda b: b["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
        (lambda b: b["alerts"][0].update(labels={"a": 1}), "alerts.0.labels.a"),
    ],
)
def test_bad_shapes_name_the_field(mutate, field: str) -> None:
    body = fixture("firing-service-down.json")
    mutate(body)
    with pytest.raises(PayloadError) as info:
        parse_payload(json.dumps(body).encode())
    assert info.value.field == field


def test_an_alert_without_labels_is_refused_in_plain_words() -> None:
    body = fixture("firing-service-down.json")
    body["alerts"][0]["labels"] = {}
    with pytest.raises(PayloadError, match=r"alerts\.0\.labels: an alert needs at least one label") as info:
        parse_payload(json.dumps(body).encode())
    assert info.value.field == "alerts.0.labels"


@pytest.mark.parametrize("raw", [b"", b"{", b"[]", b"null", b"\xff\xfe"])
def test_not_json_object(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        parse_payload(raw)
