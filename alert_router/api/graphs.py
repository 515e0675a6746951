"""``GET /graphs/<id>.png``: the pictures the graph stage drew, for links in webhook and file payloads and PagerDuty.

The id is 128 random bits (see :mod:`alert_router.graph.files`): the link is the permission, as for a chat
attachment. Anything but a known ``<32 hex digits>.png`` is 404; the answer may be cached for a day.
"""

from __future__ import annotations

from aiohttp import web

from alert_router.appkeys import RUNTIME

GRAPHS_SERVICE = "grapher"


async def graph_png(request: web.Request) -> web.StreamResponse:
    """Serve one picture, or 404."""
    stage = request.app[RUNTIME].services.get(GRAPHS_SERVICE)
    files = getattr(stage, "files", None)
    path = files.path_of(request.match_info["name"]) if files is not None else None
    if path is None:
        raise web.HTTPNotFound(text="no such graph\n")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "image/png",
            "Cache-Control": "public, max-age=86400, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )


def add_routes(app: web.Application) -> None:
    """Register ``GET /graphs/{name}``."""
    app.router.add_get("/graphs/{name}", graph_png)
