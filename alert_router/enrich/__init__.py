"""Enrichment: the Loki log lines that explain an alert, and links back to the evidence.

Modules: :mod:`~alert_router.enrich.logql` (safe LogQL from a template and labels),
:mod:`~alert_router.enrich.loki` (the ``query_range`` client), :mod:`~alert_router.enrich.links`
(Grafana, Alertmanager, generator links), :mod:`~alert_router.enrich.settings` (the ``enrich:`` configuration) and
:mod:`~alert_router.enrich.stage` (the stage the delivery worker calls before each send).
Log lines are masked with :mod:`alert_router.redact` before they leave. See docs/enrichment.md.
"""

from __future__ import annotations

from alert_router.enrich.settings import EnrichSettings, LokiSettings
from alert_router.enrich.stage import EnrichmentStage, preview_queries, settings_for_rule

__all__ = ["EnrichSettings", "EnrichmentStage", "LokiSettings", "preview_queries", "settings_for_rule"]
