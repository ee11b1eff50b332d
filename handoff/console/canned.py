"""The console's canned-reply API (handoff/canned.py does the work).

GET    /console/api/canned                     the replies the agent may use (?q= prefix)
POST   /console/api/canned                     {"shortcut", "text", "team": null | "orders"}
PUT    /console/api/canned/{id}                {"shortcut", "text"}
DELETE /console/api/canned/{id}
GET    /console/api/conversations/{id}/canned  ?q=prefix: filled in for that conversation
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.core.models import Agent
from handoff.canned import CannedReplies, json_of
from handoff.console.api import _json_body
from handoff.console.context import ApiError
from handoff.console.http import api, console_ctx


def _replies(request: web.Request) -> CannedReplies:
    return console_ctx(request).desk.canned


def _reply_id(request: web.Request) -> int:
    try:
        return int(request.match_info["reply_id"])
    except ValueError:
        raise ApiError(404, "not_found", "No such canned reply.") from None


def _prefix(request: web.Request) -> str:
    return request.query.get("q", "").strip().lstrip("/")[:32]


@api
async def api_canned(request: web.Request, agent: Agent) -> Any:
    replies = await _replies(request).usable(agent, _prefix(request))
    return {"items": [json_of(reply, agent) for reply in replies]}


@api
async def api_add_canned(request: web.Request, agent: Agent) -> Any:
    body = await _json_body(request)
    reply = await _replies(request).add(
        agent, body.get("shortcut"), body.get("text"), body.get("team")
    )
    return json_of(reply, agent)


@api
async def api_change_canned(request: web.Request, agent: Agent) -> Any:
    body = await _json_body(request)
    reply = await _replies(request).change(
        agent, _reply_id(request), body.get("shortcut"), body.get("text")
    )
    return json_of(reply, agent)


@api
async def api_delete_canned(request: web.Request, agent: Agent) -> Any:
    await _replies(request).delete(agent, _reply_id(request))
    return {"ok": True}


@api
async def api_conversation_canned(request: web.Request, agent: Agent) -> Any:
    filled = await _replies(request).for_conversation(
        agent, request.match_info["conversation_id"], _prefix(request)
    )
    return {
        "items": [
            {**json_of(item.reply, agent), "filled": item.text, "missing": item.missing}
            for item in filled
        ]
    }


def add_routes(router: web.UrlDispatcher, prefix: str) -> None:
    router.add_get(f"{prefix}/api/canned", api_canned)
    router.add_post(f"{prefix}/api/canned", api_add_canned)
    router.add_put(f"{prefix}/api/canned/{{reply_id}}", api_change_canned)
    router.add_delete(f"{prefix}/api/canned/{{reply_id}}", api_delete_canned)
    router.add_get(
        f"{prefix}/api/conversations/{{conversation_id}}/canned", api_conversation_canned
    )
