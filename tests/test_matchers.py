"""The one matcher parser: syntax, the four operators, quoting and errors."""

import pytest

from alert_router.errors import MatcherError
from alert_router.matchers import MatchOp, format_matchers, parse_matcher_list, parse_matchers


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity!="critical"', {"severity": "warning"}, True),
        ('severity!="critical"', {"severity": "critical"}, False),
        ('namespace=~"prod|staging"', {"namespace": "staging"}, True),
        ('namespace=~"prod|staging"', {"namespace": "prod-eu"}, False),  # anchored like Alertmanager
        ('namespace!~"dev.*"', {"namespace": "prod"}, True),
        ('namespace!~"dev.*"', {"namespace": "dev-1"}, False),
        ('team=""', {}, True),  # a missing label is the empty string
        ('team!=""', {}, False),
        ("severity=critical", {"severity": "critical"}, True),  # bare values
    ],
)
def test_operators(text: str, labels: dict[str, str], expected: bool) -> None:
    (m,) = parse_matchers(text)
    assert m.matches(labels) is expected


def test_braces_and_quoting() -> None:
    ms = parse_matchers(r'{a="x, y", b=~"q\"uote", c!="back\\slash"}')
    assert [(m.name, m.op, m.value) for m in ms] == [
        ("a", MatchOp.EQ, "x, y"),
        ("b", MatchOp.RE, 'q"uote'),
        ("c", MatchOp.NE, "back\\slash"),
    ]
    # Round trip through the printed form.
    assert parse_matchers(format_matchers(ms)) == ms


def test_list_form_combines() -> None:
    ms = parse_matcher_list(['severity="critical"', '{namespace=~"prod"}'])
    assert [m.name for m in ms] == ["severity", "namespace"]
    assert parse_matcher_list([]) == []


@pytest.mark.parametrize(
    "bad",
    [
        'severity=="x',
        "=x",
        'sev erity="x"',
        'a="unterminated',
        'a=~"(unclosed"',
        '{a="1"',
        'a="1" b="2"',
        "a",
        "",
        "a<>1",
    ],
)
def test_bad_syntax_raises(bad: str) -> None:
    with pytest.raises(MatcherError):
        parse_matchers(bad)


def test_silence_rendering() -> None:
    (m,) = parse_matchers('pod!~"api-.*"')
    assert m.to_silence() == {"name": "pod", "value": "api-.*", "isRegex": True, "isEqual": False}
    assert m.matches_empty() is True
