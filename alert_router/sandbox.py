"""Static checks of Jinja2 templates against the sandbox they will render in.

Receiver templates, runbook values and ``when:`` conditions render in a
:class:`jinja2.sandbox.SandboxedEnvironment`. The sandbox refuses unsafe attribute access only while
rendering: ``{{ alerts.__class__.__mro__ }}`` parses fine, passes a syntax check and fails at 3 a.m. on
the first alert (the receiver then falls back to its default template, a runbook step fails).
:func:`unsafe_accesses` finds such access in the parsed template, asking the same environment's
``is_safe_attribute`` the sandbox asks at render time, so ``alert-router check`` refuses the template
with its line instead:

* ``x.attr`` and ``x|attr("name")`` where the sandbox refuses ``name`` on any object that has it
  (every ``__dunder__``, ``mro`` of a type, a generator's ``gi_frame``, a coroutine's ``cr_code`` ...);
* ``x["__name__"]`` (a subscript falls back to the attribute when there is no such item);
* ``"{0.__class__}".format(x)`` (format fields reaching a dunder);
* ``{% include %}``, ``{% import %}``, ``{% extends %}``: these templates have no loader, so they always fail.

What only the values can decide (``x[name]`` with ``name`` a variable) is still left to the sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
    SandboxedEnvironment,
)

__all__ = ["unsafe_accesses", "unsafe_attribute"]

_FORMAT_FIELD = re.compile(r"\{[^{}]*(?:\.|\[)_")


def _function() -> None:  # pragma: no cover - only its attributes are looked at
    pass


def _generator() -> Iterator[int]:  # pragma: no cover - only its attributes are looked at
    yield 0


def _samples() -> tuple[Any, ...]:
    """Objects of the kinds a template can reach, to ask the sandbox about an attribute name."""
    return ("", 0, 1.0, True, None, [], (), {}, set(), str, _function, "".upper, _generator())


_SAMPLES = _samples()
_ALWAYS_UNSAFE = UNSAFE_GENERATOR_ATTRIBUTES | UNSAFE_COROUTINE_ATTRIBUTES | UNSAFE_ASYNC_GENERATOR_ATTRIBUTES


def unsafe_attribute(env: SandboxedEnvironment, name: str) -> bool:
    """Whether the sandbox of ``env`` refuses attribute ``name`` on some object that has it.

    A name no sample object has (``labels.team``: an item, not an attribute) is left alone, as the sandbox
    leaves it alone at render time.
    """
    if name.startswith("__") or name in _ALWAYS_UNSAFE:
        return True
    for obj in _SAMPLES:
        try:
            value = getattr(obj, name)
        except AttributeError:
            continue
        if not env.is_safe_attribute(obj, name, value):
            return True
    return False


def _describe(node: nodes.Node) -> str:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        return f"{_describe(node.node)}.{node.attr}"
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return f"{_describe(node.node)}[{node.arg.value!r}]"
    if isinstance(node, nodes.Const):
        return repr(node.value)
    return "…"


def unsafe_accesses(env: SandboxedEnvironment, ast: nodes.Template) -> list[tuple[int, str]]:
    """Every access in ``ast`` the sandbox of ``env`` would refuse, as ``(line, what)`` sorted by line."""
    found: list[tuple[int, str]] = []
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Call, nodes.Include,
                              nodes.Import, nodes.FromImport, nodes.Extends)):
        line = node.lineno
        if isinstance(node, nodes.Getattr):
            if unsafe_attribute(env, node.attr):
                found.append((line, f"`{_describe(node)}` reaches {node.attr!r}, which the sandbox refuses"))
        elif isinstance(node, nodes.Getitem):
            arg = node.arg
            if isinstance(arg, nodes.Const) and isinstance(arg.value, str) and arg.value.startswith("__"):
                found.append((line, f"`{_describe(node)}` reaches {arg.value!r}, which the sandbox refuses"))
        elif isinstance(node, nodes.Filter):
            if node.name == "attr" and node.args and isinstance(node.args[0], nodes.Const):
                name = node.args[0].value
                if isinstance(name, str) and unsafe_attribute(env, name):
                    found.append((line, f"`|attr({name!r})` reaches {name!r}, which the sandbox refuses"))
        elif isinstance(node, nodes.Call):
            callee = node.node
            if (
                isinstance(callee, nodes.Getattr)
                and callee.attr in ("format", "format_map")
                and isinstance(callee.node, nodes.Const)
                and isinstance(callee.node.value, str)
                and _FORMAT_FIELD.search(callee.node.value)
            ):
                found.append((line, f"the format string {callee.node.value!r} reaches a private attribute"))
        else:
            found.append((line, "templates cannot include, import or extend other templates (there is no loader)"))
    found.reverse()  # find_all walks outside in; the innermost access is the one to name first
    found.sort(key=lambda item: item[0])
    return found
