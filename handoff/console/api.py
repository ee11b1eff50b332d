"""The console's JSON API: every route goes through the agent desk (handoff/desk.py)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from aiohttp import web

from bot.core.frames import note_dict
from bot.core.models import Agent, InboxFilter
from bot.uploads import read_upload
from handoff.console.context import ApiError
from handoff.console.http import agent_json, api, console_ctx
from handoff.desk import agent_text
from handoff.reports import CSV_TABLES, MAX_DAYS, csv_rows

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
async def api_file(request: web.Request, agent: Agent) -> Any:
    """A picture or file for the customer: multipart with ``file`` and an optional ``caption``."""
    ctx = console_ctx(request)
    upload = await read_upload(request, ctx.settings.files.max_bytes)
    message = await ctx.desk.agent_file(
        _conversation_id(request),
        agent,
        upload.data,
        upload.filename,
        upload.fields.get("caption", ""),
    )
    return {"ok": True, "message": message.to_dict()}


@api
async def api_customer(request: web.Request, agent: Agent) -> Any:
    return await console_ctx(request).desk.customers.profile(request.match_info["customer_id"])


@api
async def api_link_identity(request: web.Request, agent: Agent) -> Any:
    """Link a channel of the same person (``{"channel", "channel_user_id"}``); audited."""
    body = await _json_body(request)
    return await console_ctx(request).desk.customers.link(
        agent, request.match_info["customer_id"], body.get("channel"), body.get("channel_user_id")
    )


@api
async def api_unlink_identity(request: web.Request, agent: Agent) -> Any:
    """Undo a wrong link: the identity gets a customer of its own again; audited."""
    body = await _json_body(request)
    return await console_ctx(request).desk.customers.unlink(
        agent, request.match_info["customer_id"], body.get("channel"), body.get("channel_user_id")
    )


@api
async def api_read(request: web.Request, agent: Agent) -> Any:
    """``{"seq": n}``: the agent has seen the conversation up to message n."""
    body = await _json_body(request)
    await console_ctx(request).desk.mark_read(_conversation_id(request), agent, body.get("seq"))
    return {"ok": True}


@api
async def api_unread(request: web.Request, agent: Agent) -> Any:
    """Unseen customer messages per conversation assigned to the signed-in agent."""
    return {"counts": await console_ctx(request).desk.unread(agent)}


@api
async def api_export_training(request: web.Request, agent: Agent) -> Any:
    """``?since=7d&part=nlu|stories``: the designers' export, as a YAML download."""
    name, text = await console_ctx(request).desk.export_training(
        agent, request.query.get("since", "7d"), request.query.get("part", "nlu")
    )
    return web.Response(
        text=text,
        content_type="application/x-yaml",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@api
async def api_acknowledge_alert(request: web.Request, agent: Agent) -> Any:
    try:
        alert_id = int(request.match_info["alert_id"])
    except ValueError:
        raise ApiError(404, "not_found", "No such alert.") from None
    return await console_ctx(request).desk.acknowledge_alert(agent, alert_id)


@api
async def api_typing(request: web.Request, agent: Agent) -> Any:
    await console_ctx(request).desk.agent_typing(_conversation_id(request), agent)
    return {"ok": True}


@api
async def api_note(request: web.Request, agent: Agent) -> Any:
    text = _text_field(request, await _json_body(request), "note")
    note = await console_ctx(request).desk.add_note(_conversation_id(request), agent, text)
    return {"ok": True, "note": note_dict(note)}


@api
async def api_transfer(request: web.Request, agent: Agent) -> Any:
    """To an agent (``agent_id``), to a team's queue (``team``) or back to the conversation's
    own team's queue (``queue: true``)."""
    body = await _json_body(request)
    desk = console_ctx(request).desk
    if "team" in body or body.get("queue") is True:
        team = body.get("team")
        if team is not None and (not isinstance(team, str) or not desk.knows_team(team)):
            raise ApiError(400, "unknown_team", f"There is no team {str(team)[:64]!r}.")
        await desk.transfer_to_team(_conversation_id(request), agent, team)
        return {"ok": True}
    to_agent_id = body.get("agent_id")
    if type(to_agent_id) is not int:
        raise ApiError(
            400,
            "missing_agent",
            "Choose the agent or the team to transfer the conversation to.",
        )
    # Agent ids are SQL integers: a larger number is no agent (and must not reach the database).
    if not 0 < to_agent_id < 2**31 or await desk.agent(to_agent_id) is None:
        raise ApiError(400, "unknown_agent", f"There is no agent with id {to_agent_id}.")
    await desk.transfer(_conversation_id(request), agent, to_agent_id)
    return {"ok": True}


def _day(request: web.Request, key: str, default: date) -> date:
    text = request.query.get(key)
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "bad_date", f"{key} must be a date like 2026-11-28.") from None


async def _dashboard_report(request: web.Request, agent: Agent) -> dict[str, Any]:
    if agent.role != "supervisor":
        raise ApiError(403, "forbidden", "Only supervisors can see the dashboard.")
    desk = console_ctx(request).desk
    today = datetime.now(UTC).date()
    last = _day(request, "to", today)
    first = _day(request, "from", last - timedelta(days=6))
    if first > last:
        raise ApiError(400, "bad_range", "The start date is after the end date.")
    if (last - first).days >= MAX_DAYS:
        raise ApiError(400, "bad_range", f"Choose at most {MAX_DAYS} days.")
    team = request.query.get("team") or None
    if team is not None and not desk.knows_team(team):
        raise ApiError(400, "unknown_team", f"There is no team {team[:64]!r}.")
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    return await desk.report(agent, start, end, team)


@api
async def api_dashboard(request: web.Request, agent: Agent) -> Any:
    """Supervisors: live tiles and the figures of ``from``..``to`` (days, inclusive, UTC) for
    one ``team`` or all."""
    return await _dashboard_report(request, agent)


@api
async def api_dashboard_csv(request: web.Request, agent: Agent) -> Any:
    """One table of the dashboard (``table``: daily, reasons, sla, ratings) as a CSV file."""
    table = request.query.get("table", "daily")
    if table not in CSV_TABLES:
        raise ApiError(400, "bad_table", f"table must be one of {', '.join(CSV_TABLES)}.")
    report = await _dashboard_report(request, agent)
    out = io.StringIO()
    csv.writer(out).writerows(csv_rows(report, table))
    name = f"dashboard-{table}-{report['from'][:10]}-{report['to'][:10]}"
    if report["team"]:
        name += f"-{report['team']}"
    return web.Response(
        text=out.getvalue(),
        content_type="text/csv",
        charset="utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


INBOX_PAGE = 25
STATES = ("bot", "queued", "assigned", "pending_followup", "resolved")


@api
async def api_inbox(request: web.Request, agent: Agent) -> Any:
    """Every conversation, newest activity first: ``q`` searched in messages and notes,
    filtered by ``state``, ``team``, ``channel``, ``agent`` (an id or "me"), ``rating``,
    ``reason``, ``from`` / ``to`` (days, UTC), one ``page`` of 25 at a time."""
    query = request.query
    desk = console_ctx(request).desk
    state = query.get("state") or None
    if state is not None and state not in STATES:
        raise ApiError(400, "bad_state", f"state must be one of {', '.join(STATES)}.")
    team = query.get("team") or None
    if team is not None and not desk.knows_team(team):
        raise ApiError(400, "unknown_team", f"There is no team {team[:64]!r}.")
    agent_id: int | None = None
    if query.get("agent"):
        text = query["agent"]
        if text == "me":
            agent_id = agent.id
        elif text.isdigit() and 0 < int(text) < 2**31:
            agent_id = int(text)
        else:
            raise ApiError(400, "bad_agent", "agent must be an agent's id or 'me'.")
    rating: int | None = None
    if query.get("rating"):
        if query["rating"] not in {"1", "2", "3", "4", "5"}:
            raise ApiError(400, "bad_rating", "rating must be a whole number from 1 to 5.")
        rating = int(query["rating"])
    page = query.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= 10_000:
        raise ApiError(400, "bad_page", "page must be a whole number from 1.")
    today = datetime.now(UTC).date()
    first = _day(request, "from", date.min) if query.get("from") else None
    last = _day(request, "to", today) if query.get("to") else None
    if first and last and first > last:
        raise ApiError(400, "bad_range", "The start date is after the end date.")
    text = query.get("q", "")
    if len(text) > 200:
        raise ApiError(400, "too_long", "Search for 200 characters at most.")
    where = InboxFilter(
        text=text or None,
        states=(state,) if state else (),
        team=team,
        channel=query.get("channel") or None,
        agent_id=agent_id,
        rating=rating,
        reason=query.get("reason") or None,
        since=datetime.combine(first, time(), UTC) if first else None,
        until=datetime.combine(last + timedelta(days=1), time(), UTC) if last else None,
    )
    items, more = await desk.inbox(where, INBOX_PAGE, (int(page) - 1) * INBOX_PAGE)
    return {"items": items, "page": int(page), "has_more": more}


@api
async def api_teams(request: web.Request, agent: Agent) -> Any:
    return console_ctx(request).desk.teams()


@api
async def api_availability(request: web.Request, agent: Agent) -> Any:
    """The agent's own switch: online, away or offline."""
    value = (await _json_body(request)).get("availability")
    updated = await console_ctx(request).desk.set_availability(agent, value)
    return {"ok": True, "availability": updated.availability}


def _names(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > 50
        or not all(isinstance(v, str) and 0 < len(v.strip()) <= 64 for v in value)
    ):
        raise ApiError(400, f"bad_{key}", f"{key} must be a list of short names.")
    return sorted({v.strip().lower() for v in value})


@api
async def api_update_agent(request: web.Request, agent: Agent) -> Any:
    """A supervisor sets an agent's teams, skills, languages or capacity."""
    if agent.role != "supervisor":
        raise ApiError(403, "forbidden", "Only supervisors can change agents.")
    try:
        agent_id = int(request.match_info["agent_id"])
    except ValueError:
        raise ApiError(404, "not_found", "There is no such agent.") from None
    body = await _json_body(request)
    changes: dict[str, Any] = {}
    for key in ("teams", "skills", "languages"):
        names = _names(body, key)
        if names is not None:
            changes[key] = names
    if "capacity" in body:
        capacity = body["capacity"]
        if type(capacity) is not int or not 0 <= capacity <= 100:
            raise ApiError(400, "bad_capacity", "capacity must be a whole number from 0 to 100.")
        changes["capacity"] = capacity
    if not changes:
        raise ApiError(400, "nothing_to_change", "Send teams, skills, languages or capacity.")
    desk = console_ctx(request).desk
    if not 0 < agent_id < 2**31 or await desk.agent(agent_id) is None:
        raise ApiError(404, "not_found", f"There is no agent with id {agent_id}.")
    updated = await desk.update_agent(agent, agent_id, **changes)
    return {"ok": True, "agent": {k: getattr(updated, k) for k in ("id", *changes)}}


@api
async def api_resolve(request: web.Request, agent: Agent) -> Any:
    """Optional body: the wrap-up, ``{"disposition", "bot_should_have_handled"}``."""
    body = await _json_body(request) if request.body_exists else {}
    await console_ctx(request).desk.resolve(
        _conversation_id(request),
        agent,
        body.get("disposition"),
        body.get("bot_should_have_handled", False),
    )
    return {"ok": True}
