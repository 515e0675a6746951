"""The YAML examples in README.md, docs/*.md and deploy/README.md are what the code accepts.

Every ```yaml block is read and sorted by its shape:

- an alert-router configuration (a mapping of top-level keys of ``alert-router.yaml``), a list of receivers, a
  rules file (``rules:`` holding rules, perhaps ``default:``) or a runbook (``name`` and ``steps``) goes through
  :func:`alert_router.config.load`, the loader ``alert-router check`` uses, and must load without a problem;
- Helm values (top-level keys of the chart's values) must pass the chart's ``values.schema.json``;
- Alertmanager's own configuration (``route``, ``receivers`` with ``webhook_configs``, ``webhook_configs``) and
  kube-prometheus-stack values (``alertmanager:``) are other programs' input and are only parsed;
- a block whose first line is indented is a fragment of a larger one (the reader sees it nested) and is only parsed.

Anything else fails the test, so a new example is either checked or visibly a fragment. The files an example names
(``token_file: /run/secrets/...``, TLS certificates) are swapped for files made in the test; the names of receivers
and runbooks a rule or runbook refers to get stand-ins (a ``console`` receiver, a one-step runbook).
"""

from __future__ import annotations

import argparse
import json
import re
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import trustme
import yaml
from pydantic import BaseModel

from alert_router.config import Settings, load
from alert_router.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted([REPO / "README.md", REPO / "deploy" / "README.md", *(REPO / "docs").glob("*.md")])
HELM_SCHEMA = REPO / "helm" / "alert-router" / "values.schema.json"
FENCE = re.compile(r"^```ya?ml[^\n]*\n(.*?)^```", re.S | re.M)

SECRETS = {  # plausible content for a secret named by an example's `<key>_file`
    "routing_key_file": "0123456789abcdef0123456789abcdef",
    "url_file": "https://hooks.example.com/alerts",
    "webhook_url_file": "https://discord.com/api/webhooks/1234567890/example-token",
}
PEM_KEYS = {"cert_file", "key_file", "ca_file", "client_ca_file"}
ALERTMANAGER_KEYS = {"route", "receivers", "inhibit_rules", "global", "templates", "webhook_configs"}


@dataclass(frozen=True)
class Block:
    """One fenced YAML example."""

    file: Path
    line: int
    text: str

    @property
    def where(self) -> str:
        """``docs/x.md:LINE``, for test ids and messages."""
        return f"{self.file.relative_to(REPO)}:{self.line}"


def yaml_blocks() -> Iterator[Block]:
    """Every fenced ```yaml block of the documentation."""
    for file in DOCS:
        text = file.read_text(encoding="utf-8")
        for m in FENCE.finditer(text):
            yield Block(file, text.count("\n", 0, m.start()) + 2, m.group(1))


BLOCKS = list(yaml_blocks())


def _helm_keys() -> set[str]:
    return set(json.loads(HELM_SCHEMA.read_text())["properties"])


def kind_of(block: Block, data: Any) -> str:
    """What the example is: config, receivers, rules, runbook, helm, other-program or fragment; '' if unknown."""
    if block.text[:1].isspace():
        return "fragment"
    if isinstance(data, list) and data and all(isinstance(r, dict) and "name" in r for r in data):
        return "receivers"
    if not isinstance(data, dict) or not data:
        return ""
    keys = set(data)
    if "name" in keys and "steps" in keys:
        return "runbook"
    rules = data.get("rules")
    if isinstance(rules, list) and rules and all(isinstance(r, dict) for r in rules) and keys <= {"rules", "default"}:
        return "rules"
    if keys <= set(Settings.model_fields):
        return "config"
    if keys <= ALERTMANAGER_KEYS or keys == {"alertmanager"}:
        return "other-program"
    if keys <= _helm_keys():
        return "helm"
    return ""


class Files:
    """Stand-ins for the files an example names, made once per test."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ca = trustme.CA()
        self.cert = self.ca.issue_cert("alert-router.example")
        self.count = 0

    def _write(self, name: str, content: bytes) -> str:
        self.count += 1
        path = self.tmp / f"file-{self.count}-{name}"
        path.write_bytes(content)
        return str(path)

    def replace(self, key: str, value: str) -> str:
        """A file standing in for ``value``, the path an example gives to ``key``."""
        if key == "cert_file":
            return self._write("tls.crt", b"".join(blob.bytes() for blob in self.cert.cert_chain_pems))
        if key == "key_file":
            return self._write("tls.key", self.cert.private_key_pem.bytes())
        if key in PEM_KEYS:
            return self._write("ca.crt", self.ca.cert_pem.bytes())
        return self._write(Path(value).name, SECRETS.get(key, "s3cret-example-value").encode())

    def swap(self, data: Any) -> Any:
        """``data`` with every ``*_file`` path replaced by a stand-in file."""
        if isinstance(data, dict):
            return {
                k: self.replace(k, v) if k.endswith("_file") and isinstance(v, str) and v else self.swap(v)
                for k, v in data.items()
            }
        if isinstance(data, list):
            return [self.swap(v) for v in data]
        return data


def _names(rules: list[Any], default: Any) -> tuple[set[str], set[str]]:
    """Receivers and runbooks the rules of an example refer to."""
    receivers: set[str] = set()
    runbooks: set[str] = set()
    for rule in [*rules, default or {}]:
        receivers.update(rule.get("receivers", []))
        receivers.update((rule.get("escalate") or {}).get("receivers", []))
        runbooks.update(rule.get("runbooks", []))
    return receivers, runbooks


def _stub_receivers(names: set[str], have: list[dict[str, Any]]) -> list[dict[str, Any]]:
    known = {r.get("name") for r in have}
    return [*have, *({"name": n, "console": {}} for n in sorted(names - known))]


def _runbook_receivers(data: dict[str, Any]) -> set[str]:
    steps = [*data.get("steps", []), *data.get("on_failure", [])]
    return {s["receiver"] for s in steps if isinstance(s, dict) and isinstance(s.get("receiver"), str)}


def load_example(kind: str, data: Any, tmp: Path) -> None:
    """Write the example (with stand-ins for what it refers to) as a configuration and load it."""
    files = Files(tmp)
    data = files.swap(data)
    config: dict[str, Any] = {"rules": [], "runbooks": []}
    if kind == "config":
        config.update(data)
        fallbacks = {r["fallback"] for r in config.get("receivers", []) if isinstance(r, dict) and "fallback" in r}
        deadman = set((config.get("deadman") or {}).get("receivers", []))
        config["receivers"] = _stub_receivers(fallbacks | deadman, config.get("receivers", []))
    elif kind == "receivers":
        fallbacks = {r["fallback"] for r in data if "fallback" in r}
        config["receivers"] = _stub_receivers(fallbacks, data)
    elif kind == "rules":
        receivers, runbooks = _names(data["rules"], data.get("default"))
        config["receivers"] = _stub_receivers(receivers, [])
        (tmp / "rules.yaml").write_text(yaml.safe_dump(data))
        config["rules"] = "rules.yaml"
        (tmp / "runbooks").mkdir()
        for name in sorted(runbooks):
            stub = {"name": name, "match": [], "steps": [{"action": "wait_resolved", "timeout": "1m"}]}
            (tmp / "runbooks" / f"{name}.yaml").write_text(yaml.safe_dump(stub))
        config["runbooks"] = "runbooks"
    elif kind == "runbook":
        config["receivers"] = _stub_receivers(_runbook_receivers(data), [])
        (tmp / "runbooks").mkdir()
        (tmp / "runbooks" / "example.yaml").write_text(yaml.safe_dump(data))
        config["runbooks"] = "runbooks"
    path = tmp / "alert-router.yaml"
    path.write_text(yaml.safe_dump(config))
    load(path, env={})


@pytest.mark.parametrize("block", BLOCKS, ids=[b.where for b in BLOCKS])
def test_documented_yaml_is_accepted(block: Block, tmp_path: Path) -> None:
    """Each example parses, and each complete one loads through the config loader (or the chart's schema)."""
    try:
        data = yaml.safe_load(block.text)
    except yaml.YAMLError as exc:
        pytest.fail(f"{block.where}: not YAML (a reader copying it gets this error): {exc}")
    kind = kind_of(block, data)
    assert kind, f"{block.where}: neither a checked example nor visibly a fragment (indent it, or teach this test)"
    if kind == "helm":
        jsonschema.validate(data, json.loads(HELM_SCHEMA.read_text()))
    elif kind in ("config", "receivers", "rules", "runbook"):
        try:
            load_example(kind, data, tmp_path)
        except ConfigError as exc:
            pytest.fail(f"{block.where}: the loader refuses this {kind} example:\n{exc}")


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """A misspelt key in a config example, an unknown key in a receiver and invalid YAML are each caught."""
    (tmp_path / "a").mkdir()
    with pytest.raises(ConfigError, match="unknown key"):
        load_example("config", {"dedup": {"tll": "7d"}}, tmp_path / "a")
    (tmp_path / "b").mkdir()
    with pytest.raises(ConfigError, match="unknown key"):
        load_example("receivers", [{"name": "c", "console": {"annotation": True}}], tmp_path / "b")
    with pytest.raises(yaml.YAMLError):
        yaml.safe_load("pagerduty: {routing_key: ${PAGERDUTY_ROUTING_KEY:-}}")
    block = Block(REPO / "README.md", 1, "foo: 1\n")
    assert kind_of(block, {"foo": 1}) == ""


# ---- docs/configuration.md names every key of the configuration models, and only those --------------------------

CONFIGURATION_MD = REPO / "docs" / "configuration.md"
KEY_CELL = re.compile(r"^\|\s*([^|]*`[^|]*)\|", re.M)
TOKEN = re.compile(r"`(\.?[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)`")
IN_PROSE = {  # keys the page describes in a sentence instead of a table row or an example (kept short on purpose)
    "graph.prometheus.tenant", "graph.prometheus.bearer_token", "graph.prometheus.basic_auth",
    "graph.prometheus.tls", "graph.prometheus.timeout",  # "graph.prometheus takes the keys every data source takes"
    "metrics.auth.basic",  # "same shape as `auth`"
    "remediation.api_auth.bearer_token", "remediation.api_auth.basic",  # "{bearer_token, basic: {...}}"
    "enrich.kubernetes.max_logs", "enrich.kubernetes.max_pods", "enrich.kubernetes.max_events",
    "enrich.kubernetes.max_line_chars", "enrich.kubernetes.max_concurrency",  # the comment under log_lines
    "enrich.loki.basic_auth",  # the comment "or basic_auth: {username, password_file}"
    "chat.alertmanager.basic_auth",  # its keys: like every basic_auth, {username, password}
    "chat.users", "chat.channels",  # their keys in the row: `{name, slack, telegram, role}`, `{slack | telegram, role}`
}


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def model_keys(model: type[BaseModel] = Settings, prefix: str = "") -> dict[str, type[BaseModel] | None]:
    """Every key a user can set, dotted (``delivery.storm.threshold``), with its section's model if it is one."""
    keys: dict[str, type[BaseModel] | None] = {}
    for name, info in model.model_fields.items():
        key = prefix + (info.alias or name)
        sub = _model_of(info.annotation)
        keys[key] = sub
        if sub is not None:
            keys.update(model_keys(sub, key + "."))
    return keys


def documented_keys(text: str) -> set[str]:
    """Dotted keys the page names: in the first cell of a table row, in a YAML example, or anywhere dotted in backticks.

    In a row, ``.initial`` and a bare ``timeout`` after ``chat.telegram.api_url`` are siblings of the key before
    them; under a header like ``| `enrich.loki` key |`` bare keys belong to that section.
    """
    found = {t for t in TOKEN.findall(text) if "." in t and not t.startswith(".")}
    section = ""
    for cell in KEY_CELL.findall(text):
        tokens = TOKEN.findall(cell)
        if cell.strip().endswith(" key"):
            section = tokens[0] + "." if tokens else ""
            continue
        parent = section
        for token in tokens:
            if token.startswith("."):
                found.add(parent + token[1:])
            elif "." in token:
                found.add(token)
                parent = token.rsplit(".", 1)[0] + "."
            else:
                found.add(parent + token)
    for m in FENCE.finditer(text):
        found |= _yaml_paths(yaml.safe_load(m.group(1)), "")
    return found


def _yaml_paths(data: Any, prefix: str) -> set[str]:
    if isinstance(data, list):
        return set().union(*(_yaml_paths(item, prefix) for item in data))
    if not isinstance(data, dict):
        return set()
    out: set[str] = set()
    for key, value in data.items():
        name = str(key)
        out |= {prefix + name, prefix + name.removesuffix("_file"), *_yaml_paths(value, f"{prefix}{name}.")}
    return out  # `token_file: ...` documents `token`


def test_configuration_md_documents_every_key() -> None:
    """A key the models accept but docs/configuration.md never names is a setting nobody can find."""
    documented = documented_keys(CONFIGURATION_MD.read_text(encoding="utf-8")) | IN_PROSE
    missing = [
        key for key, sub in model_keys().items()
        if key not in documented
        and not any(key.startswith(d + ".") for d in IN_PROSE)
        and not (sub is not None and any(d.startswith(key + ".") for d in documented))  # a section: its keys count
    ]
    assert not missing, f"keys of the configuration models missing from docs/configuration.md: {missing}"


def test_configuration_md_names_no_unknown_key() -> None:
    """Every dotted key the page names under a top-level section exists in the models (no stale or misspelt key)."""
    keys = model_keys()
    top = {k for k in keys if "." not in k}
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    named = {t for t in TOKEN.findall(text) if "." in t and t.split(".")[0] in top}
    assert named, "the page names dotted keys (the extraction works)"
    unknown = sorted(named - set(keys))
    assert not unknown, f"docs/configuration.md names keys the models do not have: {unknown}"


def test_key_extraction_reads_rows_and_sections() -> None:
    """The extraction the two tests above rely on: siblings in a row, section headers, examples."""
    text = (
        "| key | default |\n|---|---|\n| `remediation.retry.attempts`, `.initial` | 4 |\n"
        "| `chat.telegram.api_url`, `timeout` | x |\n| `enrich.loki` key | default |\n| `max_queries` | 5 |\n"
        "```yaml\nauth:\n  bearer_token_file: /x\n```\n"
    )
    assert documented_keys(text) >= {
        "remediation.retry.attempts", "remediation.retry.initial", "chat.telegram.api_url", "chat.telegram.timeout",
        "enrich.loki.max_queries", "auth.bearer_token",
    }
    assert "delivery.workers" not in documented_keys(text)


# ---- README's command table and `alert-router --help` -----------------------------------------------------------


def cli_commands() -> dict[str, list[str]]:
    """Every command of ``alert-router`` (``audit list``, ``telegram set-webhook`` ...) with its long options."""
    from alert_router.cli import build_parser

    out: dict[str, list[str]] = {}

    def walk(parser: argparse.ArgumentParser, path: str) -> None:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            out[path] = [o for a in parser._actions for o in a.option_strings if o.startswith("--") and o != "--help"]
        for action in subs:
            for name, sub in action.choices.items():
                walk(sub, f"{path} {name}".strip())

    walk(build_parser(), "")
    return out


def readme_commands() -> str:
    """The text of README's "Commands" section."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    return text.split("\n## Commands\n", 1)[1].split("\n## ", 1)[0]


def test_readme_lists_every_command_and_option() -> None:
    """README's command table names each command and each of its options (`--help` shows the same ones)."""
    section = readme_commands()
    missing = []
    for command, options in cli_commands().items():
        first, _, rest = command.partition(" ")
        rows = "\n".join(line for line in section.splitlines() if f"`alert-router {first}" in line)
        if f"`alert-router {command}" not in rows and not (rest and f"`{rest}`" in rows):
            missing.append(command)
        missing += [f"{command} {o}" for o in options if o != "--config" and o not in rows]
    assert not missing, f"README.md's Commands section does not mention: {missing}"


def test_cli_walk_finds_nested_commands() -> None:
    """The walk above reaches sub-subcommands and their options (so the README check covers them)."""
    commands = cli_commands()
    assert {"serve", "check", "audit list", "audit verify", "telegram set-webhook"} <= set(commands)
    assert "--drop-pending-updates" in commands["telegram set-webhook"]


def receiver_keys_documented(text: str) -> dict[str, set[str]]:
    """Per receiver type, the keys docs/configuration.md names: its receivers table and its receiver examples."""
    from alert_router.channels import REGISTRY

    found: dict[str, set[str]] = {t: set() for t in REGISTRY}
    current = ""
    for row in re.findall(r"^\|([^\n]*)\|$", text, re.M):
        cells = [c.strip() for c in row.split("|")]
        if len(cells) < 4:
            continue
        kind = TOKEN.findall(cells[0])
        if kind and kind[0] in REGISTRY:
            current = kind[0]
        elif cells[0]:
            current = ""
        if current:
            found[current].update(TOKEN.findall(cells[1]))
    for m in FENCE.finditer(text):
        data = yaml.safe_load(m.group(1))
        for receiver in data if isinstance(data, list) else []:
            for kind, cfg in receiver.items():
                if kind in REGISTRY and isinstance(cfg, dict):
                    found[kind].update(str(k).removesuffix("_file") for k in cfg)
    return found


def test_configuration_md_documents_every_receiver_key() -> None:
    """Each receiver type's keys are in docs/configuration.md, and the page names none the type lacks."""
    from alert_router.channels import REGISTRY

    documented = receiver_keys_documented(CONFIGURATION_MD.read_text(encoding="utf-8"))
    missing, unknown = [], []
    for kind, channel in sorted(REGISTRY.items()):
        keys = {info.alias or name for name, info in channel.config.model_fields.items()}
        missing += [f"{kind}.{k}" for k in sorted(keys - documented[kind])]
        unknown += [f"{kind}.{k}" for k in sorted(documented[kind] - keys)]
    assert not missing, f"receiver keys missing from docs/configuration.md: {missing}"
    assert not unknown, f"docs/configuration.md names receiver keys the code does not have: {unknown}"
