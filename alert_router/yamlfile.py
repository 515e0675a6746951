"""YAML loading that remembers where each value came from, and expands ``${VAR}`` from the environment.

Every loaded document comes with a :class:`LineMap` from a value's path (``("receivers", 2, "slack",
"token")``) to its line, so validation errors can be reported as ``FILE:LINE: message``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from alert_router.errors import Problem

Path_ = tuple[str | int, ...]
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass
class LineMap:
    """Maps value paths to 1-based line numbers in one file."""

    file: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, path: Sequence[str | int]) -> int:
        """Return the line of the deepest known prefix of ``path`` (1 when nothing is known)."""
        key = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), 1)

    def problem(self, path: Sequence[str | int], message: str) -> Problem:
        """Build a problem located at ``path``."""
        return Problem(self.file, self.line_of(path), message)

    def sub(self, prefix: Sequence[str | int]) -> LineMap:
        """Return a view whose paths are relative to ``prefix``."""
        n = len(prefix)
        pre = tuple(prefix)
        out = LineMap(self.file)
        for key, line in self.lines.items():
            if key[:n] == pre:
                out.lines[key[n:]] = line
        return out


class _Loader(yaml.SafeLoader):
    pass


def _record(node: yaml.Node, path: Path_, lines: dict[Path_, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _record(value_node, (*path, key), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _record(item, (*path, i), lines)


class MissingEnv(Exception):
    """Raised when ``${VAR}`` names an unset variable with no ``:-default``."""


def expand_env(
    value: Any, env: Mapping[str, str], path: Path_ = (), missing: list[tuple[Path_, str]] | None = None
) -> Any:
    """Expand ``${VAR}`` and ``${VAR:-default}`` in every string of ``value``.

    Unset variables without a default are appended to ``missing`` (and expand to the empty string).
    """
    if isinstance(value, str):

        def repl(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            if missing is not None:
                missing.append((path, name))
            return ""

        return _ENV.sub(repl, value)
    if isinstance(value, dict):
        return {k: expand_env(v, env, (*path, k), missing) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, env, (*path, i), missing) for i, v in enumerate(value)]
    return value


@dataclass
class YamlDocument:
    """A parsed YAML file: its data (environment expanded) and where each value sits."""

    path: Path
    data: Any
    lines: LineMap


def load_yaml(path: Path, env: Mapping[str, str] | None = None) -> tuple[YamlDocument | None, list[Problem]]:
    """Load one YAML file; return the document or the problems that stopped it from loading."""
    env = os.environ if env is None else env
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(name, 1, f"cannot read file: {exc.strerror or exc}")]
    except UnicodeDecodeError:
        return None, [Problem(name, 1, "file is not valid UTF-8")]
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        message = f"invalid YAML: {exc.problem or exc}"
        if exc.context and exc.context_mark is not None and exc.context_mark.line + 1 != line:
            message += f" ({exc.context} started at line {exc.context_mark.line + 1})"  # the [ or { left open
        if "'\\t'" in message:
            message += " (YAML indents with spaces, never tabs)"
        return None, [Problem(name, line, message)]
    except yaml.YAMLError as exc:
        return None, [Problem(name, 1, f"invalid YAML: {exc}")]
    lines = LineMap(name)
    if node is not None:
        _record(node, (), lines.lines)
    missing: list[tuple[Path_, str]] = []
    data = expand_env(data, env, (), missing)
    problems = [
        lines.problem(p, f"environment variable {var} is not set (use ${{{var}:-default}} for a default)")
        for p, var in missing
    ]
    return YamlDocument(path, data, lines), problems
