# ruff: noqa: RUF001 - the look-alike backtick is what Slack code spans show
"""Escaping, the template sandbox and its fallback, durations, button encoding and the Slack block limits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from alert_router.render import (
    Template,
    build_context,
    check_template,
    decode_action,
    defaults,
    encode_action,
    format_duration,
)
from alert_router.render.actions import Action, message_actions
from alert_router.render.escape import html_link, mrkdwn_code, mrkdwn_escape, mrkdwn_link
from alert_router.render.slack_blocks import SECTION_LIMIT, build_blocks, split_mrkdwn
from tests.channels.helpers import HOSTILE, T0, alert, notification
from tests.standins.slack import validate_blocks


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (45, "45s"), (60, "1m"), (12 * 60 + 30, "12m"), (3 * 3600 + 12 * 60 + 5, "3h12m"), (7200, "2h"),
     (2 * 86400 + 4 * 3600, "2d4h"), (86400, "1d"), (-5, "0s")],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_mrkdwn_escaping() -> None:
    """& < > become entities; words with formatting characters become code spans; code spans keep text verbatim."""
    assert mrkdwn_escape("<!channel> & <@U1>") == "&lt;!channel&gt; &amp; &lt;@U1&gt;"
    assert mrkdwn_escape("*a* _b_") == "`*a*` `_b_`"
    assert mrkdwn_code("a`b\nc <x>") == "`aˋb c &lt;x&gt;`"
    assert mrkdwn_link("http://x/?a=1&b=|>", "Go <now>") == "<http://x/?a=1&amp;b=%7C%3E|Go &lt;now&gt;>"
    assert mrkdwn_link("javascript:alert(1)", "x") == "x"


def test_html_link_refuses_non_http() -> None:
    assert str(html_link("javascript:alert(1)", "<x>")) == "&lt;x&gt;"
    assert str(html_link('http://a/"b', "t")) == '<a href="http://a/&#34;b">t</a>'


def test_context_reads_the_contracts() -> None:
    """Enrichment logs/links, runbook runs and acks land in the context; missing contracts are empty."""
    a = alert()
    n = notification([a], extra={
        "enrichment": {"logs": [{"query": "q", "status": "empty", "reason": None, "lines": [],
                                 "fingerprints": [a.fingerprint]}],
                       "links": {a.fingerprint: {"grafana": "http://g/1"}}},
        "runbook_runs": [{"run_id": "1", "runbook": "rb", "status": "failed", "summary": "x", "dry_run": False}],
        "acked_by": {a.fingerprint: "bob"},
    })
    ctx = build_context(n, links={"alertmanager_url": "http://am"})
    [c] = ctx["alerts"]
    assert c["links"]["grafana"] == "http://g/1" and c["acked_by"] == "bob" and c["marker"] == "👀"
    assert ctx["acked"] is True and ctx["logs"][0]["status"] == "empty"
    assert ctx["runbook_runs"][0]["runbook"] == "rb"
    assert c["duration"] == "40m" and c["short_id"] == a.fingerprint[:8]
    plain = build_context(notification())
    assert plain["logs"] == [] and plain["runbook_runs"] == [] and plain["acked"] is False


def test_resolved_group_says_how_long_it_fired() -> None:
    n = notification([alert(status="resolved", starts=T0, ends=T0 + timedelta(hours=3, minutes=12))])
    ctx = build_context(n)
    assert ctx["resolved"] and ctx["fired_for"] == "3h12m" and ctx["title"].startswith("[RESOLVED]")
    assert "fired for 3h12m" in Template("html", defaults.TELEGRAM).render(ctx)


def test_sandbox_blocks_escape_attempts_and_falls_back() -> None:
    """Reaching into Python from a template is a sandbox violation: the default is rendered instead."""
    errors: list[str] = []
    t = Template("text", "default {{ count }}", "{{ ''.__class__.__mro__[1].__subclasses__() }}", name="x")
    assert t.render({"count": 3}, errors) == "default 3"
    assert errors and "SecurityError" in errors[0]


def test_template_autoescapes_per_dialect() -> None:
    """html escapes, mrkdwn escapes (filters excepted), json quotes, text leaves values alone."""
    ctx = {"v": "<b>&*x*</b>"}
    assert Template("html", "{{ v }}").render(ctx) == "&lt;b&gt;&amp;*x*&lt;/b&gt;"
    assert Template("mrkdwn", "{{ v }} {{ v|code }}").render(ctx) == (
        "`&lt;b&gt;&amp;*x*&lt;/b&gt;` `&lt;b&gt;&amp;*x*&lt;/b&gt;`"
    )
    assert Template("json", '{"a": {{ v }}}').render(ctx) == '{"a": "<b>&*x*</b>"}'
    assert Template("text", "{{ v }}").render(ctx) == "<b>&*x*</b>"


def test_check_template_names_the_line() -> None:
    check_template("{{ title }}", "html")
    with pytest.raises(ValueError, match="line 2"):
        check_template("ok\n{% for %}", "mrkdwn")


def test_action_encoding_round_trips_within_64_bytes() -> None:
    value = encode_action(Action.SILENCE_1H, "2bb1035c", "5f1e0a9d")
    assert value == "ar1:sil1h:2bb1035c:5f1e0a9d" and len(value.encode()) <= 64
    ref = decode_action(value)
    assert ref is not None and ref.action is Action.SILENCE_1H and ref.alert == "2bb1035c" and not ref.whole_group
    whole = decode_action(encode_action(Action.ACK, None, "5f1e0a9d"))
    assert whole is not None and whole.whole_group
    assert decode_action("ar1:rm:x:5f1e0a9d") is None and decode_action("hello") is None
    assert message_actions(False, ["a"], "g") == []
    assert [a for a, _ in message_actions(True, ["a", "b"], "5f1e0a9d", runbook=True)] == [
        Action.ACK, Action.SILENCE_1H, Action.SILENCE_4H, Action.SILENCE_24H, Action.RUNBOOK]
    assert Action.RUNBOOK not in [a for a, _ in message_actions(True, ["a"], "5f1e0a9d")]
    assert decode_action("ar1:sil24h:2bb1035c:5f1e0a9d") is not None


def test_split_mrkdwn_respects_the_section_limit_and_code_blocks() -> None:
    text = "intro\n```" + "\n".join(f"line {i} " + "x" * 80 for i in range(100)) + "```\n" + "y" * 7000
    chunks = split_mrkdwn(text)
    assert all(0 < len(c) <= SECTION_LIMIT for c in chunks)
    assert all(c.count("```") % 2 == 0 for c in chunks)
    assert "".join(c.replace("```", "") for c in chunks).replace("\n", "").count("x" * 80) == 100


def test_every_channel_default_renders_hostile_values() -> None:
    """All default templates render hostile values without error; Slack blocks stay valid."""
    n = notification([alert(labels=HOSTILE, annotations={"summary": HOSTILE["angle"], "description": HOSTILE["amp"]})])
    ctx = build_context(n)
    sources = (("mrkdwn", defaults.SLACK_BODY), ("html", defaults.TELEGRAM), ("html", defaults.EMAIL_HTML),
               ("text", defaults.EMAIL_TEXT), ("text", defaults.EMAIL_SUBJECT), ("json", defaults.WEBHOOK))
    for dialect, source in sources:
        errors: list[str] = []
        out = Template(dialect, source).render(ctx, errors)  # type: ignore[arg-type]
        assert out and not errors
        if dialect == "html":
            assert "<b>bold</b>" not in out and "&lt;b&gt;bold&lt;/b&gt;" in out
    blocks, _ = build_blocks(ctx, Template("mrkdwn", defaults.SLACK_BODY).render(ctx))
    assert validate_blocks(blocks) == []


def test_pending_approval_gets_approve_and_deny_buttons_on_slack_and_telegram() -> None:
    """A run waiting for approval is shown with buttons that decode to `runbook approve/deny <run id>`."""
    from alert_router.channels.telegram import TelegramChannel, TelegramConfig
    from alert_router.chat.buttons import decode_button

    runs = [{"run_id": 7, "runbook": "retrain-on-drift", "status": "pending_approval", "summary": "", "dry_run": True},
            {"run_id": 8, "runbook": "scale-up", "status": "succeeded", "summary": "", "dry_run": True}]
    n = notification([alert()], extra={"runbook_runs": runs})
    blocks, _ = build_blocks(build_context(n), "body")
    values = [e.get("value", "") for b in blocks if b["type"] == "actions" for e in b["elements"]]
    assert "ar1:apr:7" in values and "ar1:dny:7" in values
    assert not any(v.endswith(":8") for v in values)  # only the run that waits gets buttons
    assert validate_blocks(blocks) == []  # no Slack validation errors
    approve, deny = decode_button("ar1:apr:7"), decode_button("ar1:dny:7")
    assert approve is not None and approve.command == "runbook approve" and approve.run_id == 7
    assert deny is not None and deny.command == "runbook deny" and deny.run_id == 7

    channel = TelegramChannel("telegram", TelegramConfig(token="1:x", chat_id="-100"))
    _, keyboard, _ = channel.render(n)
    assert keyboard is not None
    data = [b.callback_data for row in keyboard.inline_keyboard for b in row]
    assert "ar1:apr:7" in data and "ar1:dny:7" in data
    # Without a pending run there are only the alert buttons.
    _, plain, _ = channel.render(notification([alert()]))
    assert plain is not None
    plain_data = [str(b.callback_data) for row in plain.inline_keyboard for b in row]
    assert not any(d.startswith(("ar1:apr", "ar1:dny")) for d in plain_data)


def test_promql_and_label_values_are_code_spans_in_slack_without_invisible_characters() -> None:
    """An expression copied out of Slack is the expression: code spans, no zero-width spaces."""
    expr = 'sum(rate(http_requests_total{job="model_api",code=~"5.."}[5m])) * 100 > 5'
    n = notification([alert(labels={"deployment": "model_api"},
                            annotations={"summary": "errors high", "description": f"Expression: {expr}"})])
    body = Template("mrkdwn", defaults.SLACK_BODY).render(build_context(n))
    assert "\u200b" not in body
    assert '`sum(rate(http_requests_total{job="model_api",code=~"5.."}[5m]))` `*` 100 &gt; 5' in body
    assert "`deployment=model_api`" in body
    assert mrkdwn_escape("rollout of model_api ~ done") == "rollout of `model_api` `~` done"
