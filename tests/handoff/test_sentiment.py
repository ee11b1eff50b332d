"""The lexicon sentiment score: ordering, negation, intensity, recency."""

from __future__ import annotations

import pytest

from handoff.sentiment import label, message_score, sentiment


def test_angry_below_neutral_below_happy() -> None:
    angry = sentiment(["This is ridiculous, I'm so frustrated with this useless speaker"])
    neutral = sentiment(["My speaker is quiet even at full volume"])
    happy = sentiment(["Great, that fixed it, thank you so much!"])
    assert -1.0 <= angry < neutral < happy <= 1.0
    assert neutral == 0.0
    assert (label(angry), label(neutral), label(happy)) == ("negative", "neutral", "positive")


@pytest.mark.parametrize("word", ["happy", "helpful", "good", "working"])
def test_negation_flips_positive_words(word: str) -> None:
    assert message_score(f"I am {word}") > 0
    assert message_score(f"I am not {word}") < 0
    assert message_score(f"it isn't {word}") < 0


def test_negated_negative_is_only_mildly_positive() -> None:
    assert 0 < message_score("I'm not angry") < message_score("I'm happy")


def test_negation_scope_ends_at_punctuation() -> None:
    assert message_score("No. Great, thanks") > 0


@pytest.mark.parametrize("intensifier", ["very", "really", "so", "extremely"])
def test_intensifiers_strengthen(intensifier: str) -> None:
    assert message_score(f"I am {intensifier} angry") < message_score("I am angry") < 0
    assert message_score(f"I am {intensifier} happy") > message_score("I am happy") > 0


def test_diminishers_weaken() -> None:
    assert message_score("it is broken") < message_score("it is kind of broken") < 0
    assert 0 < message_score("slightly annoyed") * -1 < message_score("annoyed") * -1


def test_caps_and_exclamations_intensify() -> None:
    base = message_score("I am angry")
    assert message_score("I am ANGRY") < base
    assert message_score("I AM ANGRY") < base
    assert message_score("I am angry!!!") < message_score("I am angry!") < base
    assert message_score("THANK YOU!!!") > message_score("thank you") > 0


def test_shouting_without_sentiment_words_counts_as_frustration() -> None:
    assert message_score("WHERE IS MY ORDER") < 0
    assert message_score("where is my order") == 0


def test_phrases() -> None:
    assert message_score("thanks for nothing") < 0
    assert message_score("I'm fed up") < 0
    assert message_score("still not working") < 0
    assert message_score("no problem") > 0
    assert message_score("what a waste of time") < message_score("time") == 0


def test_but_weighs_the_second_clause_more() -> None:
    assert message_score("The app is nice but the sound is terrible") < 0
    assert message_score("It was terrible but now it works, thanks") > 0


def test_emoticons() -> None:
    assert message_score("ok :(") < 0 < message_score("ok :)")
    assert message_score("see https://brightline.example/help") == 0


def test_recent_messages_weigh_more() -> None:
    calmed_down = sentiment(["I am furious", "ok", "it works now, thank you!"])
    got_angry = sentiment(["it works now, thank you!", "ok", "I am furious"])
    assert calmed_down > 0 > got_angry


def test_neutral_messages_do_not_dilute() -> None:
    texts = ["hi", "SN100234", "yes", "/affirm", "This is ridiculous, I'm so frustrated"]
    assert sentiment(texts) == pytest.approx(sentiment(texts[-1:]))
    assert sentiment(texts) < -0.5


def test_empty_and_payloads_are_neutral() -> None:
    assert sentiment([]) == 0.0
    assert sentiment(["", "/affirm", "/deny"]) == 0.0


def test_label_thresholds() -> None:
    assert label(-1.0) == "negative"
    assert label(-0.2) == "neutral"
    assert label(0.0) == "neutral"
    assert label(0.2) == "neutral"
    assert label(0.21) == "positive"


def test_score_is_bounded() -> None:
    text = "TERRIBLE AWFUL USELESS SCAM, WORST EVER, I HATE THIS!!!!!!!! 😡😡😡"
    assert -1.0 <= sentiment([text] * 5) < -0.9
