"""Logging: one stream of JSON lines (or a console format on request), whoever logs, with secrets redacted.

alert-router's own events (structlog) and every library that logs through the standard library (asyncpg,
aiohttp, python-telegram-bot, kubernetes, Python's warnings) go through one handler and one
:class:`structlog.stdlib.ProcessorFormatter`, so a library's traceback becomes the ``exception`` field of a
JSON line instead of plain text in the middle of the stream.

A failure that repeats (the database is down, and every request and worker says so) is logged once per
``log.repeat_interval``: later occurrences of the same event are counted, and the next line for it says how
many were left out (``repeated``). See :class:`RepeatFilter` for what counts as the same event.

Secrets: values under keys that name a secret are replaced (:func:`redact_secrets`), and every string of every
line, library records and tracebacks included, is scrubbed of configured secrets and credential patterns and cut
(:func:`alert_router.scrub.scrub_log_event`, in the one formatter every line goes through).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog

from alert_router.scrub import scrub_log_event

_SECRET_KEYS = re.compile(r"(?i)(token|password|secret|authorization|api_key|credentials)")

REPEATED = "repeated"
"""The field that tells how many occurrences of an event were left out since its previous line."""

IDENTITY_FIELDS = ("receiver", "reason", "runbook")
"""Fields that tell failures apart: the same event for two receivers is two failures, each logged."""


def redact_secrets(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """A structlog processor that masks the value of any key that names a secret."""
    for key in list(event):
        if _SECRET_KEYS.search(key) and event[key] not in (None, "", False):
            event[key] = "***"
    return event


@dataclass(slots=True)
class _Seen:
    logged_at: float
    suppressed: int = 0


class RepeatFilter(logging.Filter):
    """Lets each kind of warning or error through once per ``interval`` seconds and counts the rest.

    The kind is the logger, the level, the event text (for a standard-library record: its message template,
    before the arguments are filled in) and the values of :data:`IDENTITY_FIELDS`; not the exception, whose type
    changes while one outage goes on (a reset connection, then a refused one). The first line after the interval
    carries ``repeated``: how many were left out since the previous one.
    Info and debug lines always pass, and so does a receiver's output (:data:`RECEIVER_LOGGERS`: the ``console``
    receiver logs every firing notification at warning level); ``interval`` 0 lets everything pass.
    """

    MAX_KINDS = 1000

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._seen: dict[tuple[Any, ...], _Seen] = {}
        self._lock = threading.Lock()

    @staticmethod
    def kind(record: logging.LogRecord) -> tuple[Any, ...]:
        """What makes two records "the same failure"."""
        if isinstance(record.msg, dict):  # a structlog event on its way to the formatter
            ed = record.msg
            return (record.name, record.levelno, str(ed.get("event")), tuple(str(ed.get(k)) for k in IDENTITY_FIELDS))
        return (record.name, record.levelno, str(record.msg))

    def filter(self, record: logging.LogRecord) -> bool:
        """Pass the first of a kind per interval (with the count of the ones left out), drop the others."""
        if record.levelno < logging.WARNING or self.interval <= 0 or record.name in RECEIVER_LOGGERS:
            return True
        key = self.kind(record)
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen.logged_at < self.interval:
                seen.suppressed += 1
                return False
            left_out = seen.suppressed if seen is not None else 0
            self._seen[key] = _Seen(now)
            if len(self._seen) > self.MAX_KINDS:
                self._seen = {k: v for k, v in self._seen.items() if now - v.logged_at < self.interval}
        if left_out:
            if isinstance(record.msg, dict):
                record.msg = {**record.msg, REPEATED: left_out}
            else:
                setattr(record, REPEATED, left_out)
        return True


RECEIVER_LOGGERS = frozenset({"alert_router.console"})
"""Loggers whose lines are a receiver's output (a record of every notification), never left out as repeats."""


def readable_notification(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Console format: a console receiver's line prints its message ``text`` as it reads, not dict reprs.

    ``notification → console (firing)`` and then the message, indented; ``alerts`` and ``extra`` (the
    structured form, kept in JSON lines) are left out.
    """
    if event.get("logger") not in RECEIVER_LOGGERS or not isinstance(event.get("text"), str):
        return event
    text = event.pop("text")
    for key in ("alerts", "extra", "rule", "group_key", "logger"):
        event.pop(key, None)
    head = f"{event.get('event', 'notification')} → {event.pop('receiver', '')} ({event.pop('status', '')})"
    event["event"] = head + "\n" + "\n".join(f"    {line}" if line else "" for line in text.splitlines())
    return event


def _renderer(fmt: str) -> Any:
    if fmt == "console":
        return structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    return structlog.processors.JSONRenderer()


def build_handler(fmt: str = "json", repeat_interval: float = 60.0, stream: Any = None) -> logging.Handler:
    """The one handler every log line goes through: structlog's formatter and the :class:`RepeatFilter`."""
    shared: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        # Records from the standard library: the same fields as alert-router's own events.
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder(allow=[REPEATED])],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            redact_secrets,
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            scrub_log_event,
            *([readable_notification] if fmt == "console" else []),
            _renderer(fmt),
        ],
    )
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RepeatFilter(repeat_interval))
    return handler


def configure_logging(
    fmt: str = "json", level: str = "info", repeat_interval: float = 60.0, stream: Any = None
) -> None:
    """Configure structlog and the standard library's logging once for the process (see the module docstring).

    alert-router logs at ``level``; libraries only from ``warning`` up (their info lines are per request).
    ``stream`` is where lines go (standard error by default).
    """
    lvl = getattr(logging, level.upper(), logging.INFO)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=False,
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(build_handler(fmt, repeat_interval, stream))
    root.setLevel(max(lvl, logging.WARNING))
    logging.getLogger("alert_router").setLevel(lvl)
    logging.captureWarnings(True)
