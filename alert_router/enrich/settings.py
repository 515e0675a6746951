"""Configuration of the enrichment stage: the ``enrich:`` block, globally and per rule.

``alert-router.yaml`` holds the default under ``enrich:``; a rule may carry its own ``enrich:`` block,
which is merged over the default key by key (blocks merge recursively, the label map merges by
placeholder, lists and scalars replace). ``enrich: {loki: null}`` in a rule switches Loki off for it.
Loki is also off while ``loki.url`` is empty, so the embedded default works without a Loki.
"""

from __future__ import annotations

import functools
import re
from typing import Any, TypeVar

from pydantic import Field, field_validator

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration
from alert_router.enrich.kubernetes import KubernetesEnrichSettings
from alert_router.enrich.logql import DEFAULT_LABEL_MAP, DEFAULT_TEMPLATE, QueryTemplate, TemplateError
from alert_router.httpsource import BasicAuth, SourceSettings, TLSOptions
from alert_router.redact import compile_pattern

__all__ = [
    "EnrichLinks",
    "EnrichSettings",
    "KubernetesEnrichSettings",
    "LokiBasicAuth",
    "LokiSettings",
    "LokiTLS",
    "RedactSettings",
    "merge",
]


@functools.lru_cache(maxsize=256)
def compile_template(source: str) -> QueryTemplate:
    """Compile a LogQL template once (templates are immutable configuration)."""
    return QueryTemplate.compile(source)


_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MAX_LOKI_LIMIT = 5000


LokiBasicAuth = BasicAuth
"""Basic credentials for the proxy in front of Loki (the keys every data source shares)."""
LokiTLS = TLSOptions
"""TLS options for an ``https://`` Loki URL."""


class LokiSettings(SourceSettings):
    """Where to query Loki and what to ask it for each alert.

    ``url``, ``tenant``, ``bearer_token``/``basic_auth``, ``tls`` and ``timeout`` are the keys every data
    source shares (:class:`~alert_router.httpsource.SourceSettings`).
    """

    query: str = DEFAULT_TEMPLATE
    labels: dict[str, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_LABEL_MAP.items()})
    lookback: Duration = 600.0
    limit: int = Field(default=50, ge=1, le=MAX_LOKI_LIMIT)
    max_concurrency: int = Field(default=4, ge=1, le=256)
    cache_ttl: Duration = 30.0
    window_step: Duration = 30.0
    max_queries: int = Field(default=5, ge=1, le=100)
    max_line_chars: int = Field(default=300, ge=20, le=100_000)
    max_total_chars: int = Field(default=2500, ge=100, le=1_000_000)
    pod_labels: list[str] = Field(default_factory=lambda: ["pod", "pod_name"])

    @property
    def template(self) -> QueryTemplate:
        """The compiled query template (validated when the configuration was loaded)."""
        return compile_template(self.query)

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        try:
            compile_template(value)
        except TemplateError as exc:
            raise ValueError(f"invalid LogQL template: {exc}") from None
        return value

    @field_validator("labels")
    @classmethod
    def _labels(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for key, names in value.items():
            if not _LABEL.fullmatch(key):
                raise ValueError(f"labels: {key!r} is not a placeholder name")
            if not names:
                raise ValueError(f"labels: {key}: give at least one label name")
            for n in names:
                if not _LABEL.fullmatch(n):
                    raise ValueError(f"labels: {key}: {n!r} is not a label name")
        return value


class RedactSettings(ConfigModel):
    """Secret redaction applied to every log line before it leaves the service."""

    defaults: bool = True
    patterns: list[str] = Field(default_factory=list)

    @field_validator("patterns")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for p in value:
            compile_pattern(p)
        return value


class EnrichLinks(ConfigModel):
    """Links added per alert; base URLs default to the top-level ``links:`` block."""

    enabled: bool = True
    grafana_url: str = ""
    grafana_datasource_uid: str = "loki"
    grafana_org_id: int = Field(default=1, ge=1)
    alertmanager_url: str = ""


class EnrichSettings(ConfigModel):
    """The ``enrich:`` block."""

    loki: LokiSettings | None = LokiSettings()
    redact: RedactSettings = RedactSettings()
    links: EnrichLinks = EnrichLinks()
    kubernetes: KubernetesEnrichSettings = KubernetesEnrichSettings()

    @property
    def loki_enabled(self) -> bool:
        """Whether Loki is configured and switched on."""
        return self.loki is not None and self.loki.enabled


_AUTH_KEYS = frozenset({"bearer_token", "basic_auth"})


def _merge_data(base: Any, override: Any) -> Any:
    if isinstance(override, ConfigModel) and isinstance(base, ConfigModel) and type(base) is type(override):
        data = dict(base)
        explicit = override.model_fields_set
        if explicit & _AUTH_KEYS:  # credentials are one choice: a rule naming one replaces both
            for key in _AUTH_KEYS & set(data):
                data[key] = None
        for key in explicit:
            data[key] = _merge_data(data.get(key), getattr(override, key))
        return data
    if isinstance(override, dict) and isinstance(base, dict):
        return {**base, **override}
    return override


Block = TypeVar("Block", bound=ConfigModel)


def merge(base: Block, override: ConfigModel | None) -> Block:
    """Merge a rule's block (``enrich:``, ``graph:``) over the global default (only keys the rule wrote count)."""
    if override is None:
        return base
    merged = _merge_data(base, override)
    return type(base).model_validate(_to_plain(merged))


def _to_plain(value: Any) -> Any:
    if isinstance(value, ConfigModel):
        return {k: _to_plain(getattr(value, k)) for k in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    return value
