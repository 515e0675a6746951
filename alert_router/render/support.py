"""Small pieces the chat and mail channels share: config checks, links, template-error reporting, redaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from pydantic import SecretStr, ValidationInfo

from alert_router.models import Notification
from alert_router.render.templates import Dialect, check_template
from alert_router.scrub import scrub

TEMPLATE_ERRORS_KEY = "template_errors"
"""``notification.extra`` key under which a channel reports templates that failed and fell back."""


def receiver_enabled(info: ValidationInfo) -> bool:
    """Whether the receiver being validated is enabled (``config.py`` passes ``{"enabled": ...}`` as context)."""
    ctx = info.context if isinstance(info.context, Mapping) else {}
    return bool(ctx.get("enabled", True))


def missing_when_enabled(info: ValidationInfo, **values: object) -> None:
    """Raise ``ValueError`` naming the empty ``values`` when the receiver is enabled."""
    if not receiver_enabled(info):
        return
    missing = []
    for name, value in values.items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if value is None or value == "" or value == 0 or value == []:
            missing.append(name)
    if missing:
        raise ValueError(f"needs {', '.join(missing)} (or set the receiver's `enabled: false`)")


def template_field(value: str | None, dialect: Dialect) -> str | None:
    """Validate an optional template source (syntax errors are reported by ``alert-router check``)."""
    if value is None or not value.strip():
        return None
    return check_template(value, dialect)


def links_option(options: Mapping[str, Any]) -> dict[str, Any]:
    """The configured base URLs (``links:`` in the config) from a channel context's options, as a dict."""
    links = options.get("links")
    if links is None:
        return {}
    if isinstance(links, Mapping):
        return dict(links)
    dump = getattr(links, "model_dump", None)
    return dict(dump()) if callable(dump) else {}


def report_template_errors(notification: Notification, errors: list[str]) -> None:
    """Record this attempt's template failures on the notification (the delivery stage counts them)."""
    if errors:
        notification.extra[TEMPLATE_ERRORS_KEY] = list(errors)
    else:
        notification.extra.pop(TEMPLATE_ERRORS_KEY, None)


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Scrub ``text`` (:func:`alert_router.scrub.scrub`), also of this channel's own ``secrets``."""
    return scrub(text, None, extra=secrets)


RunbooksFor = Callable[[Mapping[str, str]], list[str]]
"""The runbooks that apply to an alert's labels (``options["runbooks_for"]`` of a channel context)."""


def runbooks_option(options: Mapping[str, Any]) -> RunbooksFor | None:
    """``options["runbooks_for"]``, or ``None`` when remediation is off (no Run runbook button then)."""
    found = options.get("runbooks_for")
    return found if callable(found) else None


def runbook_applies(runbooks_for: RunbooksFor | None, context: Mapping[str, Any]) -> bool:
    """Whether a runbook applies to any firing alert of a rendered message (its Run runbook button shows)."""
    if runbooks_for is None:
        return False
    return any(runbooks_for(a.get("labels") or {}) for a in context.get("firing_alerts") or [])
