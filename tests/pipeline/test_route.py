"""Rule order, continue, the default route and per-receiver grouping."""

from datetime import UTC, datetime

from alert_router.config import Rule
from alert_router.matchers import parse_matcher_list
from alert_router.models import Alert
from alert_router.pipeline.route import route_group, route_labels


def rule(name: str, match: list[str], receivers: list[str], cont: bool = False, runbooks: list[str] = ()) -> Rule:
    return Rule(name, tuple(parse_matcher_list(match)), tuple(receivers), tuple(runbooks), cont, "r.yaml", 1)


RULES = [
    rule("all-to-file", [], ["file"], cont=True),
    rule("critical", ['severity="critical"'], ["slack", "email"], runbooks=["restart"]),
    rule("prod", ['namespace=~"prod|staging"'], ["slack"]),
    rule("never-reached-for-critical", ['severity="critical"'], ["pager"]),
]
DEFAULT = rule("default", [], ["console"])


def test_first_match_stops_without_continue() -> None:
    r = route_labels({"severity": "critical", "namespace": "prod"}, RULES, DEFAULT)
    assert [x.name for x in r.rules] == ["all-to-file", "critical"]
    assert r.receiver_names == ["file", "slack", "email"]
    assert r.runbooks == (("restart", "critical"),)


def test_continue_rule_alone_does_not_block_default() -> None:
    r = route_labels({"severity": "info", "namespace": "dev"}, RULES[1:], DEFAULT)
    assert [x.name for x in r.rules] == ["default"]
    assert r.receiver_names == ["console"]


def test_continue_rule_counts_as_match() -> None:
    r = route_labels({"severity": "info", "namespace": "dev"}, RULES, DEFAULT)
    assert r.receiver_names == ["file"]


def test_no_default_no_match() -> None:
    r = route_labels({"severity": "info"}, RULES[1:], None)
    assert r.rules == () and r.receivers == ()


def alert(fp: str, **labels: str) -> Alert:
    return Alert(status="firing", labels=labels, startsAt=datetime.now(UTC), fingerprint=fp)


def test_group_gathers_alerts_per_receiver_once() -> None:
    alerts = [alert("a", severity="critical", namespace="prod"), alert("b", severity="warning", namespace="prod")]
    groups = {g.receiver: [a.fingerprint for a in g.alerts] for g in route_group(alerts, RULES, DEFAULT)}
    assert groups == {"file": ["a", "b"], "slack": ["a", "b"], "email": ["a"]}
