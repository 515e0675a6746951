"""Configuration loading: every problem reported as FILE:LINE, env expansion, secrets from files."""

from pathlib import Path

import pytest

from alert_router.config import config_path, load
from alert_router.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        p = tmp / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return tmp / "alert-router.yaml"


BASE = """\
receivers:
  - name: file
    file: {path: out.jsonl}
rules: rules/
runbooks: runbooks/
"""
RULES = """\
rules:
  - name: all
    match: ['severity=~".+"']
    receivers: [file]
default:
  receivers: [file]
"""


def problems(path: Path, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(path, env or {})
    return [str(p) for p in info.value.problems]


def test_shipped_config_is_valid() -> None:
    cfg = load(ROOT / "alert-router.yaml", {})
    assert cfg.settings.dry_run is True
    assert set(cfg.receivers) >= {"console", "file"}
    assert cfg.default is not None
    assert {"restart-model-api", "scale-up-model-api", "retrain-on-drift"} <= set(cfg.runbooks)


def test_valid_minimal(tmp_path: Path) -> None:
    path = write(tmp_path, {"alert-router.yaml": BASE, "rules/r.yaml": RULES, "runbooks/.keep": ""})
    cfg = load(path, {})
    assert [r.name for r in cfg.rules] == ["all"]
    assert cfg.store_url == f"sqlite:///{tmp_path / 'data' / 'alert-router.db'}"


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = write(tmp_path, {"alert-router.yaml": "listen: 1\nreceivers: [\n  - a\n", "rules/r.yaml": RULES})
    (msg,) = problems(path)
    assert msg.startswith(f"{path}:") and "invalid YAML" in msg


def test_yaml_error_names_the_bracket_left_open_and_tabs(tmp_path: Path) -> None:
    """An unclosed `[` is reported where PyYAML noticed it, with the line that opened it; a tab says why."""
    rules = "rules:\n  - name: c\n    receivers: [console\n  - name: d\n"
    path = write(tmp_path, {"alert-router.yaml": BASE, "rules/r.yaml": rules, "runbooks/.keep": ""})
    (msg,) = problems(path)
    assert msg.startswith(f"{tmp_path / 'rules' / 'r.yaml'}:4: invalid YAML:"), msg
    assert "started at line 3" in msg
    (tmp_path / "rules" / "r.yaml").write_text("rules:\n\t- name: c\n")
    (msg,) = problems(path)
    assert ":2: invalid YAML:" in msg and "spaces, never tabs" in msg


def test_unknown_key_and_bad_value_have_lines(tmp_path: Path) -> None:
    cfg = BASE + "listn: 0.0.0.0:1\nwebhook:\n  max_body_bytes: lots\n"
    path = write(tmp_path, {"alert-router.yaml": cfg, "rules/r.yaml": RULES, "runbooks/.keep": ""})
    msgs = problems(path)
    assert any(m.startswith(f"{path}:6: listn: unknown key") for m in msgs), msgs
    assert any(m.startswith(f"{path}:8: webhook.max_body_bytes") for m in msgs), msgs


def test_rule_errors_point_at_rule_file(tmp_path: Path) -> None:
    rules = """\
rules:
  - name: ok
    receivers: [file]
  - name: bad-matcher
    match: ['severity=="x']
    receivers: [file]
  - name: unknown-receiver
    receivers: [file, pager]
  - name: unknown-runbook
    receivers: [file]
    runbooks: [nope]
"""
    path = write(tmp_path, {"alert-router.yaml": BASE, "rules/r.yaml": rules, "runbooks/.keep": ""})
    rp = tmp_path / "rules" / "r.yaml"
    msgs = problems(path)
    assert any(m.startswith(f"{rp}:5: rules.1.match:") for m in msgs), msgs
    assert f"{rp}:8: rule 'unknown-receiver': unknown receiver 'pager'" in msgs
    assert f"{rp}:9: rule 'unknown-runbook': unknown runbook 'nope'" in msgs


def test_receiver_type_errors(tmp_path: Path) -> None:
    cfg = """\
receivers:
  - name: a
    pigeon: {}
  - name: b
    file: {}
  - name: c
    file: {path: x}
    fallback: nowhere
rules: rules/
runbooks: runbooks/
"""
    path = write(tmp_path, {"alert-router.yaml": cfg, "rules/r.yaml": "rules: []\n", "runbooks/.keep": ""})
    msgs = problems(path)
    assert any(m.startswith(f"{path}:3:") and "unknown type 'pigeon'" in m for m in msgs), msgs
    assert any(m.startswith(f"{path}:5: receivers.1.file.path") for m in msgs), msgs
    assert any(m.startswith(f"{path}:6:") and "unknown fallback 'nowhere'" in m for m in msgs), msgs


def test_env_expansion_and_missing_variable(tmp_path: Path) -> None:
    cfg = BASE + "listen: ${HOST}:${PORT:-9000}\nauth:\n  bearer_token: ${TOKEN}\n"
    path = write(tmp_path, {"alert-router.yaml": cfg, "rules/r.yaml": RULES, "runbooks/.keep": ""})
    loaded = load(path, {"HOST": "127.0.0.1", "TOKEN": "t0k"})
    assert loaded.settings.listen == "127.0.0.1:9000"
    assert loaded.settings.auth.bearer_token is not None
    assert loaded.settings.auth.bearer_token.get_secret_value() == "t0k"
    msgs = problems(path, {"HOST": "h"})
    assert any(m.startswith(f"{path}:8:") and "TOKEN is not set" in m for m in msgs), msgs


def test_secret_from_file(tmp_path: Path) -> None:
    (tmp_path / "tok").write_text("from-file\n")
    cfg = BASE + f"auth:\n  bearer_token_file: {tmp_path / 'tok'}\n  basic:\n    username: am\n    password: pw\n"
    path = write(tmp_path, {"alert-router.yaml": cfg, "rules/r.yaml": RULES, "runbooks/.keep": ""})
    loaded = load(path, {})
    assert loaded.settings.auth.bearer_token is not None
    assert loaded.settings.auth.bearer_token.get_secret_value() == "from-file"
    assert "from-file" not in repr(loaded.settings)  # secrets never print
    (tmp_path / "tok").unlink()
    # at the `bearer_token_file:` line itself (line 7), not at `auth:`
    assert f"{path}:7: auth.bearer_token_file: cannot read {tmp_path / 'tok'}: No such file or directory" in problems(
        path
    )


def test_missing_rules_dir(tmp_path: Path) -> None:
    path = write(tmp_path, {"alert-router.yaml": BASE})
    msgs = problems(path)
    # at the config's own `rules:` line (4 in BASE), not at line 1 of a file that does not exist
    assert f"{path}:4: rules: no such file or directory: {tmp_path / 'rules'}" in msgs, msgs
    (tmp_path / "alert-router.yaml").write_text("receivers: []\nrunbooks: []\n")
    assert any(m.startswith(f"{path}:1: rules: no such file or directory:") and "(the default;" in m
               for m in problems(path))


def test_config_path_precedence(tmp_path: Path) -> None:
    assert config_path("x.yaml", {"ALERT_ROUTER_CONFIG": "y.yaml"}) == Path("x.yaml")
    assert config_path(None, {"ALERT_ROUTER_CONFIG": "y.yaml"}) == Path("y.yaml")
    assert config_path(None, {}) == Path("alert-router.yaml")


def test_a_duration_from_the_environment_may_be_plain_seconds(tmp_path: Path) -> None:
    """`${VAR:-60}` expands to the string "60": like the number 60 it is seconds (docs: "or a number of seconds")."""
    cfg = BASE + "ingest: {lease: '${INGEST_LEASE:-90}'}\ndedup: {ttl: 3600}\n"
    path = write(tmp_path, {"alert-router.yaml": cfg, "rules/r.yaml": RULES, "runbooks/.keep": ""})
    loaded = load(path, {})
    assert loaded.settings.ingest.lease == 90.0 and loaded.settings.dedup.ttl == 3600.0
    assert load(path, {"INGEST_LEASE": "2.5"}).settings.ingest.lease == 2.5
    assert any("invalid duration '90 minutes'" in m for m in problems(path, {"INGEST_LEASE": "90 minutes"}))
