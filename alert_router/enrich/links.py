"""Links back to the evidence: Grafana Explore, the alert in Alertmanager, its silence form, its source.

All builders are pure functions of their inputs. URLs that came from alerts (``generatorURL``) or from
the webhook (``externalURL``) are only used when they are ``http``/``https``: a ``javascript:`` URL
must never reach a chat message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import lru_cache
from urllib.parse import quote, urlsplit

from alert_router.enrich.logql import escape_string

__all__ = ["alert_filter", "alertmanager_alert_url", "alertmanager_silence_url", "grafana_explore_url", "safe_http_url"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def safe_http_url(url: str) -> str:
    """Return ``url`` if it is an absolute ``http``/``https`` URL with a host, else ``""``."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    if any(c in url for c in "\r\n\t\x00"):
        return ""
    return url.strip()


@lru_cache(maxsize=64)
def _base(url: str) -> str:
    return safe_http_url(url).rstrip("/")


def alert_filter(labels: Mapping[str, str]) -> str:
    """Render labels as an Alertmanager filter, ``{alertname="X", namespace="prod"}`` (alertname first)."""
    keys = sorted(labels, key=lambda k: (k != "alertname", k))
    parts = []
    for k in keys:
        name = k if _NAME.fullmatch(k) else f'"{escape_string(k)}"'
        parts.append(f'{name}="{escape_string(labels[k])}"')
    return "{" + ", ".join(parts) + "}"


def alertmanager_alert_url(alertmanager_url: str, labels: Mapping[str, str]) -> str:
    """The Alertmanager UI's alert list filtered to exactly this alert's labels (``""`` without a base URL)."""
    base = _base(alertmanager_url)
    if not base:
        return ""
    return f"{base}/#/alerts?filter={quote(alert_filter(labels), safe='')}"


def alertmanager_silence_url(alertmanager_url: str, labels: Mapping[str, str]) -> str:
    """The Alertmanager UI's new-silence form pre-filled with this alert's labels (``""`` without a base URL)."""
    base = _base(alertmanager_url)
    if not base:
        return ""
    return f"{base}/#/silences/new?filter={quote(alert_filter(labels), safe='')}"


def alertmanager_urls(alertmanager_url: str, labels: Mapping[str, str]) -> tuple[str, str]:
    """Both Alertmanager links for one alert (alert list, new silence), quoting the filter once.

    Remembered for recent label sets: every receiver of a group renders the same alerts.
    """
    return _alertmanager_urls(alertmanager_url, tuple(labels.items()))


@lru_cache(maxsize=4096)
def _alertmanager_urls(alertmanager_url: str, labels: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    base = _base(alertmanager_url)
    if not base:
        return "", ""
    q = quote(alert_filter(dict(labels)), safe="")
    return f"{base}/#/alerts?filter={q}", f"{base}/#/silences/new?filter={q}"


def grafana_explore_url(
    grafana_url: str, datasource_uid: str, query: str, start_ns: int, end_ns: int, *, org_id: int = 1
) -> str:
    """A Grafana Explore link running ``query`` on the Loki data source ``datasource_uid`` over the window.

    Uses Explore's URL state ``schemaVersion=1`` with one pane (Grafana 10 and later); the range is
    absolute, in epoch milliseconds. Returns ``""`` without a Grafana URL or data source.
    """
    base = _base(grafana_url)
    if not base or not datasource_uid:
        return ""
    pane = {
        "datasource": datasource_uid,
        "queries": [
            {
                "refId": "A",
                "expr": query,
                "queryType": "range",
                "editorMode": "code",
                "datasource": {"type": "loki", "uid": datasource_uid},
            }
        ],
        "range": {"from": str(start_ns // 1_000_000), "to": str(-(-end_ns // 1_000_000))},
    }
    panes = json.dumps({"alert": pane}, separators=(",", ":"), ensure_ascii=False)
    return f"{base}/explore?schemaVersion=1&panes={quote(panes, safe='')}&orgId={int(org_id)}"
