"""The chat service inside the running app: acks stay visible on every later re-render of the group."""

from __future__ import annotations

import json
from pathlib import Path

from alert_router.chat.authz import Identity
from tests.chat.support import FP, SHORT, alert_payload, chat_config
from tests.helpers import JSON_TYPE, read_jsonl, running_app, settle, wait_for

OTHER = "2bb1035c00000002"
RULES = "rules:\n  - name: pager\n    receivers: [file]\ndefault:\n  receivers: [file]\n"


async def test_ack_rerenders_and_later_notifications_keep_showing_it(tmp_path: Path) -> None:
    out = tmp_path / "data" / "out.jsonl"
    async with running_app(chat_config(tmp_path, rules=RULES)) as (client, rt):
        r = await client.post("/webhook", data=json.dumps(alert_payload()).encode(), headers=JSON_TYPE)
        assert r.status == 200
        await wait_for(lambda: read_jsonl(out), timeout=10)
        reply = await rt.services["chat"].commands.execute_text(Identity("slack", "URESP", "C0"), f"ack {SHORT}")
        assert reply.ok
        await wait_for(lambda: len(read_jsonl(out)) == 2, timeout=10)
        # a second alert joins the group: the new notification still shows the first one's ack
        body = alert_payload()  # Alertmanager sends the whole group: the acked alert and the new one
        body["alerts"] += alert_payload(OTHER, labels={"pod": "model-api-2"})["alerts"]
        assert (await client.post("/webhook", data=json.dumps(body).encode(), headers=JSON_TYPE)).status == 200
        await wait_for(lambda: len(read_jsonl(out)) == 3, timeout=10)
        await settle(rt)
    first, rerender, joined = read_jsonl(out)
    assert "acked_by" not in first.get("extra", {})
    assert rerender["extra"]["acked_by"] == {FP: "rita"} and rerender["changed"] == [FP]
    assert joined["extra"]["acked_by"] == {FP: "rita"}
    assert joined["changed"] == [OTHER]
