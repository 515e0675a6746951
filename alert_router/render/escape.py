"""Escaping for the three markups messages are written in: Slack mrkdwn, Telegram/email HTML and plain text.

Every value that comes from an alert (labels, annotations, log lines, user names) is untrusted: it may
contain ``<!channel>``, ``<a href=...>``, stray ``&``, formatting characters or megabytes of text. The
helpers here make such a value inert in its markup; the template environments in
:mod:`alert_router.render.templates` apply them to every ``{{ expression }}`` automatically.
"""

from __future__ import annotations

import html
import re

from markupsafe import Markup

GRAVE = "\u02cb"
"""A look-alike of the backtick (modifier letter grave accent) used inside Slack code spans and blocks."""

ELLIPSIS = "…"

_MRKDWN_SPECIAL = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_FORMATTING = re.compile(r"[*_~`]")
_TOKEN = re.compile(r"\S+")
_SPACES = re.compile(r"\s+")


class MrkdwnSafe(str):
    """A string that is already valid Slack mrkdwn and must not be escaped again."""

    __slots__ = ()


def clip(text: str, limit: int, end: str = ELLIPSIS) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking a cut with ``end``."""
    if limit <= 0:
        return ""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(end))] + end


def oneline(text: str) -> str:
    """Collapse every run of whitespace (newlines included) into one space."""
    return _SPACES.sub(" ", text).strip()


def _code_token(m: re.Match[str]) -> str:
    token = m.group(0)
    return f"`{token.replace('`', GRAVE)}`" if _FORMATTING.search(token) else token


def mrkdwn_escape(value: object) -> str:
    """Make ``value`` inert in Slack mrkdwn: escape ``& < >``; a word holding ``* _ ~ ````` becomes a code span.

    ``<`` and ``>`` are what Slack parses for links and mentions (``<!channel>``, ``<@U1>``,
    ``<http://x|y>``); escaping them is what Slack documents. Formatting characters cannot be escaped
    in mrkdwn, so each whitespace-separated word that holds one is shown as a code span, where Slack
    formats nothing: ``rate(http_requests_total[5m])`` reads, and copies, exactly as written (a backtick in
    it becomes a look-alike). No invisible characters are added.
    """
    text = str(value).translate(_MRKDWN_SPECIAL)
    return _TOKEN.sub(_code_token, text)


def mrkdwn_code(value: object, limit: int = 500) -> MrkdwnSafe:
    """An inline code span holding ``value`` verbatim (on one line, clipped to ``limit``)."""
    text = clip(oneline(str(value)), limit).translate(_MRKDWN_SPECIAL).replace("`", GRAVE)
    return MrkdwnSafe(f"`{text}`" if text else "` `")


def mrkdwn_codeblock(lines: str | list[str], limit: int = 2800) -> MrkdwnSafe:
    """A preformatted block holding ``lines`` verbatim, clipped so the whole block stays within ``limit``."""
    text = "\n".join(lines) if isinstance(lines, list) else str(lines)
    text = clip(text.translate(_MRKDWN_SPECIAL).replace("`", GRAVE), max(1, limit - 6))
    return MrkdwnSafe(f"```{text or ' '}```")


def mrkdwn_link(url: object, text: object) -> MrkdwnSafe:
    """A Slack link ``<url|text>``; characters that would end the link early are percent-encoded."""
    u = str(url).strip().replace("|", "%7C").replace(">", "%3E").replace("<", "%3C").replace(" ", "%20")
    u = u.replace("&", "&amp;")
    if not u.lower().startswith(("http://", "https://", "mailto:")):
        return MrkdwnSafe(mrkdwn_escape(text))
    label = str(text).translate(_MRKDWN_SPECIAL).replace("|", "¦")
    return MrkdwnSafe(f"<{u}|{oneline(label) or u}>")


def mrkdwn_bold(value: object) -> MrkdwnSafe:
    """``*value*`` with ``value`` escaped."""
    text = mrkdwn_escape(oneline(str(value)))
    return MrkdwnSafe(f"*{text}*" if text else "")


def html_escape(value: object) -> Markup:
    """Escape ``value`` for HTML (Telegram's HTML parse mode accepts the same entities)."""
    return Markup(html.escape(str(value), quote=True))  # noqa: S704 - escaped right here


def html_code(value: object, limit: int = 500) -> Markup:
    """``<code>value</code>`` on one line, clipped to ``limit``."""
    return Markup("<code>%s</code>") % clip(oneline(str(value)), limit)


def html_codeblock(lines: str | list[str], limit: int = 2800) -> Markup:
    """``<pre>lines</pre>``, clipped to ``limit`` visible characters."""
    text = "\n".join(lines) if isinstance(lines, list) else str(lines)
    return Markup("<pre>%s</pre>") % clip(text, limit)


def safe_url(url: object) -> str:
    """``url`` if it is an http(s) or mailto URL, else ``""`` (no ``javascript:`` links)."""
    u = str(url).strip()
    return u if u.lower().startswith(("http://", "https://", "mailto:")) and not _SPACES.search(u) else ""


def html_link(url: object, text: object) -> Markup:
    """``<a href="url">text</a>``, or just the escaped text when the URL is not http(s)."""
    u = safe_url(url)
    if not u:
        return html_escape(text)
    return Markup('<a href="%s">%s</a>') % (u, oneline(str(text)) or u)


def html_bold(value: object) -> Markup:
    """``<b>value</b>``."""
    return Markup("<b>%s</b>") % oneline(str(value))
