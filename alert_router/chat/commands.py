"""One parser and one dispatcher for chat commands, whatever the platform.

Commands (the same words in Slack and Telegram; buttons map onto them)::

    alerts [matchers]                              firing alerts: short id, severity, age, ack state
    ack <id> [<id> ...]                            record who acked; stops escalation; the message shows it
    unack <id> [<id> ...]                          take an ack back: escalation resumes, the message shows it
    escalate <id>                                  page the alert's escalation receivers now
    silence <id | matchers> <duration> [comment]   a real Alertmanager silence, created by the chat user
    unsilence <silence-id>                         expire it
    silences [matchers]                            active silences: id, matchers, creator, ends in
    runbook list | run <name> <alert-id> | approve <run-id> | deny <run-id> [reason]
    status                                         service health, queue depth, Alertmanager reachable
    help [command]

``<id>`` is an alert's short id (the first characters of its fingerprint, at least 4; messages show 8).
Matchers use Alertmanager's syntax: ``alertname=Foo namespace=~"prod|staging"`` or ``{alertname="Foo"}``.

:class:`CommandService` runs a command for an :class:`~alert_router.chat.authz.Identity`: parse (or decode
a button), authorize, execute, then write exactly one audit record (``chat_command``, ``chat_button`` or
``chat_refused``) and count it. The platform adapters (:mod:`alert_router.api.slack`,
:mod:`alert_router.api.telegram`) only verify requests, extract the identity and the text, and send the
:class:`Reply` back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

import structlog

from alert_router.audit import AuditEntry
from alert_router.chat.alertmanager import AlertmanagerClient, AlertmanagerError
from alert_router.chat.authz import Authorizer, Identity, Principal
from alert_router.chat.buttons import decode_button
from alert_router.chat.clock import Clock, SystemClock
from alert_router.chat.metrics import ChatMetrics
from alert_router.chat.records import AckSnapshot
from alert_router.chat.settings import COMMANDS
from alert_router.config import Config
from alert_router.durations import format_duration, parse_duration
from alert_router.errors import AlertRouterError, MatcherError, StoreUnavailable
from alert_router.matchers import (
    Matcher,
    MatchOp,
    format_matchers,
    parse_matchers,
    select_matching,
)
from alert_router.pipeline.route import route_labels
from alert_router.remediation.plan import applicable_runbooks
from alert_router.remediation.runs import RunRecord
from alert_router.render.context import SEVERITY_MARKERS, SEVERITY_ORDER, group_id, key_labels, short_id
from alert_router.store.base import AlertRecord, NewOutboxItem, Store

log = structlog.get_logger("alert_router.chat")

Source = Literal["command", "button"]

USAGE: dict[str, str] = {
    "alerts": "alerts [matchers]",
    "ack": "ack <id> [<id> ...]",
    "unack": "unack <id> [<id> ...]",
    "escalate": "escalate <id>",
    "silence": "silence <id | matchers> <duration> [comment]",
    "unsilence": "unsilence <silence-id>",
    "silences": "silences [matchers]",
    "runbook list": "runbook list",
    "runbook run": "runbook run <runbook> <alert-id>",
    "runbook approve": "runbook approve <run-id>",
    "runbook deny": "runbook deny <run-id> [reason]",
    "status": "status",
    "help": "help [command]",
}
"""How to write each command (without the platform's prefix)."""

DESCRIPTIONS: dict[str, str] = {
    "alerts": "firing alerts with short ids, severity, age and ack state",
    "ack": "say you are on it: stops escalation, the alert's message shows who acked",
    "unack": "take an ack back (nobody is on it after all): escalation resumes",
    "escalate": "page the alert's escalation receivers now, without waiting for the timer",
    "silence": "create an Alertmanager silence, e.g. `silence 2bb1035c 2h deploying` or "
    "`silence alertname=Foo namespace=prod 30m`",
    "unsilence": "expire a silence",
    "silences": "active Alertmanager silences with their ids (for unsilence), matchers, creator and end",
    "runbook list": "runbooks and runs waiting for approval",
    "runbook run": "start a runbook for an alert (guards and approval still apply)",
    "runbook approve": "approve a run that waits for approval",
    "runbook deny": "deny a run that waits for approval",
    "status": "service health, queue depth, Alertmanager reachability",
    "help": "this help",
}

ALIASES = {"start": "help", "approve": "runbook approve", "deny": "runbook deny", "runbooks": "runbook list"}
MIN_ID = 4
MAX_LISTED = 30
MAX_IDS = 50
"""Alert ids one command takes."""
_ID = re.compile(r"^[0-9A-Za-z]{4,64}$")
_SILENCE_ID = re.compile(r"^[0-9A-Za-z-]{4,64}$")
_DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+$")
_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2018": "'", "\u2019": "'"})
ZERO_TIME = "0001-01-01T00:00:00Z"


class ParseError(AlertRouterError):
    """The text is not a valid command; ``command`` names the command when it was recognised."""

    def __init__(self, message: str, command: str | None = None) -> None:
        self.command = command
        super().__init__(message)


class CommandError(AlertRouterError):
    """A command that cannot be carried out as asked (unknown id, ambiguous prefix, nothing to do)."""


@dataclass(frozen=True, slots=True)
class Command:
    """A parsed command.

    ``ids`` are alert short ids (``*`` with ``group`` for every firing alert of a group, from a button);
    ``group`` restricts id lookups to one group (buttons carry the group id).
    """

    name: str
    ids: tuple[str, ...] = ()
    matchers: tuple[Matcher, ...] = ()
    duration: float | None = None
    comment: str = ""
    runbook: str = ""
    run_id: int | None = None
    silence_id: str = ""
    topic: str = ""
    group: str = ""
    source: Source = "command"
    text: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """What to tell the user: ``public`` replies are for the whole channel, others only for the sender."""

    text: str
    ok: bool = True
    public: bool = False


@dataclass
class _Outcome:
    reply: Reply
    outcome: str = "ok"
    details: dict[str, Any] = field(default_factory=dict)
    runbook: str | None = None
    run_id: int | None = None
    target: str | None = None
    audited: bool = False


class Remediation(Protocol):
    """What chat commands need of the runbook engine (:class:`~alert_router.remediation.engine.RemediationEngine`)."""

    async def start(
        self, runbook_name: str, labels: Mapping[str, str], user: str, annotations: Mapping[str, str] | None = None
    ) -> RunRecord:
        """Start a run by hand; guards and approval apply."""
        ...

    async def approve(self, run_id: int, user: str) -> RunRecord:
        """Approve a pending run."""
        ...

    async def deny(self, run_id: int, user: str, reason: str = "") -> RunRecord:
        """Deny a pending run."""
        ...


# -- parsing ------------------------------------------------------------------------------------------


def tokenize(text: str) -> list[str]:
    """Split on whitespace, keeping ``"quoted strings"`` and ``{braced matchers}`` whole (quotes kept)."""
    text = text.translate(_QUOTES)
    tokens: list[str] = []
    current: list[str] = []
    quote = False
    depth = 0
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current.append(ch)
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i + 1])
                i += 1
            elif ch == '"':
                quote = False
        elif ch == '"':
            quote = True
            current.append(ch)
        elif ch == "{":
            depth += 1
            current.append(ch)
        elif ch == "}":
            depth = max(0, depth - 1)
            current.append(ch)
        elif ch.isspace() and depth == 0:
            if current:
                tokens.append("".join(current))
                current = []
        else:
            current.append(ch)
        i += 1
    if quote:
        raise ParseError("unterminated quote")
    if current:
        tokens.append("".join(current))
    return tokens


ECHO_LIMIT = 40
"""Characters of the user's input an error reply quotes back (the rest is elided)."""


def elide(text: str, limit: int) -> str:
    """``text`` cut after ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text):,} characters)"


def shown(token: str, limit: int = ECHO_LIMIT) -> str:
    """``token`` quoted for a reply, elided past ``limit`` characters: ``'aaaa…' (50,000 characters)``."""
    if len(token) <= limit:
        return repr(token)
    return f"{token[:limit]!r}… ({len(token):,} characters)"


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return token


def _matchers(tokens: Sequence[str], command: str) -> tuple[Matcher, ...]:
    out: list[Matcher] = []
    for token in tokens:
        try:
            out.extend(parse_matchers(token))
        except MatcherError as exc:
            raise ParseError(f"{shown(token)} is not a matcher: {elide(str(exc), 200)}", command) from None
    return tuple(out)


def _alert_id(token: str, command: str) -> str:
    if not _ID.match(token):
        raise ParseError(f"{shown(token)} is not an alert id (give at least {MIN_ID} characters of it)", command)
    return token.lower()


def _run_id(token: str, command: str) -> int:
    text = token.removeprefix("#")
    if not text.isdigit():
        raise ParseError(f"{shown(token)} is not a run id (a number, as `runbook list` shows it)", command)
    return int(text)


def _command_word(tokens: list[str]) -> tuple[str, list[str]]:
    word = tokens[0].lower().lstrip("/")
    rest = tokens[1:]
    word = ALIASES.get(word, word)
    if word == "runbook":
        sub = rest[0].lower() if rest else "list"
        name = f"runbook {sub}"
        if name not in COMMANDS:
            raise ParseError(f"unknown runbook command {shown(sub)}: use list, run, approve or deny", "runbook list")
        return name, rest[1:]
    if word not in COMMANDS:
        raise ParseError(f"unknown command {shown(tokens[0])}")
    return word, rest


def parse_command(text: str) -> Command:
    """Parse one command line (without the platform's prefix); raise :class:`ParseError` on mistakes."""
    tokens = tokenize(text.strip())
    if not tokens:
        return Command("help", text=text)
    name, args = _command_word(tokens)
    if name in ("help",):
        return Command(name, topic=" ".join(args).lower(), text=text)
    if name in ("status", "runbook list"):
        if args:
            raise ParseError(f"`{name}` takes no arguments", name)
        return Command(name, text=text)
    if name in ("alerts", "silences"):
        return Command(name, matchers=_matchers(args, name), text=text)
    if name in ("ack", "unack"):
        if not args:
            raise ParseError("which alert? give its id", name)
        if len(args) > MAX_IDS:
            raise ParseError(f"{len(args):,} ids: give at most {MAX_IDS} at once", name)
        return Command(name, ids=tuple(_alert_id(a, name) for a in args), text=text)
    if name == "escalate":
        if len(args) != 1:
            raise ParseError("give one alert id", name)
        return Command(name, ids=(_alert_id(args[0], name),), text=text)
    if name == "silence":
        return _parse_silence(args, text)
    if name == "unsilence":
        if len(args) != 1 or not _SILENCE_ID.match(args[0]):
            raise ParseError("give the silence id (as `silence` replied it)", name)
        return Command(name, silence_id=args[0], text=text)
    if name == "runbook run":
        if len(args) != 2:
            raise ParseError("give the runbook name and the alert id", name)
        return Command(name, runbook=args[0], ids=(_alert_id(args[1], name),), text=text)
    if name in ("runbook approve", "runbook deny"):
        if not args or (name == "runbook approve" and len(args) != 1):
            raise ParseError("give the run id", name)
        comment = " ".join(_unquote(a) for a in args[1:])
        return Command(name, run_id=_run_id(args[0], name), comment=comment, text=text)
    raise ParseError(f"unknown command {shown(tokens[0])}")  # pragma: no cover - every name is handled above


def _parse_silence(args: list[str], text: str) -> Command:
    name = "silence"
    at = next((i for i, a in enumerate(args) if i >= 1 and _DURATION.match(a.lower())), None)
    if at is None:
        raise ParseError("give what to silence and for how long, e.g. `silence 2bb1035c 2h`", name)
    target, duration_text, comment = args[:at], args[at].lower(), " ".join(_unquote(a) for a in args[at + 1 :])
    duration = parse_duration(duration_text)
    if duration <= 0:
        raise ParseError("the duration must be longer than zero", name)
    if len(target) == 1 and "=" not in target[0] and "{" not in target[0]:
        return Command(name, ids=(_alert_id(target[0], name),), duration=duration, comment=comment, text=text)
    matchers = _matchers(target, name)
    if not matchers:
        raise ParseError("give an alert id or matchers", name)
    return Command(name, matchers=matchers, duration=duration, comment=comment, text=text)


def command_from_button(value: str) -> Command:
    """The command a button stands for; raise :class:`ParseError` for a value that is not ours."""
    press = decode_button(value)
    if press is None:
        raise ParseError("this button is not one of alert-router's (or comes from an older version)")
    ids = (press.alert,) if press.alert else ()
    return Command(
        press.command,
        ids=ids,
        group=press.group,
        run_id=press.run_id,
        duration=press.silence_for,
        source="button",
        text=value,
    )


# -- helpers ------------------------------------------------------------------------------------------


def iso(ts: float) -> str:
    """Epoch seconds as RFC 3339 UTC."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def alert_wire(rec: AlertRecord) -> dict[str, Any]:
    """A stored alert in Alertmanager's webhook form (what a ``notify`` payload carries)."""
    firing = rec.status == "firing"
    return {
        "status": rec.status,
        "labels": dict(rec.labels),
        "annotations": dict(rec.annotations),
        "startsAt": iso(rec.starts_at),
        "endsAt": ZERO_TIME if firing or rec.ends_at is None else iso(rec.ends_at),
        "generatorURL": rec.generator_url,
        "fingerprint": rec.fingerprint,
    }


def common_labels(records: Sequence[AlertRecord]) -> dict[str, str]:
    """The labels every record has with the same value."""
    if not records:
        return {}
    common = dict(records[0].labels)
    for rec in records[1:]:
        common = {k: v for k, v in common.items() if rec.labels.get(k) == v}
    return common


def renotify_items(snapshot: AckSnapshot) -> list[NewOutboxItem]:
    """Re-render every firing message of the acked alerts' groups, showing who acked (``extra["acked_by"]``)."""
    items: list[NewOutboxItem] = []
    for notice in snapshot.notices:
        payload = dict(notice.payload)
        group_key = str(payload.get("group_key", ""))
        acks = snapshot.group_acks.get(group_key)
        if acks is None or payload.get("status") != "firing":
            continue
        extra = dict(payload.get("extra") or {})
        extra["acked_by"] = dict(acks)
        payload["extra"] = extra
        payload["changed"] = [r.fingerprint for r in snapshot.acked if r.group_key == group_key]
        payload["received_at"] = iso(snapshot.now)
        items.append(NewOutboxItem("notify", notice.dest, notice.message_key, payload))
    return items


def describe_alert(rec: AlertRecord, now: float) -> str:
    """``2bb1035c 🔴 critical ModelServiceDown namespace=prod deployment=model-api · firing 12m``."""
    severity = rec.labels.get("severity", "none")
    marker = SEVERITY_MARKERS.get(severity.lower(), "⚪")
    labels = " ".join(f"{k}={v}" for k, v in key_labels(rec.labels, 4))
    since = rec.changed_at if rec.changed_at else rec.starts_at
    name = rec.labels.get("alertname", "(unnamed)")
    age = format_duration(max(0.0, now - since))
    return f"{short_id(rec.fingerprint)} {marker} {severity} {name} {labels} · firing {age}"


# -- the dispatcher -----------------------------------------------------------------------------------


class CommandService:
    """Parses, authorizes, executes and audits chat commands and button presses."""

    def __init__(
        self,
        store: Store,
        config: Config,
        *,
        authorizer: Authorizer | None = None,
        alertmanager: AlertmanagerClient | None = None,
        remediation: Callable[[], Remediation | None] | None = None,
        metrics: ChatMetrics | None = None,
        clock: Clock | None = None,
        wake_delivery: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.config = config
        self.settings = config.settings.chat
        self.authorizer = authorizer or Authorizer(self.settings)
        self.alertmanager = alertmanager or AlertmanagerClient(
            self.settings.alertmanager, url=config.settings.links.alertmanager_url
        )
        self._remediation = remediation or (lambda: None)
        self.metrics = metrics or ChatMetrics()
        self.clock: Clock = clock or SystemClock()
        self.wake_delivery = wake_delivery

    # -- entry points -------------------------------------------------------------------------------

    async def execute_text(self, identity: Identity, text: str) -> Reply:
        """Run a typed command (``ack 2bb1035c``) for ``identity``."""
        return await self._handle(identity, "command", text, lambda: parse_command(text))

    async def execute_button(self, identity: Identity, value: str) -> Reply:
        """Run the command a pressed button stands for."""
        return await self._handle(identity, "button", value, lambda: command_from_button(value))

    def prefix(self, platform: str) -> str:
        """How commands start on ``platform``: ``/alert-router `` in Slack, ``/`` in Telegram."""
        return f"{self.settings.slack.command} " if platform == "slack" else "/"

    # -- the pipeline -------------------------------------------------------------------------------

    async def _handle(self, identity: Identity, source: Source, raw: str, parse: Callable[[], Command]) -> Reply:
        principal = self.authorizer.principal(identity)
        command: Command | None = None
        try:
            command = parse()
        except ParseError as exc:
            if principal.role is None:
                decision = self.authorizer.decide(principal, exc.command or "help")
                outcome = _Outcome(Reply(decision.message, ok=False), "refused")
            else:
                usage = USAGE.get(exc.command or "", "")
                hint = f"\nUsage: {self.prefix(identity.platform)}{usage}" if usage else (
                    f"\nTry {self.prefix(identity.platform)}help")
                outcome = _Outcome(Reply(f"{exc}{hint}", ok=False), "invalid")
            return await self._finish(principal, source, raw, exc.command or "?", outcome)
        decision = self.authorizer.decide(principal, command.name)
        if not decision.allowed:
            outcome = _Outcome(Reply(decision.message, ok=False), "refused", {"needed": decision.needed.value})
            return await self._finish(principal, source, raw, command.name, outcome)
        try:
            outcome = await self._execute(command, principal)
        except CommandError as exc:
            outcome = _Outcome(Reply(str(exc), ok=False), "invalid")
        except AlertmanagerError as exc:
            outcome = _Outcome(Reply(f"Alertmanager: {exc}", ok=False), "error", {"error": str(exc)})
        except StoreUnavailable as exc:
            log.warning("chat command failed: store unavailable", command=command.name, error=str(exc))
            outcome = _Outcome(Reply("The store is unavailable right now; please try again shortly.", ok=False),
                               "error", {"error": str(exc)})
        except AlertRouterError as exc:
            outcome = _Outcome(Reply(str(exc), ok=False), "error", {"error": str(exc)})
        except Exception as exc:
            log.exception("chat command failed", command=command.name)
            outcome = _Outcome(Reply("Something went wrong on alert-router's side; it has been logged.", ok=False),
                               "error", {"error": f"{type(exc).__name__}: {exc}"})
        return await self._finish(principal, source, raw, command.name, outcome)

    def _entry(self, principal: Principal, source: Source, raw: str, command: str, outcome: _Outcome) -> AuditEntry:
        ident = principal.identity
        event = "chat_refused" if outcome.outcome == "refused" else f"chat_{source}"
        data: dict[str, Any] = {
            "platform": ident.platform,
            "user_id": ident.user_id,
            "user_name": ident.display,
            "chat_id": ident.chat_id,
            "role": principal.role.value if principal.role else None,
            "command": command,
            "input": raw[:500],
            "outcome": outcome.outcome,
            "reply": outcome.reply.text[:500],
            **outcome.details,
        }
        return AuditEntry(event, data, runbook=outcome.runbook, run_id=outcome.run_id, target=outcome.target,
                          actor=principal.actor)

    async def _finish(self, principal: Principal, source: Source, raw: str, command: str, outcome: _Outcome) -> Reply:
        if not outcome.audited:
            try:
                await self.store.append_audit([self._entry(principal, source, raw, command, outcome)], self.clock.now())
            except StoreUnavailable as exc:
                log.error("chat audit record not written: store unavailable", command=command, error=str(exc))
        self.metrics.commands.labels(principal.identity.platform, command, outcome.outcome).inc()
        log.info("chat command", platform=principal.identity.platform, user=principal.actor, command=command,
                 source=source, outcome=outcome.outcome)
        return outcome.reply

    async def _execute(self, cmd: Command, principal: Principal) -> _Outcome:
        handlers = {
            "help": self._help,
            "status": self._status,
            "alerts": self._alerts,
            "ack": self._ack,
            "unack": self._ack,
            "escalate": self._escalate,
            "silence": self._silence,
            "unsilence": self._unsilence,
            "silences": self._silences,
            "runbook list": self._runbook_list,
            "runbook run": self._runbook_run,
            "runbook approve": self._runbook_decide,
            "runbook deny": self._runbook_decide,
        }
        return await handlers[cmd.name](cmd, principal)

    # -- lookups ------------------------------------------------------------------------------------

    async def _group_firing(self, group: str) -> list[AlertRecord]:
        return [a for a in await self.store.alerts("firing") if group_id(a.group_key) == group]

    async def resolve(self, ident: str, *, group: str = "") -> AlertRecord:
        """The one alert ``ident`` (a short id) names, within ``group`` when given."""
        records = await self.store.find_alerts(ident, limit=50)
        if group:
            records = [r for r in records if group_id(r.group_key) == group]
        exact = [r for r in records if r.fingerprint == ident]
        if exact:
            return exact[0]
        if not records:
            raise CommandError(f"No alert with id {ident} (see `alerts` for the ids of firing alerts).")
        if len(records) > 1:
            firing = [r for r in records if r.status == "firing"]
            if len(firing) == 1:
                return firing[0]
            shown = ", ".join(f"{r.fingerprint[: max(len(ident) + 4, 8)]} ({r.labels.get('alertname', '?')})"
                              for r in records[:5])
            raise CommandError(f"{ident} matches {len(records)} alerts: {shown}. Give more characters.")
        return records[0]

    async def _targets(self, cmd: Command) -> list[AlertRecord]:
        if cmd.ids == ("*",):
            records = await self._group_firing(cmd.group)
            if not records:
                raise CommandError("This group has no firing alerts any more.")
            return records
        return [await self.resolve(i, group=cmd.group) for i in cmd.ids]

    # -- commands -----------------------------------------------------------------------------------

    async def _help(self, cmd: Command, principal: Principal) -> _Outcome:
        prefix = self.prefix(principal.identity.platform)
        rank = principal.role.rank if principal.role else 0
        topic = " ".join(cmd.topic.split())
        topic = ALIASES.get(topic, topic)
        if topic and topic not in COMMANDS and topic != "runbook":
            raise CommandError(f"No command {shown(topic)}. Try {prefix}help")
        names = [n for n in COMMANDS if not topic or n == topic or n.startswith(topic + " ")]
        lines = [f"alert-router commands (you are {principal.name}, role {principal.role or 'none'}):"]
        for name in names:
            needed = self.settings.least_role(name)
            mark = "" if needed.rank <= rank else f" (needs {needed.value})"
            lines.append(f"• {prefix}{USAGE[name]} — {DESCRIPTIONS[name]}{mark}")
        lines.append("Ids are the first characters of an alert's fingerprint (messages show 8). "
                     "Durations: 30m, 2h, 1d.")
        return _Outcome(Reply("\n".join(lines)))

    async def _status(self, cmd: Command, principal: Principal) -> _Outcome:
        now = self.clock.now()
        lines = ["alert-router status:"]
        try:
            async with asyncio.timeout(3):
                await self.store.ping()
                depth = await self.store.depth(now)
                firing = await self.store.alerts("firing")
                escalating = await self.store.escalations(status="active")
                pending = await self.store.runs(status="pending_approval")
            unacked = sum(1 for a in firing if not a.acked_by)
            queues = ", ".join(f"{k} {v}" for k, v in sorted(depth.outbox.items())) or "empty"
            lines += [
                "• store: ok",
                f"• queues: inbox {depth.inbox}; outbox: {queues}",
                f"• alerts: {len(firing)} firing, {unacked} not acked, {len(escalating)} escalation timer(s) running",
                f"• runbook runs waiting for approval: {len(pending)}",
            ]
        except (StoreUnavailable, TimeoutError) as exc:
            lines.append(f"• store: UNAVAILABLE ({exc or 'timeout'})")
        if self.alertmanager.configured:
            try:
                status = await self.alertmanager.status()
                version = (status.get("versionInfo") or {}).get("version", "?")
                cluster = status.get("cluster") or {}
                peers = len(cluster.get("peers") or [])
                lines.append(f"• Alertmanager {self.alertmanager.url}: reachable, version {version}, "
                             f"cluster {cluster.get('status', '?')} ({peers} peer(s))")
            except AlertmanagerError as exc:
                lines.append(f"• Alertmanager {self.alertmanager.url}: UNREACHABLE ({exc})")
        else:
            lines.append("• Alertmanager API: not configured (chat.alertmanager.url)")
        return _Outcome(Reply("\n".join(lines)))

    async def _alerts(self, cmd: Command, principal: Principal) -> _Outcome:
        now = self.clock.now()
        records = await select_matching(cmd.matchers, await self.store.alerts("firing"), lambda a: a.labels)
        where = f" matching {elide(format_matchers(cmd.matchers), 300)}" if cmd.matchers else ""
        if not records:
            return _Outcome(Reply(f"No firing alerts{where}."))
        timers: dict[str, float] = {}
        for t in await self.store.escalations(status="active"):
            timers[t.fingerprint] = min(t.due_at, timers.get(t.fingerprint, t.due_at))
        records.sort(key=lambda a: (SEVERITY_ORDER.get(a.labels.get("severity", "").lower(), 9), a.starts_at))
        lines = [f"{len(records)} firing alert(s){where}:"]
        for rec in records[:MAX_LISTED]:
            state = f"acked by {rec.acked_by}" if rec.acked_by else "not acked"
            if not rec.acked_by and rec.fingerprint in timers:
                state += f", escalates in {format_duration(max(0.0, timers[rec.fingerprint] - now))}"
            lines.append(f"{describe_alert(rec, now)} · {state}")
        if len(records) > MAX_LISTED:
            lines.append(f"… and {len(records) - MAX_LISTED} more: narrow it down with matchers.")
        return _Outcome(Reply("\n".join(lines)))

    async def _ack(self, cmd: Command, principal: Principal) -> _Outcome:
        records = await self._targets(cmd)
        fingerprints = [r.fingerprint for r in records]
        holder: dict[str, Any] = {}
        source = cmd.source

        undo = cmd.name == "unack"

        def effects(snap: AckSnapshot) -> tuple[list[NewOutboxItem], list[AuditEntry]]:
            items = renotify_items(snap)
            parts = []
            if snap.acked:
                names = ", ".join(f"{short_id(r.fingerprint)} {r.labels.get('alertname', '')}".strip()
                                  for r in snap.acked)
                parts.append(f"{principal.name} {'took back the ack of' if undo else 'acked'} {names}.")
            for r in snap.already:
                parts.append(f"{short_id(r.fingerprint)} is not acked." if undo
                             else f"{short_id(r.fingerprint)} was already acked by {r.acked_by}.")
            for r in snap.not_firing:
                parts.append(f"{short_id(r.fingerprint)} is {r.status}: nothing to {cmd.name}.")
            for fp in snap.missing:
                parts.append(f"{short_id(fp)} is no longer known.")
            ok = bool(snap.acked) or bool(snap.already)
            reply = Reply(" ".join(parts), ok=ok, public=bool(snap.acked) and source == "command")
            outcome = _Outcome(reply, "ok" if snap.acked else "noop", {
                "fingerprints": [r.fingerprint for r in snap.acked],
                "already_acked": [r.fingerprint for r in snap.already],
                "messages_updated": len(items),
            })
            holder["outcome"] = outcome
            return items, [self._entry(principal, source, cmd.text, cmd.name, outcome)]

        result = await self.store.ack_alerts(fingerprints, principal.actor, self.clock.now(), effects, undo=undo)
        outcome: _Outcome = holder["outcome"]
        outcome.audited = True
        if result.stopped_escalations and undo:
            outcome.reply = Reply(outcome.reply.text + " Escalation resumed.", outcome.reply.ok, outcome.reply.public)
        elif result.stopped_escalations:
            self.metrics.escalations.labels("acked").inc(result.stopped_escalations)
            outcome.reply = Reply(outcome.reply.text + " Escalation stopped.", outcome.reply.ok, outcome.reply.public)
        if result.enqueued and self.wake_delivery is not None:
            self.wake_delivery()
        return outcome

    async def _escalate(self, cmd: Command, principal: Principal) -> _Outcome:
        """Send the alert to the receivers of its rules' ``escalate:`` policies now (a message of its own)."""
        from alert_router.chat.escalation import escalation_key, escalation_notifications, policies

        (rec,) = await self._targets(cmd)
        if rec.status != "firing":
            raise CommandError(f"{short_id(rec.fingerprint)} is {rec.status}: nothing to escalate.")
        known = policies(self.config)
        rules = [r.name for r in route_labels(rec.labels, self.config.rules, self.config.default).rules
                 if r.name in known]
        if not rules:
            raise CommandError(f"No rule of {short_id(rec.fingerprint)} has an `escalate:` policy: "
                               "there is nobody to escalate to.")
        now = self.clock.now()
        steps = {t.rule: t.step for t in await self.store.escalations(fingerprint=rec.fingerprint)}
        items: list[NewOutboxItem] = []
        receivers: list[str] = []
        for rule in rules:
            policy = known[rule]
            key = escalation_key(rec.group_key, rule, f"by-{principal.actor}-{int(now)}")
            items += await escalation_notifications(
                self.store, self.config, rule, rec.group_key, [rec], policy, steps.get(rule, 0) + 1, now,
                by=principal.name, key=key)
            receivers += [r for r in policy.receivers if r not in receivers]
        if not items:
            raise CommandError(f"The escalation receivers ({', '.join(receivers)}) are all switched off.")
        audit = [AuditEntry("escalated", {"rules": rules, "group_key": rec.group_key,
                                          "fingerprints": [rec.fingerprint], "receivers": receivers,
                                          "by": principal.actor}, actor=principal.actor)]
        await self.store.update_escalations([], principal.actor, now, follow_ups=items, audit=audit)
        if self.wake_delivery is not None:
            self.wake_delivery()
        self.metrics.escalations.labels("fired").inc()
        name = rec.labels.get("alertname", "")
        text = f"{principal.name} escalated {short_id(rec.fingerprint)} {name} to {', '.join(receivers)}."
        return _Outcome(Reply(text, public=True), details={"fingerprint": rec.fingerprint, "receivers": receivers})

    async def _silence(self, cmd: Command, principal: Principal) -> _Outcome:
        duration = float(cmd.duration or 0)
        limit = self.settings.max_silence
        if duration > limit:
            raise CommandError(f"At most {format_duration(limit)} (chat.max_silence); asked for "
                               f"{format_duration(duration)}.")
        if cmd.ids:
            records = await self._targets(cmd)
            labels = common_labels(records) if len(records) > 1 else dict(records[0].labels)
            if not labels:
                raise CommandError("These alerts share no label to silence them by; silence them one by one.")
            matchers: Sequence[Matcher] = [Matcher.create(k, MatchOp.EQ, v) for k, v in sorted(labels.items())]
        else:
            matchers = cmd.matchers
        ident = principal.identity
        start = datetime.fromtimestamp(self.clock.now(), UTC)
        end = start + timedelta(seconds=duration)
        comment = cmd.comment or f"silenced from {ident.platform} by {principal.name} through alert-router"
        silence_id = await self.alertmanager.create_silence(
            matchers, starts_at=start, ends_at=end, created_by=principal.actor, comment=comment
        )
        text = (f"{principal.name} silenced {elide(format_matchers(matchers), 300)} for {format_duration(duration)} "
                f"(until {end.strftime('%Y-%m-%d %H:%M UTC')}). Silence id: {silence_id}\n"
                f"{self.alertmanager.silence_link(silence_id)}")
        return _Outcome(Reply(text, public=True), details={
            "silence_id": silence_id, "matchers": format_matchers(matchers), "duration": duration,
            "ends_at": end.isoformat(), "comment": comment,
        })

    async def _unsilence(self, cmd: Command, principal: Principal) -> _Outcome:
        try:
            silence = await self.alertmanager.silence(cmd.silence_id)
        except AlertmanagerError as exc:
            if exc.status in (400, 404, 422):  # 422: not a UUID
                raise CommandError(f"Alertmanager has no silence {cmd.silence_id}.") from None
            raise
        details = {"silence_id": silence.id, "matchers": silence.matchers_text(), "created_by": silence.created_by}
        if silence.state == "expired":
            return _Outcome(Reply(f"Silence {silence.id} has already expired."), "noop", details)
        await self.alertmanager.expire_silence(silence.id)
        text = (f"{principal.name} expired silence {silence.id} ({silence.matchers_text()}, "
                f"created by {silence.created_by}).")
        return _Outcome(Reply(text, public=True), details=details)

    async def _silences(self, cmd: Command, principal: Principal) -> _Outcome:
        """Active silences (API v2 ``GET /silences``), soonest ending first, so ``unsilence`` needs no memory."""
        now = datetime.fromtimestamp(self.clock.now(), UTC)
        found = await self.alertmanager.silences([str(m) for m in cmd.matchers])
        active = sorted((s for s in found if s.state == "active"), key=lambda s: s.ends_at)
        where = f" matching {elide(format_matchers(cmd.matchers), 300)}" if cmd.matchers else ""
        if not active:
            return _Outcome(Reply(f"No active silences{where}."))
        lines = [f"{len(active)} active silence(s){where}:"]
        for sil in active[:MAX_LISTED]:
            left = format_duration(max(0.0, (sil.ends_at - now).total_seconds()))
            line = f"• {sil.id} {elide(sil.matchers_text(), 200)} by {elide(sil.created_by, 60)} · ends in {left}"
            if sil.comment:
                line += f" — {elide(' '.join(sil.comment.split()), 100)}"
            lines.append(line)
        if len(active) > MAX_LISTED:
            lines.append(f"… and {len(active) - MAX_LISTED} more: narrow it down with matchers.")
        lines.append(f"Expire one with {self.prefix(principal.identity.platform)}unsilence <id>")
        return _Outcome(Reply("\n".join(lines)), details={"count": len(active)})

    def _applicable_runbooks(self, labels: Mapping[str, str]) -> list[str]:
        return applicable_runbooks(self.config, labels)

    async def _runbook_list(self, cmd: Command, principal: Principal) -> _Outcome:
        prefix = self.prefix(principal.identity.platform)
        now = self.clock.now()
        if not self.config.runbooks:
            return _Outcome(Reply("No runbooks are configured."))
        lines = ["Runbooks:"]
        for rb in sorted(self.config.runbooks.values(), key=lambda r: r.name):
            notes = []
            if rb.guards.require_approval:
                notes.append("needs approval")
            if rb.guards.dry_run or self.config.settings.dry_run:
                notes.append("dry run")
            note = f" ({', '.join(notes)})" if notes else ""
            description = " ".join(str(getattr(rb, "description", "") or "").split())
            lines.append(f"• {rb.name}{note}" + (f" — {description}" if description else ""))
        pending = await self.store.runs(status="pending_approval", limit=20)
        if pending:
            lines.append("Waiting for approval:")
            for run in pending:
                left = f", expires in {format_duration(run.approval_expires_at - now)}" if run.approval_expires_at \
                    else ""
                lines.append(f"• run #{run.id} {run.runbook} on {run.target} (asked by {run.requested_by}{left}): "
                             f"{prefix}runbook approve {run.id} | {prefix}runbook deny {run.id}")
        return _Outcome(Reply("\n".join(lines)))

    def _engine(self) -> Remediation:
        engine = self._remediation()
        if engine is None:
            raise CommandError("Remediation is not running in this alert-router.")
        return engine

    async def _runbook_run(self, cmd: Command, principal: Principal) -> _Outcome:
        prefix = self.prefix(principal.identity.platform)
        records = await self._targets(cmd)
        if cmd.runbook:
            name = cmd.runbook
            if name not in self.config.runbooks:
                raise CommandError(f"No runbook {shown(name)}. See {prefix}runbook list")
            rec = records[0]
        else:  # the Run runbook button: the runbook that applies to the alert, if exactly one does
            options = {r.fingerprint: self._applicable_runbooks(r.labels) for r in records}
            names = sorted({n for ns in options.values() for n in ns})
            if not names:
                raise CommandError("No runbook applies to this alert.")
            if len(records) != 1 or len(names) != 1:
                hints = [f"{prefix}runbook run {n} {short_id(fp)}" for fp, ns in options.items() for n in ns]
                raise CommandError("Pick one: " + " | ".join(hints[:10]))
            name, rec = names[0], records[0]
        run = await self._engine().start(name, rec.labels, principal.actor, rec.annotations)
        text = f"{principal.name} started runbook {name} for {short_id(rec.fingerprint)}: run #{run.id} is " \
               f"{run.status.replace('_', ' ')}" + (f" — {run.summary}" if run.summary else "")
        if run.status == "pending_approval":
            text += f". Approve with {prefix}runbook approve {run.id}"
        ok = run.status not in ("skipped", "failed")
        return _Outcome(Reply(text, ok=ok, public=True), "ok" if ok else "refused_by_guard",
                        {"fingerprint": rec.fingerprint, "status": run.status}, runbook=name, run_id=run.id,
                        target=run.target)

    async def _runbook_decide(self, cmd: Command, principal: Principal) -> _Outcome:
        assert cmd.run_id is not None
        engine = self._engine()
        approve = cmd.name == "runbook approve"
        try:
            if approve:
                run = await engine.approve(cmd.run_id, principal.actor)
            else:
                run = await engine.deny(cmd.run_id, principal.actor, cmd.comment)
        except AlertRouterError as exc:
            what = "approve" if approve else "deny"
            return _Outcome(Reply(f"Could not {what} run #{cmd.run_id}: {exc}", ok=False), "rejected",
                            {"error": str(exc)}, run_id=cmd.run_id)
        verb = "approved" if approve else "denied"
        text = f"{principal.name} {verb} run #{run.id} ({run.runbook} on {run.target}): {run.status.replace('_', ' ')}"
        return _Outcome(Reply(text, public=True), details={"status": run.status}, runbook=run.runbook, run_id=run.id,
                        target=run.target)
