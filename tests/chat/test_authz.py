"""The authorization matrix: every command by every role (and unknown users), on both platforms.

A refused command executes nothing (no ack, no silence, no engine call) and leaves exactly one
``chat_refused`` audit record; an allowed one runs and leaves exactly one ``chat_command`` record.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alert_router.chat.authz import Authorizer, Identity
from alert_router.chat.settings import COMMANDS, ChatSettings, Role
from tests.chat.conftest import ChatEnv
from tests.chat.support import FP, ROLES, SHORT

SAMPLES = {
    "help": "help",
    "status": "status",
    "alerts": "alerts",
    "runbook list": "runbook list",
    "ack": f"ack {SHORT}",
    "unack": f"unack {SHORT}",
    "escalate": f"escalate {SHORT}",
    "silence": f"silence {SHORT} 1h matrix",
    "unsilence": "unsilence sil-99",
    "silences": "silences",
    "runbook run": f"runbook run restart {SHORT}",
    "runbook approve": "runbook approve 5",
    "runbook deny": "runbook deny 5 nope",
}
RANK = {None: 0, "viewer": 1, "responder": 2, "admin": 3}


def test_the_matrix_covers_every_command() -> None:
    assert set(SAMPLES) == set(COMMANDS)


async def side_effects(env: ChatEnv) -> list[object]:
    alert = await env.store.alert(FP)
    assert alert is not None
    return [alert.acked_by, list(env.alertmanager.created), list(env.alertmanager.expired), list(env.engine.calls)]


@pytest.mark.parametrize("platform", ["slack", "telegram"])
@pytest.mark.parametrize("role", [None, "viewer", "responder", "admin"])
@pytest.mark.parametrize("command", list(SAMPLES))
async def test_authorization_matrix(chat_env: ChatEnv, command: str, role: str | None, platform: str) -> None:
    slack_id, telegram_id = ROLES[role]
    user = slack_id if platform == "slack" else str(telegram_id)
    identity = Identity(platform, user, "C0SOMEWHERE" if platform == "slack" else "-1002", "someone")  # type: ignore[arg-type]
    before = await side_effects(chat_env)
    audit_before = len(await chat_env.store.audit_records())

    reply = await chat_env.commands.execute_text(identity, SAMPLES[command])

    allowed = RANK[role] >= COMMANDS[command].rank
    records = (await chat_env.store.audit_records())[audit_before:]
    chat_records = [r for r in records if r.event.startswith("chat_")]
    assert len(chat_records) == 1, records
    (rec,) = chat_records
    assert rec.details["command"] == command
    assert rec.actor == ({"viewer": "vera", "responder": "rita", "admin": "adam"}.get(role or "")
                         or f"{platform}:{user}")
    after = await side_effects(chat_env)
    if not allowed:
        assert rec.event == "chat_refused" and rec.details["outcome"] == "refused"
        assert reply.ok is False and reply.text.startswith("Sorry")
        assert COMMANDS[command].value in reply.text  # says which role it needs
        assert after == before, "a refused command must not execute"
        return
    assert rec.event == "chat_command" and rec.details["outcome"] != "refused"
    assert not reply.text.startswith("Sorry")
    changed = {
        "ack": after[0] == ROLES_NAME[role],
        "silence": len(after[1]) == 1 and after[1][0]["created_by"] == ROLES_NAME[role],
        "unsilence": after[2] == ["sil-99"],
        "runbook run": after[3] == [("start", "restart", (await chat_env.store.alert(FP)).labels, ROLES_NAME[role])],  # type: ignore[union-attr]
        "runbook approve": after[3] == [("approve", 5, ROLES_NAME[role])],
        "runbook deny": after[3] == [("deny", 5, ROLES_NAME[role], "nope")],
    }.get(command, after == before)
    assert changed, (command, before, after)


ROLES_NAME = {"viewer": "vera", "responder": "rita", "admin": "adam"}


def test_channel_roles_and_default_role_raise_but_never_lower(tmp_path: Path) -> None:
    settings = ChatSettings.model_validate({
        "users": [{"slack": "UADMIN", "role": "admin"}, {"telegram": 5, "name": "tina", "role": "viewer"}],
        "channels": [{"slack": "C0OPS", "role": "responder"}, {"telegram": -100, "role": "admin"}],
        "default_role": "viewer",
        "commands": {"silence": "admin", "runbook   run": "admin"},
    })
    authz = Authorizer(settings)
    admin_anywhere = authz.principal(Identity("slack", "UADMIN", "C0RANDOM"))
    assert admin_anywhere.role is Role.ADMIN and admin_anywhere.name == "slack:UADMIN"
    stranger_in_ops = authz.principal(Identity("slack", "UNOBODY", "C0OPS"))
    assert stranger_in_ops.role is Role.RESPONDER
    assert authz.decide(stranger_in_ops, "ack").allowed
    assert not authz.decide(stranger_in_ops, "silence").allowed  # raised to admin by chat.commands
    assert not authz.decide(stranger_in_ops, "runbook run").allowed
    stranger = authz.principal(Identity("slack", "UNOBODY", "C0RANDOM"))
    assert stranger.role is Role.VIEWER  # default_role
    tina_in_admin_chat = authz.principal(Identity("telegram", "5", "-100"))
    assert tina_in_admin_chat.role is Role.ADMIN and tina_in_admin_chat.name == "tina"


def test_unknown_user_refusal_is_polite_and_actionable() -> None:
    authz = Authorizer(ChatSettings())
    who = authz.principal(Identity("telegram", "4242", "1001"))
    decision = authz.decide(who, "help")
    assert not decision.allowed
    assert "4242" in decision.message and "chat.users" in decision.message and "Sorry" in decision.message


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"commands": {"frobnicate": "admin"}}, "unknown command"),
        ({"users": [{"role": "admin"}]}, "needs a slack user id"),
        ({"users": [{"slack": "U1", "role": "boss"}]}, "Input should be"),
        ({"users": [{"slack": "U1", "role": "admin"}, {"slack": "U1", "role": "viewer"}]}, "listed twice"),
        ({"telegram": {"token": "1:x"}}, "webhook mode needs webhook_secret"),
        ({"telegram": {"token": "1:x", "webhook_secret": "has spaces"}}, "webhook_secret"),
        ({"slack": {"command": "alert-router"}}, "slash command"),
    ],
)
def test_bad_chat_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ChatSettings.model_validate(settings)
