"""The Teams channel against the Workflows webhook stand-in: the Adaptive Card, resolved cards, size, failures."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alert_router.channels.base import ChannelError
from alert_router.channels.teams import MAX_BYTES, TeamsChannel, TeamsConfig
from alert_router.errors import FailureReason
from tests.channels.helpers import alert, notification
from tests.standins.teams import TeamsStandin

LINKS = {"alertmanager_url": "http://am:9093", "grafana_url": "http://grafana"}


def make(standin: TeamsStandin, **kw: Any) -> TeamsChannel:
    return TeamsChannel("teams", TeamsConfig.model_validate({"webhook_url": standin.webhook_url, "timeout": 2, **kw}),
                        LINKS)


@pytest.fixture
async def teams(teams_standin: TeamsStandin) -> AsyncIterator[TeamsChannel]:
    channel = make(teams_standin)
    yield channel
    await channel.aclose()


async def test_card_has_the_slack_content_and_link_buttons(teams: TeamsChannel, teams_standin: TeamsStandin) -> None:
    a = alert(labels={"pod": "model-api-1"}, annotations={"summary": "Model service might be down!",
                                                          "description": "no traffic"})
    extra = {"enrichment": {"logs": [{"query": '{app="model-api"}', "status": "ok", "fingerprints": [],
                                      "lines": [{"ts": "1", "pod": "model-api-1", "line": "Traceback boom"}]}]},
             "runbook_runs": [{"run_id": "7", "runbook": "restart-model-api", "status": "succeeded"}]}
    assert await teams.send(notification([a], receiver="teams", extra=extra), None) is None
    assert teams_standin.failed_runs == []
    [card] = teams_standin.cards
    header = card.card["body"][0]
    assert header["text"] == "🔴 \\[FIRING:1\\] ModelServiceDown · prod" and header["color"] == "Attention"
    assert card.card["version"] == "1.4" and card.card["msteams"] == {"width": "Full"}
    assert "🔴 **ModelServiceDown** — Model service might be down!" in card.texts
    assert "pod: model-api-1" in card.texts and "namespace: prod" in card.texts
    assert "no traffic" in card.text and "model-api-1 Traceback boom" in card.text
    assert any("restart-model-api" in t and "**succeeded**" in t for t in card.texts)
    titles = [a["title"] for a in card.actions]
    assert titles == ["Silence in Alertmanager", "Prometheus graph", "Grafana", "Alertmanager"]
    assert all(a["type"] == "Action.OpenUrl" and a["url"].startswith("http") for a in card.actions)
    body = teams_standin.requests[0].params["body"]
    assert body["type"] == "message" and body["attachments"][0]["contentUrl"] is None
    assert body["attachments"][0]["contentType"] == "application/vnd.microsoft.card.adaptive"


async def test_resolution_posts_a_resolved_card(teams: TeamsChannel, teams_standin: TeamsStandin) -> None:
    """Teams cannot edit: the resolve is a second card, green, saying how long it fired, without buttons."""
    await teams.send(notification([alert()]), None)
    await teams.send(notification([alert(status="resolved")]), None)
    first, second = teams_standin.cards
    assert "FIRING" in first.texts[0]
    assert "RESOLVED" in second.texts[0] and "fired for 3h12m" in second.texts[0]
    assert second.card["body"][0]["color"] == "Good"


async def test_huge_group_fits_and_is_posted(teams: TeamsChannel, teams_standin: TeamsStandin) -> None:
    """400 alerts with long annotations: under 20,000 bytes (Teams drops cards over ~28 KB silently), posted."""
    alerts = [alert("HighModelLatency", severity="warning", labels={"pod": f"model-api-{i}"},
                    annotations={"summary": "s" * 400, "description": "d" * 2000}) for i in range(400)]
    await teams.send(notification(alerts), None)
    assert teams_standin.failed_runs == []
    [card] = teams_standin.cards
    assert teams_standin.requests[0].params["bytes"] <= MAX_BYTES
    assert "more alerts in this group" in card.text


async def test_hostile_values_stay_text(teams: TeamsChannel, teams_standin: TeamsStandin) -> None:
    evil = "**bold** [click](https://evil.example) # heading <at>everyone</at>"
    await teams.send(notification([alert(labels={"pod": evil}, annotations={"summary": evil})]), None)
    [card] = teams_standin.cards
    assert "**bold**" not in card.text and "[click](" not in card.text
    assert "\\*\\*bold\\*\\* \\[click\\](https://evil.example)" in card.text
    assert "<at>" not in card.text


@pytest.mark.parametrize(
    ("setup", "reason", "retryable", "retry_after"),
    [
        (lambda s: s.rate_limit_next(1, retry_after=3), FailureReason.RATE_LIMITED, True, 3.0),
        (lambda s: s.fail_next(1, 503), FailureReason.SERVER_ERROR, True, None),
        (lambda s: s.delete_workflow(), FailureReason.NOT_FOUND, False, None),
        (lambda s: s.workflows.update({s.workflow_id: "rotated"}), FailureReason.AUTH, False, None),
    ],
)
async def test_failures_are_classified(
    teams: TeamsChannel, teams_standin: TeamsStandin, setup: Any, reason: FailureReason, retryable: bool,
    retry_after: float | None,
) -> None:
    """429 after Retry-After; 5xx retryable; a deleted workflow or a rotated signature permanent; no secret shown."""
    setup(teams_standin)
    with pytest.raises(ChannelError) as err:
        await teams.send(notification(), None)
    assert (err.value.reason, err.value.retryable, err.value.retry_after) == (reason, retryable, retry_after)
    assert teams_standin.signature not in str(err.value)


async def test_digest_card_has_no_buttons(teams: TeamsChannel, teams_standin: TeamsStandin) -> None:
    from alert_router.pipeline.throttle import coalesce
    from alert_router.store.base import OutboxItem

    n = notification([alert(f"A{i}") for i in range(3)])
    [digest] = coalesce([OutboxItem(1, "notify", "teams", n.group_key, n.model_dump(mode="json"), 1, 0.0)],
                        "teams", teams.digest_capacity)
    await teams.send(digest, None)
    [card] = teams_standin.cards
    assert "actions" not in card.card and "3 alerts firing in prod" in card.texts[0]
    assert json.dumps(card.card).count("TextBlock") == 5  # headline, 3 alerts, footer


def test_config() -> None:
    TeamsConfig.model_validate({}, context={"enabled": False})
    with pytest.raises(ValueError, match="needs webhook_url"):
        TeamsConfig.model_validate({}, context={"enabled": True})
    with pytest.raises(ValueError, match="https"):
        TeamsConfig.model_validate({"webhook_url": "prod-00.westus.logic.azure.com/workflows/x"})
