"""``alert-router graph LABEL=VALUE... --out FILE.png``: the picture a page would carry, for trying queries out.

The expression comes from ``--expr``, ``--generator-url``, the alert rule named by ``alertname=`` in
``--rules-file``, or the ``graph.query`` of the first routing rule these labels match; the data from
``--prometheus`` or ``graph.prometheus.url``. The picture is drawn exactly as the graph stage draws it for
a firing alert with these labels that started ``--since`` ago.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from alert_router.config import Config
from alert_router.durations import parse_duration
from alert_router.graph.files import GraphFiles
from alert_router.graph.settings import GraphSettings, settings_for_rule
from alert_router.graph.stage import GraphStage
from alert_router.models import Alert, Notification

__all__ = ["graph_command", "rule_expression"]


def rule_expression(path: Path, labels: dict[str, str]) -> str | None:
    """The ``expr`` of the alerting rule in Prometheus rule file ``path`` named ``labels["alertname"]``.

    With several rules of that name, the first whose own labels agree with ``labels``.
    """
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    name = labels.get("alertname", "")
    rules = [r for g in doc.get("groups") or [] for r in g.get("rules") or [] if isinstance(r, dict)]
    found = [r for r in rules if r.get("alert") == name]
    for rule in found:
        if all(labels.get(k, v) == v for k, v in (rule.get("labels") or {}).items() if "{{" not in str(v)):
            return str(rule.get("expr", "")).strip() or None
    return None


def graph_command(
    config: Config,
    labels: dict[str, str],
    *,
    out: str,
    expr: str | None = None,
    generator_url: str | None = None,
    rules_file: str | None = None,
    prometheus: str | None = None,
    range_: str | None = None,
    since: str = "15m",
) -> int:
    """Run the command; print what was drawn (or why not) and return the exit status."""
    from alert_router.pipeline.route import route_labels

    if "alertname" not in labels:
        print("error: give at least alertname=NAME", file=sys.stderr)
        return 2
    routed = route_labels(labels, config.rules, config.default)
    rule = next((r for r in routed.rules if r.model is not None and "graph" in r.model.model_fields_set), None)
    settings = settings_for_rule(config, rule)
    update: dict[str, Any] = {"timeout": 60.0}
    if prometheus:
        update["prometheus"] = settings.prometheus.model_copy(update={"url": prometheus.rstrip("/")})
    if range_:
        update["range"] = parse_duration(range_)
    if expr:
        update["query"] = expr
    settings = GraphSettings.model_validate({**settings.model_dump(), **update})
    if rules_file and not expr and not settings.query:
        found = rule_expression(Path(rules_file), labels)
        if found is None:
            print(f"error: no alerting rule {labels['alertname']!r} in {rules_file}", file=sys.stderr)
            return 1
        generator_url = "http://prometheus/graph?" + _query_string(found)
    if not settings.prometheus.url:
        print("error: no Prometheus: set graph.prometheus.url or give --prometheus URL", file=sys.stderr)
        return 2
    now = time.time()
    alert = Alert.model_validate({
        "status": "firing",
        "labels": labels,
        "startsAt": datetime.fromtimestamp(now - parse_duration(since), UTC).isoformat(),
        "generatorURL": generator_url or "",
        "fingerprint": hashlib.sha256(repr(sorted(labels.items())).encode()).hexdigest()[:16],
    })
    notification = Notification(
        receiver="graph-command", rule=rule.name if rule else "default", group_key=f"graph:{alert.fingerprint}",
        status="firing", alerts=[alert], changed=[alert.fingerprint], received_at=datetime.now(UTC),
    )
    entries = asyncio.run(_draw(config, settings, notification))
    if not entries:
        print("error: nothing to draw: give --expr, --generator-url or --rules-file, or a rule graph.query",
              file=sys.stderr)
        return 1
    entry = entries[0]
    if entry["status"] != "ok":
        print(f"no picture: {entry['reason']}", file=sys.stderr)
        return 1
    Path(out).write_bytes(entry.pop("png"))
    print(f"{out}: {entry['width']}x{entry['height']} PNG of {' '.join(entry['query'].split())}")
    if entry.get("describe"):
        print(f"fires {entry['describe']}")
    return 0


def _query_string(expr: str) -> str:
    from urllib.parse import urlencode

    return urlencode({"g0.expr": expr, "g0.tab": "1"})


async def _draw(config: Config, settings: GraphSettings, notification: Notification) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="alert-router-graph-") as tmp:
        stage = GraphStage(config, files=GraphFiles(Path(tmp)))
        try:
            entries = await stage.build(notification, settings)
        finally:
            await stage.aclose()
        for entry in entries:
            if entry["status"] == "ok":
                entry["png"] = await asyncio.to_thread(Path(entry["path"]).read_bytes)
        return entries
