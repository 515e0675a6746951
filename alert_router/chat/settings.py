"""Configuration of chat commands: the ``chat:`` block of ``alert-router.yaml`` and a rule's ``escalate:``.

::

    chat:
      slack:
        signing_secret_file: /etc/alert-router/secrets/slack-signing-secret
        command: /alert-router
      telegram:
        token_file: /etc/alert-router/secrets/telegram-token
        mode: webhook                      # or polling (no public HTTPS needed)
        webhook_secret_file: /etc/alert-router/secrets/telegram-webhook-secret
      alertmanager: {url: http://alertmanager:9093, timeout: 5s}
      users:
        - {name: alice, slack: U0123ABCD, telegram: 4242, role: admin}
        - {name: bob, slack: U0456EFGH, role: responder}
      channels:
        - {slack: C0ALERTS, role: viewer}  # everyone in #alerts may list alerts
      commands: {silence: admin}           # raise (or lower) the least role of a command

Slack is on when ``slack.signing_secret`` is set, Telegram when ``telegram.token`` is set; the embedded
default sets neither, so it runs without secrets. Nothing here imports the rest of the service.
"""

from __future__ import annotations

import enum
import re
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration


class Role(enum.StrEnum):
    """What a chat user may do; each role includes the ones before it: viewer < responder < admin."""

    VIEWER = "viewer"
    RESPONDER = "responder"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """The position of the role in the order (viewer 1, responder 2, admin 3)."""
        return {"viewer": 1, "responder": 2, "admin": 3}[self.value]


COMMANDS: dict[str, Role] = {
    "help": Role.VIEWER,
    "status": Role.VIEWER,
    "alerts": Role.VIEWER,
    "runbook list": Role.VIEWER,
    "silences": Role.VIEWER,
    "ack": Role.RESPONDER,
    "unack": Role.RESPONDER,
    "escalate": Role.RESPONDER,
    "silence": Role.RESPONDER,
    "unsilence": Role.RESPONDER,
    "runbook run": Role.RESPONDER,
    "runbook approve": Role.ADMIN,
    "runbook deny": Role.ADMIN,
}
"""Every command and the least role allowed to run it by default (``chat.commands`` overrides)."""


class ChatUser(ConfigModel):
    """A person: their Slack and/or Telegram user ids and their role.

    ``name`` is how they appear in replies and in the audit log (and what runbook ``approvers`` lists
    name); without it the platform id is used (``slack:U0123ABCD``, ``telegram:4242``).
    """

    name: str = ""
    slack: str = ""
    telegram: int | None = None
    role: Role

    @model_validator(mode="after")
    def _someone(self) -> Self:
        if not self.slack and self.telegram is None:
            raise ValueError("a chat user needs a slack user id, a telegram user id, or both")
        return self


class ChatChannel(ConfigModel):
    """A Slack channel or Telegram chat whose every member gets at least ``role`` there."""

    slack: str = ""
    telegram: int | None = None
    role: Role

    @model_validator(mode="after")
    def _somewhere(self) -> Self:
        if not self.slack and self.telegram is None:
            raise ValueError("a chat channel needs a slack channel id or a telegram chat id")
        return self


class SlackChatConfig(ConfigModel):
    """The Slack app: its signing secret and slash command.

    ``enabled`` unset means: on when a signing secret is given; ``true`` requires one; ``false`` switches the
    endpoints off whatever else is set. ``response_url_prefixes`` limits where replies are posted (a
    ``response_url`` comes from Slack's signed request, and must still point at Slack).
    """

    enabled_: bool | None = Field(default=None, alias="enabled")
    signing_secret: SecretStr | None = None
    command: str = "/alert-router"
    team_id: str = ""
    response_url_prefixes: list[str] = Field(default_factory=lambda: ["https://hooks.slack.com/"])
    timeout: Duration = Field(default=5.0, gt=0)

    @property
    def enabled(self) -> bool:
        """Whether Slack commands are on (a signing secret is configured and not switched off)."""
        return self.enabled_ is not False and bool(secret(self.signing_secret))

    @model_validator(mode="after")
    def _needs_secret(self) -> Self:
        if self.enabled_ and not secret(self.signing_secret):
            raise ValueError("enabled: true needs signing_secret (or signing_secret_file)")
        return self

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not re.fullmatch(r"/[a-z0-9_-]{1,31}", value):
            raise ValueError("a slash command is '/' and up to 31 lowercase letters, digits, '-' or '_'")
        return value


_SECRET_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


class TelegramChatConfig(ConfigModel):
    """The Telegram bot that takes commands: by webhook (public HTTPS) or by long polling.

    ``enabled`` unset means: on when a token is given; ``true`` requires one; ``false`` switches it off
    (so the receivers' bot token may be shared without turning commands on).
    """

    enabled_: bool | None = Field(default=None, alias="enabled")
    token: SecretStr | None = None
    api_url: str = "https://api.telegram.org/bot"
    mode: Literal["webhook", "polling"] = "webhook"
    webhook_secret: SecretStr | None = None
    poll_timeout: Duration = Field(default=30.0, ge=0, le=50)
    timeout: Duration = Field(default=10.0, gt=0)

    @property
    def enabled(self) -> bool:
        """Whether Telegram commands are on (a token is configured and not switched off)."""
        return self.enabled_ is not False and bool(secret(self.token))

    @model_validator(mode="after")
    def _secret(self) -> Self:
        if self.enabled_ and not secret(self.token):
            raise ValueError("enabled: true needs token (or token_file)")
        value = secret(self.webhook_secret)
        if value and not _SECRET_TOKEN.fullmatch(value):
            raise ValueError("webhook_secret: 1-256 characters of A-Z, a-z, 0-9, '_' and '-' (Telegram's rule)")
        if self.enabled and self.mode == "webhook" and not value:
            raise ValueError(
                "webhook mode needs webhook_secret (Telegram sends it in X-Telegram-Bot-Api-Secret-Token); "
                "or use mode: polling"
            )
        return self


class AlertmanagerBasicAuth(ConfigModel):
    """Basic credentials for the Alertmanager API (or the proxy in front of it)."""

    username: str = Field(min_length=1)
    password: SecretStr


class AlertmanagerApiConfig(ConfigModel):
    """Where the Alertmanager API v2 is (silences, status); ``url`` empty means ``links.alertmanager_url``.

    ``external_url`` is the base of the links put in replies (default: ``url``).
    """

    url: str = ""
    external_url: str = ""
    timeout: Duration = Field(default=5.0, gt=0)
    bearer_token: SecretStr | None = None
    basic_auth: AlertmanagerBasicAuth | None = None
    verify_tls: bool = True
    ca_file: str = ""
    retries: int = Field(default=2, ge=0, le=10)

    @field_validator("url", "external_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")


class EscalationSettings(ConfigModel):
    """The worker that fires escalation timers."""

    poll_interval: Duration = Field(default=10.0, gt=0)
    lease: Duration = Field(default=60.0, gt=0)


class ChatSettings(ConfigModel):
    """The ``chat:`` block: platforms, the Alertmanager API, who may do what, and escalation timing."""

    slack: SlackChatConfig = SlackChatConfig()
    telegram: TelegramChatConfig = TelegramChatConfig()
    alertmanager: AlertmanagerApiConfig = AlertmanagerApiConfig()
    users: list[ChatUser] = Field(default_factory=list)
    channels: list[ChatChannel] = Field(default_factory=list)
    default_role: Role | None = None
    commands: dict[str, Role] = Field(default_factory=dict)
    max_silence: Duration = Field(default=7 * 86400.0, gt=0)
    escalation: EscalationSettings = EscalationSettings()

    @field_validator("commands")
    @classmethod
    def _commands(cls, value: dict[str, Role]) -> dict[str, Role]:
        unknown = sorted(k for k in value if " ".join(k.split()) not in COMMANDS)
        if unknown:
            raise ValueError(f"unknown command(s) {', '.join(unknown)}; known: {', '.join(COMMANDS)}")
        return {" ".join(k.split()): v for k, v in value.items()}

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[tuple[str, str]] = set()
        for user in self.users:
            for key in (("slack", user.slack), ("telegram", str(user.telegram))):
                if key[1] in ("", "None"):
                    continue
                if key in seen:
                    raise ValueError(f"{key[0]} user {key[1]} is listed twice in chat.users")
                seen.add(key)
        return self

    def least_role(self, command: str) -> Role:
        """The least role that may run ``command`` (a key of :data:`COMMANDS`)."""
        return self.commands.get(command, COMMANDS[command])


class EscalatePolicy(ConfigModel):
    """A rule's ``escalate: {after: 10m, receivers: [oncall-lead], repeat: 3}``.

    A firing alert of the rule that nobody acks within ``after`` is sent to ``receivers``; again every
    ``after`` until it was sent ``repeat`` times. An ack or the alert's resolution stops it.
    """

    after: Duration = Field(gt=0)
    receivers: list[str] = Field(min_length=1)
    repeat: int = Field(default=1, ge=1, le=100)
