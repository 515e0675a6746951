"""PromQL checks shared by the rule and dashboard tests: parse expressions with promtool, find metric names."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
METRICS_MODULE = REPO / "alert_router" / "metrics.py"

_NAME = re.compile(r"\balert_router_[a-z0-9_]+")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def promtool() -> str:
    """The promtool binary, or fail the test with the way to install it."""
    path = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if path is None:
        pytest.fail("promtool not found: run scripts/install-system-deps.sh (Debian package `prometheus`)")
    return path


def exported_metrics() -> set[str]:
    """Every metric name alert_router/metrics.py declares (the string literals it passes as names)."""
    tree = ast.parse(METRICS_MODULE.read_text())
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _NAME.fullmatch(node.value)
    }


def metric_names(expr: str) -> set[str]:
    """The alert-router metric names an expression reads, as written (``_bucket`` and the like included)."""
    return set(_NAME.findall(expr))


def unknown_metrics(exprs: Iterable[str]) -> set[str]:
    """Names the expressions read that alert_router/metrics.py does not export (a histogram's series count)."""
    exported = exported_metrics()
    return {
        name
        for expr in exprs
        for name in metric_names(expr)
        if name not in exported and not any(name.removesuffix(s) in exported for s in _SUFFIXES if name.endswith(s))
    }


def check_expressions(exprs: Mapping[str, str] | Iterable[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Parse every expression with ``promtool check rules``, each as a recording rule of a temporary file."""
    items = list(exprs.values()) if isinstance(exprs, Mapping) else list(exprs)
    rules = [{"record": f"check:expr_{i}", "expr": e} for i, e in enumerate(items)]
    path = tmp_path / "expressions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "expressions", "rules": rules}]}))
    return subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
