"""Message rendering: the template context, sandboxed templates, escaping and per-platform fitting.

Public surface::

    build_context(notification, links=..., max_alerts=...)  -> dict      (render.context)
    Template(dialect, default, override, ...).render(ctx, errors) -> str (render.templates)
    check_template(source, dialect)                                      (render.templates)
    fit(count, render, fits)                                             (render.templates)
    split_html / trim_html / visible_length                              (render.telegram_html)
    build_blocks / fallback_text / split_mrkdwn                          (render.slack_blocks)
    encode_action / decode_action / Action / ActionRef                   (render.actions)
    format_duration / short_id / group_id                                (render.context)
"""

from __future__ import annotations

from alert_router.render.actions import Action, ActionRef, decode_action, encode_action
from alert_router.render.context import build_context, format_duration, group_id, short_id
from alert_router.render.telegram_html import split_html, trim_html, visible_length
from alert_router.render.templates import Template, check_template, fit

__all__ = [
    "Action",
    "ActionRef",
    "Template",
    "build_context",
    "check_template",
    "decode_action",
    "encode_action",
    "fit",
    "format_duration",
    "group_id",
    "short_id",
    "split_html",
    "trim_html",
    "visible_length",
]
