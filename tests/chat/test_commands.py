"""What each command does: acks (and the re-rendered messages), silences, listings, runbooks, audit records."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from alert_router.chat.authz import Identity
from alert_router.render.actions import Action, encode_action
from alert_router.render.context import group_id
from tests.chat.conftest import ChatEnv
from tests.chat.support import FP, SHORT, alert_payload, ingest

RITA = Identity("slack", "URESP", "C0ALERTS", "rita.s")
ADAM = Identity("telegram", "103", "-1002", "adam")
VERA = Identity("slack", "UVIEWER", "C0ALERTS", "vera")
GROUP_KEY = '{}:{alertname="ModelServiceDown", namespace="prod"}'


async def test_ack_records_who_stops_nothing_twice_and_rerenders_the_message(chat_env: ChatEnv) -> None:
    reply = await chat_env.commands.execute_text(RITA, f"ack {SHORT}")
    assert reply.ok and reply.public
    assert reply.text.startswith(f"rita acked {SHORT} ModelServiceDown")
    alert = await chat_env.store.alert(FP)
    assert alert is not None and alert.acked_by == "rita" and alert.acked_at == chat_env.clock.now()
    assert chat_env.wakes, "the delivery stage is woken for the re-rendered message"
    depth = await chat_env.store.depth(time.time())
    assert depth.outbox.get("notify") == 2  # the original notification (still pending) and its re-render

    again = await chat_env.commands.execute_text(ADAM, f"ack {SHORT}")
    assert again.ok and "already acked by rita" in again.text
    records = [r for r in await chat_env.store.audit_records() if r.event.startswith("chat_")]
    assert [(r.actor, r.details["outcome"]) for r in records] == [("rita", "ok"), ("adam", "noop")]
    assert records[0].details["fingerprints"] == [FP] and records[0].details["messages_updated"] == 1


async def test_ack_enqueues_a_rerender_with_acked_by_for_each_receiver_message(chat_env: ChatEnv) -> None:
    # deliver the original notification first (claim + finish), as the delivery stage would
    (orig,) = await chat_env.store.claim_outbox("notify", "w", 10, 60, time.time())
    assert await chat_env.store.finish_outbox(orig, "w", ok=True, now=time.time(), message_ref={"ts": "1"})
    await chat_env.commands.execute_text(RITA, f"ack {SHORT}")
    (item,) = await chat_env.store.claim_outbox("notify", "w", 10, 60, time.time())
    assert (item.dest, item.group_key) == ("file", GROUP_KEY)
    assert item.payload["extra"]["acked_by"] == {FP: "rita"}
    assert item.payload["changed"] == [FP]
    assert [a["fingerprint"] for a in item.payload["alerts"]] == [FP]


async def test_ack_of_resolved_unknown_and_ambiguous_ids(chat_env: ChatEnv) -> None:
    await ingest(chat_env.store, chat_env.config, alert_payload(status="resolved"))
    resolved = await chat_env.commands.execute_text(RITA, f"ack {SHORT}")
    assert not resolved.ok and "resolved: nothing to ack" in resolved.text
    unknown = await chat_env.commands.execute_text(RITA, "ack ffffffff")
    assert not unknown.ok and "No alert with id ffffffff" in unknown.text
    await ingest(chat_env.store, chat_env.config, alert_payload("aaaa111100000000", alertname="A"))
    await ingest(chat_env.store, chat_env.config, alert_payload("aaaa222200000000", alertname="B"))
    ambiguous = await chat_env.commands.execute_text(RITA, "ack aaaa")
    assert not ambiguous.ok and "matches 2 alerts" in ambiguous.text
    exact = await chat_env.commands.execute_text(RITA, "ack aaaa2")
    assert exact.ok and "aaaa2222 B" in exact.text


async def test_ack_button_for_a_whole_group_acks_every_firing_alert_in_it(chat_env: ChatEnv) -> None:
    await ingest(chat_env.store, chat_env.config, alert_payload("cccc000000000001", labels={"pod": "p1"}))
    other_group = alert_payload("dddd000000000001", alertname="Other")
    await ingest(chat_env.store, chat_env.config, other_group)
    reply = await chat_env.commands.execute_button(RITA, encode_action(Action.ACK, None, group_id(GROUP_KEY)))
    assert reply.ok and not reply.public  # the edited message is the public trace of a button ack
    acked = {a.fingerprint: a.acked_by for a in await chat_env.store.alerts("firing")}
    assert acked == {FP: "rita", "cccc000000000001": "rita", "dddd000000000001": None}
    (rec,) = [r for r in await chat_env.store.audit_records() if r.event == "chat_button"]
    assert rec.details["command"] == "ack" and sorted(rec.details["fingerprints"]) == sorted([FP, "cccc000000000001"])


async def test_silence_by_id_uses_the_alerts_labels_and_the_chat_user(chat_env: ChatEnv) -> None:
    reply = await chat_env.commands.execute_text(RITA, f'silence {SHORT} 2h "deploying v2"')
    assert reply.ok and reply.public and "Silence id: sil-1" in reply.text
    assert "http://127.0.0.1:9/#/silences/sil-1" in reply.text
    (created,) = chat_env.alertmanager.created
    alert = await chat_env.store.alert(FP)
    assert alert is not None
    assert created["matchers"] == [{"name": k, "value": v, "isRegex": False, "isEqual": True}
                                   for k, v in sorted(alert.labels.items())]
    assert created["created_by"] == "rita" and created["comment"] == "deploying v2"
    assert (created["ends_at"] - created["starts_at"]).total_seconds() == 7200
    (rec,) = [r for r in await chat_env.store.audit_records() if r.event == "chat_command"]
    assert rec.details["silence_id"] == "sil-1" and rec.details["duration"] == 7200


async def test_silence_button_silences_the_group_by_its_common_labels_for_an_hour(chat_env: ChatEnv) -> None:
    await ingest(chat_env.store, chat_env.config, alert_payload("cccc000000000001", labels={"pod": "p1"}))
    reply = await chat_env.commands.execute_button(RITA, encode_action(Action.SILENCE_1H, None, group_id(GROUP_KEY)))
    assert reply.ok, reply.text
    (created,) = chat_env.alertmanager.created
    names = {m["name"] for m in created["matchers"]}
    assert "pod" not in names and {"alertname", "namespace"} <= names
    assert (created["ends_at"] - created["starts_at"]).total_seconds() == 3600


async def test_silence_longer_than_the_limit_is_refused_without_calling_alertmanager(chat_env: ChatEnv) -> None:
    reply = await chat_env.commands.execute_text(RITA, "silence alertname=ModelServiceDown 30d")
    assert not reply.ok and "At most 7d" in reply.text
    assert chat_env.alertmanager.created == []


async def test_unsilence_unknown_silence(chat_env: ChatEnv) -> None:
    reply = await chat_env.commands.execute_text(RITA, "unsilence abcd-1234")
    assert not reply.ok and "no silence abcd-1234" in reply.text
    assert chat_env.alertmanager.expired == []


async def test_alerts_lists_ids_severity_age_ack_state_and_escalation(chat_env: ChatEnv) -> None:
    from alert_router.chat.escalation import Escalator

    await Escalator(chat_env.store, chat_env.config, owner="t", clock=chat_env.clock).sync()
    await ingest(chat_env.store, chat_env.config, alert_payload("eeee000000000001", alertname="Low",
                                                                labels={"severity": "warning"}))
    await chat_env.commands.execute_text(RITA, "ack eeee")
    reply = await chat_env.commands.execute_text(VERA, "alerts")
    lines = reply.text.splitlines()
    assert lines[0] == "2 firing alert(s):"
    assert lines[1].startswith(f"{SHORT} 🔴 critical ModelServiceDown namespace=prod")
    assert "not acked, escalates in" in lines[1]
    assert lines[2].startswith("eeee0000 🟠 warning Low") and lines[2].endswith("acked by rita")
    filtered = await chat_env.commands.execute_text(VERA, "alerts severity=warning")
    assert filtered.text.splitlines()[0] == '1 firing alert(s) matching {severity="warning"}:'
    none = await chat_env.commands.execute_text(VERA, "alerts alertname=Nope")
    assert none.text == 'No firing alerts matching {alertname="Nope"}.'


async def test_run_runbook_button_starts_the_one_applicable_runbook(chat_env: ChatEnv) -> None:
    reply = await chat_env.commands.execute_button(RITA, encode_action(Action.RUNBOOK, SHORT, group_id(GROUP_KEY)))
    assert reply.ok and "run #7 is pending approval" in reply.text and "runbook approve 7" in reply.text
    assert chat_env.engine.calls[0][:2] == ("start", "restart") and chat_env.engine.calls[0][3] == "rita"
    (rec,) = [r for r in await chat_env.store.audit_records() if r.event == "chat_button"]
    assert (rec.runbook, rec.run_id, rec.details["command"]) == ("restart", 7, "runbook run")


async def test_approval_refused_by_the_engine_is_reported(chat_env: ChatEnv) -> None:
    chat_env.engine.approvers = ["somebody-else"]
    reply = await chat_env.commands.execute_button(ADAM, "ar1:apr:5")
    assert not reply.ok and reply.text.startswith("Could not approve run #5: adam may not decide")
    (rec,) = [r for r in await chat_env.store.audit_records() if r.event == "chat_button"]
    assert rec.details["outcome"] == "rejected" and rec.run_id == 5


async def test_status_and_help(chat_env: ChatEnv) -> None:
    status = await chat_env.commands.execute_text(VERA, "status")
    assert "store: ok" in status.text and "1 firing, 1 not acked" in status.text
    assert "reachable, version fake" in status.text
    help_ = await chat_env.commands.execute_text(VERA, "help")
    assert "/alert-router ack <id>" in help_.text and "(needs responder)" in help_.text
    tg_help = await chat_env.commands.execute_text(ADAM, "help runbook")
    assert "/runbook approve <run-id>" in tg_help.text and "/ack" not in tg_help.text
    assert "needs" not in tg_help.text


async def test_a_mistake_gets_the_usage_and_an_invalid_audit_record(chat_env: ChatEnv) -> None:
    reply = await chat_env.commands.execute_text(RITA, "silence 2bb1035c")
    assert not reply.ok and "Usage: /alert-router silence <id | matchers> <duration> [comment]" in reply.text
    (rec,) = [r for r in await chat_env.store.audit_records() if r.event.startswith("chat_")]
    assert rec.details["outcome"] == "invalid" and rec.details["command"] == "silence"


async def test_a_huge_command_is_not_echoed_back(chat_env: ChatEnv) -> None:
    """`ack <50,000 characters>` answers briefly: the input is elided, not quoted back up to the platform limit."""
    huge = "a" * 50_000
    for text in (f"ack {huge}", f"ack {'x_y ' * 12_500}", f"{huge}", f"ack {'abcd ' * 10_000}"):
        reply = await chat_env.commands.execute_text(RITA, text)
        assert not reply.ok and len(reply.text) < 400, (text[:20], reply.text[:100])
    reply = await chat_env.commands.execute_text(RITA, f"ack {huge}")
    assert "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'… (50,000 characters) is not an alert id" in reply.text
    listing = await chat_env.commands.execute_text(RITA, f"alerts {huge}=")
    assert listing.ok and len(listing.text) < 1000 and "(50,0" in listing.text


async def test_silences_lists_active_ones_with_id_matchers_creator_and_end(chat_env: ChatEnv) -> None:
    """`silences` makes `unsilence` usable without remembering an id; expired ones are not listed."""
    assert (await chat_env.commands.execute_text(RITA, f'silence {SHORT} 2h "deploying v2"')).ok
    assert (await chat_env.commands.execute_text(RITA, "silence alertname=Other 30m")).ok
    assert (await chat_env.commands.execute_text(RITA, "unsilence sil-2")).ok
    now = datetime.fromtimestamp(chat_env.clock.now(), UTC)
    chat_env.alertmanager.created[0].update(starts_at=now, ends_at=now + timedelta(hours=2))
    reply = await chat_env.commands.execute_text(VERA, "silences alertname=ModelServiceDown")
    assert reply.ok and reply.text.startswith("1 active silence(s) matching {alertname=\"ModelServiceDown\"}:")
    assert "• sil-1 {" in reply.text and 'alertname="ModelServiceDown"' in reply.text
    assert "by rita · ends in 2h — deploying v2" in reply.text and "sil-2" not in reply.text
    assert "unsilence <id>" in reply.text
    assert chat_env.alertmanager.filters[-1] == ['alertname="ModelServiceDown"']
    empty = await chat_env.commands.execute_text(VERA, "silences")
    assert empty.ok


async def test_unack_takes_the_ack_back_resumes_escalation_and_rerenders(chat_env: ChatEnv) -> None:
    """`unack`: the alert is no longer acked, the timer its ack stopped runs again, the message drops "acked by"."""
    from alert_router.chat.records import NewEscalation

    (alert,) = await chat_env.store.alerts("firing")
    await chat_env.store.start_escalations(
        [NewEscalation(FP, "pager", alert.starts_at, GROUP_KEY, chat_env.clock.now() + 600, 2)], chat_env.clock.now())
    assert (await chat_env.commands.execute_text(RITA, f"ack {SHORT}")).ok
    assert [t.status for t in await chat_env.store.escalations()] == ["stopped"]
    await chat_env.clock.advance(60)
    reply = await chat_env.commands.execute_text(ADAM, f"unack {SHORT}")
    assert reply.ok and reply.public and reply.text.startswith(f"adam took back the ack of {SHORT} ModelServiceDown")
    assert "Escalation resumed." in reply.text
    rec = await chat_env.store.alert(FP)
    assert rec is not None and rec.acked_by is None and rec.acked_at is None
    (timer,) = await chat_env.store.escalations()
    assert timer.status == "active"
    (rec_unack,) = [r for r in await chat_env.store.audit_records() if r.actor == "adam"]
    assert rec_unack.details["command"] == "unack" and rec_unack.details["messages_updated"] == 1
    again = await chat_env.commands.execute_text(ADAM, f"unack {SHORT}")
    assert not again.public and again.text == f"{SHORT} is not acked."


async def test_escalate_now_pages_the_policy_receivers_with_a_message_of_its_own(chat_env: ChatEnv) -> None:
    """`escalate <id>`: one notify item per escalation receiver, saying who escalated; audited."""
    reply = await chat_env.commands.execute_text(RITA, f"escalate {SHORT}")
    assert reply.ok and reply.public and reply.text == f"rita escalated {SHORT} ModelServiceDown to lead."
    items = [i for i in await chat_env.store.claim_outbox("notify", "w", 10, 60, time.time()) if i.dest == "lead"]
    (item,) = items
    assert item.group_key.startswith(GROUP_KEY + "#escalation:pager:by-")
    escalation = item.payload["extra"]["escalation"]
    assert escalation["by"] == "rita" and escalation["step"] == 1 and escalation["rule"] == "pager"
    (audit,) = [r for r in await chat_env.store.audit_records() if r.event == "escalated"]
    assert audit.details["receivers"] == ["lead"] and audit.actor == "rita"
    from alert_router.models import Notification
    from alert_router.render.context import build_context

    ctx = build_context(Notification.model_validate(item.payload))
    assert ctx["title"].startswith("[ESCALATED BY RITA] [FIRING:1]")
    assert ctx["escalation"]["text"].startswith("Escalated by rita: not acknowledged for")
    await ingest(chat_env.store, chat_env.config, alert_payload(status="resolved"))
    late = await chat_env.commands.execute_text(RITA, f"escalate {SHORT}")
    assert not late.ok and "resolved: nothing to escalate" in late.text
