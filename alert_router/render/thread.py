"""Short thread replies under a group's living message: it resolved, somebody acked (or took an ack back).

The living message is edited in place as the group changes; an edit notifies nobody. So when a send edits
that message and the group has resolved, or an alert of it was acked or un-acked since the last send, the
chat channels also post one short reply in the message's thread (Slack ``thread_ts``, Telegram a reply to the
message): the channel is notified and the thread tells the story in order. Which acks were already told is
kept in the message reference (``acked``: fingerprints), so a re-render never repeats a reply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alert_router.render.context import ACKED_MARKER, RESOLVED_MARKER

UNACKED_MARKER = "↩️"


def acked_now(context: Mapping[str, Any]) -> list[str]:
    """The fingerprints of the group's firing alerts that are acked, sorted (kept in the message reference)."""
    return sorted(a["fingerprint"] for a in context.get("firing_alerts") or [] if a.get("acked_by"))


def thread_notes(context: Mapping[str, Any], previous: Mapping[str, Any] | None) -> list[str]:
    """The plain-text replies a send that edits ``previous`` owes the thread, in order (often none).

    ``✅ Resolved — fired for 3h12m``; ``👀 rita acked 2bb1035c ModelServiceDown``; ``↩️ The ack of 2bb1035c
    ModelServiceDown was taken back``. A digest, a first post and a message that was not firing owe nothing.
    """
    if previous is None or context.get("digest") or previous.get("status") != "firing":
        return []
    notes: list[str] = []
    told = set(previous.get("acked") or [])
    by_user: dict[str, list[str]] = {}
    firing = {a["fingerprint"]: a for a in context.get("firing_alerts") or []}
    for fp in acked_now(context):
        if fp not in told:
            a = firing[fp]
            by_user.setdefault(str(a["acked_by"]), []).append(f"{a['short_id']} {a['name']}")
    for user, names in by_user.items():
        notes.append(f"{ACKED_MARKER} {user} acked {', '.join(names[:5])}"
                     + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
    if context.get("firing"):
        back = [firing[fp] for fp in sorted(told) if fp in firing and not firing[fp].get("acked_by")]
        if back:
            listed = ", ".join(f"{a['short_id']} {a['name']}" for a in back[:5])
            notes.append(f"{UNACKED_MARKER} The ack of {listed} was taken back")
    else:
        fired = f" — fired for {context['fired_for']}" if context.get("fired_for") else ""
        notes.append(f"{RESOLVED_MARKER} Resolved{fired}")
    return notes
