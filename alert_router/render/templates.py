"""Sandboxed Jinja2 templates, one environment per markup ("dialect"), with escaping built in.

* ``mrkdwn`` (Slack): every ``{{ expression }}`` is passed through :func:`~alert_router.render.escape.mrkdwn_escape`
  unless a filter already produced mrkdwn (``code``, ``codeblock``, ``link``, ``bold``, ``labels``).
* ``html`` (Telegram, email): Jinja autoescaping; the same filters produce safe HTML.
* ``text`` (email text part, subjects): no escaping.
* ``json`` (webhook bodies): every ``{{ expression }}`` is emitted as a JSON value, so
  ``{"text": {{ title }}}`` is always valid JSON whatever the title holds.

A user template replaces a channel's default. If it fails while rendering (an exception, a sandbox
violation, output the channel cannot use) the default is rendered instead, the failure is logged and
reported to the caller so it can be counted: the notification is never dropped because of a template.
Syntax errors and attribute access the sandbox would refuse (``__class__``, ``__globals__``...) are found
earlier, by ``alert-router check`` (:func:`check_template`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import structlog
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from alert_router.render import escape as esc
from alert_router.render.context import format_duration
from alert_router.sandbox import unsafe_accesses

log = structlog.get_logger("alert_router.render")

Dialect = Literal["mrkdwn", "html", "text", "json"]
T = TypeVar("T")
MAX_OUTPUT = 1_000_000
"""Rendered output longer than this is treated as a template error."""


def _pairs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, Mapping):
        return [(str(k), str(v)) for k, v in value.items()]
    out = []
    for item in value or []:
        if isinstance(item, list | tuple) and len(item) == 2:
            out.append((str(item[0]), str(item[1])))
    return out


def _clip(value: Any, limit: int = 200, end: str = esc.ELLIPSIS) -> Any:
    if isinstance(value, Markup | esc.MrkdwnSafe):
        return value
    return esc.clip(str(value), int(limit), end)


def _duration(value: Any) -> str:
    try:
        return format_duration(float(value))
    except (TypeError, ValueError):
        return str(value)


def _common_filters() -> dict[str, Callable[..., Any]]:
    return {"clip": _clip, "oneline": lambda v: esc.oneline(str(v)), "duration": _duration}


def _mrkdwn_finalize(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, esc.MrkdwnSafe):
        return value
    return esc.mrkdwn_escape(value)


def _json_finalize(value: Any) -> Any:
    if isinstance(value, Markup):  # |tojson already produced JSON
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _mrkdwn_labels(value: Any, limit: int = 120) -> esc.MrkdwnSafe:
    return esc.MrkdwnSafe(" ".join(esc.mrkdwn_code(f"{k}={v}", limit) for k, v in _pairs(value)))


def _html_labels(value: Any, limit: int = 120) -> Markup:
    return Markup(" ").join(esc.html_code(f"{k}={v}", limit) for k, v in _pairs(value))


def _text_labels(value: Any, limit: int = 120) -> str:
    return ", ".join(esc.clip(f"{k}={v}", limit) for k, v in _pairs(value))


def _text_codeblock(lines: Any, limit: int = 2800) -> str:
    text = "\n".join(str(x) for x in lines) if isinstance(lines, list) else str(lines)
    return esc.clip(text, limit)


def _make_env(dialect: Dialect) -> SandboxedEnvironment:
    common = {"trim_blocks": True, "lstrip_blocks": True, "keep_trailing_newline": False}
    if dialect == "mrkdwn":
        env = SandboxedEnvironment(autoescape=False, finalize=_mrkdwn_finalize, **common)
        env.filters.update(
            code=esc.mrkdwn_code,
            codeblock=esc.mrkdwn_codeblock,
            link=esc.mrkdwn_link,
            bold=esc.mrkdwn_bold,
            labels=_mrkdwn_labels,
            escape=lambda v: esc.MrkdwnSafe(esc.mrkdwn_escape(v)),
        )
    elif dialect == "html":
        env = SandboxedEnvironment(autoescape=True, **common)
        env.filters.update(
            code=esc.html_code, codeblock=esc.html_codeblock, link=esc.html_link, bold=esc.html_bold,
            labels=_html_labels,
        )
    elif dialect == "text":
        env = SandboxedEnvironment(autoescape=False, **common)
        env.filters.update(
            code=lambda v, limit=500: esc.clip(esc.oneline(str(v)), int(limit)),
            codeblock=_text_codeblock,
            link=lambda url, text: f"{text} ({url})" if url else str(text),
            bold=lambda v: str(v),
            labels=_text_labels,
        )
    else:
        env = SandboxedEnvironment(autoescape=False, finalize=_json_finalize, **common)
    env.filters.update(_common_filters())
    return env


_ENVS: dict[str, SandboxedEnvironment] = {}


def environment(dialect: Dialect) -> SandboxedEnvironment:
    """The shared sandboxed environment for ``dialect``."""
    env = _ENVS.get(dialect)
    if env is None:
        env = _ENVS[dialect] = _make_env(dialect)
    return env


def check_template(source: str, dialect: Dialect) -> str:
    """Compile ``source`` and return it; raise ``ValueError`` naming the line of a problem.

    Problems are syntax errors and accesses the sandbox would refuse while rendering (``__class__``,
    ``__globals__``, ``|attr("__mro__")``...).
    """
    env = environment(dialect)
    try:
        ast = env.parse(source)
        env.from_string(source)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template syntax error on line {exc.lineno}: {exc.message}") from None
    unsafe = unsafe_accesses(env, ast)
    if unsafe:
        line, what = unsafe[0]
        raise ValueError(f"template line {line}: {what} (templates render in a sandbox)")
    return source


class Template:
    """One message part of one receiver: an optional user template with the built-in default behind it.

    Args:
        dialect: the markup the output is in.
        default: the built-in template source (must never fail).
        override: the receiver's own template source, or ``None``.
        name: which part this is (``template``, ``subject_template``...), for logs.
        receiver: the receiver name, for logs.
        validate: called with the output; raising marks the output unusable (e.g. invalid JSON).

    """

    def __init__(
        self,
        dialect: Dialect,
        default: str,
        override: str | None = None,
        *,
        name: str = "template",
        receiver: str = "",
        validate: Callable[[str], object] | None = None,
    ) -> None:
        env = environment(dialect)
        self.dialect = dialect
        self.name = name
        self.receiver = receiver
        self.validate = validate
        self._default = env.from_string(default)
        self._override = env.from_string(override) if override else None

    @property
    def overridden(self) -> bool:
        """Whether the receiver configured its own template."""
        return self._override is not None

    def render(self, context: Mapping[str, Any], errors: list[str] | None = None) -> str:
        """Render the override, falling back to the default on any failure (appended to ``errors``)."""
        if self._override is not None:
            try:
                out = self._override.render(context)
                if len(out) > MAX_OUTPUT:
                    raise ValueError(f"output is {len(out)} characters (limit {MAX_OUTPUT})")
                if self.validate is not None:
                    self.validate(out)
                return out
            except Exception as exc:  # any failure (TemplateError, SecurityError, ...) means "use the default"
                message = f"{self.name}: {type(exc).__name__}: {exc}"
                log.warning(
                    "template failed; the default template is used instead",
                    receiver=self.receiver,
                    template=self.name,
                    error=message,
                )
                if errors is not None:
                    errors.append(message)
        return self._default.render(context)


def fit(count: int, render: Callable[[int | None], T], fits: Callable[[T], bool]) -> T:
    """Render with every alert; if it does not fit, find the most alerts that do (binary search).

    ``render(n)`` renders with at most ``n`` alerts shown (``None``: all); the templates then say
    "…and N more". With no alert fitting, the one-alert rendering is returned.
    """
    full = render(None)
    if fits(full) or count <= 1:
        return full
    lo, hi, best = 1, count - 1, None
    while lo <= hi:
        mid = (lo + hi) // 2
        candidate = render(mid)
        if fits(candidate):
            best, lo = candidate, mid + 1
        else:
            hi = mid - 1
    return best if best is not None else render(1)
