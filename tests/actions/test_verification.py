"""Customer verification in the actions, against the real seeded SQLite demo backend.

Orders 1002 and 1006 and devices SN482910 and SN300117 belong to Jonas (customer 2, VIP,
jonas.weber@example.com, postcode 10115); order 1004 to Liam (customer 4, postcode D02 X285).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import actions, backend, identity
from tests.actions.conftest import make_tracker, run_action


def texts(messages: list[dict[str, Any]]) -> str:
    return " ".join(m.get("text") or "" for m in messages)


def answering(slots: dict[str, Any], events: list[dict[str, Any]] | None = None) -> Tracker:
    """A tracker inside a form that has asked for the second factor (``slots`` were set in
    earlier turns)."""
    if events is None:
        events = [
            *({"event": "slot", "name": k, "value": v} for k, v in slots.items()),
            {"event": "user", "parse_data": {"intent": {"name": "inform"}}},
        ]
    return make_tracker(
        {**slots, "requested_slot": identity.ANSWER_SLOT},
        intent="inform",
        events=events,
        active_loop="order_number_form",
    )


def validate_answer(form: Any, answer: str, tracker: Tracker) -> tuple[dict[str, Any], list]:
    dispatcher = CollectingDispatcher()
    result = form.validate_verification_answer(answer, dispatcher, tracker, {})
    return result, dispatcher.messages


def required(form: Any, tracker: Tracker, domain_slots: list[str]) -> list[str]:
    return asyncio.run(form.required_slots(domain_slots, CollectingDispatcher(), tracker, {}))


ORDER_SLOTS = ["order_number", identity.ANSWER_SLOT]


def test_the_right_e_mail_verifies_and_tells_the_gateway_but_keeps_no_answer():
    form = actions.ValidateOrderNumberForm()
    tracker = answering({"order_number": "1002"})
    result, messages = validate_answer(form, "It's Jonas.Weber@Example.com", tracker)
    assert result[identity.ANSWER_SLOT] is None  # the e-mail is not kept in a slot
    signed = result[identity.VERIFIED_SLOT]
    assert signed.startswith("2.")
    assert "Thanks, Jonas, that matches our records." in texts(messages)
    payloads = [m["custom"] for m in messages if m.get("custom")]
    assert payloads == [
        {
            "identity": {
                "customer_id": "2",
                "name": "Jonas Weber",
                "vip": True,
                "method": "second_factor",
            }
        }
    ]
    # The signed slot now verifies the conversation, so the form stops asking.
    after = make_tracker({"order_number": "1002", identity.VERIFIED_SLOT: signed})
    assert identity.verified_customer(after) == 2
    assert required(form, after, ORDER_SLOTS) == ["order_number"]


def test_the_postcode_works_with_other_spacing_and_case():
    form = actions.ValidateOrderNumberForm()
    result, _ = validate_answer(form, "postcode is d02x285", answering({"order_number": "1004"}))
    assert result[identity.VERIFIED_SLOT].startswith("4.")
    result, _ = validate_answer(form, "D02 X285", answering({"order_number": "1004"}))
    assert result[identity.VERIFIED_SLOT].startswith("4.")


def test_wrong_answers_count_down_then_the_form_stops_asking():
    form = actions.ValidateOrderNumberForm()
    result, messages = validate_answer(
        form, "maya.patel@example.com", answering({"order_number": "1002"})
    )
    assert result == {identity.ANSWER_SLOT: None, identity.ATTEMPTS_SLOT: 1.0}
    assert "doesn't match" in texts(messages) and "2 tries left" in texts(messages)
    result, messages = validate_answer(
        form, "N1 9GU", answering({"order_number": "1002", identity.ATTEMPTS_SLOT: 1.0})
    )
    assert result[identity.ATTEMPTS_SLOT] == 2.0 and "1 try left" in texts(messages)
    result, messages = validate_answer(
        form, "10117", answering({"order_number": "1002", identity.ATTEMPTS_SLOT: 2.0})
    )
    assert result == {identity.ANSWER_SLOT: None, identity.ATTEMPTS_SLOT: 3.0}
    assert "either" in texts(messages)
    assert not any(m.get("custom") for m in messages)
    locked = make_tracker({"order_number": "1002", identity.ATTEMPTS_SLOT: 3.0})
    assert required(form, locked, ORDER_SLOTS) == ["order_number"]  # no fourth question
    assert identity.verified_customer(locked) is None


def test_wrong_postcodes_across_conversations_stop_postcode_checks_not_e_mail():
    form = actions.ValidateOrderNumberForm()
    for n in range(backend.MAX_VERIFICATION_FAILURES):
        validate_answer(form, f"SW1A {n}AA", answering({"order_number": "1002"}))
    # Even the right postcode is not checked now; a stranger cannot lock Jonas out, though:
    # his e-mail address still works.
    result, messages = validate_answer(form, "10115", answering({"order_number": "1002"}))
    assert identity.VERIFIED_SLOT not in result and result[identity.ATTEMPTS_SLOT] == 1.0
    assert "Please give the e-mail address on your account instead." in texts(messages)
    result, _ = validate_answer(
        form, "jonas.weber@example.com", answering({"order_number": "1002"})
    )
    assert result[identity.VERIFIED_SLOT].startswith("2.")
    # Other customers are not affected.
    result, _ = validate_answer(form, "D02 X285", answering({"order_number": "1004"}))
    assert result[identity.VERIFIED_SLOT].startswith("4.")


def test_one_answer_tried_against_many_orders_is_refused_after_a_few():
    """Spraying one postcode over every order number, a new conversation each time, finds
    nobody: after MAX_ANSWER_FAILURES misses the answer is refused even where it is right."""
    form = actions.ValidateOrderNumberForm()
    others = ["1001", "1003", "1004", "1005", "1007", "1008"]  # not Jonas's orders
    for number in others[: backend.MAX_ANSWER_FAILURES]:
        result, _ = validate_answer(
            form, "my postcode is 10115", answering({"order_number": number})
        )
        assert identity.VERIFIED_SLOT not in result
    result, _ = validate_answer(form, "10115", answering({"order_number": "1002"}))
    assert identity.VERIFIED_SLOT not in result  # Jonas's own postcode, but burnt by the spray
    # Filler words or another token before it do not make it a new answer.
    result, _ = validate_answer(form, "it's x1 10115", answering({"order_number": "1006"}))
    assert identity.VERIFIED_SLOT not in result


def test_an_answer_is_one_kind_of_guess():
    form = actions.ValidateOrderNumberForm()
    # An e-mail address and the right postcode in one answer: read as an e-mail address only.
    result, _ = validate_answer(
        form, "wrong@example.com 10115", answering({"order_number": "1002"})
    )
    assert identity.VERIFIED_SLOT not in result


def test_without_verification_the_order_is_not_shown_and_a_person_takes_over():
    msgs, events = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker(
            {"order_number": "1002", "order_request": "status", identity.ATTEMPTS_SLOT: 3.0}
        ),
    )
    text = texts(msgs)
    assert "couldn't confirm that this order is yours" in text
    assert "1Z999AA10123456784" not in text and "Nova Phone" not in text  # nothing leaks
    handoff = [m["custom"]["handoff"] for m in msgs if m.get("custom")]
    assert handoff and handoff[0]["reason"] == "verification_failed"
    assert handoff[0]["priority"] == "normal" and "customer" not in handoff[0]
    assert {
        "event": "slot",
        "timestamp": None,
        "name": "handoff_reason",
        "value": "verification_failed",
    } in events


def test_cancelling_someone_elses_order_changes_nothing():
    # Maya (customer 1) is verified; order 1004 is Liam's and still processing.
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1004", "order_request": "cancel"}, verified=1),
    )
    assert "couldn't find order 1004 on your account" in texts(msgs)
    assert backend.get_order("1004").status == "processing"
    dispatcher = CollectingDispatcher()
    result = actions.ValidateOrderNumberForm().validate_order_number(
        "1004", dispatcher, make_tracker(verified=1), {}
    )
    assert result == {"order_number": None}
    assert "couldn't find order 1004 on your account" in texts(dispatcher.messages)


def test_only_plain_digits_count_as_a_verified_id_in_the_metadata():
    def with_metadata(value: Any) -> Tracker:
        tracker = make_tracker()
        tracker.latest_message["metadata"] = {"verified_customer_id": value}
        return tracker

    assert identity.verified_customer(with_metadata("2")) == 2
    for bad in ("\u0661\u0660\u0660\u0662", "\u00b2", "2 ", "", None, True, 2.0, "1" * 13):
        assert identity.verified_customer(with_metadata(bad)) is None


def test_a_gateway_verified_customer_is_never_asked_for_the_second_factor():
    form = actions.ValidateOrderNumberForm()
    assert required(form, make_tracker(verified=2), ORDER_SLOTS) == ["order_number"]
    assert required(form, make_tracker(), ORDER_SLOTS) == ORDER_SLOTS


def test_a_forged_copied_or_stale_verified_slot_is_ignored():
    good = identity.sign("test-conversation", 2)
    assert identity.verified_customer(make_tracker({identity.VERIFIED_SLOT: good})) == 2
    _number, issued, mac = good.split(".")
    forged_values = (
        "2",
        "2.",
        f"2.{issued}.{'0' * 32}",
        f"3.{issued}.{mac}",
        "x.y.z",
        good + "0",
        2,
        f"\u0662.{issued}.{mac}",  # an Arabic-Indic two
    )
    for forged in forged_values:
        assert identity.verified_customer(make_tracker({identity.VERIFIED_SLOT: forged})) is None
    # A day later the conversation's verification has lapsed.
    old = identity.sign("test-conversation", 2, now=time.time() - identity.VALID_SECONDS - 1)
    assert identity.verified_customer(make_tracker({identity.VERIFIED_SLOT: old})) is None
    # Signed for another conversation: not valid in this one.
    other = identity.sign("another-conversation", 2)
    assert identity.verified_customer(make_tracker({identity.VERIFIED_SLOT: other})) is None


def test_a_postcode_that_looks_like_an_order_number_keeps_the_order_asked_about():
    form = actions.ValidateOrderNumberForm()
    events = [
        {"event": "user", "parse_data": {"intent": {"name": "order_status"}}},
        {"event": "slot", "name": "order_number", "value": "1002"},
        {"event": "user", "parse_data": {"intent": {"name": "inform"}}},
        {"event": "slot", "name": "order_number", "value": "10115"},
    ]
    tracker = answering({"order_number": "10115"}, events=events)
    dispatcher = CollectingDispatcher()
    assert form.validate_order_number("10115", dispatcher, tracker, {}) == {"order_number": "1002"}
    result, _ = validate_answer(form, "10115", tracker)  # Jonas's postcode, for order 1002
    assert result[identity.VERIFIED_SLOT].startswith("2.")


def test_devices_are_scoped_to_their_owner_too():
    # SN100234 is Maya's (customer 1): Jonas, verified, may not look it up.
    dispatcher = CollectingDispatcher()
    result = actions.ValidateWarrantyForm().validate_serial_number(
        "SN100234", dispatcher, make_tracker(verified=2), {}
    )
    assert result == {"serial_number": None}
    # The same words as for a serial that does not exist: nothing about someone else's device.
    assert "couldn't find a registered device with the serial number SN100234 on your account" in (
        texts(dispatcher.messages)
    )
    msgs, _ = run_action(actions.ActionCheckWarranty(), make_tracker({"serial_number": "SN100234"}))
    assert "under warranty" not in texts(msgs) and "couldn't confirm" in texts(msgs)
    before = backend.connect().execute("SELECT COUNT(*) FROM repairs").fetchone()[0]
    msgs, _ = run_action(
        actions.ActionBookRepair(),
        make_tracker({"serial_number": "SN300117", "product": "Nova Phone"}, verified=1),
    )
    assert "Booked" not in texts(msgs)
    assert backend.connect().execute("SELECT COUNT(*) FROM repairs").fetchone()[0] == before
    form = actions.ValidateRepairForm()
    result, _ = validate_answer(
        form, "10115", answering({"product": "Nova Phone", "serial_number": "SN300117"})
    )
    assert result[identity.VERIFIED_SLOT].startswith("2.")
