"""Custom actions: order questions, warranty, repairs, troubleshooting and the handoff request."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import backend
from actions.fallback import ActionFallback
from actions.handoff import (
    ActionRequestHandoff,
    hand_over_unverified,
    owned,
)
from actions.identity import verified_customer
from actions.troubleshooting import STEPS, TOPIC_BY_INTENT, next_step
from actions.verification import VerifiesOwner

ORDER_NUMBER_RE = re.compile(r"\d{4,6}")
SERIAL_RE = re.compile(r"(?:SN)?\s*-?\s*(\d{6})", re.IGNORECASE)


def _fmt(d: date | None) -> str:
    return d.strftime("%a %-d %b") if d else "unknown"


def _money(amount: float | None) -> str:
    return f"${amount:,.2f}" if amount is not None else "the full amount"


# --- orders ---------------------------------------------------------------------------


def order_not_found(number: Any, verified: int | None) -> str:
    """The same words whether the order does not exist or is someone else's."""
    if verified is not None:
        return f"I couldn't find order {number} on your account."
    return f"I couldn't find an order with the number {number}."


class ValidateOrderNumberForm(VerifiesOwner, FormValidationAction):
    subject_slot = "order_number"
    thing = "order"

    def name(self) -> str:
        return "validate_order_number_form"

    def owner_of(self, subject: Any) -> int | None:
        order = backend.get_order(str(subject))
        return order.customer_id if order else None

    def validate_order_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        kept = self.kept(tracker)
        if kept is not None:
            return kept
        match = ORDER_NUMBER_RE.search(str(value or ""))
        if not match:
            dispatcher.utter_message(
                text=f"\"{str(value)[:40]}\" doesn't look like an order number. It's the 4-digit "
                "number in your order confirmation e-mail, for example 1001."
            )
            return {"order_number": None}
        number = match.group(0)
        order = backend.get_order(number)
        verified = verified_customer(tracker)
        if order is None or (verified is not None and order.customer_id != verified):
            dispatcher.utter_message(
                text=f"{order_not_found(number, verified)} Please check the number in your "
                'confirmation e-mail, or say "agent" and a colleague will look it up.'
            )
            return {"order_number": None}
        return {"order_number": number}


def describe_status(order: backend.Order, today: date) -> str:
    what = f"Order {order.number} ({order.item_summary})"
    if order.status == "processing":
        return (
            f"{what} was placed on {_fmt(order.placed_on)} and is being packed. It should "
            f"arrive by {_fmt(order.expected_on)}."
        )
    if order.status in ("shipped", "out_for_delivery"):
        late = order.expected_on is not None and order.expected_on < today
        where = (
            "is out for delivery today"
            if order.status == "out_for_delivery"
            else f"shipped on {_fmt(order.shipped_on)}"
        )
        text = f"{what} {where} with {order.carrier}, tracking number {order.tracking}. "
        if late:
            return text + (
                f"It was due on {_fmt(order.expected_on)}, so it's running late, "
                "I'm sorry. If it hasn't arrived in two days, we'll send a replacement."
            )
        return text + f"Expected delivery: {_fmt(order.expected_on)}."
    if order.status == "delivered":
        return f"{what} was delivered on {_fmt(order.delivered_on)} by {order.carrier}."
    if order.status == "returned":
        return f"{what} was returned to us ({order.return_code})."
    if order.status == "cancelled":
        return f"{what} was cancelled."
    return f'{what} has the status "{order.status}".'


def describe_delivery_problem(order: backend.Order, today: date) -> str:
    if order.status == "delivered":
        return (
            f"Our records show order {order.number} was delivered on "
            f"{_fmt(order.delivered_on)} by {order.carrier} (tracking {order.tracking}). "
            "Please check with neighbours and around your door. If it's missing or arrived "
            'damaged, say "agent" and a colleague will open a claim with the carrier.'
        )
    if order.status in ("shipped", "out_for_delivery"):
        return describe_status(order, today)
    if order.status == "processing":
        return (
            f"Order {order.number} hasn't shipped yet, so nothing has gone wrong in transit. "
            f"It should arrive by {_fmt(order.expected_on)}."
        )
    return describe_status(order, today)


def handle_cancel(order: backend.Order, today: date) -> str:
    if order.status == "processing":
        backend.cancel_order(order.number, today)
        return (
            f"Done: order {order.number} ({order.item_summary}) is cancelled. Your refund of "
            f"{_money(order.total)} will reach your original payment method within 5 "
            "business days."
        )
    if order.status in ("shipped", "out_for_delivery"):
        return (
            f"Order {order.number} has already shipped, so I can't cancel it any more. Once "
            f"it arrives you can return it free of charge within {backend.RETURN_WINDOW_DAYS} "
            "days: just ask me to start a return."
        )
    if order.status == "cancelled":
        return f"Order {order.number} is already cancelled."
    return (
        f"Order {order.number} was already delivered, so it can't be cancelled, but you can "
        "return it: just ask me to start a return."
    )


def handle_return(order: backend.Order, today: date) -> str:
    if order.status != "delivered" or order.delivered_on is None:
        if order.status == "returned":
            return f"Order {order.number} has already been returned ({order.return_code})."
        return (
            f"Order {order.number} hasn't been delivered yet ({order.status.replace('_', ' ')}). "
            "Once it arrives you can return it within 30 days."
        )
    days = (today - order.delivered_on).days
    if days > backend.RETURN_WINDOW_DAYS:
        return (
            f"Order {order.number} was delivered {days} days ago, so the "
            f"{backend.RETURN_WINDOW_DAYS}-day return window has closed. If the product is "
            "faulty, it's still covered by warranty: I can book a repair for you."
        )
    code = backend.start_return(order.number)
    return (
        f"Your return for order {order.number} ({order.item_summary}) is open: return code "
        f"{code}. Print the free label from brightline.example/returns/{code} and drop the "
        "parcel at any DHL point. Your refund starts as soon as we receive it."
    )


def handle_refund(order: backend.Order, today: date) -> str:
    if order.refund_status == "refunded":
        return (
            f"The refund of {_money(order.refund_amount)} for order {order.number} was issued "
            f"on {_fmt(order.refunded_on)}. Banks can take up to 5 business days to show it."
        )
    if order.refund_status == "processing":
        return (
            f"The refund of {_money(order.refund_amount)} for order {order.number} has been "
            f"processing since {_fmt(order.refund_started_on)}. It usually completes within 5 to "
            "7 business days."
        )
    return (
        f"There's no refund on order {order.number} yet. Refunds start when an order is "
        "cancelled or a return reaches us. Would you like to start a return?"
    )


ORDER_HANDLERS = {
    "status": describe_status,
    "delivery": describe_delivery_problem,
    "cancel": handle_cancel,
    "return": handle_return,
    "refund": handle_refund,
}


class ActionHandleOrderRequest(Action):
    """Answers the order question that started the order form, from the backend, for an order
    of the verified customer only."""

    def name(self) -> str:
        return "action_handle_order_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        number = tracker.get_slot("order_number")
        order = backend.get_order(str(number)) if number else None
        verified = verified_customer(tracker)
        if order is None or (verified is not None and order.customer_id != verified):
            dispatcher.utter_message(
                text=f"{order_not_found(number, verified)} Please check it in your confirmation "
                "e-mail."
            )
            return [SlotSet("order_number", None)]
        if verified is None:
            return hand_over_unverified(dispatcher, tracker, "order")
        kind = tracker.get_slot("order_request") or "status"
        dispatcher.utter_message(text=ORDER_HANDLERS[kind](order, date.today()))
        return []


# --- devices: warranty and repairs --------------------------------------------------------


def normalise_serial(value: Any) -> str | None:
    match = SERIAL_RE.search(str(value or ""))
    return f"SN{match.group(1)}" if match else None


def match_product(value: Any) -> str | None:
    """The catalogue name the customer meant: exact, then a unique partial match."""
    text = " ".join(str(value or "").lower().split())
    if not text:
        return None
    names = backend.product_names()
    for name in names:
        if name.lower() == text or name.lower() in text:
            return name
    partial = [n for n in names if any(word in n.lower().split() for word in text.split())]
    return partial[0] if len(partial) == 1 else None


def device_not_found(serial: str, on_account: bool) -> str:
    """The same words whether the device is not registered or is someone else's."""
    where = " on your account" if on_account else ""
    return (
        f"I couldn't find a registered device with the serial number {serial}{where}. Please "
        "check the label underneath the device (SN followed by 6 digits)."
    )


def validate_serial(
    value: Any, dispatcher: CollectingDispatcher, on_account: bool = False
) -> backend.Device | None:
    serial = normalise_serial(value)
    if serial is None:
        dispatcher.utter_message(
            text=f"\"{str(value)[:40]}\" doesn't look like a serial number. It's on the label "
            "underneath the device: SN followed by 6 digits, for example SN100234."
        )
        return None
    device = backend.get_device(serial)
    if device is None:
        dispatcher.utter_message(text=device_not_found(serial, on_account))
    return device


def _device_owner(subject: Any) -> int | None:
    device = backend.get_device(str(subject))
    return device.customer_id if device else None


def _validate_owned_serial(
    value: Any, dispatcher: CollectingDispatcher, tracker: Tracker
) -> backend.Device | None:
    verified = verified_customer(tracker)
    device = validate_serial(value, dispatcher, on_account=verified is not None)
    if device is not None and verified is not None and device.customer_id != verified:
        dispatcher.utter_message(text=device_not_found(device.serial, on_account=True))
        return None
    return device


class ValidateWarrantyForm(VerifiesOwner, FormValidationAction):
    subject_slot = "serial_number"
    thing = "device"

    def name(self) -> str:
        return "validate_warranty_form"

    def owner_of(self, subject: Any) -> int | None:
        return _device_owner(subject)

    def validate_serial_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        kept = self.kept(tracker)
        if kept is not None:
            return kept
        device = _validate_owned_serial(value, dispatcher, tracker)
        return {"serial_number": device.serial if device else None}


class ValidateRepairForm(VerifiesOwner, FormValidationAction):
    subject_slot = "serial_number"
    thing = "device"

    def name(self) -> str:
        return "validate_repair_form"

    def owner_of(self, subject: Any) -> int | None:
        return _device_owner(subject)

    def validate_product(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        kept = self.kept(tracker, "product")
        if kept is not None:
            return kept
        name = match_product(value)
        if name is None:
            dispatcher.utter_message(
                text=f'I don\'t know a Brightline product called "{str(value)[:40]}". Our '
                f"products are: {', '.join(backend.product_names())}."
            )
        return {"product": name}

    def validate_serial_number(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        kept = self.kept(tracker)
        if kept is not None:
            return kept
        device = _validate_owned_serial(value, dispatcher, tracker)
        if device is None:
            return {"serial_number": None}
        product = tracker.get_slot("product")
        if product and device.product != product:
            # Not which product it is: the customer has not proved the device is theirs yet.
            dispatcher.utter_message(
                text=f"The serial number {device.serial} doesn't belong to a {product}. Please "
                f"check the label on your {product}."
            )
            return {"serial_number": None}
        return {"serial_number": device.serial}


class ActionCheckWarranty(Action):
    def name(self) -> str:
        return "action_check_warranty"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        device = backend.get_device(str(tracker.get_slot("serial_number")))
        if device is None:
            dispatcher.utter_message(text="I couldn't find that device any more, sorry.")
            return [SlotSet("serial_number", None)]
        if not owned(tracker, device.customer_id):
            return hand_over_unverified(dispatcher, tracker, "device")
        if device.under_warranty():
            text = (
                f"Good news: your {device.product} ({device.serial}) is under warranty until "
                f"{device.warranty_until.isoformat()}. Repairs are free; just ask me to book one."
            )
        else:
            text = (
                f"The warranty of your {device.product} ({device.serial}) ended on "
                f"{device.warranty_until.isoformat()}. We can still repair it: out-of-warranty "
                "repairs start at $49 and you get a quote before we do any work."
            )
        dispatcher.utter_message(text=text)
        return [SlotSet("product", device.product)]


class ActionBookRepair(Action):
    def name(self) -> str:
        return "action_book_repair"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        serial = str(tracker.get_slot("serial_number"))
        device = backend.get_device(serial)
        if device is not None and not owned(tracker, device.customer_id):
            return hand_over_unverified(dispatcher, tracker, "device")
        try:
            reference, pickup, covered = backend.book_repair(serial)
        except ValueError:
            dispatcher.utter_message(text=f"I couldn't book a repair for {serial}, sorry.")
            return [SlotSet("serial_number", None)]
        cost = (
            "It's under warranty, so the repair is free."
            if covered
            else "It's out of warranty: we'll send you a quote (from $49) before any work starts."
        )
        dispatcher.utter_message(
            text=f"Booked! Repair {reference} for your {tracker.get_slot('product')} ({serial}). "
            f"A courier will collect it on {_fmt(pickup)} between 9:00 and 17:00. {cost}"
        )
        return []


# --- troubleshooting ----------------------------------------------------------------------


class ActionTroubleshoot(Action):
    """Suggests the next troubleshooting step the customer hasn't tried yet."""

    def name(self) -> str:
        return "action_troubleshoot"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        intent = (tracker.latest_message.get("intent") or {}).get("name")
        topic = (
            TOPIC_BY_INTENT.get(intent or "") or tracker.get_slot("troubleshoot_topic") or "sound"
        )
        tried = list(tracker.get_slot("steps_tried") or [])
        step = next_step(topic, tried)
        if step is None:
            dispatcher.utter_message(
                text=f"We've been through all {len(STEPS[topic])} steps I know for this, and it "
                "still isn't right."
            )
            return [SlotSet("troubleshoot_topic", topic), SlotSet("troubleshoot_exhausted", True)]
        dispatcher.utter_message(text=step.text)
        dispatcher.utter_message(response="utter_did_that_help")
        return [
            SlotSet("troubleshoot_topic", topic),
            SlotSet("steps_tried", [*tried, step.label]),
            SlotSet("troubleshoot_exhausted", False),
        ]


class ActionBusinessHours(Action):
    """Opening hours and whether a person is there now, from the gateway's schedule (the
    ``support_hours`` metadata of the message; ``hours:`` in gateway.yml), never a copy here."""

    def name(self) -> str:
        return "action_business_hours"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        dispatcher.utter_message(text=business_hours_text(support_hours(tracker)))
        return []


def support_hours(tracker: Tracker) -> dict[str, Any] | None:
    metadata = (tracker.latest_message or {}).get("metadata") or {}
    hours = metadata.get("support_hours") if isinstance(metadata, dict) else None
    return hours if isinstance(hours, dict) else None


def business_hours_text(hours: dict[str, Any] | None) -> str:
    if hours is None:  # talking to Rasa without the gateway (rasa shell): no schedule to read
        return (
            "I can't see our team's schedule from here. If you ask for a person, someone will "
            "reply as soon as they're available. I'm here around the clock."
        )
    if hours.get("always_open"):
        return "Our support team is available around the clock, and so am I."
    schedule = f"Our support team works {hours.get('schedule')} ({hours.get('timezone')} time)."
    if hours.get("open_now"):
        state = "They're available right now."
    elif hours.get("opens"):
        state = (
            f"They're offline right now and open again {hours['opens']}; if you ask for a "
            "person, they'll reply then."
        )
    else:
        state = (
            "They're offline right now; if you ask for a person, they'll reply when they're back."
        )
    return f"{schedule} {state} I'm here around the clock."


# Re-exported: the handoff action lives in actions/handoff.py, the fallback in actions/fallback.py.
__all__ = ["ActionFallback", "ActionRequestHandoff"]
