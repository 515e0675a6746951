"""The ``slack`` receiver: Block Kit messages through slack-sdk's ``AsyncWebClient``, edited in place.

One message per Alertmanager group and channel: the first notification posts it (``chat.postMessage``),
later ones edit it (``chat.update``) until the group has resolved; a group that fires again after
resolving gets a new message. The reference ``{"channel", "ts", "status"}`` is kept in the store.

The client is built without slack-sdk's retry handlers: the delivery stage owns retries, so every
failure is mapped to a :class:`ChannelError` here (429 → retryable with ``Retry-After``; 5xx, timeouts
and connection errors → retryable; bad token, unknown channel, invalid message → permanent).
"""

from __future__ import annotations

import asyncio
from typing import Any, Self

import aiohttp
import structlog
from pydantic import SecretStr, ValidationInfo, field_validator, model_validator
from slack_sdk.errors import SlackApiError, SlackRequestError
from slack_sdk.web.async_client import AsyncWebClient

from alert_router.channels.base import ChannelContext, ChannelError, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.errors import FailureReason
from alert_router.graph.files import load_pictures, new_pictures, posted_keys
from alert_router.models import Notification
from alert_router.render import defaults
from alert_router.render.context import build_context, group_id
from alert_router.render.escape import mrkdwn_escape
from alert_router.render.slack_blocks import MAX_BLOCKS, build_blocks, fallback_text
from alert_router.render.support import (
    RunbooksFor,
    links_option,
    missing_when_enabled,
    redact,
    report_template_errors,
    runbook_applies,
    runbooks_option,
    template_field,
)
from alert_router.render.templates import Template, fit
from alert_router.render.thread import acked_now, thread_notes

AUTH_ERRORS = frozenset(
    {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "no_permission",
     "missing_scope", "not_allowed_token_type", "ekm_access_denied", "team_access_not_granted",
     "org_login_required", "invalid_token"}
)
NOT_FOUND_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived"})
INVALID_ERRORS = frozenset(
    {"msg_too_long", "invalid_blocks", "invalid_blocks_format", "no_text", "too_many_attachments",
     "invalid_arguments", "invalid_form_data", "invalid_json", "json_not_object", "invalid_attachments"}
)
SERVER_ERRORS = frozenset({"fatal_error", "internal_error", "service_unavailable", "request_timeout"})
log = structlog.get_logger("alert_router.channels.slack")
JITTER_MARGIN = 1.05
"""Default rates are this much under the published ones: time to render and send varies per message."""
GONE_ERRORS = frozenset({"message_not_found", "cant_update_message", "edit_window_closed"})
"""``chat.update`` failures after which a new message is posted instead."""
METADATA_EVENT = "alert_router_notification"
"""The ``event_type`` of the metadata every posted message carries (with the delivery id in its payload)."""
LOOKUP_PAGES = 3
LOOKUP_PAGE_SIZE = 200
LOOKUP_MARGIN = 600.0
"""How far before the notification was received ``conversations.history`` looks (seconds; clocks differ)."""


class SlackConfig(ConfigModel):
    """``slack: {token_file: ..., channel: C0123ALERTS}``: a bot token (``xoxb-``) and a channel ID or name."""

    token: SecretStr | None = None
    channel: str = ""
    api_url: str = "https://slack.com/api/"
    timeout: Duration = 10.0
    template: str | None = None
    actions: bool = True

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return template_field(value, "mrkdwn")

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, token=self.token, channel=self.channel)
        return self


def map_slack_error(exc: SlackApiError) -> ChannelError:
    """Classify a Slack Web API failure."""
    response = exc.response
    status = int(getattr(response, "status_code", None) or getattr(response, "status", 0) or 0)
    data = getattr(response, "data", None)
    error = str(data.get("error", "")) if isinstance(data, dict) else ""
    headers = getattr(response, "headers", None) or {}
    what = f"slack: {error or 'HTTP ' + str(status)}"
    if status == 429 or error in ("ratelimited", "rate_limited"):
        try:
            retry_after = float(headers.get("Retry-After", "1"))
        except (TypeError, ValueError):
            retry_after = 1.0
        return ChannelError(FailureReason.RATE_LIMITED, what, retryable=True, retry_after=max(retry_after, 0.0))
    if status >= 500 or error in SERVER_ERRORS:
        return ChannelError(FailureReason.SERVER_ERROR, what, retryable=True)
    if error in AUTH_ERRORS or status in (401, 403):
        return ChannelError(FailureReason.AUTH, what, retryable=False)
    if error in NOT_FOUND_ERRORS or status == 404:
        return ChannelError(FailureReason.NOT_FOUND, what, retryable=False)
    if error in INVALID_ERRORS:
        return ChannelError(FailureReason.INVALID, what, retryable=False)
    return ChannelError(FailureReason.REJECTED, what, retryable=False)


class SlackChannel:
    """Posts and edits one Block Kit message per group in one Slack channel."""

    digest_capacity = 300
    """Alerts listed in one storm digest message (one compact line each)."""

    edits_in_place = True
    """A group's message is edited as the group changes (storm control refreshes it after a digest)."""

    def __init__(
        self, receiver: str, cfg: SlackConfig, links: dict[str, Any] | None = None,
        runbooks_for: RunbooksFor | None = None,
    ) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.channel = cfg.channel
        self.links = links or {}
        self.runbooks_for = runbooks_for
        self.body = Template("mrkdwn", defaults.SLACK_BODY, cfg.template, name="template", receiver=receiver)
        self._session: aiohttp.ClientSession | None = None
        self._client: AsyncWebClient | None = None
        self._tried: set[Any] = set()

    def destination(self) -> str:
        """The Slack channel."""
        return f"slack:{self.channel}"

    def rate_limit(self) -> RateLimit | None:
        """Slack allows about one message per second per channel (5% under it: rendering and the network jitter)."""
        return RateLimit(1.0 / JITTER_MARGIN, 1.0)

    def _get_client(self) -> AsyncWebClient:
        if self._client is None:
            token = secret(self.cfg.token)
            if not token:
                raise ChannelError(FailureReason.AUTH, "slack: no token configured", retryable=False)
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.cfg.timeout))
            self._client = AsyncWebClient(
                token=token,
                base_url=self.cfg.api_url,
                session=self._session,
                timeout=max(1, int(self.cfg.timeout)),
                retry_handlers=[],
            )
        return self._client

    def render(self, notification: Notification) -> tuple[str, list[dict[str, Any]], list[str]]:
        """Return the fallback text, the blocks and any template errors for ``notification``."""
        errors: list[str] = []

        def attempt(n: int | None) -> tuple[dict[str, Any], list[dict[str, Any]], bool]:
            ctx = build_context(notification, links=self.links, max_alerts=n)
            errs: list[str] = []
            body = self.body.render(ctx, errs)
            blocks, cut = build_blocks(ctx, body, actions=self.cfg.actions,
                                       runbook=runbook_applies(self.runbooks_for, ctx))
            if n is None:
                errors.extend(errs)
            return ctx, blocks, cut

        ctx, blocks, _cut = fit(len(notification.alerts), attempt, lambda r: not r[2] and len(r[1]) <= MAX_BLOCKS)
        return fallback_text(ctx), blocks, errors

    def extra_messages(self, notification: Notification, previous: MessageRef | None) -> int:
        """Messages a send posts besides the group's own: thread replies (new pictures; resolved, acked)."""
        notes = thread_notes(build_context(notification, max_alerts=0), previous) if previous else []
        return (1 if new_pictures(notification.extra, previous) else 0) + len(notes)

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Post or update the group's message, then upload its new pictures into the message's thread.

        A picture that cannot be uploaded does not fail the send (the message is out): it is logged, and
        ``extra["graph_delivery"]`` says why.
        """
        ref = await self._send_text(notification, previous)
        if not ref or not ref.get("ts"):
            return ref
        same = previous is not None and previous.get("ts") == ref.get("ts")
        ctx = build_context(notification, max_alerts=0)
        for note in thread_notes(ctx, previous) if same else []:
            try:
                await self._get_client().chat_postMessage(
                    channel=str(ref["channel"]), thread_ts=str(ref["ts"]), text=mrkdwn_escape(note),
                    unfurl_links=False, unfurl_media=False)
            except (SlackApiError, SlackRequestError, aiohttp.ClientError, OSError) as exc:
                error = map_slack_error(exc) if isinstance(exc, SlackApiError) else exc
                log.warning("thread reply not posted; the message itself was edited", receiver=self.receiver,
                            error=redact(f"slack: {error}", [secret(self.cfg.token)]))
                break
        if acked := acked_now(ctx):
            ref = {**ref, "acked": acked}
        pictures = await load_pictures(new_pictures(notification.extra, previous if same else None))
        added: list[Any] = []
        if pictures:
            try:
                await self._get_client().files_upload_v2(
                    file_uploads=[
                        {"content": png, "filename": f"graph-{g['id']}.png", "title": str(g.get("title", ""))[:250],
                         "alt_txt": str(g.get("alt", ""))[:1000]}
                        for g, png in pictures
                    ],
                    channel=str(ref["channel"]),
                    thread_ts=str(ref["ts"]),
                )
                added = [g for g, _ in pictures]
            except (SlackApiError, SlackRequestError, aiohttp.ClientError, OSError) as exc:
                error = map_slack_error(exc) if isinstance(exc, SlackApiError) else exc
                why = redact(f"slack: picture not uploaded: {error}", [secret(self.cfg.token)])
                notification.extra["graph_delivery"] = why
                log.warning("picture not uploaded; the message went without it", receiver=self.receiver, error=why)
        keys = posted_keys(previous, same, added)
        return {**ref, "graphs": keys} if keys else ref

    async def _send_text(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Post the group's message, or update it when ``previous`` refers to a message still in use."""
        client = self._get_client()
        text, blocks, errors = self.render(notification)
        report_template_errors(notification, errors)
        status = "firing" if notification.firing else "resolved"
        try:
            if previous and previous.get("ts") and previous.get("channel"):
                reopened = previous.get("status") == "resolved" and status == "firing"
                if not reopened:
                    try:
                        await client.chat_update(
                            channel=str(previous["channel"]), ts=str(previous["ts"]), text=text, blocks=blocks
                        )
                        return {"channel": previous["channel"], "ts": previous["ts"], "status": status}
                    except SlackApiError as exc:
                        data = getattr(exc.response, "data", None)
                        if not (isinstance(data, dict) and data.get("error") in GONE_ERRORS):
                            raise
            earlier = await self._posted_before(client, notification)
            if earlier is not None:
                await client.chat_update(channel=str(earlier["channel"]), ts=str(earlier["ts"]), text=text,
                                         blocks=blocks)
                log.info("found the message an earlier attempt posted; edited it instead of posting again",
                         receiver=self.receiver, ts=earlier["ts"])
                return {"channel": earlier["channel"], "ts": earlier["ts"], "status": status}
            response = await client.chat_postMessage(
                channel=self.channel, text=text, blocks=blocks, unfurl_links=False, unfurl_media=False,
                metadata=self.metadata(notification),
            )
        except SlackApiError as exc:
            raise map_slack_error(exc) from None
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise ChannelError(FailureReason.TIMEOUT, "slack: request timed out", retryable=True) from exc
        except (aiohttp.ClientError, OSError) as exc:
            message = redact(f"slack: {type(exc).__name__}: {exc}", [secret(self.cfg.token)])
            raise ChannelError(FailureReason.CONNECTION, message, retryable=True) from exc
        return {"channel": response.get("channel") or self.channel, "ts": response.get("ts"), "status": status}

    @staticmethod
    def metadata(notification: Notification) -> dict[str, Any] | None:
        """The message metadata that names the delivery that posted it (``event_type`` + ``delivery_id``)."""
        delivery = notification.extra.get("delivery_id")
        if delivery is None:
            return None
        return {"event_type": METADATA_EVENT,
                "event_payload": {"delivery_id": str(delivery), "group_id": group_id(notification.group_key)}}

    async def _posted_before(self, client: AsyncWebClient, notification: Notification) -> MessageRef | None:
        """The message an earlier attempt of this delivery posted, found by its metadata, or ``None``.

        Only asked when an attempt may have posted without its reference being recorded: the delivery was
        claimed before (a crash, a postponed retry) or tried before in this process (a timeout after Slack
        accepted). A lookup that Slack refuses for good (no ``channels:history`` scope, a channel given by
        name) is logged and the message is posted; a retryable refusal fails the attempt.
        """
        delivery = notification.extra.get("delivery_id")
        if delivery is None:
            return None
        again = int(notification.extra.get("delivery_attempts") or 1) > 1 or delivery in self._tried
        if len(self._tried) > 10_000:
            self._tried.clear()
        self._tried.add(delivery)
        if not again:
            return None
        oldest = f"{notification.received_at.timestamp() - LOOKUP_MARGIN:.6f}"
        cursor: str | None = None
        for _ in range(LOOKUP_PAGES):
            try:
                response = await client.conversations_history(
                    channel=self.channel, oldest=oldest, limit=LOOKUP_PAGE_SIZE, include_all_metadata=True,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                error = map_slack_error(exc)
                if error.retryable:
                    raise
                log.warning("cannot look for an earlier attempt's message; posting (a duplicate is possible)",
                            receiver=self.receiver, error=str(error))
                return None
            for message in response.get("messages") or []:
                meta = message.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                if meta.get("event_type") == METADATA_EVENT and str(payload.get("delivery_id")) == str(delivery):
                    return {"channel": self.channel, "ts": message["ts"]}
            cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or not response.get("has_more"):
                break
        return None

    async def aclose(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
            await asyncio.sleep(0)
        self._session = None
        self._client = None


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> SlackChannel:
    assert isinstance(cfg, SlackConfig)
    return SlackChannel(receiver, cfg, links_option(ctx.options), runbooks_option(ctx.options))


TYPE = ChannelType("slack", SlackConfig, _build, secret_free=False)
