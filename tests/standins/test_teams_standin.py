"""The Teams stand-in answers like a Workflows webhook: 202 first, the card posted or the run failed after."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.standins.teams import TeamsStandin


def card(*texts: str, **extra: Any) -> dict[str, Any]:
    return {"type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": t, "wrap": True} for t in texts], **extra}


def message(content: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": content}]}


async def post(url: str, body: Any = None, data: bytes | None = None) -> tuple[int, Any, dict[str, str]]:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, data=data) as resp:
        text = await resp.text()
        return resp.status, text, dict(resp.headers)


async def test_valid_card_is_accepted_with_202_and_posted(teams_standin: TeamsStandin) -> None:
    actions = [{"type": "Action.OpenUrl", "title": "Silence", "url": "http://am/#/silences/new"}]
    status, text, _ = await post(teams_standin.webhook_url, message(card("Disk full", actions=actions)))
    assert (status, text) == (202, "")
    [posted] = teams_standin.cards
    assert posted.texts == ["Disk full"] and posted.actions == actions
    assert teams_standin.failed_runs == []


async def test_bad_cards_are_accepted_but_the_run_fails(teams_standin: TeamsStandin) -> None:
    """The caller gets 202 either way: a bad card, a wrong body shape or a 29 KB message fail the run later."""
    bad = [
        message(card("x", version="1.6")),
        message({"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "Marquee", "text": "x"}]}),
        message(card("x", actions=[{"type": "Action.OpenUrl", "title": "x", "url": "javascript:alert(1)"}])),
        {"text": "an old connector MessageCard"},
        message(card("y" * (29 * 1024))),
    ]
    for body in bad:
        assert (await post(teams_standin.webhook_url, body))[0] == 202
    assert teams_standin.cards == []
    assert len(teams_standin.failed_runs) == 5
    assert teams_standin.failed_runs[-1].startswith("MessageSizeTooLarge")


async def test_signature_workflow_and_json_are_checked(teams_standin: TeamsStandin) -> None:
    url = teams_standin.webhook_url
    assert (await post(url.replace(teams_standin.signature, "forged"), message(card("x"))))[0] == 401
    assert (await post(url.split("&sig=")[0], message(card("x"))))[0] == 401
    assert (await post(url, data=b"{not json"))[0] == 400
    teams_standin.delete_workflow()
    status, text, _ = await post(url, message(card("x")))
    assert status == 404 and "WorkflowNotFound" in text
    assert teams_standin.cards == []


async def test_throttling_is_429_with_retry_after(teams_standin: TeamsStandin) -> None:
    teams_standin.enforce_rate(1.0, burst=1)
    assert (await post(teams_standin.webhook_url, message(card("a"))))[0] == 202
    status, text, headers = await post(teams_standin.webhook_url, message(card("b")))
    assert status == 429 and headers["Retry-After"] == "1" and "WorkflowRequestsThrottled" in text
    assert [c.texts for c in teams_standin.cards] == [["a"]]
