"""Static sandbox checks: what the sandbox would refuse while rendering is found when the template is parsed."""

from __future__ import annotations

import pytest
from jinja2.sandbox import SandboxedEnvironment

from alert_router.render import defaults
from alert_router.render.templates import check_template, environment
from alert_router.sandbox import unsafe_accesses, unsafe_attribute

ENV = SandboxedEnvironment()


@pytest.mark.parametrize(
    ("source", "line", "fragment"),
    [
        ("{{ alerts.__class__.__mro__ }}", 1, "`alerts.__class__` reaches '__class__'"),
        ("text\n{{ x.__class__.__base__.__subclasses__() }}", 2, "'__class__'"),
        ("{{ cycler.__init__.__globals__.os }}", 1, "'__init__'"),
        ("{{ x|attr('__globals__') }}", 1, "|attr('__globals__')"),
        ("{{ labels['__class__'] }}", 1, "labels['__class__']"),
        ("{{ '{0.__class__}'.format(labels) }}", 1, "format string"),
        ("{{ ''.__class__.mro() }}", 1, "'__class__'"),
        ("{{ str.mro }}", 1, "'mro'"),
        ("{{ gen.gi_frame.f_globals }}", 1, "'gi_frame'"),
        ("{% for a in alerts %}\n{% if a.x %}{{ a.__dict__ }}{% endif %}{% endfor %}", 2, "'__dict__'"),
        ("{% include 'x.html' %}", 1, "include"),
        ("{% from 'x' import y %}", 1, "import"),
    ],
)
def test_unsafe_access_is_found_with_its_line(source: str, line: int, fragment: str) -> None:
    found = unsafe_accesses(ENV, ENV.parse(source))
    assert found, source
    assert found[0][0] == line and fragment in found[0][1], found


@pytest.mark.parametrize(
    "source",
    [
        "{{ labels.team }} {{ labels._private_label }} {{ labels['team'] }} {{ labels[name] }}",
        "{{ alerts|length }} {{ title|upper }} {{ labels.items()|list }} {{ x|attr('team') }}",
        "{{ '{0} {1}'.format(a, b) }} {{ '%s'|format(a) }} {% for k, v in labels|dictsort %}{{ k }}{% endfor %}",
    ],
)
def test_ordinary_templates_pass(source: str) -> None:
    assert unsafe_accesses(ENV, ENV.parse(source)) == []


def test_the_check_asks_the_same_sandbox_as_rendering() -> None:
    # whatever the static check refuses, the sandbox refuses at render time on an object that has it
    for name in ("__class__", "__globals__", "__mro__", "__subclasses__", "mro", "gi_frame", "cr_code", "ag_frame"):
        assert unsafe_attribute(ENV, name), name
    for name in ("team", "items", "upper", "_private_label", "format"):
        assert not unsafe_attribute(ENV, name), name


@pytest.mark.parametrize(
    ("source", "dialect"),
    [(defaults.SLACK_BODY, "mrkdwn"), (defaults.TELEGRAM, "html"), (defaults.EMAIL_SUBJECT, "text"),
     (defaults.EMAIL_TEXT, "text"), (defaults.EMAIL_HTML, "html"), (defaults.WEBHOOK, "json")],
)
def test_the_built_in_templates_pass_their_own_check(source: str, dialect: str) -> None:
    assert check_template(source, dialect) == source  # type: ignore[arg-type]
    env = environment(dialect)  # type: ignore[arg-type]
    assert unsafe_accesses(env, env.parse(source)) == []
