"""Button values the chat commands understand, and the commands they stand for.

Alert buttons (Ack, Silence 1h / 4h / 24h, Run runbook) are encoded by :mod:`alert_router.render.actions`
(``ar1:<action>:<alert short id or *>:<group id>``). Approval buttons for a pending runbook run are
encoded here, in the same family and well under Telegram's 64 bytes::

    ar1:apr:<run id>     Approve
    ar1:dny:<run id>     Deny

A renderer that shows a run waiting for approval adds :func:`approval_actions` as buttons (Slack:
``action_id`` + ``value``; Telegram: ``callback_data`` = ``value``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from alert_router.render.actions import Action, decode_action
from alert_router.render.actions import approval_actions as render_approval_actions

_APPROVAL = re.compile(r"^ar1:(apr|dny):([0-9]{1,12})$")


@dataclass(frozen=True, slots=True)
class ButtonPress:
    """A decoded button: the command it maps to and what it is aimed at.

    ``alert`` is a short id or ``*`` (every firing alert of the group ``group``); ``run_id`` is set for
    approval buttons.
    """

    command: str
    alert: str = ""
    group: str = ""
    run_id: int | None = None
    silence_for: float | None = None


def approval_actions(run_id: int) -> list[tuple[str, str, str]]:
    """The Approve / Deny buttons of a pending run: ``(label, value, slack action_id)`` each."""
    return render_approval_actions(run_id)


def decode_button(value: str) -> ButtonPress | None:
    """Map a Slack button ``value`` or Telegram ``callback_data`` to a command; ``None`` if it is not ours."""
    m = _APPROVAL.match(value.strip())
    if m is not None:
        command = "runbook approve" if m.group(1) == "apr" else "runbook deny"
        return ButtonPress(command, run_id=int(m.group(2)))
    ref = decode_action(value)
    if ref is None:
        return None
    if ref.action is Action.ACK:
        return ButtonPress("ack", ref.alert, ref.group)
    if ref.action.silence_for is not None:
        return ButtonPress("silence", ref.alert, ref.group, silence_for=ref.action.silence_for)
    return ButtonPress("runbook run", ref.alert, ref.group)
