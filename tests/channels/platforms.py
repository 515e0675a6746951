"""One harness per receiver platform, so the same behaviour table runs against every channel.

A :class:`Platform` wraps a started stand-in and says, in the platform's own terms: the receiver YAML that
points at it, the things people see (:meth:`Platform.things`: messages, cards, incidents or alerts, each
with its text and whether it shows the group as resolved), how to inject the platform's 429 and 5xx, how to
break the credentials for good, which requests were sends, and which strings are secrets.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from alert_router.channels import REGISTRY
from alert_router.channels.base import Channel, ChannelContext
from alert_router.configbase import ConfigModel
from tests.standins.discord import DiscordStandin
from tests.standins.opsgenie import OpsgenieStandin
from tests.standins.pagerduty import PagerDutyStandin
from tests.standins.slack import SlackStandin
from tests.standins.teams import TeamsStandin
from tests.standins.telegram import TelegramStandin

LINKS = {"alertmanager_url": "http://am:9093", "grafana_url": "http://grafana"}


@dataclass
class Thing:
    """What a person sees on the platform for one group: a message, a card, an incident or an alert."""

    text: str
    resolved: bool


class Platform:
    """The harness of one receiver type (see the module docstring)."""

    name = ""
    edits = True
    """Whether a group's state change updates what people already see (else: a new card per change)."""
    wait_key = ""
    """How a 429 tells the wait (for the docs of the table)."""

    def __init__(self, standin: Any) -> None:
        self.standin = standin

    def config(self) -> dict[str, Any]:
        """The receiver's type config (a dict, as in YAML)."""
        raise NotImplementedError

    def receiver(self, name: str | None = None, common: str = "", **options: Any) -> str:
        """The receiver as a YAML list item (``common``: extra common keys, e.g. ``fallback: file``)."""
        cfg = {**self.config(), **options}
        return f"  - name: {name or self.name}\n{common}    {self.name}: {json.dumps(cfg)}\n"

    def channel(self, **options: Any) -> Channel:
        """The channel object itself, built through the registry as the service builds it."""
        kind = REGISTRY[self.name]
        cfg = kind.config.model_validate({**self.config(), **options})
        assert isinstance(cfg, ConfigModel)
        return kind.build(self.name, cfg, ChannelContext(data_dir=".", base_dir=".", options={"links": LINKS}))  # type: ignore[arg-type]

    def things(self) -> list[Thing]:
        """What people see, oldest first."""
        raise NotImplementedError

    def shown(self) -> str:
        """Everything ever shown, earlier versions included (what a person could have read)."""
        return "\n".join(t.text for t in self.things())

    def sends(self) -> list[tuple[float, int]]:
        """``(time, status)`` of every request that tried to show something (not reads)."""
        return [(r.at, r.status) for r in self.standin.requests if r.method in self.send_methods]

    send_methods: tuple[str, ...] = ()

    def rate_limit_next(self, n: int, seconds: float) -> None:
        """The next ``n`` sends get the platform's 429 asking for ``seconds``."""
        self.standin.rate_limit_next(n, retry_after=seconds, method=self.send_methods[0])

    def fail_next(self, n: int, status: int) -> None:
        """The next ``n`` sends fail with ``status``."""
        self.standin.fail_next(n, status, method=self.send_methods[0])

    def break_credentials(self) -> str:
        """Make every later send fail permanently; return the failure reason expected (``auth``, ``invalid``...)."""
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Strings that must never appear in logs, audit records or fallback messages."""
        raise NotImplementedError

    def refused(self) -> list[str]:
        """Requests the platform refused as invalid, and anything it accepted but could not show."""
        return [f"{r.method} {r.status} {r.error}" for r in self.standin.requests if r.status in (400, 413, 422)]


class SlackPlatform(Platform):
    name = "slack"
    send_methods = ("chat.postMessage", "chat.update")
    wait_key = "Retry-After"

    def config(self) -> dict[str, Any]:
        return {"token": self.standin.token, "channel": "C0ALERTS", "api_url": self.standin.base_url, "timeout": 2}

    def things(self) -> list[Thing]:
        return [Thing(m.text + json.dumps(m.blocks, ensure_ascii=False),
                      "[RESOLVED]" in (m.blocks or [{}])[0].get("text", {}).get("text", ""))
                for m in self.standin.messages["C0ALERTS"] if m.thread_ts is None]  # replies live in threads

    def shown(self) -> str:
        return "\n".join(json.dumps([m.text, m.blocks, m.history], ensure_ascii=False)
                         for m in self.standin.messages["C0ALERTS"])

    def break_credentials(self) -> str:
        self.standin.revoke_token()
        return "auth"

    def secrets(self) -> list[str]:
        return [self.standin.token]


class TelegramPlatform(Platform):
    name = "telegram"
    send_methods = ("sendMessage", "editMessageText")
    wait_key = "parameters.retry_after"

    def config(self) -> dict[str, Any]:
        return {"token": self.standin.token, "chat_id": 1001, "api_url": self.standin.base_url, "timeout": 2}

    def things(self) -> list[Thing]:
        return [Thing(m.text, "[RESOLVED]" in m.text) for m in self.standin.messages[1001]
                if m.reply_to is None]  # replies to a message (resolved, acked) belong to it

    def break_credentials(self) -> str:
        self.standin.revoke_token()
        return "auth"

    def secrets(self) -> list[str]:
        return [self.standin.token]

    def shown(self) -> str:
        return "\n".join(json.dumps([m.text, m.history], ensure_ascii=False) for m in self.standin.messages[1001])

    def refused(self) -> list[str]:
        return [f"{r.method} {r.error}" for r in self.standin.requests if r.status == 400]


class PagerDutyPlatform(Platform):
    name = "pagerduty"
    send_methods = ("enqueue",)
    wait_key = "throttle_wait (PagerDuty sends no Retry-After)"

    def config(self) -> dict[str, Any]:
        return {"routing_key": self.standin.routing_key, "url": self.standin.url, "timeout": 2, "throttle_wait": 1}

    def things(self) -> list[Thing]:
        return [Thing(json.dumps(a.payload, ensure_ascii=False), a.status == "resolved")
                for a in self.standin.alerts()]

    def shown(self) -> str:
        return "\n".join(json.dumps(e, ensure_ascii=False) for e in self.standin.events)

    def break_credentials(self) -> str:
        self.standin.routing_keys.clear()  # the integration was deleted: "Invalid routing key"
        return "invalid"

    def secrets(self) -> list[str]:
        return [self.standin.routing_key]


class OpsgeniePlatform(Platform):
    name = "opsgenie"
    send_methods = ("create", "close", "acknowledge", "update-message", "update-description", "update-priority")
    wait_key = "X-RateLimit-Period-In-Sec"

    def config(self) -> dict[str, Any]:
        return {"api_key": self.standin.api_key, "api_url": self.standin.base_url, "timeout": 2}

    def things(self) -> list[Thing]:
        return [Thing(f"{a.message}\n{a.description}", a.status == "closed") for a in self.standin.alerts]

    def shown(self) -> str:
        return "\n".join(json.dumps(r.params, ensure_ascii=False) for r in self.standin.requests if r.status == 202)

    def break_credentials(self) -> str:
        self.standin.disable()
        return "auth"

    def secrets(self) -> list[str]:
        return [self.standin.api_key]


class TeamsPlatform(Platform):
    name = "teams"
    edits = False
    send_methods = ("invoke",)
    wait_key = "Retry-After"

    def config(self) -> dict[str, Any]:
        return {"webhook_url": self.standin.webhook_url, "timeout": 2}

    def things(self) -> list[Thing]:
        return [Thing(c.text + json.dumps(c.actions), "RESOLVED" in c.texts[0]) for c in self.standin.cards]

    def break_credentials(self) -> str:
        self.standin.delete_workflow()
        return "not_found"

    def secrets(self) -> list[str]:
        return [self.standin.webhook_url, self.standin.signature]

    def refused(self) -> list[str]:
        return super().refused() + list(self.standin.failed_runs)


class DiscordPlatform(Platform):
    name = "discord"
    send_methods = ("execute", "edit")
    wait_key = "retry_after (JSON, seconds as a float)"

    def config(self) -> dict[str, Any]:
        return {"webhook_url": self.standin.webhook_url, "timeout": 2}

    def things(self) -> list[Thing]:
        return [Thing(json.dumps(m.embeds, ensure_ascii=False), "RESOLVED" in m.embeds[0].get("title", ""))
                for m in self.standin.messages]

    def shown(self) -> str:
        return "\n".join(json.dumps([m.embeds, m.history], ensure_ascii=False) for m in self.standin.messages)

    def break_credentials(self) -> str:
        self.standin.delete_webhook()
        return "not_found"

    def secrets(self) -> list[str]:
        return [self.standin.webhook_url, self.standin.token]


PLATFORMS = {
    "slack": (SlackPlatform, SlackStandin),
    "telegram": (TelegramPlatform, TelegramStandin),
    "pagerduty": (PagerDutyPlatform, PagerDutyStandin),
    "opsgenie": (OpsgeniePlatform, OpsgenieStandin),
    "teams": (TeamsPlatform, TeamsStandin),
    "discord": (DiscordPlatform, DiscordStandin),
}


@asynccontextmanager
async def started(name: str) -> AsyncIterator[Platform]:
    """The harness of ``name`` with its stand-in started (and closed afterwards)."""
    harness, standin_type = PLATFORMS[name]
    async with standin_type() as standin:
        yield harness(standin)
