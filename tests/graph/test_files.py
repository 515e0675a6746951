"""Saved pictures: random ids, only well-formed names served, old ones pruned; the /graphs route."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from alert_router.api.graphs import GRAPHS_SERVICE, add_routes
from alert_router.appkeys import RUNTIME
from alert_router.graph.files import GraphFiles, new_pictures, read_png

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 64


def test_save_link_prune(tmp_path: Path) -> None:
    files = GraphFiles(tmp_path, public_url="https://ar.example.com/", retention=60)
    a, path = files.save(PNG)
    b, _ = files.save(PNG)
    assert a != b and len(a) == 32 and path.read_bytes() == PNG
    assert files.url(a) == f"https://ar.example.com/graphs/{a}.png"
    assert files.path_of(f"{a}.png") == path
    assert files.path_of("../etc/passwd") is None and files.path_of(f"{a}.PNG") is None
    with pytest.raises(ValueError, match="not a PNG"):
        files.save(b"GIF89a")
    old = time.time() - 120
    os.utime(path, (old, old))
    assert files.prune() == 1 and files.path_of(f"{a}.png") is None
    assert read_png({"status": "ok", "path": str(tmp_path / f"{b}.png")}) == PNG
    assert read_png({"status": "ok", "path": str(path)}) is None


def test_new_pictures_skip_those_already_posted() -> None:
    extra = {"graphs": [{"status": "ok", "key": "a"}, {"status": "ok", "key": "b"}, {"status": "unavailable"}]}
    assert [g["key"] for g in new_pictures(extra, {"graphs": ["a"]})] == ["b"]
    assert len(new_pictures(extra, None)) == 2


async def test_graphs_route(tmp_path: Path) -> None:
    """GET /graphs/<id>.png serves a saved picture as image/png; anything else is 404."""

    class Stage:
        files = GraphFiles(tmp_path)

    graph_id, _ = Stage.files.save(PNG)
    app = web.Application()

    class Rt:
        services = {GRAPHS_SERVICE: Stage()}

    app[RUNTIME] = Rt()  # type: ignore[assignment]
    add_routes(app)
    async with TestClient(TestServer(app)) as client:
        resp = await client.get(f"/graphs/{graph_id}.png")
        assert resp.status == 200 and resp.headers["Content-Type"] == "image/png"
        assert await resp.read() == PNG
        assert (await client.get("/graphs/0123.png")).status == 404
        assert (await client.get("/graphs/..%2Falert-router.db")).status == 404
