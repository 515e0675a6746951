"""Templates in runbooks: Jinja2 in a sandbox, with undefined names as errors.

Runbook values such as ``"{{ labels.namespace }}"`` are rendered from the alert. Templates are checked
when the configuration loads (syntax, only known variables, and no access the sandbox would refuse, such as
``__class__``: :mod:`alert_router.sandbox`), and rendered at run time with
:class:`jinja2.StrictUndefined`, so a missing label is an error, never an empty string.

Variables: ``labels``, ``annotations``, ``alert`` (``name``, ``status``, ``fingerprint``,
``starts_at``, ``generator_url``) and ``runbook`` (its name) everywhere; in ``when:`` and in steps
also ``evidence`` (what the Kubernetes API said about the target, see
:mod:`alert_router.remediation.evidence`); in steps also ``target`` (``kind``, ``namespace``,
``name``) and ``run`` (``id``, ``dry_run``); in ``on_failure`` steps also ``failure`` (the failed step,
its error, the outcome and what to do next).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

from alert_router.sandbox import unsafe_accesses

CONDITION_VARS = frozenset({"labels", "annotations", "alert", "runbook"})
"""Variables available in ``target:`` (and, with ``evidence``, in ``when:``)."""

WHEN_VARS = CONDITION_VARS | {"evidence"}
"""Variables available in ``when:``."""

STEP_VARS = WHEN_VARS | {"target", "run"}
"""Variables available in step parameters."""

FAILURE_VARS = STEP_VARS | {"failure"}
"""Variables available in ``on_failure`` steps: ``failure`` is the failed step's report (``step``, ``error``,
``reason``, ``outcome``, ``next``; see :mod:`alert_router.remediation.failure`)."""

_ENV = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_WHOLE_EXPR = re.compile(r"^\s*\{\{(?P<expr>.*?)\}\}\s*$", re.DOTALL)


class TemplateProblem(ValueError):
    """A template that cannot be parsed, names an unknown variable, or fails to render."""


def is_template(text: str) -> bool:
    """Whether ``text`` contains template syntax (otherwise it is a literal)."""
    return "{{" in text or "{%" in text


def check_template(text: str, allowed: frozenset[str] = STEP_VARS) -> None:
    """Raise :class:`TemplateProblem` unless ``text`` parses and uses only ``allowed`` variables."""
    try:
        ast = _ENV.parse(text)
    except TemplateError as exc:
        raise TemplateProblem(f"invalid template {text!r}: {exc}") from None
    _refuse_unsafe(ast, f"template {text!r}")
    unknown = meta.find_undeclared_variables(ast) - allowed
    if unknown:
        raise TemplateProblem(
            f"template {text!r} uses unknown variable(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(allowed))}"
        )


def _refuse_unsafe(ast: nodes.Template, what: str) -> None:
    unsafe = unsafe_accesses(_ENV, ast)
    if unsafe:
        line, problem = unsafe[0]
        where = f" (line {line})" if line > 1 else ""
        raise TemplateProblem(f"{what}{where}: {problem} (templates render in a sandbox)")


def check_condition(text: str) -> None:
    """Raise :class:`TemplateProblem` unless ``text`` is a valid ``when:`` expression."""
    expr = _condition_expr(text)
    try:
        ast = _ENV.parse("{{ " + expr + " }}")
    except TemplateError as exc:
        raise TemplateProblem(f"invalid condition {text!r}: {exc}") from None
    if not any(isinstance(n, nodes.Output) for n in ast.body):  # pragma: no cover - parse guarantees it
        raise TemplateProblem(f"invalid condition {text!r}")
    _refuse_unsafe(ast, f"condition {text!r}")
    unknown = meta.find_undeclared_variables(ast) - WHEN_VARS
    if unknown:
        raise TemplateProblem(
            f"condition {text!r} uses unknown variable(s) {', '.join(sorted(unknown))}; "
            f"known: {', '.join(sorted(WHEN_VARS))}"
        )


def condition_variables(text: str) -> frozenset[str]:
    """The variables a (valid) ``when:`` condition reads."""
    try:
        return frozenset(meta.find_undeclared_variables(_ENV.parse("{{ " + _condition_expr(text) + " }}")))
    except TemplateError:
        return frozenset()


def _condition_expr(text: str) -> str:
    m = _WHOLE_EXPR.match(text)
    if m and "}}" not in m.group("expr") and "{{" not in m.group("expr"):
        return m.group("expr").strip()
    return text.strip()


@lru_cache(maxsize=512)
def _compiled(text: str) -> Any:
    return _ENV.from_string(text)


@lru_cache(maxsize=256)
def _compiled_expr(expr: str) -> Any:
    return _ENV.compile_expression(expr, undefined_to_none=False)


_ONE_LABEL = re.compile(r"^\{\{\s*labels\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*\}\}$")


@lru_cache(maxsize=256)
def _one_label(text: str) -> str | None:
    """The label name when ``text`` is exactly ``{{ labels.NAME }}`` (the usual target), else ``None``."""
    m = _ONE_LABEL.match(text)
    return m.group("name") if m else None


def render(text: str, variables: Mapping[str, Any]) -> str:
    """Render ``text``; literals are returned unchanged. Raises :class:`TemplateProblem` on any error."""
    if not is_template(text):
        return text
    name = _one_label(text)
    if name is not None:  # a storm renders this per alert: skip Jinja when the label is there
        labels = variables.get("labels")
        if isinstance(labels, Mapping) and isinstance(labels.get(name), str):
            return str(labels[name])
    try:
        return str(_compiled(text).render(**variables))
    except TemplateError as exc:
        raise TemplateProblem(f"cannot render {text!r}: {exc}") from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise TemplateProblem(f"cannot render {text!r}: {exc}") from None


def render_value(value: Any, variables: Mapping[str, Any]) -> Any:
    """Render every string inside ``value`` (dicts and lists are walked)."""
    if isinstance(value, str):
        return render(value, variables)
    if isinstance(value, dict):
        return {k: render_value(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, variables) for v in value]
    return value


def check_value(value: Any, allowed: frozenset[str] = STEP_VARS) -> None:
    """Check every string inside ``value`` with :func:`check_template`."""
    if isinstance(value, str):
        check_template(value, allowed)
    elif isinstance(value, dict):
        for v in value.values():
            check_value(v, allowed)
    elif isinstance(value, list):
        for v in value:
            check_value(v, allowed)


def evaluate(condition: str, variables: Mapping[str, Any]) -> bool:
    """Evaluate a ``when:`` condition (``"{{ expr }}"`` or a bare ``expr``) to a boolean."""
    try:
        result = _compiled_expr(_condition_expr(condition))(**variables)
    except TemplateError as exc:
        raise TemplateProblem(f"cannot evaluate {condition!r}: {exc}") from None
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise TemplateProblem(f"cannot evaluate {condition!r}: {exc}") from None
    if isinstance(result, StrictUndefined):  # pragma: no cover - StrictUndefined raises before this
        raise TemplateProblem(f"condition {condition!r} is undefined")
    if isinstance(result, str):
        return result.strip().lower() in ("true", "yes", "1")
    return bool(result)


_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def namespace_problem(value: str) -> str | None:
    """Why ``value`` is not a valid namespace (a DNS-1123 label of at most 63 characters), or None."""
    if not value:
        return "a namespace cannot be empty"
    if len(value) > 63:
        return f"namespace {value!r} is longer than 63 characters"
    if not _DNS1123_LABEL.fullmatch(value):
        return (
            f"namespace {value!r} is not a DNS-1123 label "
            "(lower-case letters, digits and '-', starting and ending with a letter or digit)"
        )
    return None


def name_problem(value: str, max_length: int = 253) -> str | None:
    """Why ``value`` is not a valid object name (a DNS-1123 subdomain), or None."""
    if not value:
        return "a name cannot be empty"
    if len(value) > max_length:
        return f"name {value!r} is longer than {max_length} characters"
    if not _DNS1123_SUBDOMAIN.fullmatch(value):
        return (
            f"name {value!r} is not a DNS-1123 subdomain "
            "(lower-case letters, digits, '-' and '.', starting and ending with a letter or digit)"
        )
    return None
