"""Custom actions against the real seeded SQLite demo backend."""

from __future__ import annotations

from datetime import date, timedelta

from actions import actions, backend
from actions.troubleshooting import STEPS
from tests.actions.conftest import make_tracker, run_action


def texts(messages):
    return " ".join(m.get("text") or "" for m in messages)


def slot_events(events):
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


# --- orders ------------------------------------------------------------------------------


def test_order_status_answers_from_the_backend():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1001", "order_request": "status"}, verified=1),
    )
    text = texts(msgs)
    assert "1001" in text and "Aurora Speaker" in text
    assert "JD014600003827" in text  # tracking number from the seeded order
    expected = backend.get_order("1001").expected_on
    assert expected.strftime("%-d %b") in text


def test_late_order_is_called_late():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1003", "order_request": "status"}, verified=3),
    )
    assert "running late" in texts(msgs)


def test_cancel_processing_order_changes_the_backend():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1004", "order_request": "cancel"}, verified=4),
    )
    assert "is cancelled" in texts(msgs) and "$89.00" in texts(msgs)
    order = backend.get_order("1004")
    assert order.status == "cancelled" and order.refund_status == "processing"


def test_cancel_shipped_order_is_refused_and_nothing_changes():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1001", "order_request": "cancel"}, verified=1),
    )
    assert "already shipped" in texts(msgs)
    assert backend.get_order("1001").status == "shipped"


def test_return_within_window_opens_a_return():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1002", "order_request": "return"}, verified=2),
    )
    assert "RMA-1002" in texts(msgs)
    assert backend.get_order("1002").return_code == "RMA-1002"


def test_return_outside_window_is_refused():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1006", "order_request": "return"}, verified=2),
    )
    assert "return window has closed" in texts(msgs)
    assert backend.get_order("1006").return_code is None


def test_refund_status_processing_and_refunded():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1005", "order_request": "refund"}, verified=1),
    )
    assert "processing since" in texts(msgs) and "$249.00" in texts(msgs)
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1007", "order_request": "refund"}, verified=3),
    )
    assert "was issued" in texts(msgs)


def test_delivery_problem_on_delivered_order_explains_next_steps():
    msgs, _ = run_action(
        actions.ActionHandleOrderRequest(),
        make_tracker({"order_number": "1002", "order_request": "delivery"}, verified=2),
    )
    assert "was delivered on" in texts(msgs) and "claim" in texts(msgs)


def test_bad_order_numbers_get_clear_messages():
    validator = actions.ValidateOrderNumberForm()
    from rasa_sdk.executor import CollectingDispatcher

    d = CollectingDispatcher()
    assert validator.validate_order_number("9999", d, make_tracker(), {}) == {"order_number": None}
    assert "couldn't find an order with the number 9999" in texts(d.messages)
    d = CollectingDispatcher()
    assert validator.validate_order_number("no idea", d, make_tracker(), {}) == {
        "order_number": None
    }
    assert "doesn't look like an order number" in texts(d.messages)
    d = CollectingDispatcher()
    assert validator.validate_order_number("it's #1003", d, make_tracker(), {}) == {
        "order_number": "1003"
    }
    assert d.messages == []


# --- warranty and repairs --------------------------------------------------------------------


def test_warranty_in_and_out():
    msgs, events = run_action(
        actions.ActionCheckWarranty(), make_tracker({"serial_number": "SN100234"}, verified=1)
    )
    assert "under warranty until" in texts(msgs)
    assert slot_events(events) == {"product": "Aurora Speaker"}
    msgs, _ = run_action(
        actions.ActionCheckWarranty(), make_tracker({"serial_number": "SN482910"}, verified=2)
    )
    assert "ended on" in texts(msgs)


def test_unknown_product_and_serial_mismatch_are_explained():
    from rasa_sdk.executor import CollectingDispatcher

    validator = actions.ValidateRepairForm()
    d = CollectingDispatcher()
    assert validator.validate_product("Zorg 3000", d, make_tracker(), {}) == {"product": None}
    assert 'don\'t know a Brightline product called "Zorg 3000"' in texts(d.messages)
    assert "Aurora Speaker" in texts(d.messages)  # lists the real catalogue
    d = CollectingDispatcher()
    assert validator.validate_product("my nova phone", d, make_tracker(), {}) == {
        "product": "Nova Phone"
    }
    d = CollectingDispatcher()
    result = validator.validate_serial_number(
        "SN100234", d, make_tracker({"product": "Nova Phone"}), {}
    )
    assert result == {"serial_number": None}
    assert "doesn't belong to a Nova Phone" in texts(d.messages)
    assert "Aurora Speaker" not in texts(d.messages)  # not whose or what it is
    d = CollectingDispatcher()
    assert validator.validate_serial_number("sn 999999", d, make_tracker(), {}) == {
        "serial_number": None
    }
    assert "couldn't find a registered device with the serial number SN999999" in texts(d.messages)


def test_repair_booking_writes_a_repair_on_a_weekday():
    msgs, _ = run_action(
        actions.ActionBookRepair(),
        make_tracker({"serial_number": "SN300117", "product": "Nova Phone"}, verified=2),
    )
    assert "Booked! Repair R-2001" in texts(msgs) and "free" in texts(msgs)
    reference, pickup, covered = backend.book_repair("SN777320", today=date(2026, 11, 20))
    assert reference == "R-2002" and not covered
    assert pickup.weekday() < 5 and pickup >= date(2026, 11, 20) + timedelta(days=2)


# --- troubleshooting and handoff ----------------------------------------------------------------


def test_troubleshooting_walks_the_steps_then_is_exhausted():
    tried: list[str] = []
    seen = []
    for turn in range(len(STEPS["sound"])):
        intent = "troubleshoot_sound" if turn == 0 else "deny"
        msgs, events = run_action(
            actions.ActionTroubleshoot(),
            make_tracker(
                {"steps_tried": tried, "troubleshoot_topic": "sound" if turn else None},
                intent=intent,
            ),
        )
        slots = slot_events(events)
        assert slots["troubleshoot_exhausted"] is False
        assert any(m.get("response") == "utter_did_that_help" for m in msgs)
        seen.append(texts(msgs))
        tried = slots["steps_tried"]
    assert tried == [s.label for s in STEPS["sound"]]
    assert len(set(seen)) == len(seen)  # never the same step twice
    msgs, events = run_action(
        actions.ActionTroubleshoot(),
        make_tracker({"steps_tried": tried, "troubleshoot_topic": "sound"}, intent="deny"),
    )
    assert slot_events(events)["troubleshoot_exhausted"] is True
    assert "all 3 steps" in texts(msgs)


def test_wifi_topic_keeps_sound_steps_in_the_record():
    sound = [STEPS["sound"][0].label]
    _, events = run_action(
        actions.ActionTroubleshoot(),
        make_tracker({"steps_tried": sound}, intent="troubleshoot_wifi"),
    )
    slots = slot_events(events)
    assert slots["troubleshoot_topic"] == "wifi"
    assert slots["steps_tried"] == [*sound, STEPS["wifi"][0].label]


def handoff_payload(msgs):
    customs = [m["custom"] for m in msgs if m.get("custom")]
    assert len(customs) == 1, msgs
    return customs[0]["handoff"]


def test_handoff_after_failed_troubleshooting_carries_reason_and_steps():
    tried = [s.label for s in STEPS["sound"]]
    msgs, events = run_action(
        actions.ActionRequestHandoff(),
        make_tracker(
            {"steps_tried": tried, "troubleshoot_topic": "sound", "troubleshoot_exhausted": True},
            intent="affirm",
        ),
    )
    signal = handoff_payload(msgs)
    assert signal["version"] == 1
    assert signal["reason"] == "troubleshooting_failed"
    assert signal["steps_tried"] == tried
    assert signal["team"] == "tech_support" and signal["priority"] == "normal"
    assert "connecting you" in texts(msgs)
    assert slot_events(events) == {"handoff_reason": "troubleshooting_failed"}


def test_a_payment_problem_goes_to_the_orders_team_even_for_a_named_product():
    payment = {"event": "user", "parse_data": {"intent": {"name": "payment_problem"}}}
    signal = handoff_payload(
        run_action(
            actions.ActionRequestHandoff(),
            make_tracker({"product": "Aurora Speaker"}, intent="payment_problem", events=[payment]),
        )[0]
    )
    assert (signal["reason"], signal["team"]) == ("needs_the_team", "orders")
    # An invoice offer the customer accepted: the "yes" comes after the request.
    invoice = {"event": "user", "parse_data": {"intent": {"name": "invoice"}}}
    yes = {"event": "user", "parse_data": {"intent": {"name": "affirm"}}}
    signal = handoff_payload(
        run_action(
            actions.ActionRequestHandoff(),
            make_tracker(intent="affirm", events=[invoice, yes]),
        )[0]
    )
    assert (signal["reason"], signal["team"]) == ("customer_accepted_offer", "orders")


def test_handoff_reasons_and_priority():
    signal = handoff_payload(
        run_action(actions.ActionRequestHandoff(), make_tracker(intent="complaint"))[0]
    )
    assert (signal["reason"], signal["priority"], signal["team"]) == (
        "complaint",
        "high",
        "general",
    )
    # Jonas (customer 2) is a VIP: once verified, his conversations go to the front.
    signal = handoff_payload(
        run_action(
            actions.ActionRequestHandoff(),
            make_tracker(
                {"order_number": "1002", "order_request": "status"},
                intent="request_human",
                verified=2,
            ),
        )[0]
    )
    assert (signal["reason"], signal["priority"], signal["team"]) == (
        "customer_request",
        "high",
        "orders",
    )
    assert signal["facts"] == {"order_number": "1002"}
    assert signal["customer"] == {"id": "2", "name": "Jonas Weber", "vip": True}
    # Naming a VIP's order number without being verified changes nothing.
    signal = handoff_payload(
        run_action(
            actions.ActionRequestHandoff(),
            make_tracker(
                {"order_number": "1002", "order_request": "status"}, intent="request_human"
            ),
        )[0]
    )
    assert signal["priority"] == "normal" and "customer" not in signal
    fallback_events = [
        {"event": "user", "parse_data": {"intent": {"name": n}}}
        for n in ("nlu_fallback", "nlu_fallback", "affirm")
    ]
    signal = handoff_payload(
        run_action(
            actions.ActionRequestHandoff(), make_tracker(intent="affirm", events=fallback_events)
        )[0]
    )
    assert signal["reason"] == "bot_did_not_understand"


def test_seed_is_repeatable(demo_db):
    backend.cancel_order("1004")
    backend.seed(demo_db)
    assert backend.get_order("1004").status == "processing"


def fallback_user(name):
    return {"event": "user", "parse_data": {"intent": {"name": name}}}


def test_the_fallback_ladder_rephrase_then_topics_then_a_person():
    msgs, events = run_action(
        actions.ActionFallback(),
        make_tracker(
            intent="nlu_fallback", events=[fallback_user("greet"), fallback_user("nlu_fallback")]
        ),
    )
    assert slot_events(events) == {"fallback_repeated": False}
    assert msgs[0]["response"] == "utter_please_rephrase"

    two = [fallback_user("greet"), fallback_user("nlu_fallback"), fallback_user("nlu_fallback")]
    msgs, events = run_action(
        actions.ActionFallback(), make_tracker(intent="nlu_fallback", events=two)
    )
    assert slot_events(events) == {"fallback_repeated": False}
    assert msgs[0]["response"] == "utter_which_topic"
    payloads = [b["payload"] for b in msgs[0]["buttons"]]
    assert "/order_status" in payloads and payloads[-1] == "/request_human"

    three = [fallback_user("nlu_fallback")] * 3
    msgs, events = run_action(
        actions.ActionFallback(), make_tracker(intent="nlu_fallback", events=three)
    )
    assert slot_events(events) == {"fallback_repeated": True}
    assert texts(msgs) == "Sorry, I still didn't understand that."


def ranked(*pairs):
    """A fallback message whose NLU ranked these intents (name, confidence)."""
    tracker = make_tracker(intent="nlu_fallback")
    tracker.latest_message["intent_ranking"] = [
        {"name": "nlu_fallback", "confidence": 1.0},
        *({"name": n, "confidence": c} for n, c in pairs),
    ]
    return tracker


def test_two_close_topics_are_asked_about_with_a_button_each():
    msgs, events = run_action(
        actions.ActionFallback(), ranked(("refund_policy", 0.41), ("refund_status", 0.33))
    )
    assert slot_events(events) == {"fallback_repeated": False}
    assert texts(msgs) == "Sorry, I'm not sure what you meant. Is it one of these?"
    assert msgs[0]["buttons"] == [
        {"title": "Return and refund rules", "payload": "/refund_policy"},
        {"title": "A refund", "payload": "/refund_status"},
    ]


def test_a_clear_miss_or_an_unlikely_second_topic_asks_to_rephrase():
    for tracker in (
        ranked(("refund_policy", 0.60), ("refund_status", 0.20)),  # too far apart
        ranked(("refund_policy", 0.12), ("refund_status", 0.10)),  # both unlikely
        ranked(("out_of_scope", 0.40), ("greet", 0.35)),  # out_of_scope is not a topic
        ranked(("out_of_scope", 0.40), ("refund_status", 0.35), ("refund_policy", 0.33)),
        ranked(("refund_policy", 0.40)),  # nothing to compare with
    ):
        msgs, _ = run_action(actions.ActionFallback(), tracker)
        assert msgs[0]["response"] == "utter_please_rephrase", tracker.latest_message


def test_opening_hours_come_from_the_gateways_schedule():
    def asked(hours):
        tracker = make_tracker(intent="business_hours")
        if hours is not None:
            tracker.latest_message["metadata"] = {"support_hours": hours}
        return texts(run_action(actions.ActionBusinessHours(), tracker)[0])

    closed = {
        "open_now": False,
        "always_open": False,
        "schedule": "Monday to Friday 08:00-20:00",
        "timezone": "Europe/Berlin",
        "opens": "on Monday at 08:00",
    }
    text = asked(closed)
    assert "Monday to Friday 08:00-20:00 (Europe/Berlin time)" in text
    assert "open again on Monday at 08:00" in text
    assert "available right now" in asked({**closed, "open_now": True, "opens": None})
    assert "around the clock" in asked({"always_open": True, "open_now": True})
    # Without the gateway (rasa shell) there is no schedule to read, and none is made up.
    text = asked(None)
    assert "can't see our team's schedule" in text and "08:00" not in text
