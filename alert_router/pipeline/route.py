"""Routing: which rules an alert matches, and which receivers and runbooks that sends it to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from alert_router.config import Rule
from alert_router.matchers import matches_all
from alert_router.models import Alert


@dataclass(frozen=True)
class RouteResult:
    """The rules an alert matched (in order), and the receivers and runbooks they name (deduplicated, in order)."""

    rules: tuple[Rule, ...]
    receivers: tuple[tuple[str, str], ...]
    runbooks: tuple[tuple[str, str], ...]

    @property
    def receiver_names(self) -> list[str]:
        """The receivers only."""
        return [r for r, _ in self.receivers]


def route_labels(labels: Mapping[str, str], rules: Sequence[Rule], default: Rule | None) -> RouteResult:
    """Walk ``rules`` in order; stop at the first match unless it says ``continue: true``.

    The default route applies when no rule matched. Each receiver and runbook appears once, attributed
    to the first rule that named it.
    """
    matched: list[Rule] = []
    for rule in rules:
        if matches_all(rule.matchers, labels):
            matched.append(rule)
            if not rule.continue_:
                break
    if not matched and default is not None:
        matched.append(default)
    receivers: dict[str, str] = {}
    runbooks: dict[str, str] = {}
    for rule in matched:
        for r in rule.receivers:
            receivers.setdefault(r, rule.name)
        for b in rule.runbooks:
            runbooks.setdefault(b, rule.name)
    return RouteResult(tuple(matched), tuple(receivers.items()), tuple(runbooks.items()))


@dataclass
class GroupRoute:
    """The alerts of one Alertmanager group that go to one receiver."""

    receiver: str
    rule: str
    alerts: list[Alert] = field(default_factory=list)


def route_group(alerts: Sequence[Alert], rules: Sequence[Rule], default: Rule | None) -> list[GroupRoute]:
    """Route each alert of a group and gather them per receiver, keeping the group's order."""
    by_receiver: dict[str, GroupRoute] = {}
    for alert in alerts:
        result = route_labels(alert.labels, rules, default)
        for receiver, rule in result.receivers:
            gr = by_receiver.setdefault(receiver, GroupRoute(receiver, rule))
            gr.alerts.append(alert)
    return list(by_receiver.values())
