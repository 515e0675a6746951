"""structlog setup: JSON lines by default, a readable console format on request, secrets redacted.

Two nets: values under keys that name a secret are replaced (:func:`redact_secrets`), and every string of
every event, tracebacks included, is scrubbed of configured secrets and credential patterns and cut
(:func:`alert_router.scrub.scrub_log_event`); the standard library's records (aiohttp, slack-sdk,
kubernetes) go through :class:`alert_router.scrub.ScrubFilter`.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from alert_router.scrub import ScrubFilter, scrub_log_event

_SECRET_KEYS = re.compile(r"(?i)(token|password|secret|authorization|api_key|credentials)")


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor that masks the value of any key that names a secret."""
    for key in list(event):
        if _SECRET_KEYS.search(key) and event[key] not in (None, "", False):
            event[key] = "***"
    return event


def configure_logging(fmt: str = "json", level: str = "info", stream: TextIO | None = None) -> None:
    """Configure structlog (and the standard library's logging, which libraries use) once for the process.

    ``stream`` is where lines go (standard error by default).
    """
    out = stream if stream is not None else sys.stderr
    lvl = getattr(logging, level.upper(), logging.INFO)
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            redact_secrets,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            scrub_log_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(level=max(lvl, logging.WARNING), stream=out, format="%(levelname)s %(name)s %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, ScrubFilter) for f in handler.filters):
            handler.addFilter(ScrubFilter())
