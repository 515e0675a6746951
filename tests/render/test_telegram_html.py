"""Fitting Telegram HTML into 4096 characters: every part parses, nothing is lost, no tag is broken."""

from __future__ import annotations

import random

import pytest

from alert_router.render.telegram_html import split_html, trim_html, visible_length
from tests.standins.telegram import parse_html


def random_html(rng: random.Random, n: int) -> str:
    out = []
    for i in range(n):
        kind = rng.choice(["b", "i", "code", "pre", "a", "text", "nl"])
        word = "".join(rng.choice("ab&<>é🔥 ") for _ in range(rng.randint(1, 40)))
        esc = word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        if kind == "text":
            out.append(esc)
        elif kind == "nl":
            out.append("\n")
        elif kind == "a":
            out.append(f'<a href="http://x/{i}?a=1&amp;b=2">{esc}</a>')
        elif kind == "b":
            out.append(f"<b>{esc} <i>{esc}</i></b>")
        else:
            out.append(f"<{kind}>{esc}</{kind}>")
    return "".join(out)


def test_visible_length_counts_like_telegram() -> None:
    assert visible_length("<b>a&amp;b</b>\n🔥") == len("a&b\n") + 2  # an astral emoji is two UTF-16 units


@pytest.mark.parametrize("seed", range(8))
def test_split_parts_parse_and_keep_all_text(seed: int) -> None:
    rng = random.Random(seed)
    html = random_html(rng, 800)
    parts = split_html(html, 500)
    assert len(parts) > 1
    visible = ""
    for part in parts:
        text, _ = parse_html(part)  # raises on a broken tag or entity
        assert visible_length(part) <= 500
        visible += text
    full, _ = parse_html(html)
    assert visible == full


def test_split_prefers_line_breaks() -> None:
    html = "\n".join(f"<b>line {i}</b> " + "x" * 50 for i in range(100))
    parts = split_html(html, 1000)
    assert all(p.rstrip("\n").endswith("x" * 50) for p in parts[:-1])
    assert all(p.lstrip("\n").startswith("<b>line") for p in parts[1:])


def test_trim_marks_the_cut_and_stays_valid() -> None:
    html = "<pre>" + "&lt;" * 5000 + "</pre>"
    out = trim_html(html, 4096)
    text, entities = parse_html(out)
    assert len(text) <= 4096 and text.endswith("(trimmed)")
    assert entities[0]["type"] == "pre"
    assert trim_html("<b>short</b>") == "<b>short</b>"
