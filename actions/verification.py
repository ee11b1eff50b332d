"""The second factor inside a form: asked only until the customer is verified.

Mixed into the form validation actions of the order, warranty and repair forms (a mixin, not an
``Action``, so rasa-sdk does not register it as an action of its own).
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import backend, identity
from actions.identity import ANSWER_SLOT, ATTEMPTS_SLOT, VERIFIED_SLOT, verified_customer


def slot_before_this_turn(tracker: Tracker, name: str) -> Any:
    """The slot's value before the latest customer message (its SlotSets undone)."""
    value = before = None
    for event in tracker.events:
        if event.get("event") == "user":
            before = value
        elif event.get("event") == "slot" and event.get("name") == name:
            value = event.get("value")
    return before


def _first_name(customer: backend.Customer) -> str:
    return customer.name.split()[0]


class VerifiesOwner:
    """A form about one order or device that asks for the owner's second factor.

    ``verification_answer`` is required only while the customer is not verified and has
    attempts left. A right answer sets the signed ``verified_customer`` slot and tells the
    gateway (the ``identity`` payload); the answer itself is never kept in a slot.
    """

    subject_slot = ""
    thing = ""

    def owner_of(self, subject: Any) -> int | None:
        raise NotImplementedError

    async def required_slots(
        self,
        domain_slots: list[str],
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[str]:
        slots = [s for s in domain_slots if s != ANSWER_SLOT]
        if verified_customer(tracker) is None and not identity.locked_out(tracker):
            slots.append(ANSWER_SLOT)
        return slots

    def answering(self, tracker: Tracker) -> bool:
        return bool(tracker.get_slot("requested_slot") == ANSWER_SLOT)

    def kept(self, tracker: Tracker, slot: str = "") -> dict[str, Any] | None:
        """While the customer answers the second factor (a postcode like 10115 looks like an
        order number), ``slot`` (default: the order or device asked about) keeps its value
        from before this message; None when they are not answering it."""
        if not self.answering(tracker):
            return None
        slot = slot or self.subject_slot
        return {slot: slot_before_this_turn(tracker, slot)}

    def subject(self, tracker: Tracker) -> Any:
        """The order number or serial number the second factor is for."""
        kept = self.kept(tracker)
        return kept[self.subject_slot] if kept is not None else tracker.get_slot(self.subject_slot)

    def validate_verification_answer(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        subject = self.subject(tracker)
        owner = self.owner_of(subject) if subject else None
        if owner is None:
            return {ANSWER_SLOT: None}
        result = backend.check_second_factor(owner, str(value or ""))
        if result == "ok":
            customer = backend.get_customer(owner)
            assert customer is not None
            dispatcher.utter_message(
                text=f"Thanks, {_first_name(customer)}, that matches our records.",
                json_message={
                    identity.IDENTITY_PAYLOAD: {
                        "customer_id": str(customer.id),
                        "name": customer.name,
                        "vip": customer.vip,
                        "method": "second_factor",
                    }
                },
            )
            return {
                ANSWER_SLOT: None,
                VERIFIED_SLOT: identity.sign(tracker.sender_id, owner),
            }
        tried = identity.attempts(tracker) + 1
        left = identity.MAX_ATTEMPTS - tried
        if result == "postcode_locked" and left > 0:
            dispatcher.utter_message(
                text=f"I can't check a postcode for this {self.thing} online right now. Please "
                "give the e-mail address on your account instead."
            )
        elif left > 0:
            dispatcher.utter_message(
                text=f"That doesn't match the e-mail address or postcode we have for this "
                f"{self.thing}. Please check it and try again ({left} "
                f"{'try' if left == 1 else 'tries'} left)."
            )
        else:
            dispatcher.utter_message(text="That doesn't match our records either.")
        return {ANSWER_SLOT: None, ATTEMPTS_SLOT: float(tried)}
