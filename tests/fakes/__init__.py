"""Fakes of the outside services the gateway talks to (the Telegram Bot API, Slack's Web API):
real HTTP servers on local ports that record every call and can be told to fail."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from aiohttp import web

from tests.helpers import listen

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(
    route: str, handler: Handler, more: Mapping[str, Handler] | None = None
) -> tuple[web.AppRunner, str]:
    """Serve ``handler`` for every method on ``route`` (and each of ``more``'s routes with its
    handler) at a free loopback port: (runner, url). Bodies up to 200 MB are read (uploads)."""
    app = web.Application(client_max_size=200 * 1024 * 1024)
    app.router.add_route("*", route, handler)
    for extra_route, extra_handler in (more or {}).items():
        app.router.add_route("*", extra_route, extra_handler)
    runner = web.AppRunner(app)
    await runner.setup()
    port = await listen(runner)
    return runner, f"http://127.0.0.1:{port}"
