"""The fallback ladder: what the bot does when it did not understand a message.

1. The first miss: when the two likeliest topics are close, it asks which one was meant, with
   a button for each (pressing one sends that intent); otherwise it asks to rephrase.
2. The second miss in a row: the topics it knows, as buttons.
3. The third: it says so and offers a person (the rule after ``fallback_repeated: true``).

The gateway's own policy (``handoff.consecutive_fallbacks`` in gateway.yml) hands off one miss
later, for a customer who ignores the offer and keeps going.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

# The topics offered after two misses in a row (intent -> button title).
TOPICS = {
    "order_status": "Track an order",
    "return_request": "Return something",
    "refund_status": "A refund",
    "warranty_check": "Warranty",
    "repair_booking": "Book a repair",
    "troubleshoot_sound": "Speaker sound problem",
    "troubleshoot_wifi": "Wi-Fi problem",
    "account_edit": "My account",
    "payment_methods": "Paying",
    "delivery_options": "Delivery options",
    "request_human": "Talk to a person",
}
# How each topic the bot may ask about is named in "Did you mean ...?".
TITLES = {
    **TOPICS,
    "delivery_problem": "A late or missing delivery",
    "cancel_order": "Cancel an order",
    "password_reset": "Reset my password",
    "business_hours": "Opening hours",
    "complaint": "Make a complaint",
    "account_create": "Create an account",
    "account_delete": "Delete my account",
    "account_switch": "Switch accounts",
    "invoice": "An invoice",
    "payment_problem": "A problem with a payment",
    "change_shipping_address": "Change the delivery address",
    "change_order": "Change an order",
    "product_info": "A product question",
    "cancellation_policy": "Cancellation rules and fees",
    "refund_policy": "Return and refund rules",
    "newsletter": "The newsletter",
    "feedback": "Give feedback or a review",
    "contact_info": "Contact details",
}
# "Close": the two likeliest topics are within this much confidence of each other, and the
# second is at least CLOSE_FLOOR likely.
CLOSE_GAP = 0.2
CLOSE_FLOOR = 0.15


def misses_in_a_row(tracker: Tracker) -> int:
    """How many of the customer's latest messages in a row the NLU did not understand."""
    count = 0
    for event in reversed(tracker.events):
        if event.get("event") != "user":
            continue
        if (event.get("parse_data") or {}).get("intent", {}).get("name") != "nlu_fallback":
            break
        count += 1
    return count


def close_candidates(message: dict[str, Any]) -> list[str]:
    """The two likeliest topics when they are close enough to ask which was meant, else []."""
    ranking = [
        r
        for r in message.get("intent_ranking") or []
        if r.get("name") != "nlu_fallback" and isinstance(r.get("confidence"), int | float)
    ]
    if len(ranking) < 2:
        return []
    first, second = ranking[0], ranking[1]
    if first["name"] not in TITLES or second["name"] not in TITLES:
        return []  # out of scope, or small talk, is one of the two: no topic to offer
    if second["confidence"] < CLOSE_FLOOR or first["confidence"] - second["confidence"] > CLOSE_GAP:
        return []
    return [first["name"], second["name"]]


def buttons(intents: list[str]) -> list[dict[str, str]]:
    return [{"title": TITLES[name], "payload": f"/{name}"} for name in intents]


class ActionFallback(Action):
    """The fallback ladder above; sets ``fallback_repeated`` on the third miss in a row."""

    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        misses = misses_in_a_row(tracker)
        if misses >= 3:
            dispatcher.utter_message(text="Sorry, I still didn't understand that.")
            return [SlotSet("fallback_repeated", True)]
        if misses == 2:
            dispatcher.utter_message(response="utter_which_topic", buttons=buttons(list(TOPICS)))
            return [SlotSet("fallback_repeated", False)]
        candidates = close_candidates(tracker.latest_message)
        if candidates:
            dispatcher.utter_message(
                text="Sorry, I'm not sure what you meant. Is it one of these?",
                buttons=buttons(candidates),
            )
        else:
            dispatcher.utter_message(response="utter_please_rephrase")
        return [SlotSet("fallback_repeated", False)]
