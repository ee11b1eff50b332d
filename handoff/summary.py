"""An extractive summary of a conversation for the agent who takes it over.

The summary is built from what the customer actually wrote, not generated: the customer's messages
are split into sentences, each sentence is scored (content words, numbers and product names,
problem words, words it shares with the handoff reason), greetings, yes/no answers, thanks and
button payloads are skipped, and the best few sentences are kept in their original order. The
known facts ("Order 1001", "Product: Aurora Speaker") and the troubleshooting steps already tried
follow. The result is redacted.

    Guided troubleshooting did not fix the problem. Customer: "My Aurora Speaker is really quiet,
    even at full volume." Order 1001. Product: Aurora Speaker. Already tried: Checked volume
    buttons and mute; Restarted the device.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from bot.core.redact import redact

MAX_SENTENCE_CHARS = 220

STOPWORDS = frozenset(
    """
    a about above after again all also am an and any are as at be because been before being below
    between both by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just let me
    more most my myself now of off on once only or other our ours ourselves out over own same she
    should so some such than that the their theirs them themselves then there these they this those
    through to too under until up us very was we were what when where which while who whom why will
    with would you your yours yourself yourselves i'm i've i'd i'll it's that's there's you're
    what's can't don't doesn't didn't isn't wasn't won't get got getting really even still though
    one thing something anything know think want wanted need needed like just well actually maybe
    """.split()
)

# Messages (or sentences) made only of these words carry no information for the agent.
FILLER = frozenset(
    """
    hi hello hey hiya howdy yo greetings morning afternoon evening good there
    yes yeah yep yup sure ok okay k kk alright right correct exactly absolutely definitely
    no nope nah not
    thanks thank thx ty cheers appreciated much lot great cool nice perfect awesome
    bye goodbye later see soon please pls plz sorry hmm um uh oh ah well
    agent human person someone somebody real talk speak help me you
    """.split()
)

# Words that describe what is wrong; a sentence with them is what the agent needs to read first.
PROBLEM_WORDS = frozenset(
    """
    broken broke break breaks quiet loud noise noisy crackling crackle buzzing distorted static
    silent mute muted volume sound audio dead battery charge charging drain drains overheating hot
    disconnect disconnects disconnected dropping drops connection connect wifi wi-fi bluetooth
    pair pairing offline error errors fail fails failed failure crash crashes crashed freeze
    freezes frozen stuck reset restart reboot update firmware app login password account
    late delayed missing lost never arrived delivery shipping shipped tracking package parcel
    damaged cracked scratched faulty defective wrong refund return replacement exchange warranty
    repair charged charge double billing bill invoice payment cancel cancelled canceled order
    stopped working work works problem problems issue issues trouble doesn't won't can't cannot
    isn't didn't wouldn't still again anymore unable flickering blinking light red screen
    """.split()
)

_SENTENCE_SPLIT_RE = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD_RE = re.compile(r"[A-Za-z][A-Za-z'\-]*|\d[\d\-./]*")
_CAPITALIZED_RE = re.compile(r"\b[A-Z][a-z]+[A-Za-z]*\b|\b[A-Z]{2,}[-\w]*\b")
_NUMBER_RE = re.compile(r"\b[A-Za-z]{0,4}\d[\w\-]*")

FACT_LABELS: dict[str, str] = {
    "order_number": "Order {value}",
    "product": "Product: {value}",
    "serial_number": "Serial number: {value}",
    "topic": "Topic: {value}",
    "troubleshoot_topic": "Topic: {value}",
}


def _words(sentence: str) -> list[str]:
    return [w.lower().strip("'-") for w in _WORD_RE.findall(sentence.replace("\u2019", "'"))]


def _is_filler(words: Sequence[str]) -> bool:
    return all(w in FILLER or w in STOPWORDS for w in words)


def _sentences(customer_texts: Sequence[str]) -> list[str]:
    out: list[str] = []
    for text in customer_texts:
        text = text.strip()
        if not text or text.startswith("/"):
            continue
        out.extend(s.strip() for s in _SENTENCE_SPLIT_RE.split(text) if s.strip())
    return out


# Words that only announce a fact ("Order 1001", "serial number SN100234").
_FACT_ANNOUNCERS = frozenset("order number serial product model device item id no nr".split())


def _score(sentence: str, *, reason_words: set[str], fact_values: Sequence[str]) -> float:
    words = _words(sentence)
    if not words or _is_filler(words):
        return 0.0
    content = {w for w in words if w not in STOPWORDS and w not in FILLER and len(w) > 1}
    if not content:
        return 0.0
    fact_words = {w for v in fact_values for w in _words(v)}
    if content <= fact_words | _FACT_ANNOUNCERS:
        return 0.0  # the sentence only repeats a fact that the summary lists anyway
    score = min(len(content), 10) * 1.0
    score += 2.0 * min(sum(1 for w in set(words) if w in PROBLEM_WORDS), 3)
    score += 2.0 * min(len(_NUMBER_RE.findall(sentence)), 2)
    # capitalised words that do not start the sentence: product names, places, brands
    first = sentence.split(maxsplit=1)[0] if sentence.split() else ""
    names = {m for m in _CAPITALIZED_RE.findall(sentence) if m != first and m != "I"}
    score += 1.5 * min(len(names), 3)
    lowered = sentence.lower()
    score += 2.0 * sum(1 for v in fact_values if v and v.lower() in lowered)
    score += 1.0 * len(content & reason_words)
    if len(words) > 30:  # long rambles are less useful to skim than a precise sentence
        score *= 30 / len(words)
    return score


def _clip(sentence: str) -> str:
    sentence = " ".join(sentence.split())
    if len(sentence) > MAX_SENTENCE_CHARS:
        sentence = sentence[: MAX_SENTENCE_CHARS - 1].rsplit(" ", 1)[0].rstrip(",;:") + "…"
    elif sentence[-1] not in ".!?…":
        sentence += "."
    return sentence


def _fact_text(key: str, value: Any) -> str | None:
    if value is None or value == "" or value == [] or value == {}:
        return None
    if isinstance(value, list | tuple | set):
        value = ", ".join(str(v) for v in value)
    template = FACT_LABELS.get(key, key.replace("_", " ").capitalize() + ": {value}")
    return template.format(value=value)


def select_sentences(
    customer_texts: Sequence[str],
    *,
    reason_text: str = "",
    facts: Mapping[str, Any] | None = None,
    max_sentences: int = 3,
) -> list[str]:
    """The customer's most informative sentences (at most ``max_sentences``), in original order.

    Button payloads ("/affirm"), greetings, yes/no answers and thanks are never selected; exact
    repeats are selected once.
    """
    if max_sentences <= 0:
        return []
    sentences = _sentences([redact(t) for t in customer_texts])
    reason_words = {w for w in _words(reason_text) if w not in STOPWORDS}
    fact_values = [str(v) for v in (facts or {}).values() if isinstance(v, str | int)]
    scored: list[tuple[float, int, str]] = []
    seen: set[str] = set()
    for index, sentence in enumerate(sentences):
        key = " ".join(_words(sentence))
        if key in seen:
            continue
        seen.add(key)
        score = _score(sentence, reason_words=reason_words, fact_values=fact_values)
        if score > 0:
            scored.append((score, index, sentence))
    best = sorted(scored, key=lambda item: (-item[0], item[1]))[:max_sentences]
    return [_clip(sentence) for _, _, sentence in sorted(best, key=lambda item: item[1])]


def summarize(
    customer_texts: Sequence[str],
    *,
    reason_text: str,
    facts: Mapping[str, Any],
    steps_tried: Sequence[str],
    max_sentences: int = 3,
) -> str:
    """A short extractive summary for the agent, redacted.

    Layout: the handoff reason, then ``Customer: "<best sentences>"``, then one short sentence per
    fact ("Order 1001", "Product: Aurora Speaker", "Serial number: SN100234"; other keys as
    "Key: value"), then ``Already tried: a; b; c.`` Parts with nothing to say are left out.
    """
    parts: list[str] = []
    reason = " ".join(reason_text.split()).rstrip(".")
    if reason:
        parts.append(reason + ".")
    picked = select_sentences(
        customer_texts, reason_text=reason_text, facts=facts, max_sentences=max_sentences
    )
    if picked:
        parts.append('Customer: "' + " ".join(picked) + '"')
    for key, value in facts.items():
        text = _fact_text(key, value)
        if text:
            parts.append(text.rstrip(".") + ".")
    steps = [" ".join(s.split()).rstrip(".;") for s in steps_tried if s and s.strip()]
    if steps:
        parts.append("Already tried: " + "; ".join(steps) + ".")
    return redact(" ".join(parts))
