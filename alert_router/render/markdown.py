"""Markdown for Discord embeds and Microsoft Teams Adaptive Cards: escaping, and the lines both write.

Both platforms render a CommonMark-like subset: ``**bold**``, ``_italic_``, ``[text](url)`` links, lists,
headings and quotes at the start of a line; Discord adds ```` `code` ````, code blocks, ``~~strike~~``,
``||spoilers||`` and ``<@mentions>``. Every value that comes from an alert is untrusted, so :func:`md_escape`
puts a backslash before each character that could open markup (and before a list, heading or quote marker
at the start of a line): ``**x**``, ``[a](javascript:…)``, ``<@&123>`` and ``# h`` stay plain text.
Discord messages are also sent with ``allowed_mentions: {"parse": []}`` so that no text can ping anybody.

The line builders take the template context (:func:`alert_router.render.context.build_context`); with
``code=True`` (Discord) short ids and labels are code spans, with ``code=False`` (Teams, whose cards have no
code spans) they are escaped text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from alert_router.render.escape import GRAVE, clip, oneline, safe_url

_INLINE = re.compile(r"([\\`*_~|\[\]<>])")
_LINE_START = re.compile(r"^(\s*)(?:([#>+\-])|(\d+)([.)]))(?=\s|$)", re.MULTILINE)
_URL_SAFE = ":/?#@!$&'*+,;=%~-._"
LINK_NAMES = (("generator", "Source"), ("alertmanager", "Alertmanager"), ("grafana", "Grafana"),
              ("silence", "Silence"), ("runbook", "Runbook"))


def md_escape(value: object) -> str:
    """Make ``value`` plain text in Discord/Teams markdown (newlines are kept)."""
    text = _INLINE.sub(r"\\\1", str(value))
    return _LINE_START.sub(_escape_marker, text)


def _escape_marker(m: re.Match[str]) -> str:
    if m.group(2):
        return f"{m.group(1)}\\{m.group(2)}"
    return f"{m.group(1)}{m.group(3)}\\{m.group(4)}"


def md_code(value: object, limit: int = 200) -> str:
    """An inline code span holding ``value`` verbatim on one line (backticks become a look-alike)."""
    text = clip(oneline(str(value)), limit).replace("`", GRAVE)
    return f"`{text or ' '}`"


def md_codeblock(lines: list[str], limit: int) -> str:
    """A fenced code block whose whole text, fences included, is at most ``limit`` characters."""
    text = clip("\n".join(lines).replace("`", GRAVE), max(1, limit - 8))
    return f"```\n{text}\n```"


def md_link(url: object, text: str) -> str:
    """``[text](url)`` for an http(s) URL (characters that would end the link are percent-encoded), else text."""
    u = safe_url(url)
    if not u:
        return md_escape(text)
    return f"[{md_escape(text)}]({quote(u, safe=_URL_SAFE)})"


def links_line(links: Mapping[str, Any]) -> str:
    """``[Source](…) · [Grafana](…) · [Silence](…)`` for the links that are http(s) URLs, or ``""``."""
    return " · ".join(md_link(links[key], name) for key, name in LINK_NAMES if safe_url(links.get(key, "")))


def _value(value: object, limit: int, code: bool) -> str:
    return md_code(value, limit) if code else md_escape(clip(oneline(str(value)), limit))


def alert_headline(a: Mapping[str, Any]) -> str:
    """``🔴 **ModelServiceDown** — Model service might be down!``."""
    line = f"{a['marker']} **{md_escape(clip(oneline(a['name']), 120))}**"
    if a.get("summary"):
        line += f" — {md_escape(clip(oneline(a['summary']), 300))}"
    return line


def status_line(a: Mapping[str, Any], code: bool) -> str:
    """``Firing for 40m (since 2026-11-27 00:00 UTC) · acked by alice · `2bb1035c```."""
    firing = f"Firing for {a['duration']} (since {a['since']})"
    line = firing if a["firing"] else f"Resolved, fired for {a['duration']}"
    if a.get("acked_by"):
        line += f" · acked by {md_escape(clip(oneline(a['acked_by']), 80))}"
    return f"{line} · {_value(a['short_id'], 16, code)}"


def label_pairs(a: Mapping[str, Any], limit: int = 8) -> list[tuple[str, str]]:
    """The alert's key labels as escaped ``(name, value)`` pairs (at most ``limit``)."""
    return [(md_escape(clip(k, 40)), md_escape(clip(oneline(v), 100))) for k, v in a["key_labels"][:limit]]


def compact_line(a: Mapping[str, Any], code: bool) -> str:
    """One bounded line per alert (≤ about 150 characters) for long groups and storm digests."""
    parts = [f"{a['marker']} {_value(a['short_id'], 16, code)} **{md_escape(clip(oneline(a['name']), 40))}**"]
    parts += [_value(kv[1], 20, code) for kv in a["key_labels"][:2]]
    line = " ".join(parts)
    if a.get("summary"):
        line += f" — {md_escape(clip(oneline(a['summary']), 40))}"
    if a.get("acked_by"):
        line += " · acked"
    return line


def runbook_line(r: Mapping[str, Any], code: bool) -> str:
    """``⚙️ Runbook `restart` (dry run): **succeeded** — rolled out``."""
    line = f"⚙️ Runbook {_value(r['runbook'], 80, code)}{' (dry run)' if r.get('dry_run') else ''}: "
    line += f"**{md_escape(clip(oneline(r['status']), 40))}**"
    if r.get("summary") and not r.get("failure"):
        line += f" — {md_escape(clip(oneline(r['summary']), 300))}"
    if failure := r.get("failure"):
        error = md_escape(clip(oneline(failure["error"]), 600))
        line += f"\n❌ **Failed step** {_value(failure['step'], 120, code)}: {error}"
        line += f"\n**Outcome:** {md_escape(clip(oneline(failure['outcome']), 300))}"
        line += f"\n**Next:** {md_escape(clip(oneline(failure['next']), 300))}"
    return line


def log_heading(entry: Mapping[str, Any], code: bool) -> str:
    """The line above a log excerpt, or the whole note when there are no lines to show."""
    query = _value(entry["query"], 200, code)
    if entry["status"] == "ok" and entry["text"]:
        return f"**Logs** {query}"
    if entry["status"] == "empty":
        return f"_No log lines for_ {query}"
    reason = entry.get("reason")
    return "_Logs unavailable" + (f": {md_escape(clip(oneline(reason), 200))}" if reason else "") + "_"


def fallback_note(ctx: Mapping[str, Any]) -> str:
    """``_Delivered here because slack failed: auth: …_`` on a fallback delivery, else ``""``."""
    if not ctx.get("fallback_from"):
        return ""
    reason = md_escape(clip(oneline(str(ctx.get("fallback_reason") or "")), 200))
    return f"_Delivered here because {md_escape(ctx['fallback_from'])} failed: {reason}_"


def escalation_note(ctx: Mapping[str, Any], code: bool) -> str:
    """``⏫ **Escalation 1 of 3**: not acknowledged for **30m** (rule `x` escalates after 10m)``, or ``""``."""
    e = ctx.get("escalation")
    if not e:
        return ""
    line = f"⏫ **Escalation {e['step']} of {e['repeat']}**: not acknowledged for **{e['unacked_for']}**"
    if e.get("rule"):
        line += f" (rule {_value(e['rule'], 80, code)} escalates after {e['after']})"
    return line


def runbook_message(ctx: Mapping[str, Any]) -> str:
    """``💬 <the text of a runbook's notify step>``, or ``""``."""
    text = str(ctx.get("runbook_message") or "")
    return f"💬 {md_escape(clip(text, 1500))}" if text else ""


def more_line(ctx: Mapping[str, Any]) -> str:
    """``…and 12 more alerts in this group.`` (or ``that did not fit`` in a digest), or ``""``."""
    more = int(ctx.get("more") or 0)
    if not more:
        return ""
    where = "that did not fit" if ctx.get("digest") else "in this group"
    return f"…and {more} more alert{'s' if more != 1 else ''} {where}."
