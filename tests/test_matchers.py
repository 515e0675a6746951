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


# --------------------------------------------------------------------------- RE2, as Alertmanager evaluates them


@pytest.mark.timeout(20)
def test_a_backtracking_pattern_runs_in_linear_time() -> None:
    # Python's re needs about 2^n steps here: ~30 s for 16 characters, years for 40.
    (m,) = parse_matchers('alertname=~"(.*.*)*x"')
    assert m.matches({"alertname": "a" * 40}) is False
    assert m.matches({"alertname": "a" * 40 + "x"}) is True


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ('a=~"prod"', "prod\n", False),  # Go's $ is the end of the text; Python's also accepts a final newline
        ('a=~"x.y"', "x\ny", False),  # . does not match a newline (Alertmanager compiles "^(?:v)$" without (?s))
        ('a=~"\\\\d+"', "١٢٣", False),  # \d is ASCII in RE2
        ('a=~"\\\\d+"', "123", True),
        ('a=~"(?i)PROD|dev"', "prod", True),
        ('a!~"(?i)PROD|dev"', "staging", True),
        ('a=~"café|ü.+"', "über", True),  # non-ASCII patterns and values (UTF-8 underneath)
    ],
)
def test_semantics_are_alertmanagers(text: str, value: str, expected: bool) -> None:
    (m,) = parse_matchers(text)
    assert m.matches({"a": value}) is expected


@pytest.mark.parametrize(
    ("pattern", "says"),
    [
        ("(a)\\\\1", "backreferences are not supported"),
        ("(?=a)a", "look-around is not supported"),
        ("(?<!a)b", "look-around is not supported"),
        ("a{1001}", "too large"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_a_reason(pattern: str, says: str) -> None:
    with pytest.raises(MatcherError, match="invalid regular expression") as info:
        parse_matchers(f'alertname=~"{pattern}"')
    assert says in str(info.value)


async def test_select_matching_filters_in_order_and_lets_the_loop_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio
    import contextlib

    from alert_router import matchers as matchers_module

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    monkeypatch.setattr(matchers_module, "YIELD_EVERY", 0.0)  # yield at every chance: independent of speed
    items = [{"alertname": f"a{i}"} for i in range(5000)]
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    before = ticks
    got = await matchers_module.select_matching(parse_matchers('alertname=~"a[0-9]*7"'), items, lambda x: x)
    during = ticks - before
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert got == [x for x in items if x["alertname"].endswith("7")]
    assert during >= 5000 // 64 - 1  # the loop ran other work between batches
