"""The `chat:` block and a rule's `escalate:` are validated with FILE:LINE like everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_router.config import load
from alert_router.errors import ConfigError
from tests.chat.support import chat_config

REPO = Path(__file__).resolve().parents[2]


def test_shipped_config_runs_without_chat_secrets() -> None:
    config = load(REPO / "alert-router.yaml", {})
    chat = config.settings.chat
    assert not chat.slack.enabled and not chat.telegram.enabled and chat.users == []


def test_shipped_config_keeps_commands_off_when_only_the_receivers_bot_token_is_set() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:abc", "TELEGRAM_ENABLED": "true", "TELEGRAM_CHAT_ID": "5"}
    assert not load(REPO / "alert-router.yaml", env).settings.chat.telegram.enabled


def test_shipped_config_turns_commands_on_with_their_variables() -> None:
    env = {"TELEGRAM_BOT_TOKEN": "1:abc", "TELEGRAM_COMMANDS_ENABLED": "true", "TELEGRAM_COMMANDS_MODE": "polling",
           "SLACK_COMMANDS_ENABLED": "true", "SLACK_SIGNING_SECRET": "s3cret"}
    chat = load(REPO / "alert-router.yaml", env).settings.chat
    assert chat.telegram.enabled and chat.telegram.mode == "polling" and chat.slack.enabled


def test_escalate_to_an_unknown_receiver_is_reported_with_its_line(tmp_path: Path) -> None:
    rules = "rules:\n  - name: r\n    receivers: [file]\n    escalate: {after: 5m, receivers: [nobody]}\n"
    with pytest.raises(ConfigError) as err:
        load(chat_config(tmp_path, rules=rules), {})
    (problem,) = err.value.problems
    assert problem.file.endswith("rules.yaml") and problem.line == 4
    assert "escalate: unknown receiver 'nobody'" in problem.message


@pytest.mark.parametrize(("escalate", "message"), [
    ("{after: 0s, receivers: [lead]}", "greater than 0"),
    ("{after: 5m, receivers: []}", "at least 1 item"),
    ("{after: 5m, receivers: [lead], repeat: 0}", "greater than or equal to 1"),
    ("{after: soon, receivers: [lead]}", "invalid duration"),
    ("{after: 5m, receivers: [lead], every: 1m}", "unknown key"),
])
def test_bad_escalation_policies(tmp_path: Path, escalate: str, message: str) -> None:
    rules = f"rules:\n  - name: r\n    receivers: [file]\n    escalate: {escalate}\n"
    with pytest.raises(ConfigError, match=message):
        load(chat_config(tmp_path, rules=rules), {})


def test_signing_secret_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "signing").write_text("from-a-file\n")
    config = load(chat_config(tmp_path, f"  slack: {{signing_secret_file: {tmp_path / 'signing'}}}\n"), {})
    assert config.settings.chat.slack.signing_secret is not None
    assert config.settings.chat.slack.signing_secret.get_secret_value() == "from-a-file"


def test_chat_mistakes_name_their_line(tmp_path: Path) -> None:
    path = chat_config(tmp_path, "  commands: {silence: boss}\n")
    line = path.read_text().splitlines().index("  commands: {silence: boss}") + 1
    with pytest.raises(ConfigError) as err:
        load(path, {})
    (problem,) = err.value.problems
    assert problem.line == line and "chat.commands.silence" in problem.message
