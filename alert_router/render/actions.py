"""The buttons on alert messages and how they are encoded; the chat-commands stage decodes them.

One encoding serves Slack (``action_id`` + ``value``) and Telegram (``callback_data``, at most 64
bytes)::

    ar1:<action>:<alert>:<group>

``action`` is ``ack``, ``sil1h`` / ``sil4h`` / ``sil24h`` (silence for 1, 4 or 24 hours) or ``rb``;
``alert`` is the first 8 characters of the alert's
fingerprint, or ``*`` for every firing alert of the group; ``group`` is :func:`~alert_router.render.context.group_id`
of the Alertmanager group key (8 hex digits). Example: ``ar1:ack:2bb1035c:5f1e0a9d`` (25 bytes).
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

PREFIX = "ar1"
SLACK_ACTION_PREFIX = "alert_router."
_VALUE = re.compile(r"^ar1:(ack|sil1h|sil4h|sil24h|rb):([0-9a-zA-Z]{1,16}|\*):([0-9a-f]{8})$")


class Action(enum.StrEnum):
    """What a button asks for."""

    ACK = "ack"
    SILENCE_1H = "sil1h"
    SILENCE_4H = "sil4h"
    SILENCE_24H = "sil24h"
    RUNBOOK = "rb"

    @property
    def label(self) -> str:
        """The button's text."""
        return {"ack": "Ack", "sil1h": "Silence 1h", "sil4h": "Silence 4h", "sil24h": "Silence 24h",
                "rb": "Run runbook"}[self.value]

    @property
    def short_label(self) -> str:
        """The text in a row of silence choices (``1h``) or the plain label."""
        return self.label.removeprefix("Silence ") if self in SILENCES else self.label

    @property
    def silence_for(self) -> float | None:
        """How long a silence button silences, in seconds; ``None`` for the others."""
        return {"sil1h": 3600.0, "sil4h": 4 * 3600.0, "sil24h": 24 * 3600.0}.get(self.value)

    @property
    def slack_action_id(self) -> str:
        """The Slack ``action_id`` of this button (``alert_router.ack`` ...)."""
        return SLACK_ACTION_PREFIX + self.value


@dataclass(frozen=True)
class ActionRef:
    """A decoded button press: the action, the alert (short id or ``*``) and the group id."""

    action: Action
    alert: str
    group: str

    def encode(self) -> str:
        """The wire form, at most 64 bytes."""
        return f"{PREFIX}:{self.action.value}:{self.alert}:{self.group}"

    @property
    def whole_group(self) -> bool:
        """Whether the button means every firing alert of the group."""
        return self.alert == "*"


def encode_action(action: Action, alert_short_id: str | None, group: str) -> str:
    """Encode a button; ``alert_short_id`` ``None`` means the whole group."""
    return ActionRef(action, alert_short_id or "*", group).encode()


def decode_action(value: str) -> ActionRef | None:
    """Decode a Slack ``value`` or Telegram ``callback_data``; ``None`` if it is not ours or malformed."""
    m = _VALUE.match(value.strip())
    if m is None:
        return None
    return ActionRef(Action(m.group(1)), m.group(2), m.group(3))


SILENCES = (Action.SILENCE_1H, Action.SILENCE_4H, Action.SILENCE_24H)
"""The silence durations offered on a message (Slack: one menu; Telegram: one row of buttons)."""


def message_actions(
    firing: bool, alert_short_ids: list[str], group: str, *, runbook: bool = False
) -> list[tuple[Action, str]]:
    """The buttons for a message: none once resolved; aimed at the one firing alert, or the whole group.

    Ack, the silence choices and, only when a runbook applies to a firing alert (``runbook``), Run runbook.
    """
    if not firing:
        return []
    target = alert_short_ids[0] if len(alert_short_ids) == 1 else None
    actions = [Action.ACK, *SILENCES] + ([Action.RUNBOOK] if runbook else [])
    return [(a, encode_action(a, target, group)) for a in actions]


def approval_actions(run_id: int | str) -> list[tuple[str, str, str]]:
    """The Approve / Deny buttons of a run waiting for approval: ``(label, value, slack action_id)`` each.

    Values are ``ar1:apr:<run id>`` / ``ar1:dny:<run id>``, decoded by :mod:`alert_router.chat.buttons`.
    """
    return [
        ("Approve", f"ar1:apr:{run_id}", f"{SLACK_ACTION_PREFIX}approve"),
        ("Deny", f"ar1:dny:{run_id}", f"{SLACK_ACTION_PREFIX}deny"),
    ]


def pending_approvals(runs: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Approval buttons for every run in ``runs`` (the render context's ``runbook_runs``) awaiting a decision."""
    out: list[tuple[str, str, str]] = []
    for run in runs:
        if run.get("status") == "pending_approval" and str(run.get("run_id", "")).isdigit():
            rid = str(run["run_id"])
            out.extend((f"{label} run {rid}", value, f"{action_id}_{rid}")
                       for label, value, action_id in approval_actions(rid))
    return out
