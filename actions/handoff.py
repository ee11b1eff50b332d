"""The handoff request: why, to which team, how urgent, and for which verified customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import backend
from actions.identity import verified_customer

HANDOFF_SIGNAL_VERSION = 1


def recent_intents(tracker: Tracker, n: int) -> list[str]:
    intents = [
        e.get("parse_data", {}).get("intent", {}).get("name")
        for e in tracker.events
        if e.get("event") == "user"
    ]
    return [i for i in intents if i][-n:]


def handoff_reason(tracker: Tracker) -> str:
    intent = (tracker.latest_message.get("intent") or {}).get("name")
    if intent == "complaint":
        return "complaint"
    if intent == "request_human":
        return "customer_request"
    if intent in NEEDS_THE_TEAM:
        return "needs_the_team"
    if tracker.get_slot("troubleshoot_exhausted"):
        return "troubleshooting_failed"
    if "nlu_fallback" in recent_intents(tracker, 3):
        return "bot_did_not_understand"
    return "customer_accepted_offer"


REASON_TEXT = {
    "complaint": "Customer made a complaint",
    "customer_request": "Customer asked for a person",
    "troubleshooting_failed": "Guided troubleshooting did not fix the problem",
    "bot_did_not_understand": "The bot did not understand the customer several times in a row",
    "needs_the_team": "The customer needs something only the team can do (a payment problem)",
    "customer_accepted_offer": "Customer accepted the offer of a person",
    "verification_failed": "The customer could not prove an order or device is theirs",
}
TEAM_BY_TOPIC = {"sound": "tech_support", "wifi": "tech_support"}
# Requests the bot answers but cannot carry out, handed straight to the team.
NEEDS_THE_TEAM = frozenset({"payment_problem"})
# Requests about an order or its payment that the bot offers the orders team for.
ORDER_TEAM_INTENTS = frozenset(
    {"invoice", "payment_problem", "change_shipping_address", "change_order"}
)


def handoff_signal(tracker: Tracker, reason: str) -> dict[str, Any]:
    """The handoff signal ("The handoff signal" in docs/bot-design.md). Priority and the
    customer's facts come from the verified customer only: naming someone else's order number
    changes nothing."""
    topic = tracker.get_slot("troubleshoot_topic")
    order_number = tracker.get_slot("order_number")
    verified = verified_customer(tracker)
    customer = backend.get_customer(verified) if verified is not None else None
    vip = bool(customer and customer.vip)
    priority = "high" if reason == "complaint" or vip else "normal"
    if ORDER_TEAM_INTENTS & set(recent_intents(tracker, 2)):
        # An invoice or a payment, even for a named product, is the orders team's ("charged
        # twice for my Aurora Speaker"); 2: the request, then the "yes" to the offer.
        team = "orders"
    elif tracker.get_slot("serial_number") or tracker.get_slot("product") or topic:
        team = TEAM_BY_TOPIC.get(topic or "", "tech_support")
    elif order_number or tracker.get_slot("order_request"):
        team = "orders"
    else:
        team = "general"
    signal: dict[str, Any] = {
        "version": HANDOFF_SIGNAL_VERSION,
        "reason": reason,
        "reason_text": REASON_TEXT[reason],
        "priority": priority,
        "team": team,
        "topic": topic,
        "steps_tried": list(tracker.get_slot("steps_tried") or []),
        "facts": {
            k: tracker.get_slot(k)
            for k in ("order_number", "product", "serial_number")
            if tracker.get_slot(k)
        },
        "requested_at": datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    if customer is not None:
        signal["customer"] = {"id": str(customer.id), "name": customer.name, "vip": customer.vip}
    return signal


def request_handoff(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: str
) -> list[EventType]:
    dispatcher.utter_message(
        text="I'm connecting you with a member of our support team. They'll see our whole "
        "conversation and what we've already tried, so you won't need to repeat anything.",
        json_message={"handoff": handoff_signal(tracker, reason)},
    )
    return [SlotSet("handoff_reason", reason)]


class ActionRequestHandoff(Action):
    """Asks the gateway to move the conversation to a person.

    The signal is a custom payload ``{"handoff": {...}}`` ("The handoff signal" in
    docs/bot-design.md). The gateway pauses the bot, builds the handoff packet from the tracker
    and queues the conversation.
    """

    def name(self) -> str:
        return "action_request_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        return request_handoff(dispatcher, tracker, handoff_reason(tracker))


def owned(tracker: Tracker, owner: int) -> bool:
    return verified_customer(tracker) == owner


def hand_over_unverified(
    dispatcher: CollectingDispatcher, tracker: Tracker, thing: str
) -> list[EventType]:
    """The customer could not prove the order or device is theirs: say so, share nothing, and
    pass the conversation to a person who can check their identity another way."""
    dispatcher.utter_message(
        text=f"I couldn't confirm that this {thing} is yours, so I can't share or change its "
        "details here. I'm passing you to a colleague who can check your identity another way."
    )
    return request_handoff(dispatcher, tracker, "verification_failed")
