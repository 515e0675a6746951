"""The baseline of the ingest benchmark: an aiohttp server that only parses the JSON body and answers 200."""

import json
import sys

from aiohttp import web


async def handle(request: web.Request) -> web.Response:
    body = await request.read()
    data = json.loads(body)
    return web.json_response({"status": "ok", "alerts": len(data.get("alerts", []))})


def main() -> None:
    app = web.Application(client_max_size=2 * 1024 * 1024)
    app.router.add_post("/webhook", handle)
    app.router.add_get("/readyz", lambda r: web.json_response({"status": "ready"}))
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
