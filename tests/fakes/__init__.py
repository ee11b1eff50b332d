"""Fakes of the outside services the gateway talks to (the Telegram Bot API, Slack's Web API):
real HTTP servers on local ports that record every call and can be told to fail."""

from __future__ import annotations

from aiohttp import web

from tests.helpers import listen


async def serve(route: str, handler: web.Handler) -> tuple[web.AppRunner, str]:
    """Serve ``handler`` for every method on ``route`` at a free loopback port: (runner, url)."""
    app = web.Application()
    app.router.add_route("*", route, handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = await listen(runner)
    return runner, f"http://127.0.0.1:{port}"
