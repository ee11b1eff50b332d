"""The server-rendered page shells (queue, team, conversation) that static/console JS fills."""

from __future__ import annotations

from aiohttp import web

from bot.core.errors import NotFound
from bot.core.models import Agent
from handoff.auth import (
    Session,
)
from handoff.console.http import console_ctx, page, render

# --- pages -----------------------------------------------------------------------------------


@page
async def queue_page(request: web.Request, agent: Agent, session: Session) -> web.StreamResponse:
    return render(request, "queue.html", agent=agent, csrf_token=session.csrf, page="queue")


@page
async def inbox_page(request: web.Request, agent: Agent, session: Session) -> web.StreamResponse:
    """Every conversation, past ones too: search and filters."""
    return render(request, "inbox.html", agent=agent, csrf_token=session.csrf, page="inbox")


@page
async def team_page(request: web.Request, agent: Agent, session: Session) -> web.StreamResponse:
    """Who is in which team, with what skills, languages and capacity; supervisors edit it."""
    return render(request, "team.html", agent=agent, csrf_token=session.csrf, page="team")


@page
async def customer_page(request: web.Request, agent: Agent, session: Session) -> web.StreamResponse:
    """One customer across channels: conversations, ratings, notes, the shop's records."""
    return render(
        request,
        "customer.html",
        agent=agent,
        csrf_token=session.csrf,
        page="customer",
        customer_id=request.match_info["customer_id"],
    )


@page
async def canned_page(request: web.Request, agent: Agent, session: Session) -> web.StreamResponse:
    """The agent's canned replies (their own, their teams'); supervisors manage teams' ones."""
    return render(
        request,
        "canned.html",
        agent=agent,
        csrf_token=session.csrf,
        page="canned",
        teams=console_ctx(request).settings.queue.teams,
    )


@page
async def dashboard_page(
    request: web.Request, agent: Agent, session: Session
) -> web.StreamResponse:
    """Supervisors: the service's figures (the page shows a notice to anyone else)."""
    return render(request, "dashboard.html", agent=agent, csrf_token=session.csrf, page="dashboard")


@page
async def conversation_page(
    request: web.Request, agent: Agent, session: Session
) -> web.StreamResponse:
    conversation_id = request.match_info["conversation_id"]
    try:
        view = await console_ctx(request).desk.conversation_view(conversation_id)
    except NotFound:
        view = None
    return render(
        request,
        "conversation.html",
        status=200 if view is not None else 404,
        agent=agent,
        csrf_token=session.csrf,
        page="conversation",
        conversation_id=conversation_id,
        initial_view=view,
        max_message_chars=console_ctx(request).settings.limits.max_message_chars,
    )
