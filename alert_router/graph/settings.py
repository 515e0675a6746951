"""Configuration of the graph stage: the ``graph:`` block, globally and per rule.

``alert-router.yaml`` holds the default under ``graph:``; a routing rule may carry its own ``graph:``
block, merged over the default key by key (``graph: {query: '...', threshold: 0.5}`` draws that query
instead of the alert's expression); ``graph: null`` in a rule switches pictures off for it. Pictures are off
while ``graph.prometheus.url`` is empty, so the embedded default needs no Prometheus.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator

from alert_router.configbase import ConfigModel
from alert_router.durations import Duration, check_timeout
from alert_router.enrich.settings import merge
from alert_router.graph.promql import PromQLError, analyse
from alert_router.httpsource import SourceSettings, check_base_url

if TYPE_CHECKING:
    from alert_router.config import Config, Rule

__all__ = ["GraphSettings", "PrometheusSettings", "settings_for_rule"]


class PrometheusSettings(SourceSettings):
    """``graph.prometheus``: the Prometheus (or Thanos Query, or Mimir) the pictures' data comes from.

    The keys are those of every data source (``url``, ``tenant``, ``bearer_token``/``basic_auth``, ``tls``,
    ``timeout``: see :class:`~alert_router.httpsource.SourceSettings`).
    """


class GraphSettings(ConfigModel):
    """The ``graph:`` block: where the data comes from, what the picture looks like and what it may cost."""

    prometheus: PrometheusSettings = PrometheusSettings()
    range: Duration = 3600.0
    width: int = Field(default=800, ge=300, le=2000)
    height: int = Field(default=400, ge=200, le=1500)
    max_series: int = Field(default=5, ge=1, le=20)
    timeout: Duration = 5.0
    cache_ttl: Duration = 30.0
    render_ttl: Duration = 600.0
    renders_per_minute: int = Field(default=60, ge=1, le=10_000)
    renderer: Literal["thread", "process"] = "thread"
    workers: int = Field(default=1, ge=1, le=8)
    max_images: int = Field(default=1, ge=1, le=4)
    public_url: str = ""
    retention: Duration = 7 * 86400.0
    query: str = ""
    threshold: float | None = None
    unit: Literal["auto", "seconds", "ratio", "percent", "bytes", "bytes_per_second", "per_second", "count",
                  "none"] = "auto"

    @property
    def enabled(self) -> bool:
        """Whether a Prometheus URL is configured."""
        return self.prometheus.enabled

    @field_validator("range")
    @classmethod
    def _range(cls, value: float) -> float:
        if not 300 <= value <= 7 * 86400:
            raise ValueError("range must be between 5m and 7d")
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: float) -> float:
        return check_timeout(value)

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        return check_base_url(value, "public_url")

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        if value.strip():
            try:
                analyse(value)
            except PromQLError as exc:
                raise ValueError(f"query: {exc}") from None
        return value.strip()


OFF = GraphSettings(prometheus=PrometheusSettings(url=""))
"""What a rule with ``graph: null`` gets: no pictures."""


def settings_for_rule(config: Config, rule: Rule | None) -> GraphSettings:
    """The effective ``graph`` settings of ``rule``: its own block merged over the global default.

    A rule that says ``graph: null`` gets :data:`OFF`.
    """
    base = config.settings.graph
    model = rule.model if rule is not None else None
    if model is None or "graph" not in model.model_fields_set:
        return base
    override = model.graph
    return OFF if override is None else merge(base, override)
