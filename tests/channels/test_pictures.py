"""Pictures from the graph stage on Slack (thread upload), Telegram (photo reply) and email (inline cid: image).

Each picture goes once per group state change, whatever re-renders the message; a picture that cannot be
posted never fails the send (the message is out); images take rate-limit tokens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_router.channels.email import EmailChannel, EmailConfig
from alert_router.channels.slack import SlackChannel, SlackConfig
from alert_router.channels.telegram import TelegramChannel, TelegramConfig
from alert_router.graph.files import GraphFiles
from alert_router.graph.render import render_png
from alert_router.models import Notification
from tests.channels.helpers import alert, notification
from tests.graph.test_render import latency_spec
from tests.standins.slack import SlackStandin
from tests.standins.smtp import SmtpServer
from tests.standins.telegram import TelegramStandin

GROUP = -1002


@pytest.fixture(scope="module")
def png() -> bytes:
    return render_png(latency_spec(width=400, height=240)).png


def with_picture(n: Notification, tmp_path: Path, png: bytes, key: str = "k1") -> Notification:
    graph_id, path = GraphFiles(tmp_path / "graphs").save(png)
    n.extra["graphs"] = [{
        "status": "ok", "id": graph_id, "key": key, "path": str(path), "url": "", "width": 400, "height": 240,
        "title": "HighModelLatency: p95", "alt": "Graph of HighModelLatency, fires > 500 ms",
        "describe": "> 500 ms", "query": "p95", "fingerprints": [],
    }]
    return n


def slack_channel(standin: SlackStandin) -> SlackChannel:
    cfg = SlackConfig.model_validate(
        {"token": standin.token, "channel": "C0ALERTS", "api_url": standin.base_url, "timeout": 2}
    )
    return SlackChannel("slack", cfg)


async def test_slack_uploads_into_the_thread_once_per_state(
    slack_standin: SlackStandin, tmp_path: Path, png: bytes
) -> None:
    """files.getUploadURLExternal, the upload, files.completeUploadExternal into the message's thread; an edit of
    the same state (an ack) uploads nothing; a new state (resolved) uploads its own picture."""
    ch = slack_channel(slack_standin)
    try:
        first = with_picture(notification([alert()]), tmp_path, png)
        assert ch.extra_messages(first, None) == 1
        ref = await ch.send(first, None)
        assert ref is not None and ref["graphs"] == ["k1"]
        methods = [r.method for r in slack_standin.requests]
        assert methods == ["chat.postMessage", "files.getUploadURLExternal", "upload", "files.completeUploadExternal"]
        (file,) = slack_standin.files
        assert file.content == png and file.thread_ts == ref["ts"] and file.channel == "C0ALERTS"
        assert file.alt_txt == "Graph of HighModelLatency, fires > 500 ms"

        ack = with_picture(notification([alert()]), tmp_path, png, key="k1")
        assert ch.extra_messages(ack, ref) == 0
        ref2 = await ch.send(ack, ref)
        assert len(slack_standin.files) == 1 and ref2 is not None and ref2["graphs"] == ["k1"]

        resolved = with_picture(notification([alert(status="resolved")]), tmp_path, png, key="k2")
        ref3 = await ch.send(resolved, ref2)
        assert [f.thread_ts for f in slack_standin.files] == [ref["ts"], ref["ts"]]
        assert ref3 is not None and ref3["graphs"] == ["k1", "k2"]
    finally:
        await ch.aclose()


async def test_slack_upload_failure_does_not_fail_the_send(
    slack_standin: SlackStandin, tmp_path: Path, png: bytes
) -> None:
    """A refused completion (here a 500) leaves the message sent and says why in extra["graph_delivery"]."""
    ch = slack_channel(slack_standin)
    try:
        slack_standin.fail_next(1, status=500, method="files.completeUploadExternal")
        n = with_picture(notification([alert()]), tmp_path, png)
        ref = await ch.send(n, None)
        assert ref is not None and "graphs" not in ref, "not posted: a later state may try again"
        assert "picture not uploaded" in n.extra["graph_delivery"]
        assert len(slack_standin.messages["C0ALERTS"]) == 1 and not slack_standin.files
    finally:
        await ch.aclose()


async def test_telegram_replies_with_a_photo(
    telegram_standin: TelegramStandin, tmp_path: Path, png: bytes
) -> None:
    """sendPhoto replies to the living message with an HTML caption; an edit of the same state sends none."""
    cfg = TelegramConfig.model_validate(
        {"token": telegram_standin.token, "chat_id": GROUP, "api_url": telegram_standin.base_url, "timeout": 2}
    )
    ch = TelegramChannel("telegram", cfg)
    try:
        n = with_picture(notification([alert()]), tmp_path, png)
        assert ch.extra_messages(n, None) == 1
        ref = await ch.send(n, None)
        assert ref is not None and ref["graphs"] == ["k1"]
        (photo,) = telegram_standin.photos[GROUP]
        assert photo.data == png and (photo.width, photo.height) == (400, 240)
        assert photo.reply_to == ref["message_id"]
        assert photo.caption.startswith("📈 HighModelLatency: p95") and "fires > 500 ms" in photo.caption
        await ch.send(with_picture(notification([alert()]), tmp_path, png), ref)
        assert len(telegram_standin.photos[GROUP]) == 1
    finally:
        await ch.aclose()


async def test_email_carries_the_picture_inline(smtp_server: SmtpServer, tmp_path: Path, png: bytes) -> None:
    """multipart/alternative whose HTML part is multipart/related: the img src names the PNG's Content-ID."""
    cfg = EmailConfig.model_validate({
        "host": smtp_server.host, "port": smtp_server.port, "mode": "plain", "from": "a@example.test",
        "to": ["b@example.test"], "timeout": 3,
    })
    ch = EmailChannel("email", cfg)
    await ch.send(with_picture(notification([alert()]), tmp_path, png), None)
    (mail,) = await smtp_server.wait_for_messages(1)
    m = mail.message
    assert m.get_content_type() == "multipart/alternative"
    html_part = m.get_body(preferencelist=("html",))
    assert html_part is not None
    (image,) = [p for p in m.walk() if p.get_content_type() == "image/png"]
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html_part.get_content()
    assert image.get_content() == png
    text = m.get_body(preferencelist=("plain",))
    assert text is not None and "Graph: HighModelLatency: p95 (fires > 500 ms)" in text.get_content()


async def test_unavailable_pictures_are_named_in_every_message(
    slack_standin: SlackStandin, tmp_path: Path
) -> None:
    """The reason a picture is missing is part of the message text."""
    ch = slack_channel(slack_standin)
    try:
        n = notification([alert()])
        n.extra["graphs"] = [{"status": "unavailable", "reason": "timeout: Prometheus did not answer within 5s"}]
        assert ch.extra_messages(n, None) == 0
        await ch.send(n, None)
        (msg,) = slack_standin.messages["C0ALERTS"]
        assert "Graph unavailable: timeout: Prometheus did not answer within 5s" in str(msg.blocks)
        assert not slack_standin.files
    finally:
        await ch.aclose()




async def test_pictures_take_rate_limit_tokens(slack_standin: SlackStandin, tmp_path: Path, png: bytes) -> None:
    """A send that uploads a picture books two slots of the channel's bucket (message and thread upload)."""
    from alert_router.config import load
    from alert_router.metrics import Metrics
    from alert_router.pipeline.deliver import Deliverer
    from tests.channels.helpers import write_config

    path = write_config(tmp_path, f"  - name: slack\n    slack: {{token: {slack_standin.token}, channel: C0ALERTS, "
                                  f"api_url: '{slack_standin.base_url}'}}\n")
    config = load(path, {})
    ch = slack_channel(slack_standin)
    now = [1000.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    deliverer = Deliverer(None, config, {"slack": ch}, Metrics(), "test")  # type: ignore[arg-type]
    deliverer.throttle.clock = lambda: now[0]
    deliverer.throttle.sleep = sleep
    try:
        await deliverer.attempt(ch, with_picture(notification([alert()]), tmp_path, png), None)
        await deliverer.attempt(ch, notification([alert(key="b")]), None)
        await deliverer.attempt(ch, notification([alert(key="c")]), None)
        interval = 1 / ch.rate_limit().rate  # type: ignore[union-attr]
        assert waits == pytest.approx([2 * interval, interval]), "the picture took a token of its own"
    finally:
        await ch.aclose()
