"""Error text from upstreams, made safe to show: redacted, scrubbed of configured secrets, cut short.

Loki, Slack, Telegram, SMTP servers, Kubernetes, Alertmanager and webhook receivers answer failures with
text of their own, and some echo what they were sent: ``401 invalid credentials: Bearer <token>``. That
text becomes a failure reason, which reaches chat (the notification's "logs unavailable: …"), the audit
log and the service's own log. :func:`scrub` is the one place it is made safe:

1. every configured secret value (tokens, passwords, signing secrets: each ``SecretStr`` of the loaded
   configuration, see :func:`register_config`) is replaced, whether or not it looks like a credential,
   also in its URL-encoded form;
2. the credential patterns of :mod:`alert_router.redact` are masked (a token the upstream made up);
3. control characters become spaces (one line) and the text is cut to ``limit`` characters.

The error classes that carry upstream text (``ChannelError``, ``LokiError``, ``AlertmanagerError``,
``KubeError``, ``StepFailed``, the http action's error) scrub their message when they are built, so no
call site can forget; :func:`scrub_log_event` does the same to every log event as a safety net, and
:class:`ScrubFilter` to the standard library's log records (what aiohttp, slack-sdk or kubernetes log).
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import fields, is_dataclass
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, SecretStr

from alert_router.redact import MASK, Redactor

__all__ = [
    "LOG_CHARS",
    "REASON_CHARS",
    "ScrubFilter",
    "known_secrets",
    "register_config",
    "register_secrets",
    "scrub",
    "scrub_log_event",
    "secrets_in",
]

REASON_CHARS = 500
"""Longest failure reason kept (notifications, audit records, chat replies)."""

LOG_CHARS = 4000
"""Longest string value kept in a log event (a formatted traceback may be longer: ``TRACE_CHARS``)."""

TRACE_CHARS = 20000
MIN_SECRET_CHARS = 4
"""Shorter configured values are not replaced (they would mangle ordinary words)."""

_REDACTOR = Redactor()
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_lock = threading.Lock()
_registered: frozenset[str] = frozenset()  # register_secrets(): only grows
_configured: frozenset[str] = frozenset()  # register_config(): the last configuration loaded
_secrets: tuple[str, ...] = ()  # both, longest first (no partial leftovers)


def _forms(values: Iterable[str | SecretStr | None]) -> set[str]:
    found = set()
    for v in values:
        text = v.get_secret_value() if isinstance(v, SecretStr) else v
        if text and len(text) >= MIN_SECRET_CHARS:
            found.add(text)
            encoded = quote(text, safe="")
            if encoded != text:
                found.add(encoded)
    return found


def _publish() -> None:
    global _secrets
    _secrets = tuple(sorted(_registered | _configured, key=len, reverse=True))


def register_secrets(values: Iterable[str | SecretStr | None]) -> None:
    """Remember secret values to be scrubbed from upstream text from now on (the set only grows)."""
    global _registered
    with _lock:
        _registered = _registered | _forms(values)
        _publish()


def known_secrets() -> tuple[str, ...]:
    """The secret values scrubbed now (longest first)."""
    return _secrets


def secrets_in(obj: Any, _seen: set[int] | None = None, _depth: int = 0) -> list[str]:
    """Every ``SecretStr`` value inside ``obj`` (pydantic models, dataclasses, mappings and sequences)."""
    seen = _seen if _seen is not None else set()
    if _depth > 12 or id(obj) in seen:
        return []
    if isinstance(obj, SecretStr):
        return [obj.get_secret_value()]
    if isinstance(obj, str | bytes | int | float | bool) or obj is None:
        return []
    seen.add(id(obj))
    children: Iterable[Any]
    if isinstance(obj, BaseModel):
        children = (getattr(obj, name, None) for name in type(obj).model_fields)
    elif is_dataclass(obj) and not isinstance(obj, type):
        children = (getattr(obj, f.name, None) for f in fields(obj))
    elif isinstance(obj, Mapping):
        children = obj.values()
    elif isinstance(obj, list | tuple | set | frozenset):
        children = obj
    else:
        return []
    out: list[str] = []
    for child in children:
        out.extend(secrets_in(child, seen, _depth + 1))
    return out


def register_config(config: Any) -> None:
    """Scrub every secret of ``config`` (receivers, chat, Loki, Alertmanager...) from now on.

    They replace those of the configuration registered before (one process serves one configuration).
    """
    global _configured
    with _lock:
        _configured = frozenset(_forms(secrets_in(config)))
        _publish()


def scrub(text: object, limit: int | None = REASON_CHARS, *, extra: Iterable[str | None] = (),
          oneline: bool = True) -> str:
    """Return ``text`` safe to show: configured and ``extra`` secrets replaced, credentials masked, cut.

    ``limit`` ``None`` keeps the length; ``oneline`` turns newlines and other control characters into
    spaces. Redaction happens before the cut, so half a secret is never left behind.
    """
    out = str(text)
    if limit is not None and len(out) > 4 * limit + 1024:
        out = out[: 4 * limit + 1024]  # what can never be shown is not worth scanning
    values = list(_secrets)
    extras = [e for e in extra if e and len(e) >= MIN_SECRET_CHARS]
    if extras:
        values = sorted(set(values) | set(extras) | {quote(e, safe="") for e in extras}, key=len, reverse=True)
    for value in values:
        if value in out:
            out = out.replace(value, MASK)
    out = _REDACTOR(out)
    if oneline:
        out = _CONTROL.sub(" ", out).strip()
    if limit is not None and len(out) > limit:
        out = out[: max(1, limit - 1)] + "…"
    return out


def _scrub_value(value: Any, limit: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return scrub(value, limit, oneline=False)
    if depth < 3 and isinstance(value, Mapping):
        return {k: _scrub_value(v, limit, depth + 1) for k, v in value.items()}
    if depth < 3 and isinstance(value, list | tuple):
        return [_scrub_value(v, limit, depth + 1) for v in value]
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}", limit, oneline=False)
    return value


def scrub_log_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor: scrub every string in the event (after ``format_exc_info``), cut long ones."""
    for key, value in event.items():
        if key in ("timestamp", "level", "logger"):
            continue
        event[key] = _scrub_value(value, TRACE_CHARS if key == "exception" else LOG_CHARS)
    return event


class ScrubFilter(logging.Filter):
    """A ``logging`` filter that scrubs the message of every record (for the libraries' own log lines)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the record's message with its scrubbed text; never drops a record."""
        try:
            message = record.getMessage()
        except Exception:  # a library's broken format arguments: leave the record as it is
            return True
        record.msg = scrub(message, LOG_CHARS, oneline=False)
        record.args = None
        if record.exc_info and record.exc_text is None:
            record.exc_text = scrub(logging.Formatter().formatException(record.exc_info), TRACE_CHARS,
                                    oneline=False)
        return True
