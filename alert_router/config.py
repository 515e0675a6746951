"""The configuration: ``alert-router.yaml``, the routing rules in ``rules/`` and the runbooks in ``runbooks/``.

Everything is validated up front and every problem is reported as ``FILE:LINE: message``:
:func:`load` returns a :class:`Config` or raises :class:`~alert_router.errors.ConfigError` holding all problems.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, TypeAdapter, ValidationError, field_validator

from alert_router.channels import REGISTRY
from alert_router.chat.settings import ChatSettings, EscalatePolicy
from alert_router.configbase import ConfigModel
from alert_router.deadman import DeadmanConfig
from alert_router.durations import Duration
from alert_router.enrich.settings import EnrichSettings
from alert_router.errors import ConfigError, MatcherError, Problem
from alert_router.graph.settings import GraphSettings
from alert_router.heartbeat import FailoverConfig
from alert_router.matchers import Matcher, parse_matcher_list
from alert_router.pipeline.throttle import StormConfig
from alert_router.remediation.runbook import Runbook, load_runbook
from alert_router.remediation.settings import KubernetesConfig, RemediationConfig
from alert_router.scrub import register_config
from alert_router.store.pgsettings import PostgresConfig
from alert_router.tls import TLSConfig, check_tls
from alert_router.yamlfile import LineMap, YamlDocument, load_yaml

DEFAULT_CONFIG_NAME = "alert-router.yaml"
CONFIG_ENV = "ALERT_ROUTER_CONFIG"


class BasicAuth(ConfigModel):
    """HTTP basic credentials accepted on the webhook."""

    username: str = Field(min_length=1)
    password: SecretStr


class AuthConfig(ConfigModel):
    """Who may post to ``/webhook``: a bearer token, basic credentials, or both (either is accepted)."""

    bearer_token: SecretStr | None = None
    basic: BasicAuth | None = None

    @property
    def enabled(self) -> bool:
        """Whether any credential is configured (an empty token counts as none)."""
        return bool(self.bearer_token and self.bearer_token.get_secret_value()) or self.basic is not None


class MetricsConfig(ConfigModel):
    """``/metrics``: open by default (like most exporters); with ``auth``, a bearer token or basic credentials."""

    auth: AuthConfig | None = None


class WebhookConfig(ConfigModel):
    """Limits on incoming request bodies (the webhook, and Slack, Telegram and the runs API alike).

    ``max_body_bytes``: a larger body is answered 413. ``read_timeout``: a body that has not arrived whole
    within it is answered 503 (never a 4xx, which Alertmanager would treat as final).
    """

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    read_timeout: Duration = 30.0


class DedupConfig(ConfigModel):
    """How long an alert's last known state is remembered after it was last seen."""

    ttl: Duration = 7 * 86400.0


class DeliveryConfig(ConfigModel):
    """Delivery workers and the retry budget (the delivery stage is the only place that retries)."""

    workers: int = Field(default=32, ge=1, le=256)
    attempt_timeout: Duration = 15.0
    retry_for: Duration = 30.0
    give_up_after: Duration = 6 * 3600.0
    postpone: Duration = 5.0
    lease: Duration = 60.0
    storm: StormConfig = StormConfig()


class IngestConfig(ConfigModel):
    """The stage that turns stored webhooks into notifications (one loop per process; replicas add loops)."""

    lease: Duration = 60.0
    poll_interval: Duration = 1.0
    max_attempts: int = Field(default=5, ge=1, le=100)
    """Claims of one body before it is set aside as failed (``alert-router inbox failed`` lists them)."""


class RetentionConfig(ConfigModel):
    """How long finished work and audit records are kept."""

    done: Duration = 7 * 86400.0
    audit: Duration = 365 * 86400.0
    prune_interval: Duration = 3600.0


class LinksConfig(ConfigModel):
    """Base URLs used to build links back to the evidence."""

    alertmanager_url: str = ""
    grafana_url: str = ""
    prometheus_url: str = ""


class LogConfig(ConfigModel):
    """Logging format and level, and how often a repeating warning or error is logged (0: every time)."""

    format: Literal["json", "console"] = "json"
    level: Literal["debug", "info", "warning", "error"] = "info"
    repeat_interval: Duration = 60.0


class Settings(ConfigModel):
    """The top level of ``alert-router.yaml``."""

    listen: str = "0.0.0.0:8080"
    tls: TLSConfig | None = None  # HTTPS (and optionally mutual TLS) on the listener (alert_router/tls.py)
    data_dir: str = "data"
    store: str = ""
    auth: AuthConfig = AuthConfig()
    webhook: WebhookConfig = WebhookConfig()
    metrics: MetricsConfig = MetricsConfig()
    ingest: IngestConfig = IngestConfig()
    dedup: DedupConfig = DedupConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    retention: RetentionConfig = RetentionConfig()
    postgres: PostgresConfig = PostgresConfig()  # pool and timeouts of a postgresql:// store (docs/replicas.md)
    failover: FailoverConfig = FailoverConfig()  # replica heartbeats: a dead replica's work moves in seconds
    deadman: DeadmanConfig = DeadmanConfig()  # page when Alertmanager's Watchdog stops arriving (docs/deploy.md)
    links: LinksConfig = LinksConfig()
    enrich: EnrichSettings = EnrichSettings()
    graph: GraphSettings = GraphSettings()  # a picture of the alert's metric in each page (docs/channels.md)
    log: LogConfig = LogConfig()
    dry_run: bool = True
    kubernetes: KubernetesConfig = KubernetesConfig()
    remediation: RemediationConfig = RemediationConfig()
    chat: ChatSettings = ChatSettings()  # Slack/Telegram commands, Alertmanager API, roles (docs/chat.md)
    receivers: list[dict[str, Any]] = Field(default_factory=list)
    rules: str | list[str] = "rules"
    runbooks: str | list[str] = "runbooks"

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        parse_listen(value)
        return value

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        if value and not value.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError("store must be sqlite:///PATH or postgresql://USER@HOST/DB")
        return value


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8080`` for IPv6)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "0.0.0.0", int(port)  # noqa: S104 - binding all interfaces is the documented default


@dataclass(frozen=True)
class ReceiverSpec:
    """A configured receiver: its name, type key, validated type config and common options."""

    name: str
    type: str
    config: Any
    fallback: str | None
    rate: float | None
    burst: float | None
    line: int
    enabled: bool = True
    storm_threshold: int | None = None


class RuleModel(ConfigModel):
    """One routing rule as written in YAML."""

    name: str = Field(min_length=1)
    match: list[str] | str = Field(default_factory=list)
    receivers: list[str] = Field(default_factory=list)
    runbooks: list[str] = Field(default_factory=list)
    continue_: bool = Field(default=False, alias="continue")
    enrich: EnrichSettings | None = None  # merged over the global `enrich:` (docs/enrichment.md)
    graph: GraphSettings | None = None  # merged over the global `graph:`; `graph: null` turns pictures off
    escalate: EscalatePolicy | None = None  # unacked firing alerts go on to more receivers (docs/chat.md)

    @field_validator("match")
    @classmethod
    def _matchers(cls, value: list[str] | str) -> list[str] | str:
        try:
            parse_matcher_list(value)
        except MatcherError as exc:
            raise ValueError(str(exc)) from None
        return value


class RulesFileModel(ConfigModel):
    """A rules file: ordered ``rules`` and, in at most one file, the ``default`` route."""

    rules: list[RuleModel] = Field(default_factory=list)
    default: DefaultRoute | None = None


class DefaultRoute(ConfigModel):
    """Where alerts go that no rule matched."""

    receivers: list[str] = Field(default_factory=list)
    runbooks: list[str] = Field(default_factory=list)


RulesFileModel.model_rebuild()


@dataclass(frozen=True)
class Rule:
    """A compiled routing rule."""

    name: str
    matchers: tuple[Matcher, ...]
    receivers: tuple[str, ...]
    runbooks: tuple[str, ...]
    continue_: bool
    file: str
    line: int
    model: RuleModel | None = None


@dataclass
class Config:
    """Everything the service needs, validated."""

    settings: Settings
    path: Path
    base_dir: Path
    receivers: dict[str, ReceiverSpec]
    rules: list[Rule]
    default: Rule | None
    runbooks: dict[str, Runbook]
    files: list[Path] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        """The data directory, absolute."""
        return self.resolve(self.settings.data_dir)

    @property
    def store_url(self) -> str:
        """The store URL, defaulting to SQLite in the data directory."""
        if self.settings.store:
            url = self.settings.store
            if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
                rel = url[len("sqlite:///") :]
                return "sqlite:///" + str(self.resolve(rel))
            return url
        return "sqlite:///" + str(self.data_dir / "alert-router.db")

    def delivers_to(self, receiver: str) -> bool:
        """Whether ``receiver`` is configured and switched on: work for any other is never enqueued."""
        spec = self.receivers.get(receiver)
        return spec is not None and spec.enabled

    def resolve(self, path: str | Path) -> Path:
        """Resolve a path from the config relative to the config file's directory."""
        p = Path(path)
        return p if p.is_absolute() else (self.base_dir / p)


def config_path(explicit: str | None, env: Mapping[str, str] | None = None) -> Path:
    """``--config``, else ``$ALERT_ROUTER_CONFIG``, else ``./alert-router.yaml``."""
    env = os.environ if env is None else env
    return Path(explicit or env.get(CONFIG_ENV) or DEFAULT_CONFIG_NAME)


def _problems(exc: ValidationError, lines: LineMap, prefix: Sequence[str | int] = ()) -> list[Problem]:
    out = []
    for err in exc.errors(include_url=False):
        loc = (*prefix, *err["loc"])
        where = ".".join(str(p) for p in loc)
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; see docs/configuration.md)"
        out.append(lines.problem(loc, f"{where}: {msg}" if where else msg))
    return out


def _yaml_files(base: Path, spec: str | list[str], lines: LineMap, key: str) -> tuple[list[Path], list[Problem]]:
    """The files of ``rules:`` or ``runbooks:``; a missing one is reported at that key's line in the config."""
    items = [spec] if isinstance(spec, str) else spec
    files: list[Path] = []
    problems: list[Problem] = []
    for i, item in enumerate(items):
        p = Path(item)
        p = p if p.is_absolute() else base / p
        if p.is_dir():
            files.extend(sorted(q for q in p.iterdir() if q.suffix in (".yaml", ".yml") and q.is_file()))
        elif p.is_file():
            files.append(p)
        else:
            at = (key,) if isinstance(spec, str) else (key, i)
            default = "" if (key,) in lines.lines else f" (the default; set `{key}:` to a file, a directory or [])"
            problems.append(lines.problem(at, f"{key}: no such file or directory: {p}{default}"))
    return files, problems


def _load_receivers(settings: Settings, lines: LineMap) -> tuple[dict[str, ReceiverSpec], list[Problem]]:
    receivers: dict[str, ReceiverSpec] = {}
    problems: list[Problem] = []
    common = {"name", "fallback", "rate_limit", "enabled", "storm"}
    for i, raw in enumerate(settings.receivers):
        path: tuple[str | int, ...] = ("receivers", i)
        line = lines.line_of(path)
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            problems.append(lines.problem(path, f"receivers.{i}: every receiver needs a name"))
            continue
        types_ = [k for k in raw if k not in common]
        if len(types_) != 1:
            problems.append(
                lines.problem(path, f"receiver {name!r}: give exactly one type, one of {', '.join(sorted(REGISTRY))}")
            )
            continue
        key = types_[0]
        if key not in REGISTRY:
            problems.append(
                lines.problem(
                    (*path, key), f"receiver {name!r}: unknown type {key!r}; known types: {', '.join(sorted(REGISTRY))}"
                )
            )
            continue
        try:  # `enabled: ${SLACK_ENABLED:-false}`: a switched-off receiver may lack its secrets
            enabled = TypeAdapter(bool).validate_python(raw.get("enabled", True))
        except ValidationError:
            problems.append(lines.problem((*path, "enabled"), f"receiver {name!r}: enabled must be true or false"))
            continue
        storm = raw.get("storm")
        storm_threshold = storm.get("threshold") if isinstance(storm, dict) else None
        if storm is not None and (not isinstance(storm_threshold, int) or storm_threshold < 0 or len(storm) != 1):
            problems.append(lines.problem((*path, "storm"), f"receiver {name!r}: storm needs {{threshold: N >= 0}}"))
        try:
            cfg = REGISTRY[key].config.model_validate(raw[key] or {}, context={"enabled": enabled})
        except ValidationError as exc:
            problems.extend(_problems(exc, lines, (*path, key)))
            continue
        rate = burst = None
        rl = raw.get("rate_limit")
        if rl is not None:
            try:
                rate = float(rl["rate"])
                burst = float(rl.get("burst", 1))
                if rate <= 0 or burst < 1:
                    raise ValueError
            except (TypeError, KeyError, ValueError):
                problems.append(
                    lines.problem(
                        (*path, "rate_limit"),
                        f"receiver {name!r}: rate_limit needs rate > 0 (per second) and burst >= 1",
                    )
                )
        if name in receivers:
            problems.append(lines.problem(path, f"duplicate receiver name {name!r}"))
        fallback = raw.get("fallback")
        receivers[name] = ReceiverSpec(
            name, key, cfg, fallback if isinstance(fallback, str) else None, rate, burst, line, enabled,
            storm_threshold if isinstance(storm_threshold, int) else None,
        )
    for spec in receivers.values():
        if spec.fallback is not None and spec.fallback not in receivers:
            problems.append(
                Problem(lines.file, spec.line, f"receiver {spec.name!r}: unknown fallback {spec.fallback!r}")
            )
        if spec.fallback == spec.name:
            problems.append(Problem(lines.file, spec.line, f"receiver {spec.name!r}: cannot fall back to itself"))
    return receivers, problems


def _compile_rule(model: RuleModel, file: str, line: int) -> Rule:
    return Rule(
        model.name,
        tuple(parse_matcher_list(model.match)),
        tuple(model.receivers),
        tuple(model.runbooks),
        model.continue_,
        file,
        line,
        model,
    )


def load(path: Path | str, env: Mapping[str, str] | None = None) -> Config:
    """Load and validate the configuration at ``path`` with its rules and runbooks.

    Raises :class:`ConfigError` listing every problem found (all files are checked, not just the first).
    """
    path = Path(path)
    doc, problems = load_yaml(path, env)
    if doc is None:
        raise ConfigError(problems)
    data = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([doc.lines.problem((), "the configuration must be a YAML mapping")])
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems + _problems(exc, doc.lines)) from None
    base = path.resolve().parent
    if settings.tls is not None:
        tls_problem = check_tls(settings.tls, base)
        if tls_problem:
            problems.append(doc.lines.problem(("tls",), f"tls: {tls_problem}"))
    receivers, rp = _load_receivers(settings, doc.lines)
    problems += rp
    files = [path]

    rules: list[Rule] = []
    default: Rule | None = None
    rule_files, fp = _yaml_files(path.parent, settings.rules, doc.lines, "rules")
    problems += fp
    docs: list[YamlDocument] = []
    for f in rule_files:
        rdoc, p = load_yaml(f, env)
        problems += p
        if rdoc is not None:
            docs.append(rdoc)
            files.append(f)
    seen: dict[str, str] = {}
    for rdoc in docs:
        if rdoc.data is None:
            continue
        if not isinstance(rdoc.data, dict):
            problems.append(rdoc.lines.problem((), "a rules file must be a mapping with a `rules:` list"))
            continue
        raw_rules = rdoc.data.get("rules", [])
        try:
            rf = RulesFileModel.model_validate({k: v for k, v in rdoc.data.items() if k != "rules"})
        except ValidationError as exc:
            problems += _problems(exc, rdoc.lines)
            continue
        if not isinstance(raw_rules, list):
            problems.append(rdoc.lines.problem(("rules",), "rules: must be a list of rules"))
            raw_rules = []
        for i, raw_rule in enumerate(raw_rules):
            try:
                rm = RuleModel.model_validate(raw_rule)
            except ValidationError as exc:
                problems += _problems(exc, rdoc.lines, ("rules", i))
                continue
            line = rdoc.lines.line_of(("rules", i))
            where = f"rule {rm.name!r}"
            if rm.name in seen:
                first = seen[rm.name]
                problems.append(Problem(str(rdoc.path), line, f"{where}: duplicate rule name (first in {first})"))
            seen[rm.name] = f"{rdoc.path}:{line}"
            for j, r in enumerate(rm.receivers):
                if r not in receivers:
                    at = ("rules", i, "receivers", j)
                    problems.append(rdoc.lines.problem(at, f"{where}: unknown receiver {r!r}"))
            for j, r in enumerate(rm.escalate.receivers if rm.escalate else []):
                if r not in receivers:
                    problems.append(rdoc.lines.problem(("rules", i, "escalate", "receivers", j),
                                                       f"{where}: escalate: unknown receiver {r!r}"))
            if not rm.receivers and not rm.runbooks:
                problems.append(Problem(str(rdoc.path), line, f"{where}: needs receivers or runbooks"))
            rules.append(_compile_rule(rm, str(rdoc.path), line))
        if rf.default is not None:
            line = rdoc.lines.line_of(("default",))
            if default is not None:
                problems.append(Problem(str(rdoc.path), line, f"a default route is already defined in {default.file}"))
                continue
            for j, r in enumerate(rf.default.receivers):
                if r not in receivers:
                    problems.append(
                        rdoc.lines.problem(("default", "receivers", j), f"default route: unknown receiver {r!r}")
                    )
            default = Rule(
                "default", (), tuple(rf.default.receivers), tuple(rf.default.runbooks), False, str(rdoc.path), line
            )

    for j, r in enumerate(settings.deadman.receivers):
        if r not in receivers:
            problems.append(doc.lines.problem(("deadman", "receivers", j), f"deadman: unknown receiver {r!r}"))

    runbooks: dict[str, Runbook] = {}
    runbook_files, fp = _yaml_files(path.parent, settings.runbooks, doc.lines, "runbooks")
    problems += fp
    for f in runbook_files:
        bdoc, p = load_yaml(f, env)
        problems += p
        if bdoc is None:
            continue
        files.append(f)
        rb, p = load_runbook(bdoc, receivers=set(receivers))
        problems += p
        if rb is not None:
            if rb.name in runbooks:
                problems.append(bdoc.lines.problem(("name",), f"duplicate runbook name {rb.name!r}"))
            runbooks[rb.name] = rb
    for rule in [*rules, *([default] if default else [])]:
        for name in rule.runbooks:
            if name not in runbooks:
                problems.append(Problem(rule.file, rule.line, f"rule {rule.name!r}: unknown runbook {name!r}"))

    warnings: list[Problem] = []
    if default is None:
        warnings.append(
            Problem(str(path), 1, "no default route: alerts that match no rule are only logged and counted")
        )
    if problems:
        raise ConfigError(problems)
    config = Config(settings, path, base, receivers, rules, default, runbooks, files, warnings)
    register_config(config)  # every secret it holds is scrubbed from upstream error text from now on
    return config
