"""An escalation page says so on every default renderer: that it escalates, for how long nobody acked, which step."""

from __future__ import annotations

import json

from alert_router.channels.discord import build_embed
from alert_router.channels.opsgenie import OpsgenieChannel
from alert_router.channels.pagerduty import PagerDutyChannel, PagerDutyConfig
from alert_router.channels.teams import build_card
from alert_router.channels.webhook import default_body
from alert_router.render import Template, build_context, defaults
from alert_router.render.slack_blocks import build_blocks, fallback_text
from tests.channels.helpers import alert, notification

ESCALATION = {"rule": "model_serving", "step": 2, "repeat": 3, "after": 600.0, "unacked_for": 1830.0}


def _ctx() -> dict:  # type: ignore[type-arg]
    return build_context(notification([alert()], extra={"escalation": dict(ESCALATION)}))


def test_context_exposes_the_escalation_for_custom_templates() -> None:
    """`escalation` holds step, repeat, rule and the unacked time; a plain notification has None."""
    ctx = _ctx()
    e = ctx["escalation"]
    assert (e["step"], e["repeat"], e["rule"], e["unacked_for"], e["after"]) == (2, 3, "model_serving", "30m", "10m")
    assert ctx["title"].startswith("[ESCALATION 2/3] [FIRING:1] ModelServiceDown")
    custom = "{{ escalation.step }}/{{ escalation.repeat }} {{ escalation.unacked_for }}"
    out = Template("text", "x", custom).render(ctx)
    assert out == "2/3 30m"
    assert build_context(notification())["escalation"] is None


def test_slack_telegram_and_email_defaults_say_it_is_an_escalation() -> None:
    ctx = _ctx()
    slack = Template("mrkdwn", defaults.SLACK_BODY).render(ctx)
    assert "*Escalation 2 of 3*: not acknowledged for *30m*" in slack and "`model_serving`" in slack
    blocks, _ = build_blocks(ctx, slack)
    assert blocks[0]["text"]["text"].startswith("🔴 [ESCALATION 2/3]")
    assert "ESCALATION 2/3" in fallback_text(ctx)
    telegram = Template("html", defaults.TELEGRAM).render(ctx)
    assert "[ESCALATION 2/3]" in telegram.splitlines()[0]
    assert "<b>Escalation 2 of 3</b>: not acknowledged for <b>30m</b>" in telegram
    text = Template("text", defaults.EMAIL_TEXT).render(ctx)
    assert "ESCALATION: Escalation 2 of 3: not acknowledged for 30m (rule model_serving escalates after 10m)" in text
    assert Template("text", defaults.EMAIL_SUBJECT).render(ctx).startswith("[ESCALATION 2/3]")
    assert "<b>Escalation 2 of 3</b>" in Template("html", defaults.EMAIL_HTML).render(ctx)


def test_webhook_body_has_an_escalation_field() -> None:
    body = default_body(_ctx())
    assert body["escalation"]["step"] == 2 and body["escalation"]["unacked_for_seconds"] == 1830.0
    assert default_body(build_context(notification()))["escalation"] is None
    fallback = json.loads(Template("json", defaults.WEBHOOK).render(_ctx()))
    assert fallback["escalation"]["rule"] == "model_serving"


def test_pager_teams_and_discord_say_it_is_an_escalation() -> None:
    ctx = _ctx()
    embed = build_embed(ctx)
    assert "ESCALATION 2/3" in embed["title"] and "**Escalation 2 of 3**" in embed["description"]
    card = build_card(ctx)
    assert any("Escalation 2 of 3" in b.get("text", "") for b in card["body"])
    pd = PagerDutyChannel("pd", PagerDutyConfig(routing_key="k" * 32))
    event = pd.trigger(notification([alert()], extra={"escalation": dict(ESCALATION)}), "d")
    assert event["payload"]["summary"].startswith("[ESCALATION 2/3]")
    assert "not acknowledged for 30m" in event["payload"]["custom_details"]["escalation"]
    assert "not acknowledged for 30m" in OpsgenieChannel.details(ctx)["escalation"]


FAILED_RUN = {
    "run_id": "7", "runbook": "restart-model-api", "status": "failed", "dry_run": False,
    "summary": "step 1 (rollout_restart) failed: 403 Forbidden: nope",
    "failure": {"step": "1 (rollout_restart)", "action": "rollout_restart", "reason": "auth",
                "error": '403 Forbidden: deployments.apps "model-api" is forbidden',
                "outcome": "run failed at step 1 of 3; 2 later steps not run",
                "next": "grant it in its Role or act by hand"},
}


def test_failed_run_says_which_step_failed_why_and_what_next() -> None:
    """The failed step, the Kubernetes message, the outcome and the next step reach the context and every default."""
    n = notification([alert()], extra={"runbook_runs": [FAILED_RUN], "runbook_message": "runbook failed, see above"})
    ctx = build_context(n)
    assert ctx["runbook_runs"][0]["failure"]["step"] == "1 (rollout_restart)"
    assert ctx["runbook_message"] == "runbook failed, see above"
    slack = Template("mrkdwn", defaults.SLACK_BODY).render(ctx)
    assert "*Failed step* `1 (rollout_restart)`: 403 Forbidden" in slack and "*Next:* grant it" in slack
    telegram = Template("html", defaults.TELEGRAM).render(ctx)
    assert "<b>Outcome:</b> run failed at step 1 of 3" in telegram and "💬 runbook failed, see above" in telegram
    text = Template("text", defaults.EMAIL_TEXT).render(ctx)
    assert "Failed step: 1 (rollout_restart)" in text and "Next:        grant it" in text
    assert "Error</td><td>403 Forbidden" in Template("html", defaults.EMAIL_HTML).render(ctx)
    assert "**Next:** grant it" in build_embed(ctx)["description"]
