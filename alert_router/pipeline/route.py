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


class _Routes:
    """Results of one rule list, keyed by the values of the labels its matchers read.

    Alerts of a storm differ in labels no rule looks at (pod, instance): they share one walk of the rules.
    """

    SIZE = 4096  # distinct keys kept; past that the cache starts over

    def __init__(self, rules: Sequence[Rule], default: Rule | None) -> None:
        self.rules = rules  # held, so that its id is not reused while this entry lives
        self.default = default
        self.count = len(rules)
        self.names = sorted({m.name for r in rules for m in r.matchers})
        self.results: dict[tuple[str, ...], RouteResult] = {}

    def key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        return tuple([labels.get(n, "") for n in self.names])


_CACHES: dict[tuple[int, int], _Routes] = {}


def _routes(rules: Sequence[Rule], default: Rule | None) -> _Routes:
    key = (id(rules), id(default))
    entry = _CACHES.get(key)
    if entry is None or entry.rules is not rules or entry.default is not default or entry.count != len(rules):
        if len(_CACHES) >= 16:
            _CACHES.clear()
        entry = _CACHES[key] = _Routes(rules, default)
    return entry


def route_labels(labels: Mapping[str, str], rules: Sequence[Rule], default: Rule | None) -> RouteResult:
    """Walk ``rules`` in order; stop at the first match unless it says ``continue: true``.

    The default route applies when no rule matched. Each receiver and runbook appears once, attributed
    to the first rule that named it. Results are remembered per rule list for the values of the labels
    its matchers read (a matcher sees a missing label as empty), so a storm walks the rules once per
    distinct combination.
    """
    routes = _routes(rules, default)
    key = routes.key(labels)
    result = routes.results.get(key)
    if result is None:
        if len(routes.results) >= routes.SIZE:
            routes.results.clear()
        result = routes.results[key] = _walk(labels, rules, default)
    return result


def _walk(labels: Mapping[str, str], rules: Sequence[Rule], default: Rule | None) -> RouteResult:
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
