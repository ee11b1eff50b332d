"""The dashboard's formulas on hand-built conversation records, on SQLite and PostgreSQL:
containment, handoffs by reason, queue wait, first response and handle time, CSAT, SLA
attainment, the customer-repeated rate, the window and the team filter."""

from __future__ import annotations

from datetime import timedelta

from bot.core.clock import utcnow
from bot.core.models import Handoff
from bot.store import Store
from handoff.reports import daily, figures, percentile
from tests.bot.store.helpers import new_conversation, say


async def handed_off(
    store: Store,
    user: str,
    team: str,
    *,
    reason: str = "explicit_request",
    facts: dict[str, str] | None = None,
    wait: float | None = None,
    first_reply: float | None = None,
    handle: float | None = None,
    rating: int | None = None,
) -> Handoff:
    conversation = await new_conversation(store, user)
    await say(store, conversation.id, "hello")
    handoff = await store.create_handoff(
        conversation.id, {"facts": facts or {}}, reason, team, "normal"
    )
    at = handoff.requested_at
    changes = {}
    if wait is not None:
        changes["assigned_at"] = at + timedelta(seconds=wait)
    if first_reply is not None:
        changes["first_agent_reply_at"] = at + timedelta(seconds=first_reply)
    if handle is not None and wait is not None:
        changes["resolved_at"] = at + timedelta(seconds=wait + handle)
    if changes:
        await store.update_handoff(handoff.id, **changes)
    if rating is not None:
        await store.add_csat(conversation.id, handoff.id, rating)
    return handoff


async def test_each_figure_on_hand_built_records(store: Store) -> None:
    # Two conversations the bot finished alone, one without any customer message (not counted).
    for user in ("bot-1", "bot-2"):
        conversation = await new_conversation(store, user)
        await say(store, conversation.id, "where is my order?")
    await new_conversation(store, "silent")
    first = await handed_off(
        store,
        "h1",
        "general",
        wait=60,
        first_reply=90,
        handle=300,
        rating=5,
        facts={"order_number": "1001"},
    )
    await handed_off(
        store, "h2", "general", reason="complaint", wait=120, first_reply=200, handle=500, rating=3
    )
    third = await handed_off(
        store, "h3", "orders", wait=600, first_reply=660, facts={"serial_number": "SN9"}
    )
    # Maya restates her order number to the person; the other customer with a fact does not.
    h1, h3 = first, third
    await say(store, h1.conversation_id, "it's order 1001, as I said")
    await say(store, h3.conversation_id, "any news?")
    # SLA clocks of the general team: one met, one missed, one running.
    now = utcnow()
    for kind, stop, breach in (
        ("first_response", True, False),
        ("resolution", False, True),
        ("next_response", False, False),
    ):
        clock = await store.start_clock(
            h1.conversation_id, first.id, kind, "general", now, now, now + timedelta(minutes=5)
        )
        if stop:
            await store.stop_clocks(first.id, [kind], now)
        if breach:
            assert await store.mark_clock(clock, breached_at=now, next_check_at=None)

    window = (now - timedelta(days=1), now + timedelta(days=1))
    report = figures(await store.raw_report(*window, None))
    assert (report["conversations"], report["contained"]) == (5, 2)
    assert report["containment"] == 0.4
    assert report["handoffs"] == 3 and report["handoff_rate"] == 0.6
    assert report["handoffs_by_reason"] == {"explicit_request": 2, "complaint": 1}
    assert report["queue_wait_seconds"] == {"p50": 120.0, "p90": 600.0, "count": 3}
    assert report["first_response_seconds"] == {"p50": 200.0, "p90": 660.0, "count": 3}
    assert report["average_handle_seconds"] == 400.0
    assert report["resolved"] == 2
    assert report["csat"] == {
        "average": 4.0,
        "distribution": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1},
        "ratings": 2,
        "response_rate": 1.0,
    }
    assert report["sla"]["general"]["first_response"] == {
        "met": 1,
        "missed": 0,
        "running": 0,
        "attainment": 1.0,
    }
    assert report["sla"]["general"]["resolution"]["attainment"] == 0.0
    assert report["sla"]["general"]["next_response"]["running"] == 1
    assert report["customer_repeated"] == {"checked": 2, "repeated": 1, "rate": 0.5}

    orders = figures(await store.raw_report(*window, "orders"))
    assert orders["handoffs"] == 1 and orders["csat"]["average"] is None
    assert orders["csat"]["response_rate"] == 0.0 or orders["resolved"] == 0
    assert orders["sla"] == {}
    # Containment is the bot's: the same for every team.
    assert orders["containment"] == 0.4

    raw = await store.raw_report(*window, None)
    days = daily(raw, *window)
    assert [d["day"] for d in days] == [
        (window[0] + timedelta(days=n)).date().isoformat() for n in range(len(days))
    ]
    today = next(d for d in days if d["day"] == now.date().isoformat())
    assert (today["conversations"], today["handoffs"], today["containment"]) == (5, 3, 0.4)
    assert today["first_response_average_seconds"] == round((90 + 200 + 660) / 3, 1)
    assert (today["csat_average"], today["ratings"]) == (4.0, 2)
    assert today["sla_attainment"] == 0.5  # one met, one missed
    assert all(d["conversations"] == 0 for d in days if d is not today)

    later = figures(await store.raw_report(now + timedelta(days=1), now + timedelta(days=2), None))
    assert later["conversations"] == 0 and later["containment"] is None
    assert later["queue_wait_seconds"]["p50"] is None


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([10.0], 0.9) == 10.0
    values = [float(v) for v in range(1, 11)]
    assert (percentile(values, 0.5), percentile(values, 0.9)) == (5.0, 9.0)


async def second_channel(store: Store, customer_id: str, user: str) -> str:
    """A new conversation of the same customer, on Telegram (a customer comes back)."""
    await store.link_identity(customer_id, "telegram", user)
    conversation = await new_conversation(store, user, channel="telegram")
    assert conversation.customer_id == customer_id
    await say(store, conversation.id, "me again")
    return conversation.id


async def test_returns_intents_wrapup_and_nlu_on_hand_built_records(store: Store) -> None:
    start = utcnow() - timedelta(hours=1)
    # Ann: helped by a person (resolved), but back for a person the same day: not first-contact.
    ann = await handed_off(store, "ann", "general", wait=0, handle=0)
    ann_conversation = await store.conversation(ann.conversation_id)
    assert ann_conversation is not None
    again = await second_channel(store, ann_conversation.customer_id, "ann-tg")
    await store.create_handoff(again, {}, "explicit_request", "general", "normal")
    # Ben: resolved, and never came back: resolved at first contact.
    ben = await handed_off(store, "ben", "orders", wait=0, handle=0)
    # Cy: the bot finished it alone, then Cy asked for a person: contained, not durably.
    cy = await new_conversation(store, "cy")
    asked = await say(store, cy.id, "where is order 1001")
    await store.set_message_nlu(asked.id, "order_status", 0.42)
    cy_again = await second_channel(store, cy.customer_id, "cy-tg")
    await store.create_handoff(cy_again, {}, "complaint", "general", "normal", intent="complaint")
    # Dee: the bot finished it alone, for good.
    dee = await new_conversation(store, "dee")
    for text, intent, confidence in (
        ("my speaker crackles", "troubleshoot_sound", 0.91),
        ("asdf qwer", "nlu_fallback", 0.3),
        ("thanks", "thanks", 0.99),
    ):
        said = await say(store, dee.id, text)
        await store.set_message_nlu(said.id, intent, confidence)
    # The wrap-up of the two resolved handoffs, and the bot's topic of one.
    await store.update_handoff(ann.id, disposition="order_status", bot_should_have_handled=True)
    await store.update_handoff(ben.id, disposition="return_refund", bot_should_have_handled=False)

    later = utcnow() + timedelta(days=10)  # every return window is over
    raw = await store.raw_report(start, later, None, now=later)
    result = figures(raw)
    assert result["first_contact_resolution"] == {
        "checked": 2,
        "resolved": 1,
        "pending": 0,
        "rate": 0.5,
    }
    # Contained: Cy's and Dee's first conversations (Ann's second one was handed off too).
    assert result["durable_containment"] == {"checked": 2, "durable": 1, "pending": 0, "rate": 0.5}
    assert result["handoffs_by_intent"] == {"(none understood)": 3, "complaint": 1}
    assert result["dispositions"] == {"order_status": 1, "return_refund": 1}
    assert result["bot_should_have_handled"] == 1
    assert result["bot"]["messages"] == 4 and result["bot"]["fallbacks"] == 1
    assert result["bot"]["fallback_rate"] == 0.25
    assert [row["intent"] for row in result["bot"]["lowest_confidence"]] == [
        "order_status",
        "troubleshoot_sound",
        "thanks",
    ]
    assert result["bot"]["lowest_confidence"][0] == {
        "intent": "order_status",
        "messages": 1,
        "low_confidence": 1,
        "average_confidence": 0.42,
    }

    # Right after: every window is still open, so nothing is judged yet.
    soon = figures(await store.raw_report(start, later, None, now=utcnow()))
    assert soon["first_contact_resolution"]["pending"] == 2
    assert soon["first_contact_resolution"]["rate"] is None
    assert soon["durable_containment"] == {"checked": 0, "durable": 0, "pending": 2, "rate": None}
    # A window of a microsecond: Ann and Cy came back after it, so both count as helped.
    tight = figures(
        await store.raw_report(
            start, later, None, now=later, return_window=timedelta(microseconds=1)
        )
    )
    assert tight["first_contact_resolution"]["resolved"] == 2
    assert tight["durable_containment"]["durable"] == 2
    # One team: only its handoffs.
    orders = figures(await store.raw_report(start, later, "orders", now=later))
    assert orders["first_contact_resolution"]["checked"] == 1
    assert orders["dispositions"] == {"return_refund": 1}
