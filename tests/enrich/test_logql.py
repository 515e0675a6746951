"""LogQL from a template: label values cannot change the query's structure; unsafe selectors are refused."""

from __future__ import annotations

import pytest

from alert_router.enrich.logql import (
    DEFAULT_LABEL_MAP,
    DEFAULT_TEMPLATE,
    EmptyCompatibleSelector,
    LogQLError,
    QueryTemplate,
    TemplateError,
    check_selector,
    escape_string,
    quote_meta,
    unquote_string,
)
from tests.standins.loki import parse_logql

HOSTILE = [
    'x"} or {x=~".*',
    '"} |= "" or {namespace=~".+',
    'a\\"b',
    "back\\slash\\",
    "new\nline",
    "carriage\rreturn\ttab",
    ".*",
    "(a|b)[c]{1,2}^$+?\\d",
    "`backtick`",
    "{{ app }}",
    "nul\x00esc\x1bdel\x7f",
    "line\u2028sep\u200bzw",
    "ünïcödé ✓ 日本",
    "#comment",
    "",
]

TEMPLATE = (
    '{namespace="{{ namespace }}", app=~"{{ app }}", pod!="{{ pod }}", job!~"{{ job }}-canary"}'
    ' |= "{{ msg }}" != "{{ msg }}" |~ "(?i){{ msg }}" !~ "{{ msg }}$"'
)


@pytest.mark.parametrize("value", [v for v in HOSTILE if v])
def test_hostile_values_parse_back_to_the_intended_matchers(value: str) -> None:
    """Loki's own grammar (the stand-in's parser) sees exactly the matchers and filters the template meant."""
    labels = {"namespace": value, "app": value, "pod": value, "job": value, "msg": value}
    query = QueryTemplate.compile(TEMPLATE).render(labels, {})
    parsed = parse_logql(query)
    assert [(m.name, m.op, m.value) for m in parsed.matchers] == [
        ("namespace", "=", value),
        ("app", "=~", quote_meta(value)),
        ("pod", "!=", value),
        ("job", "!~", quote_meta(value) + "-canary"),
    ]
    assert [(f.op, f.value) for f in parsed.filters] == [
        ("|=", value),
        ("!=", value),
        ("|~", "(?i)" + quote_meta(value)),
        ("!~", quote_meta(value) + "$"),
    ]
    # the regex matchers match the value literally, and nothing broader
    app = parsed.matchers[1]
    assert app.matches(value)
    assert not app.matches(value + "x")
    assert not app.matches("anything-else")


@pytest.mark.parametrize("value", HOSTILE)
def test_escape_string_round_trips_through_go_unquoting(value: str) -> None:
    escaped = escape_string(value)
    assert "\n" not in escaped and "\r" not in escaped
    assert unquote_string(f'"{escaped}"') == (value, len(escaped) + 2)


def test_quote_meta_escapes_exactly_re2_metacharacters() -> None:
    assert quote_meta(r"a.b+c*d?e(f)g|h[i]j{k}l^m$n\o-p/q") == r"a\.b\+c\*d\?e\(f\)g\|h\[i\]j\{k\}l\^m\$n\\o-p/q"


def test_default_template_with_fallbacks() -> None:
    t = QueryTemplate.compile(DEFAULT_TEMPLATE)
    labels = {"namespace": "prod", "deployment": "model-api", "job": "other", "alertname": "X"}
    assert t.build(labels, DEFAULT_LABEL_MAP) == (
        '{namespace="prod", app="model-api"} |~ "(?i)(error|exception|traceback|fatal)"'
    )
    # the first non-empty label in the fallback list wins
    labels2 = {"namespace": "prod", "app": "", "app_kubernetes_io_name": "svc", "deployment": "d"}
    assert 'app="svc"' in t.build(labels2, DEFAULT_LABEL_MAP)


def test_missing_label_is_empty_and_an_all_empty_selector_names_what_is_missing() -> None:
    t = QueryTemplate.compile(DEFAULT_TEMPLATE)
    # a missing label is the empty string, like in Prometheus; namespace still narrows the query
    assert t.build({"namespace": "prod"}, DEFAULT_LABEL_MAP).startswith('{namespace="prod", app=""}')
    with pytest.raises(EmptyCompatibleSelector) as info:
        t.build({"alertname": "NodeDown", "app": ""}, DEFAULT_LABEL_MAP)
    msg = str(info.value)
    assert 'every matcher of {namespace="", app=""} matches the empty string' in msg
    assert "{{ namespace }} (tried namespace), {{ app }} (tried app, app_kubernetes_io_name, deployment, job)" in msg


@pytest.mark.parametrize(
    "query",
    ["{}", '{app=""}', '{app=~".*"}', '{app!="x"}', '{app!~"x", ns=~"a|"}', '{ns=""} |= "error"'],
)
def test_empty_compatible_selectors_are_refused(query: str) -> None:
    with pytest.raises(EmptyCompatibleSelector):
        check_selector(query)
    # ...and Loki (the stand-in's parser) would refuse them too
    with pytest.raises(ValueError, match="empty-compatible"):
        parse_logql(query)


@pytest.mark.parametrize("query", ['{app="x"}', '{app=~".+"}', '{a=~".*", b="y"}', '{app=~"x|y"} |~ "e"'])
def test_selectors_with_a_non_empty_matcher_pass(query: str) -> None:
    matchers = check_selector(query)
    assert any(not m.matches_empty() for m in matchers)
    parse_logql(query)


def test_a_template_whose_only_value_is_empty_is_refused_at_build_time() -> None:
    t = QueryTemplate.compile('{app="{{ app }}"} |= "error"')
    assert t.build({"app": "x"}, {}) == '{app="x"} |= "error"'
    with pytest.raises(EmptyCompatibleSelector):
        t.build({"app": ""}, {})
    with pytest.raises(EmptyCompatibleSelector):
        t.build({}, {})


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{app={{ app }}}", "inside a double-quoted string"),
        ("{app=`{{ app }}`}", "backtick"),
        ('{app="x"} | line_format "{{ app }}"', "value of a matcher or filter"),
        ('{app="{{ app"}', "malformed placeholder"),
        ('{app="x}', "unterminated string"),
        ('{app=~".*"}', "matches the empty string"),
        ("app=x", "stream selector"),
        ('{app="x"} |= "a\\qb"', "invalid escape"),
        ('{app="x"} # {{ app }}', "comment"),
    ],
)
def test_bad_templates_are_refused_at_compile_time(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        QueryTemplate.compile(template)


def test_unquote_rejects_what_loki_rejects() -> None:
    for bad in ['"abc', '"a\nb"', '"\\q"', '"\\x4"', '"\\ud800"', "`abc"]:
        with pytest.raises(LogQLError):
            unquote_string(bad)
    assert unquote_string("`a\\b`") == ("a\\b", 5)


# --------------------------------------------------------------------------- placeholders and pipeline stages

SEL = '{namespace="{{ namespace }}"}'


@pytest.mark.parametrize(
    ("stage", "where"),
    [
        ('| label_format shown="{{ app }}"', "`| label_format` stage (Loki runs that string as a Go template)"),
        ('| json x="{{ app }}"', "`| json` stage"),
        ('| logfmt x="{{ app }}"', "`| logfmt` stage"),
        ('| logfmt | line_format "{{ app }}"', "`| line_format` stage (Loki runs that string as a Go template)"),
        ('| line_format "{{ .pod }} {{app}}"', "`| line_format` stage"),
        ('| drop level="{{ app }}"', "`| drop` stage"),
        ('| keep pod="{{ app }}"', "`| keep` stage"),
        ('| regexp "(?P<x>{{ app }})"', "`| regexp` stage"),
        ('| pattern "<_> {{ app }}"', "`| pattern` stage"),
        ('|> "<_> {{ app }}"', "`|>` pattern filter"),
        ('|= ip("{{ app }}")', "ip() line filter"),
        ('| json | status == "{{ app }}"', "`==` label filter"),
        ('| json != "{{ app }}"', "`| json` stage"),  # ambiguous to a reader: refused rather than guessed
        ('[5m] "{{ app }}"', "cannot classify"),
    ],
)
def test_placeholders_outside_matcher_and_filter_values_are_refused(stage: str, where: str) -> None:
    with pytest.raises(TemplateError, match="must be in the value of a matcher or filter") as info:
        QueryTemplate.compile(f"{SEL} {stage}")
    assert where in str(info.value)


@pytest.mark.parametrize(
    ("template", "slots"),
    [
        (f'{SEL} | app="{{{{ app }}}}"', [("namespace", "literal"), ("app", "literal")]),
        (
            f'{SEL} | json | app="{{{{ app }}}}" and (pod=~"{{{{ pod }}}}-.*" or level!="{{{{ lvl }}}}")'
            f' | line_format "{{{{.msg}}}}" |= "{{{{ app }}}}" or "{{{{ pod }}}}"',
            [("namespace", "literal"), ("app", "literal"), ("pod", "regex"), ("lvl", "literal"),
             ("app", "literal"), ("pod", "literal")],
        ),
        (f'{SEL} | logfmt | duration > 10s, status >= 400 | app!~"{{{{ app }}}}"',
         [("namespace", "literal"), ("app", "regex")]),
        (f'{SEL} | line_format "x" != "{{{{ app }}}}"', [("namespace", "literal"), ("app", "literal")]),
        # Loki's own template syntax in a formatting stage is not a placeholder and is left to Loki
        (f'{SEL} | logfmt | line_format "{{{{ .pod }}}}: {{{{ __line__ }}}}"', [("namespace", "literal")]),
        (f"{SEL} | line_format `{{{{.msg | ToUpper}}}}`", [("namespace", "literal")]),
    ],
)
def test_placeholders_in_matcher_label_filter_and_line_filter_values_are_accepted(
    template: str, slots: list[tuple[str, str]]
) -> None:
    assert [(s.name, s.context) for s in QueryTemplate.compile(template).slots] == slots


GO_TEMPLATE_VALUES = [
    "{{ __line__ }}{{ .pod }}",
    '"} | line_format "{{ __line__ }}{{ .pod }}',
    '" | label_format x="{{ .pod }}',
    '`} | line_format `{{.pod}}',
    '") | line_format "{{.pod}}" |= ("',
]


@pytest.mark.parametrize("value", GO_TEMPLATE_VALUES)
def test_label_values_that_look_like_go_templates_stay_values(value: str) -> None:
    """Loki (the stand-in's grammar) sees only the intended matchers and filters: no formatting stage appears,
    so nothing of the alert reaches Loki's template engine."""
    template = '{namespace="{{ ns }}", app=~"{{ app }}"} | pod="{{ pod }}" and team!~"{{ team }}" |= "{{ msg }}"'
    labels = {"ns": value, "app": value, "pod": value, "team": value, "msg": value}
    query = QueryTemplate.compile(template).build(labels, {})
    parsed = parse_logql(query)  # raises LogQLUnsupported if a line_format/label_format stage had appeared
    assert [(m.name, m.op, m.value) for m in parsed.matchers] == [("namespace", "=", value),
                                                                 ("app", "=~", quote_meta(value))]
    assert [(m.name, m.op, m.value) for m in parsed.label_filters] == [("pod", "=", value),
                                                                      ("team", "!~", quote_meta(value))]
    assert [(f.op, f.value) for f in parsed.filters] == [("|=", value)]
