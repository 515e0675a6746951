"""Pictures in pages: the alert's expression over time, with its threshold, in every firing notification.

Modules: :mod:`~alert_router.graph.promql` (the expression split into series and comparison, with a real
PromQL parser), :mod:`~alert_router.graph.prometheus` (the ``query_range`` client),
:mod:`~alert_router.graph.picture` (alerts and results to a plot), :mod:`~alert_router.graph.render` (the
drawing, matplotlib without pyplot), :mod:`~alert_router.graph.pool` (drawing off the event loop),
:mod:`~alert_router.graph.files` (the saved PNGs and their links), :mod:`~alert_router.graph.settings` (the
``graph:`` configuration) and :mod:`~alert_router.graph.stage` (the stage the delivery worker calls before
each send, beside enrichment). See docs/channels.md, "Graphs".
"""

from __future__ import annotations

from alert_router.graph.settings import GraphSettings, PrometheusSettings, settings_for_rule

__all__ = ["GraphSettings", "PrometheusSettings", "settings_for_rule"]
