"""The stand-ins' picture APIs as the real clients use them: slack-sdk files_upload_v2 and PTB send_photo."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient
from telegram import Bot, ReplyParameters
from telegram.error import BadRequest

from alert_router.graph.render import render_png
from tests.graph.test_render import latency_spec
from tests.standins.slack import SlackStandin
from tests.standins.telegram import TelegramStandin, image_size


@pytest.fixture(scope="module")
def png() -> bytes:
    return render_png(latency_spec(width=400, height=240)).png


async def test_slack_external_upload_flow(slack_standin: SlackStandin, png: bytes) -> None:
    """files_upload_v2: the upload URL step, the bytes, completion into a thread; the errors Slack documents."""
    client = AsyncWebClient(token=slack_standin.token, base_url=slack_standin.base_url)
    post = await client.chat_postMessage(channel="C0ALERTS", text="parent")
    done = await client.files_upload_v2(content=png, filename="g.png", title="G", alt_txt="a graph",
                                        channel="C0ALERTS", thread_ts=post["ts"])
    assert done["file"]["title"] == "G"
    (f,) = slack_standin.files
    assert f.content == png and f.thread_ts == post["ts"] and f.as_api()["mimetype"] == "image/png"
    share = slack_standin.messages["C0ALERTS"][-1]
    assert share.files == [f] and share.thread_ts == post["ts"]
    for kwargs, error in [
        ({"filename": "g.png", "length": 0}, "missing_argument"),
        ({"filename": "g.png", "length": 10, "alt_txt": "x" * 1001}, "alt_txt_too_large"),
        ({"filename": "", "length": 10}, "invalid_arguments"),
    ]:
        with pytest.raises(SlackApiError) as exc:
            await client.files_getUploadURLExternal(**kwargs)  # type: ignore[arg-type]
        assert exc.value.response["error"] == error
    with pytest.raises(SlackApiError) as exc:
        await client.files_completeUploadExternal(files=[{"id": f.id, "title": "again"}], channel_id="C0ALERTS")
    assert exc.value.response["error"] == "file_not_found", "completion happens once"
    url = await client.files_getUploadURLExternal(filename="g.png", length=len(png))
    with pytest.raises(SlackApiError) as exc:  # announced, never uploaded
        await client.files_completeUploadExternal(files=[{"id": url["file_id"]}], channel_id="C0ALERTS")
    assert exc.value.response["error"] == "file_not_found"
    with pytest.raises(SlackApiError) as exc:
        await client.files_upload_v2(content=png, filename="g.png", channel="C0ALERTS", thread_ts="1.000001")
    assert exc.value.response["error"] == "invalid_arguments"
    with pytest.raises(SlackApiError) as exc:
        await client.files_upload_v2(content=png, filename="g.png", channel="C0NOPE")
    assert exc.value.response["error"] == "channel_not_found"
    slack_standin.max_file_bytes = 100
    with pytest.raises(SlackApiError) as exc:
        await client.files_upload_v2(content=png, filename="g.png", channel="C0ALERTS")
    assert exc.value.response["error"] == "file_upload_size_restricted"


async def test_slack_upload_url_checks_the_bytes(slack_standin: SlackStandin) -> None:
    """More bytes than announced: 413; an unknown ticket: 404 (slack-sdk raises SlackRequestError)."""
    import aiohttp

    client = AsyncWebClient(token=slack_standin.token, base_url=slack_standin.base_url)
    got = await client.files_getUploadURLExternal(filename="g.png", length=4)
    async with aiohttp.ClientSession() as s:
        async with s.post(got["upload_url"], data=b"12345") as r:
            assert r.status == 413
        async with s.post(got["upload_url"].rsplit("/", 1)[0] + "/nope", data=b"1234") as r:
            assert r.status == 404
        async with s.post(got["upload_url"], data=b"1234") as r:
            assert r.status == 200 and await r.text() == "OK - 4"
    assert SlackRequestError  # the class slack-sdk raises for a failed upload step (mapped by the channel)


async def test_telegram_send_photo(telegram_standin: TelegramStandin, png: bytes) -> None:
    """send_photo uploads multipart; the answer has PhotoSizes, the caption and the message it replies to."""
    bot = Bot(telegram_standin.token, base_url=telegram_standin.base_url)
    async with bot:
        text = await bot.send_message(chat_id=-1002, text="parent")
        msg = await bot.send_photo(chat_id=-1002, photo=png, caption="<b>p95</b> &gt; 500 ms", parse_mode="HTML",
                                   reply_parameters=ReplyParameters(text.message_id))
        assert msg.photo[-1].width == 400 and msg.photo[-1].height == 240 and len(msg.photo) == 3
        assert msg.caption == "p95 > 500 ms" and msg.reply_to_message is not None
        (photo,) = telegram_standin.photos[-1002]
        assert photo.data == png and photo.reply_to == text.message_id
        again = await bot.send_photo(chat_id=-1002, photo=msg.photo[-1].file_id)
        assert again.photo[-1].file_size == len(png)
        for kwargs, error in [
            ({"photo": b"not an image"}, "(?i)image_process_failed"),
            ({"photo": png, "caption": "x" * 1025}, "(?i)caption is too long"),
            ({"photo": png, "reply_parameters": ReplyParameters(999)}, "(?i)message to be replied not found"),
            ({"photo": "https://example.com/x.png"}, "(?i)wrong file identifier"),
        ]:
            with pytest.raises(BadRequest, match=error):
                await bot.send_photo(chat_id=-1002, **kwargs)  # type: ignore[arg-type]


def test_image_size() -> None:
    """PNG and JPEG dimensions as Telegram checks them; anything else is not an image."""
    assert image_size(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x03\x20\0\0\x01\x90") == (800, 400)
    jpeg = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\xf0\x01\x90" + b"\0" * 20
    assert image_size(jpeg) == (400, 240)
    assert image_size(b"GIF89a") is None
