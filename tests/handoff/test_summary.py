"""The extractive summary for the agent."""

from __future__ import annotations

from handoff.summary import select_sentences, summarize

STEPS = [
    "Checked volume buttons and mute",
    "Turned off night mode and the volume limit in the app",
    "Restarted the device (unplugged for 30 seconds)",
]


def test_picks_the_problem_sentence_and_skips_small_talk() -> None:
    texts = [
        "hi",
        "Hello there!",
        "My Aurora Speaker is really quiet, even at full volume.",
        "/affirm",
        "yes",
        "no",
        "thanks",
        "ok",
    ]
    assert select_sentences(texts, max_sentences=3) == [
        "My Aurora Speaker is really quiet, even at full volume."
    ]


def test_keeps_original_order_and_limits_the_count() -> None:
    texts = [
        "I bought the Pulse Soundbar in March.",
        "Nice weather today.",
        "Since the firmware update the Pulse Soundbar drops the Bluetooth connection every minute.",
        "It also makes a crackling noise at high volume.",
    ]
    picked = select_sentences(texts, max_sentences=2)
    assert len(picked) == 2
    assert picked[0].startswith("Since the firmware update")
    assert picked[1].startswith("It also makes a crackling noise")
    assert select_sentences(texts, max_sentences=0) == []


def test_summary_layout_with_facts_and_steps() -> None:
    summary = summarize(
        ["hi", "My speaker is too quiet even at full volume", "yes", "/deny", "No, still quiet."],
        reason_text="Guided troubleshooting did not fix the problem",
        facts={"order_number": "1001", "product": "Aurora Speaker", "serial_number": None},
        steps_tried=STEPS,
    )
    assert summary == (
        "Guided troubleshooting did not fix the problem. "
        'Customer: "My speaker is too quiet even at full volume. No, still quiet." '
        "Order 1001. Product: Aurora Speaker. "
        "Already tried: Checked volume buttons and mute; Turned off night mode and the volume "
        "limit in the app; Restarted the device (unplugged for 30 seconds)."
    )


def test_sentences_that_only_repeat_a_fact_are_skipped() -> None:
    texts = ["Order 1001", "The parcel never arrived and tracking has not moved for a week."]
    summary = summarize(texts, reason_text="", facts={"order_number": "1001"}, steps_tried=[])
    assert summary == (
        'Customer: "The parcel never arrived and tracking has not moved for a week." Order 1001.'
    )


def test_other_facts_and_lists() -> None:
    summary = summarize(
        [], reason_text="", facts={"order_request": "status", "items": ["a", "b"]}, steps_tried=[]
    )
    assert summary == "Order request: status. Items: a, b."


def test_summary_is_redacted() -> None:
    summary = summarize(
        ["I was charged twice on my card 4111 1111 1111 1111, call me on +44 20 7946 0958"],
        reason_text="Customer asked for a person",
        facts={"email": "maya@example.com"},
        steps_tried=[],
    )
    assert "4111" not in summary and "7946" not in summary and "maya@" not in summary
    assert "[card]" in summary and "[phone]" in summary and "Email: [email]." in summary


def test_nothing_to_say() -> None:
    assert summarize(["hi", "/affirm"], reason_text="", facts={}, steps_tried=[]) == ""


def test_long_sentences_are_clipped() -> None:
    long = "The speaker " + " ".join(["crackles"] * 80) + " badly"
    (picked,) = select_sentences([long])
    assert len(picked) <= 220 and picked.endswith("…")
