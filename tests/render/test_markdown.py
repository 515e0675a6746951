"""Markdown for Discord and Teams: untrusted values become plain text, the line builders stay bounded."""

from __future__ import annotations

import pytest

from alert_router.render.context import build_context
from alert_router.render.escape import GRAVE
from alert_router.render.markdown import compact_line, links_line, md_code, md_codeblock, md_escape, md_link
from tests.channels.helpers import alert, notification


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("**bold** _it_ ~~s~~ ||sp||", "\\*\\*bold\\*\\* \\_it\\_ \\~\\~s\\~\\~ \\|\\|sp\\|\\|"),
        ("[x](javascript:alert(1))", "\\[x\\](javascript:alert(1))"),
        ("<@&123> <#42>", "\\<@&123\\> \\<#42\\>"),
        ("a\\b `c`", "a\\\\b \\`c\\`"),
        ("# title\n> quote\n- item\n12. item", "\\# title\n\\> quote\n\\- item\n12\\. item"),
        ("10.0.0.1:9100 p95=0.7 a-b", "10.0.0.1:9100 p95=0.7 a-b"),
    ],
)
def test_md_escape(raw: str, escaped: str) -> None:
    assert md_escape(raw) == escaped


def test_code_spans_blocks_and_links() -> None:
    assert md_code("a`b\nc") == "`a" + GRAVE + "b c`"
    block = md_codeblock(["```", "x" * 100], 50)
    assert block.startswith("```\n") and block.endswith("\n```") and len(block) <= 50 and block.count("```") == 2
    assert md_link("http://x/a(b)", "Grafana") == "[Grafana](http://x/a%28b%29)"
    assert md_link("http://x/a b", "Grafana") == "Grafana"
    assert md_link("javascript:alert(1)", "*x*") == "\\*x\\*"
    assert links_line({"generator": "http://p", "runbook": "ftp://nope", "silence": "https://s"}) == (
        "[Source](http://p) · [Silence](https://s)")


def test_compact_line_is_bounded_whatever_the_values() -> None:
    a = alert("N" * 500, labels={"deployment": "d" * 500, "pod": "p" * 500}, annotations={"summary": "*" * 500})
    ctx = build_context(notification([a]))
    for code in (True, False):
        line = compact_line(ctx["alerts"][0], code)
        assert len(line) <= 200 and "\n" not in line
