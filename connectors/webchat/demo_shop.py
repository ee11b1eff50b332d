"""The demo shop page (``/``): a stand-in for a customer's website, with a demo sign-in.

A real shop vouches for a signed-in customer by rendering its user id and
``HMAC-SHA256(shop secret, user id)`` into the widget's script tag on its own server
(docs/widget.md). This page does the same for two demo shoppers, but only when
``identity.demo_sign_in`` is on (``make run`` turns it on): with it, anyone can sign in as
them, so it must stay off on a public gateway.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web

from bot.config import Settings
from bot.core.identity import shop_user_hash
from bot.http_headers import CONTENT_SECURITY_POLICY

PAGE = Path(__file__).parent / "static" / "demo.html"
ACCOUNT_MARK = "<!--account-->"
WIDGET_MARK = "data-shop-user"
# The demo shop's own user accounts; the ids are the demo backend's customers
# (actions/backend.py), as a real shop and its order system share customer ids.
DEMO_SHOPPERS = {"1": "Maya Patel", "2": "Jonas Weber"}


def _account_links(settings: Settings, user_id: str | None) -> str:
    if user_id is not None:
        name = html.escape(DEMO_SHOPPERS[user_id].split()[0])
        return (
            f'<span class="account" data-testid="signed-in">Hi, {name}</span>'
            '<a class="hide-sm" href="/" data-testid="sign-out">Sign out</a>'
        )
    if not (settings.identity.demo_sign_in and settings.identity.shop_secret):
        return '<a class="hide-sm" href="#help">Sign in</a>'
    links = "".join(
        f'<a href="/?customer={uid}" data-testid="sign-in-{uid}">{html.escape(name)}</a>'
        for uid, name in DEMO_SHOPPERS.items()
    )
    return (
        '<details class="sign-in"><summary data-testid="sign-in">Sign in (demo)</summary>'
        f'<div class="menu">{links}</div></details>'
    )


# The gateway's page policy, except that pictures may come from any https address: a bot's
# image responses live elsewhere (a shop's own page needs the same in its img-src,
# docs/widget.md).
SHOP_PAGE_CSP = CONTENT_SECURITY_POLICY.replace(
    "img-src 'self' data:", "img-src 'self' data: https:"
)


def page_handler(
    settings: Settings,
) -> Callable[[web.Request], Awaitable[web.Response]]:
    template = PAGE.read_text(encoding="utf-8")

    async def shop_page(request: web.Request) -> web.Response:
        user_id = request.query.get("customer")
        if not (
            settings.identity.demo_sign_in
            and settings.identity.shop_secret
            and user_id in DEMO_SHOPPERS
        ):
            user_id = None
        attrs = ""
        if user_id is not None:
            digest = shop_user_hash(settings.identity.shop_secret, user_id)
            attrs = f'data-user-id="{html.escape(user_id)}" data-user-hash="{digest}"'
        body = template.replace(ACCOUNT_MARK, _account_links(settings, user_id)).replace(
            WIDGET_MARK, attrs
        )
        return web.Response(
            text=body,
            content_type="text/html",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": SHOP_PAGE_CSP},
        )

    return shop_page
