"""The ``email`` receiver: multipart/alternative mail (text, then HTML) over SMTP with aiosmtplib.

Modes: ``starttls`` (port 587; the certificate is verified, against ``ca_file`` when given), ``tls``
(implicit TLS, port 465) and ``plain`` (a local relay, port 25; never upgraded). AUTH is used when
``username`` is set (``password`` or ``password_file``).

Threading: the first message of a group gets a fresh ``Message-ID``, kept in the store as the
reference; follow-ups (more alerts, resolution) set ``In-Reply-To`` and ``References`` so mail clients
show one conversation per Alertmanager group.

Failures: 4xx replies and connection problems are retryable; 5xx replies (recipient rejected,
authentication failed, message refused) are permanent.
"""

from __future__ import annotations

import ssl
import uuid
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any, Literal, Self

import aiosmtplib
from pydantic import ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from alert_router import __version__
from alert_router.channels.base import ChannelContext, ChannelError, ChannelType, MessageRef, RateLimit
from alert_router.configbase import ConfigModel, secret
from alert_router.durations import Duration
from alert_router.errors import FailureReason
from alert_router.graph.files import load_pictures, new_pictures
from alert_router.models import Notification
from alert_router.render import defaults
from alert_router.render.context import build_context, graph_cid
from alert_router.render.escape import clip, oneline
from alert_router.render.support import (
    links_option,
    missing_when_enabled,
    redact,
    report_template_errors,
    template_field,
)
from alert_router.render.templates import Template

DEFAULT_PORTS = {"starttls": 587, "tls": 465, "plain": 25}
MAX_REFERENCES = 20
SUBJECT_LIMIT = 200


def _addresses(value: Any) -> Any:
    if isinstance(value, str):
        return [a.strip() for a in value.split(",") if a.strip()]
    return value


class EmailConfig(ConfigModel):
    """``email: {host: smtp.example.com, mode: starttls, from: ..., to: [...]}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = "localhost"
    port: int | None = Field(default=None, ge=1, le=65535)
    mode: Literal["starttls", "tls", "plain"] = "starttls"
    ca_file: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    from_: str = Field(default="", alias="from")
    to: list[str] = Field(default_factory=list)
    cc: list[str] = Field(default_factory=list)
    timeout: Duration = 15.0
    subject_template: str | None = None
    template: str | None = None
    text_template: str | None = None

    @field_validator("to", "cc", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return _addresses(value)

    @field_validator("subject_template", "text_template")
    @classmethod
    def _text_template(cls, value: str | None) -> str | None:
        return template_field(value, "text")

    @field_validator("template")
    @classmethod
    def _html_template(cls, value: str | None) -> str | None:
        return template_field(value, "html")

    @model_validator(mode="after")
    def _complete(self, info: ValidationInfo) -> Self:
        missing_when_enabled(info, host=self.host, **{"from": self.from_}, to=self.to)
        if self.username and not secret(self.password):
            missing_when_enabled(info, password=self.password)
        return self

    @property
    def effective_port(self) -> int:
        """The port, defaulting by mode."""
        return self.port or DEFAULT_PORTS[self.mode]


def map_smtp_error(exc: BaseException, secrets: list[str] | None = None) -> ChannelError:
    """Classify an SMTP failure: 4xx and transport problems retry, 5xx are permanent."""
    text = redact(f"smtp: {type(exc).__name__}: {exc}", secrets or [])
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in exc.recipients]
        if codes and all(400 <= c < 500 for c in codes):
            return ChannelError(FailureReason.SERVER_ERROR, text, retryable=True)
        return ChannelError(FailureReason.REJECTED, text, retryable=False)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        if 400 <= exc.code < 500:
            return ChannelError(FailureReason.SERVER_ERROR, text, retryable=True)
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError) or exc.code in (530, 534, 535, 538):
            return ChannelError(FailureReason.AUTH, text, retryable=False)
        if exc.code >= 500:
            return ChannelError(FailureReason.REJECTED, text, retryable=False)
        return ChannelError(FailureReason.CONNECTION, text, retryable=True)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ChannelError(FailureReason.AUTH, text, retryable=False)
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return ChannelError(FailureReason.INVALID, text, retryable=False)
    if isinstance(exc, TimeoutError):
        return ChannelError(FailureReason.TIMEOUT, text, retryable=True)
    if isinstance(exc, aiosmtplib.SMTPException | ConnectionError | OSError | ssl.SSLError):
        return ChannelError(FailureReason.CONNECTION, text, retryable=True)
    return ChannelError(FailureReason.UNKNOWN, text, retryable=False)


class EmailChannel:
    """Sends one mail per notification, threaded per group."""

    digest_capacity = 1000
    """Alerts listed in one storm digest mail."""

    def __init__(self, receiver: str, cfg: EmailConfig, links: dict[str, Any] | None = None) -> None:
        self.receiver = receiver
        self.cfg = cfg
        self.links = links or {}
        self.subject = Template(
            "text", defaults.EMAIL_SUBJECT, cfg.subject_template, name="subject_template", receiver=receiver
        )
        self.text = Template("text", defaults.EMAIL_TEXT, cfg.text_template, name="text_template", receiver=receiver)
        self.html = Template("html", defaults.EMAIL_HTML, cfg.template, name="template", receiver=receiver)
        self._tls: ssl.SSLContext | None = None

    def destination(self) -> str:
        """The recipients."""
        return "email:" + ",".join(sorted({*self.cfg.to, *self.cfg.cc}))

    def rate_limit(self) -> RateLimit | None:
        """SMTP has no published rate limit (set ``rate_limit`` on the receiver if your relay has one)."""
        return None

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            try:
                self._tls = ssl.create_default_context(cafile=self.cfg.ca_file or None)
            except (OSError, ssl.SSLError) as exc:
                raise ChannelError(
                    FailureReason.INVALID, f"smtp: cannot load ca_file {self.cfg.ca_file}: {exc}", retryable=False
                ) from exc
        return self._tls

    def domain(self) -> str:
        """The domain used in Message-IDs (the sender's)."""
        return self.cfg.from_.rpartition("@")[2].strip("> ") or "alert-router.local"

    def build_message(
        self,
        notification: Notification,
        previous: MessageRef | None,
        pictures: Sequence[tuple[Mapping[str, Any], bytes]] = (),
    ) -> tuple[EmailMessage, str]:
        """Render the mail for ``notification`` (threaded onto ``previous``); return it and its Message-ID.

        ``pictures`` (entry, PNG) go inline in the HTML part (``multipart/related``), each under the
        ``Content-ID`` the template's ``cid:`` links name.
        """
        ctx = build_context(notification, links=self.links)
        errors: list[str] = []
        subject = clip(oneline(self.subject.render(ctx, errors)), SUBJECT_LIMIT) or "alert-router notification"
        text = self.text.render(ctx, errors)
        html = self.html.render(ctx, errors)
        report_template_errors(notification, errors)
        msg = EmailMessage()
        msg["From"] = self.cfg.from_
        msg["To"] = ", ".join(self.cfg.to)
        if self.cfg.cc:
            msg["Cc"] = ", ".join(self.cfg.cc)
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        message_id = f"<{uuid.uuid4().hex}.{ctx['group_id']}@{self.domain()}>"  # short: no header folding
        msg["Message-ID"] = message_id
        if previous and previous.get("message_id"):
            refs = [str(r) for r in previous.get("references") or [previous["message_id"]]]
            msg["In-Reply-To"] = str(previous.get("last") or previous["message_id"])
            msg["References"] = " ".join(refs[-MAX_REFERENCES:])
        msg["X-Alert-Router-Group"] = ctx["group_id"]
        msg["X-Alert-Router-Status"] = ctx["status"]
        msg["Auto-Submitted"] = "auto-generated"
        msg["User-Agent"] = f"alert-router/{__version__}"
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        html_part = msg.get_body(preferencelist=("html",)) if pictures else None
        if html_part is not None:
            for g, png in pictures:
                html_part.add_related(
                    png, maintype="image", subtype="png", cid=f"<{graph_cid(str(g['id']))}>",
                    filename=f"graph-{g['id']}.png", disposition="inline",
                )
        return msg, message_id

    async def send(self, notification: Notification, previous: MessageRef | None) -> MessageRef | None:
        """Send one mail; return the thread reference (the first Message-ID, the last one, the chain)."""
        pictures = await load_pictures(new_pictures(notification.extra, None))
        msg, message_id = self.build_message(notification, previous, pictures)
        cfg = self.cfg
        password = secret(cfg.password)
        kwargs: dict[str, Any] = {
            "hostname": cfg.host,
            "port": cfg.effective_port,
            "timeout": cfg.timeout,
            "use_tls": cfg.mode == "tls",
            "start_tls": cfg.mode == "starttls",
        }
        if cfg.mode != "plain":
            kwargs["tls_context"] = self._tls_context()
        if cfg.username:
            kwargs["username"] = cfg.username
            kwargs["password"] = password
        try:
            errors, _reply = await aiosmtplib.send(
                msg, sender=cfg.from_, recipients=[*cfg.to, *cfg.cc], **kwargs
            )
        except Exception as exc:
            raise map_smtp_error(exc, [password]) from None
        if errors:
            refused = ", ".join(f"{addr} ({r.code})" for addr, r in errors.items())
            notification.extra["email_refused"] = refused
        root = str(previous["message_id"]) if previous and previous.get("message_id") else message_id
        chain = [str(r) for r in (previous or {}).get("references") or ([root] if previous else [])]
        chain = [*chain, message_id] if previous else [message_id]
        return {"message_id": root, "last": message_id, "references": chain[-MAX_REFERENCES:]}

    async def aclose(self) -> None:
        """Nothing is kept open between mails."""


def _build(receiver: str, cfg: Any, ctx: ChannelContext) -> EmailChannel:
    assert isinstance(cfg, EmailConfig)
    return EmailChannel(receiver, cfg, links_option(ctx.options))


TYPE = ChannelType("email", EmailConfig, _build, secret_free=False)
