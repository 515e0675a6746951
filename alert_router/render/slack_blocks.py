"""Block Kit assembly for Slack: header, body sections (split at 3,000 characters), links, buttons.

Slack's limits, as ``chat.postMessage`` enforces them: at most 50 blocks, section text at most 3,000
characters, header text at most 150 (plain text), button text 75, button value 2,000.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alert_router.render.actions import SILENCES, message_actions, pending_approvals
from alert_router.render.escape import clip, mrkdwn_escape, mrkdwn_link, oneline

MAX_BLOCKS = 50
SECTION_LIMIT = 3000
HEADER_LIMIT = 150
FALLBACK_LIMIT = 3000
SILENCE_MENU = "alert_router.silence"
"""The ``action_id`` of the Silence menu (a ``static_select``; each option's value is a silence button's)."""
LINK_NAMES = (("generator", "Source"), ("alertmanager", "Alertmanager"), ("grafana", "Grafana"),
              ("silence", "Silence"), ("runbook", "Runbook"))


def split_mrkdwn(text: str, limit: int = SECTION_LIMIT) -> list[str]:
    """Split mrkdwn into chunks of at most ``limit`` characters at line breaks.

    A ```` ``` ```` block cut in two is closed at the end of one chunk and reopened in the next; a single
    line longer than the limit is cut hard. Blank chunks are dropped.
    """
    fence = "```"
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    in_code = False

    def flush() -> None:
        nonlocal current, size
        body = "\n".join(current).strip("\n")
        if in_code:
            body += fence
        if body.strip() and body.strip() != fence:
            chunks.append(body)
        current = [fence] if in_code else []
        size = len(fence) + 1 if in_code else 0

    budget = limit - len(fence) - 1  # room to close an open code block
    for line in text.split("\n"):
        while len(line) > budget:
            if current:
                flush()
            head, line = line[:budget], line[budget:]
            current.append(head)
            size += len(head) + 1
            if head.count(fence) % 2:
                in_code = not in_code
            flush()
        if size + len(line) + 1 > budget and current:
            flush()
        current.append(line)
        size += len(line) + 1
        if line.count(fence) % 2:
            in_code = not in_code
    in_code = False
    flush()
    return chunks


def header_block(text: str) -> dict[str, Any]:
    """A header block (plain text, clipped to 150 characters)."""
    return {"type": "header", "text": {"type": "plain_text", "text": clip(oneline(text), HEADER_LIMIT) or " ",
                                       "emoji": True}}


def links_block(links: Mapping[str, str]) -> dict[str, Any] | None:
    """A context block with the message's links, or ``None`` when there are none."""
    parts = [mrkdwn_link(links[key], name) for key, name in LINK_NAMES if links.get(key)]
    parts = [p for p in parts if p.startswith("<")]
    if not parts:
        return None
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": clip(" · ".join(parts), SECTION_LIMIT)}]}


def actions_block(context: Mapping[str, Any], runbook: bool = False) -> dict[str, Any] | None:
    """Ack, a Silence menu (1h / 4h / 24h) and, when a runbook applies, Run runbook; ``None`` for a digest."""
    if context.get("digest"):  # a digest spans many groups: no group to act on
        return None
    firing = [a["short_id"] for a in context.get("firing_alerts", [])]
    actions = message_actions(bool(context.get("firing")), firing, str(context.get("group_id", "")),
                              runbook=runbook)
    approvals = pending_approvals(list(context.get("runbook_runs") or []))
    if not actions and not approvals:
        return None
    elements: list[dict[str, Any]] = [
        {"type": "button", "text": {"type": "plain_text", "text": label}, "action_id": action_id, "value": value,
         **({"style": "primary"} if value.startswith("ar1:apr:") else {"style": "danger"})}
        for label, value, action_id in approvals
    ]
    silences = [(action, value) for action, value in actions if action in SILENCES]
    for action, value in actions:
        if action in SILENCES:
            if action is silences[0][0]:
                elements.append({
                    "type": "static_select",
                    "action_id": SILENCE_MENU,
                    "placeholder": {"type": "plain_text", "text": "Silence…"},
                    "options": [{"text": {"type": "plain_text", "text": a.label}, "value": v} for a, v in silences],
                })
            continue
        button: dict[str, Any] = {
            "type": "button",
            "text": {"type": "plain_text", "text": action.label},
            "action_id": action.slack_action_id,
            "value": value,
        }
        if action.value == "ack":
            button["style"] = "primary"
        elements.append(button)
    return {"type": "actions", "block_id": f"alert_router_actions_{context.get('group_id', '')}",
            "elements": elements}


def header_text(context: Mapping[str, Any]) -> str:
    """``🔴 [FIRING:2] Name · prod`` or ``✅ [RESOLVED] Name · prod — fired for 3h12m``."""
    text = f"{context.get('marker', '')} {context.get('title', '')}"
    if context.get("resolved") and context.get("fired_for"):
        text += f" — fired for {context['fired_for']}"
    return text


def fallback_text(context: Mapping[str, Any]) -> str:
    """The plain ``text`` of the message (notifications, screen readers), escaped for mrkdwn."""
    text = header_text(context)
    alerts = context.get("all_alerts") or []
    if len(alerts) == 1 and alerts[0].get("summary"):
        text += f": {oneline(alerts[0]['summary'])}"
    return clip(mrkdwn_escape(text), FALLBACK_LIMIT)


def build_blocks(
    context: Mapping[str, Any], body: str, *, actions: bool = True, runbook: bool = False
) -> tuple[list[dict[str, Any]], bool]:
    """Assemble the message; return the blocks and whether the body had to be cut to fit 50 blocks.

    ``runbook`` says whether a runbook applies to a firing alert (the Run runbook button).
    """
    head = [header_block(header_text(context))]
    tail = [b for b in (links_block(context.get("links") or {}),
                        actions_block(context, runbook) if actions else None) if b]
    room = MAX_BLOCKS - len(head) - len(tail)
    sections = [{"type": "section", "text": {"type": "mrkdwn", "text": chunk}} for chunk in split_mrkdwn(body)]
    cut = len(sections) > room
    if cut:
        note = {"type": "section", "text": {"type": "mrkdwn", "text": "_…message cut to fit Slack's limits._"}}
        sections = [*sections[: room - 1], note]
    return head + sections + tail, cut
