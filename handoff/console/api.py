"""The console's JSON API: every route goes through the agent desk (handoff/desk.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bot.core.frames import note_dict
from bot.core.models import Agent
from handoff.console.context import ApiError
from handoff.console.http import agent_json, api, console_ctx
from handoff.desk import agent_text

# --- JSON API --------------------------------------------------------------------------------


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested too deep
        raise ApiError(400, "bad_json", "The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "The request body must be a JSON object.")
    return body


def _text_field(request: web.Request, body: dict[str, Any], what: str) -> str:
    """Checked here as well as by the desk, so a bad request never reaches it."""
    return agent_text(
        body.get("text"), what, console_ctx(request).settings.limits.max_message_chars
    )


def _conversation_id(request: web.Request) -> str:
    return request.match_info["conversation_id"]


@api
async def api_health(request: web.Request, agent: Agent) -> Any:
    """The gateway's health in detail (channels, broker): for supervisors only, since it names
    configuration that the public /healthz keeps to itself."""
    if agent.role != "supervisor":
        raise ApiError(403, "forbidden", "Only supervisors can see the gateway's health.")
    report = console_ctx(request).health
    return await report() if report is not None else {}


@api
async def api_me(request: web.Request, agent: Agent) -> Any:
    return agent_json(agent)


@api
async def api_queue(request: web.Request, agent: Agent) -> Any:
    return {"items": await console_ctx(request).desk.queue_snapshot()}


@api
async def api_agents(request: web.Request, agent: Agent) -> Any:
    return await console_ctx(request).desk.agents_with_presence()


@api
async def api_conversation(request: web.Request, agent: Agent) -> Any:
    return await console_ctx(request).desk.conversation_view(_conversation_id(request))


@api
async def api_claim(request: web.Request, agent: Agent) -> Any:
    await console_ctx(request).desk.claim(_conversation_id(request), agent)
    return {"ok": True}


@api
async def api_reply(request: web.Request, agent: Agent) -> Any:
    text = _text_field(request, await _json_body(request), "reply")
    message = await console_ctx(request).desk.agent_reply(_conversation_id(request), agent, text)
    return {"ok": True, "message": message.to_dict()}


@api
async def api_note(request: web.Request, agent: Agent) -> Any:
    text = _text_field(request, await _json_body(request), "note")
    note = await console_ctx(request).desk.add_note(_conversation_id(request), agent, text)
    return {"ok": True, "note": note_dict(note)}


@api
async def api_transfer(request: web.Request, agent: Agent) -> Any:
    body = await _json_body(request)
    to_agent_id = body.get("agent_id")
    if type(to_agent_id) is not int:
        raise ApiError(400, "missing_agent", "Choose the agent to transfer the conversation to.")
    # Agent ids are SQL integers: a larger number is no agent (and must not reach the database).
    if not 0 < to_agent_id < 2**31 or await console_ctx(request).desk.agent(to_agent_id) is None:
        raise ApiError(400, "unknown_agent", f"There is no agent with id {to_agent_id}.")
    await console_ctx(request).desk.transfer(_conversation_id(request), agent, to_agent_id)
    return {"ok": True}


@api
async def api_resolve(request: web.Request, agent: Agent) -> Any:
    await console_ctx(request).desk.resolve(_conversation_id(request), agent)
    return {"ok": True}
