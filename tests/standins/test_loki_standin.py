"""The Loki stand-in answers query_range like Loki: shape, selection, ordering, limits and errors."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import aiohttp
import pytest

from tests.standins.loki import (
    LogQLParseError,
    LokiStandin,
    parse_logql,
    parse_loki_timestamp,
)

T0 = 1_700_000_000_000_000_000  # ns
SEC = 1_000_000_000


async def query(loki: LokiStandin, headers: dict[str, str] | None = None, **params: Any) -> tuple[int, str, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{loki.url}/loki/api/v1/query_range",
            params={k: str(v) for k, v in params.items()},
            headers=headers or {},
        ) as resp,
    ):
        text = await resp.text()
        ctype = resp.headers.get("Content-Type", "")
        body = await resp.json() if resp.status == 200 else text
        return resp.status, ctype, body


def seed(loki: LokiStandin) -> None:
    web = {"app": "web", "namespace": "prod"}
    db = {"app": "db", "namespace": "prod"}
    loki.push(web, T0 + 1 * SEC, "GET /health 200")
    loki.push(web, T0 + 2 * SEC, "ERROR timeout talking to db")
    loki.push(db, T0 + 3 * SEC, "checkpoint complete")
    loki.push(web, T0 + 4 * SEC, "ERROR panic: nil map")
    loki.push({"app": "web", "namespace": "staging"}, T0 + 5 * SEC, "ERROR staging only")


def lines(body: Any) -> list[str]:
    """Lines in result order (streams flattened in the order returned)."""
    return [v[1] for s in body["data"]["result"] for v in s["values"]]


def all_entries_sorted(body: Any, reverse: bool) -> list[tuple[int, str]]:
    entries = [(int(ts), line) for s in body["data"]["result"] for ts, line in s["values"]]
    return sorted(entries, reverse=reverse)


async def test_query_range_returns_documented_stream_shape(loki_standin: LokiStandin) -> None:
    seed(loki_standin)
    status, ctype, body = await query(loki_standin, query='{app="web", namespace="prod"}', start=T0, end=T0 + 10 * SEC)
    assert status == 200
    assert ctype.startswith("application/json")
    assert body["status"] == "success"
    assert body["data"]["resultType"] == "streams"
    assert body["data"]["stats"] == {}
    [stream] = body["data"]["result"]
    assert stream["stream"] == {"app": "web", "namespace": "prod"}
    assert all(isinstance(ts, str) and ts.isdigit() for ts, _ in stream["values"])
    # default direction is backward: newest first
    assert stream["values"] == [
        [str(T0 + 4 * SEC), "ERROR panic: nil map"],
        [str(T0 + 2 * SEC), "ERROR timeout talking to db"],
        [str(T0 + 1 * SEC), "GET /health 200"],
    ]


async def test_direction_and_limit_apply_across_streams(loki_standin: LokiStandin) -> None:
    seed(loki_standin)
    _, _, back = await query(loki_standin, query='{namespace="prod"}', start=T0, end=T0 + 10 * SEC, limit=2)
    got = all_entries_sorted(back, reverse=True)
    assert [line for _, line in got] == ["ERROR panic: nil map", "checkpoint complete"]

    _, _, fwd = await query(
        loki_standin, query='{namespace="prod"}', start=T0, end=T0 + 10 * SEC, limit=2, direction="forward"
    )
    assert lines(fwd) == ["GET /health 200", "ERROR timeout talking to db"]
    assert len(fwd["data"]["result"]) == 1

    _, _, default_limit = await query(loki_standin, query='{namespace="prod"}', start=T0, end=T0 + 10 * SEC)
    assert len(lines(default_limit)) == 4


async def test_default_limit_is_100(loki_standin: LokiStandin) -> None:
    for i in range(150):
        loki_standin.push({"app": "web"}, T0 + i, f"line {i}")
    _, _, body = await query(loki_standin, query='{app="web"}', start=T0, end=T0 + SEC)
    got = lines(body)
    assert len(got) == 100
    assert got[0] == "line 149"


async def test_time_range_is_start_inclusive_end_exclusive(loki_standin: LokiStandin) -> None:
    seed(loki_standin)
    _, _, body = await query(loki_standin, query='{app="web", namespace="prod"}', start=T0 + 2 * SEC, end=T0 + 4 * SEC)
    assert lines(body) == ["ERROR timeout talking to db"]


async def test_rfc3339_and_seconds_timestamps(loki_standin: LokiStandin) -> None:
    seed(loki_standin)
    # T0 = 2023-11-14T22:13:20Z
    _, _, body = await query(
        loki_standin,
        query='{app="web", namespace="prod"}',
        start="2023-11-14T22:13:21.5Z",
        end=str((T0 + 10 * SEC) // SEC),
    )
    assert lines(body) == ["ERROR panic: nil map", "ERROR timeout talking to db"]
    assert parse_loki_timestamp("1700000000") == T0
    assert parse_loki_timestamp("1700000000.25") == T0 + SEC // 4
    assert parse_loki_timestamp("2023-11-14T23:13:20+01:00") == T0


async def test_label_matchers_regex_is_anchored_and_missing_label_is_empty(loki_standin: LokiStandin) -> None:
    seed(loki_standin)
    loki_standin.push({"app": "webhook"}, T0 + 6 * SEC, "hook")
    rng = {"start": T0, "end": T0 + 10 * SEC}
    _, _, partial = await query(loki_standin, query='{app=~"we"}', **rng)
    assert lines(partial) == []
    _, _, prefix = await query(loki_standin, query='{app=~"web.*"}', **rng)
    assert set(lines(prefix)) == {
        "hook",
        "ERROR staging only",
        "ERROR panic: nil map",
        "ERROR timeout talking to db",
        "GET /health 200",
    }
    # namespace!="prod" also selects the stream that has no namespace label at all
    _, _, neg = await query(loki_standin, query='{app=~"web.*", namespace!="prod"}', **rng)
    assert set(lines(neg)) == {"hook", "ERROR staging only"}
    _, _, nre = await query(loki_standin, query='{app=~".+", namespace!~"prod|staging"}', **rng)
    assert lines(nre) == ["hook"]


async def test_line_filters_chain(loki_standin: LokiStandin) -> None:
    seed(loki_standin)
    rng = {"start": T0, "end": T0 + 10 * SEC}
    _, _, body = await query(loki_standin, query='{namespace="prod"} |= "ERROR" != "panic"', **rng)
    assert lines(body) == ["ERROR timeout talking to db"]
    _, _, body = await query(loki_standin, query='{namespace="prod"} |~ "(?i)error" !~ "time.ut"', **rng)
    assert lines(body) == ["ERROR panic: nil map"]
    _, _, body = await query(loki_standin, query='{namespace="prod"} |~ `\\d{3}$`', **rng)
    assert lines(body) == ["GET /health 200"]


async def test_go_string_escapes_and_raw_strings(loki_standin: LokiStandin) -> None:
    value = 'say "hi"\\now\nnext'
    loki_standin.push({"alertname": value}, T0 + SEC, "escaped")
    loki_standin.push({"alertname": "plain"}, T0 + SEC, "plain")
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    _, _, body = await query(loki_standin, query=f'{{alertname="{escaped}"}}', start=T0, end=T0 + 2 * SEC)
    assert lines(body) == ["escaped"]
    _, _, body = await query(loki_standin, query="{alertname=`plain`}", start=T0, end=T0 + 2 * SEC)
    assert lines(body) == ["plain"]
    assert parse_logql('{a="\\x41\\u00e9\\101"}').matchers[0].value == "AéA"


@pytest.mark.parametrize(
    ("logql", "needle"),
    [
        ('{app="web"', "parse error at line 1, col 11"),
        ('{app="web}', "parse error"),
        ('app="web"', "parse error at line 1, col 1"),
        ('{app=="web"}', "parse error"),
        ('{app="web"} |= unquoted', "parse error"),
        ('{app="web"} garbage', "parse error"),
        ('{app="\\q"}', "parse error"),
        ('{app=~"("}', "parse error"),
    ],
)
async def test_syntax_errors_are_400_text(loki_standin: LokiStandin, logql: str, needle: str) -> None:
    status, ctype, body = await query(loki_standin, query=logql, start=T0, end=T0 + SEC)
    assert status == 400
    assert ctype.startswith("text/plain")
    assert needle in body


@pytest.mark.parametrize("logql", ['{env=~".*"}', '{env!="dev"}', "{}", '{a="", b!~"x"}'])
async def test_empty_compatible_selector_is_rejected(loki_standin: LokiStandin, logql: str) -> None:
    status, _, body = await query(loki_standin, query=logql, start=T0, end=T0 + SEC)
    assert status == 400
    assert "queries require at least one regexp or equality matcher" in body


async def test_non_empty_regex_selector_is_accepted(loki_standin: LokiStandin) -> None:
    status, _, _ = await query(loki_standin, query='{env=~".+"}', start=T0, end=T0 + SEC)
    assert status == 200


async def test_limit_above_5000_is_rejected(loki_standin: LokiStandin) -> None:
    status, _, body = await query(loki_standin, query='{app="web"}', limit=5001)
    assert status == 400
    assert "max entries limit per query exceeded" in body
    assert "(5001 > 5000)" in body
    status, _, _ = await query(loki_standin, query='{app="web"}', limit=5000)
    assert status == 200
    for bad in ("0", "ten"):
        status, _, _ = await query(loki_standin, query='{app="web"}', limit=bad)
        assert status == 400


async def test_unsupported_logql_fails_loudly(loki_standin: LokiStandin) -> None:
    status, _, body = await query(loki_standin, query='{app="web"} | json', start=T0, end=T0 + SEC)
    assert status == 501
    assert "not implemented" in body
    status, _, _ = await query(loki_standin, query='count_over_time({app="web"}[5m])')
    assert status == 501


async def test_records_exact_query_params_and_headers(loki_standin: LokiStandin) -> None:
    logql = '{namespace="prod", pod=~"web-.*"} |= "ERROR"'
    await query(
        loki_standin,
        headers={"X-Scope-OrgID": "team-a", "Authorization": "Bearer abc"},
        query=logql,
        start=T0,
        end=T0 + SEC,
        limit=20,
    )
    await query(loki_standin, query="{broken")
    assert loki_standin.query_count == 2
    first = loki_standin.queries[0]
    assert first.query == logql
    assert first.params["limit"] == "20"
    assert first.params["start"] == str(T0)
    assert first.org_id == "team-a"
    assert first.authorization == "Bearer abc"
    assert first.status == 200
    assert loki_standin.last_query.status == 400


async def test_bearer_auth_required() -> None:
    async with LokiStandin(bearer_token="s3cret") as loki:
        status, _, _ = await query(loki, query='{app="web"}')
        assert status == 401
        status, _, _ = await query(loki, headers={"Authorization": "Bearer wrong"}, query='{app="web"}')
        assert status == 401
        status, _, _ = await query(loki, headers={"Authorization": "Bearer s3cret"}, query='{app="web"}')
        assert status == 200


async def test_basic_auth_required() -> None:
    async with LokiStandin(basic_auth=("loki", "pw")) as loki:
        auth = "Basic " + base64.b64encode(b"loki:pw").decode()
        status, _, _ = await query(loki, headers={"Authorization": auth}, query='{app="web"}')
        assert status == 200
        bad = "Basic " + base64.b64encode(b"loki:nope").decode()
        status, _, _ = await query(loki, headers={"Authorization": bad}, query='{app="web"}')
        assert status == 401


async def test_tenant_required_and_isolated() -> None:
    async with LokiStandin(tenant="team-a") as loki:
        loki.push({"app": "web"}, T0 + SEC, "a's line")
        loki.push({"app": "web"}, T0 + SEC, "b's line", tenant="team-b")
        status, _, body = await query(loki, query='{app="web"}', start=T0, end=T0 + 2 * SEC)
        assert status == 401
        assert "no org id" in body
        _, _, body = await query(
            loki, headers={"X-Scope-OrgID": "team-b"}, query='{app="web"}', start=T0, end=T0 + 2 * SEC
        )
        assert lines(body) == ["b's line"]


async def test_fail_next_then_recovers(loki_standin: LokiStandin) -> None:
    seed(loki_standin)
    loki_standin.fail_next(2, status=503)
    codes = [(await query(loki_standin, query='{app="db"}', start=T0, end=T0 + 10 * SEC))[0] for _ in range(3)]
    assert codes == [503, 503, 200]
    assert loki_standin.query_count == 3


async def test_delay_is_applied(loki_standin: LokiStandin) -> None:
    loki_standin.delay = 0.5
    timeout = aiohttp.ClientTimeout(total=0.1)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        with pytest.raises(asyncio.TimeoutError):
            async with session.get(
                f"{loki_standin.url}/loki/api/v1/query_range", params={"query": '{app="x"}'}
            ) as resp:
                await resp.read()


def test_parse_errors_are_typed() -> None:
    with pytest.raises(LogQLParseError, match="empty-compatible"):
        parse_logql('{a=~""}')
    parsed = parse_logql('{a="1", b=~"x|y",} != "debug"')
    assert [m.op for m in parsed.matchers] == ["=", "=~"]
    assert parsed.selects({"a": "1", "b": "y"})
    assert not parsed.selects({"a": "1", "b": "xy"})
    assert parsed.keeps("info")
    assert not parsed.keeps("a debug line")
