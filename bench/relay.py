"""The reference servers for the capacity phase: ``python -m bench.relay --mode relay|echo``.

* ``relay``: a bare aiohttp websocket server that forwards each customer message to the bot's
  REST webhook and sends the replies back. Nothing is stored, deduped, ordered or routed.
* ``echo``: a websocket server that sends every frame straight back (the ceiling).

Both accept the widget's frames at ``/webchat/ws`` and answer in the widget's frame shape, so
the same load generator drives them and the gateway.
"""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import WSMsgType, web

HTTP = web.AppKey("http", aiohttp.ClientSession)
UPSTREAM = web.AppKey("upstream", str)


async def relay_socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=64 * 1024)
    await ws.prepare(request)
    http, url = request.app[HTTP], request.app[UPSTREAM]
    sender = uuid.uuid4().hex
    async for raw in ws:
        if raw.type is not WSMsgType.TEXT:
            continue
        frame = json.loads(raw.data)
        if frame.get("type") != "message":
            continue
        async with http.post(url, json={"sender": sender, "message": frame["text"]}) as resp:
            replies = await resp.json()
        for reply in replies:
            await ws.send_json({"type": "message", "sender": "bot", "text": reply.get("text")})
    return ws


async def echo_socket(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(max_msg_size=64 * 1024)
    await ws.prepare(request)
    async for raw in ws:
        if raw.type is WSMsgType.TEXT:
            await ws.send_str(raw.data)
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def create_app(mode: str, upstream: str | None) -> web.Application:
    app = web.Application()
    app.router.add_get("/healthz", healthz)
    if mode == "echo":
        app.router.add_get("/webchat/ws", echo_socket)
        return app
    if not upstream:
        raise SystemExit("--upstream is required for the relay")
    app[UPSTREAM] = upstream.rstrip("/") + "/webhooks/rest/webhook"

    async def client(app: web.Application) -> AsyncIterator[None]:
        app[HTTP] = aiohttp.ClientSession()
        yield
        await app[HTTP].close()

    app.cleanup_ctx.append(client)
    app.router.add_get("/webchat/ws", relay_socket)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["relay", "echo"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", help="the bot's base URL (relay mode)")
    args = parser.parse_args()
    app = create_app(args.mode, args.upstream)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
