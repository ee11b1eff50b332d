"""The designers' loop: what customers said that the bot did not handle, as Rasa YAML to review.

``python -m bot export-training --since 7d`` (and the dashboard's download for supervisors)
writes two files:

* ``nlu.yml``: customer messages of the period that hit the fallback, that NLU read with low
  confidence (under ``metrics.low_confidence``), or that came right before a handoff (the last
  ``BEFORE_HANDOFF`` customer messages). Each goes under the intent the bot guessed when that is
  one of the domain's topic intents; otherwise under a commented "to sort" block, grouped by
  the agent's wrap-up (the disposition) when there is one, so the designer decides. Duplicates
  are merged (case and spacing aside) and counted. It passes ``rasa data validate`` together
  with the project's data.
* ``test_stories.yml``: the conversations agents marked "the bot should have handled this", as
  test-story skeletons: the customer's messages with the bot's reading, the actions left for
  the designer to write.

Personal data is masked before anything is written: e-mail addresses, phone numbers, payment
cards (such a message is left out), postcodes, long digit runs (accounts, tracking numbers) and
the customer's own name. What is masked becomes a neutral stand-in, so an example still reads
like a sentence.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import yaml

from bot.core.redact import CARD, EMAIL, PHONE, redact
from handoff.intents import CONVERSATIONAL_INTENTS, NOT_TOPICS

# Customer messages right before a handoff that are exported with it.
BEFORE_HANDOFF = 3
EMAIL_STAND_IN = "name@example.com"
PHONE_STAND_IN = "+44 20 7946 0000"
POSTCODE_STAND_IN = "AB1 2CD"
NAME_STAND_IN = "Alex"
_POSTCODE = re.compile(
    r"\b(?:[A-Z]{1,2}\d[A-Z\d]?\s*\d[A-Z]{2}"  # UK: SW1A 1AA
    r"|[A-Z]\d[A-Z]\s?\d[A-Z]\d)\b",  # Canada: K1A 0B1
    re.I,
)
# The Netherlands: 1012 AB (capitals only: "order 1001 is late" is not a postcode).
_DUTCH_POSTCODE = re.compile(r"\b\d{4}\s?[A-Z]{2}\b")
# Bank accounts (IBAN: two letters, two digits, then groups).
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:\s?[A-Z0-9]{4}){2,7}(?:\s?[A-Z0-9]{1,3})?\b", re.I)
IBAN_STAND_IN = "GB00 BANK 0000"
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{1,2}[./]\d{1,2}[./]\d{2,4}")
# Long numbers, grouped or not (accounts, cards that fail Luhn, references): 8+ digits.
_GROUPED_DIGITS = re.compile(r"\d(?:[\s.\-]?\d){7,}")
_LONG_DIGITS = re.compile(r"\d{5,}")
# A house number and a street: "12 Baker Street".
_STREET = re.compile(
    r"\b\d{1,4}[a-z]?\s+(?:[A-Z][a-z]+\s+){1,3}"
    r"(?:Street|St|Road|Rd|Avenue|Ave|Lane|Ln|Way|Drive|Dr|Close|Place|Square|Strasse|Straße)\b"
)
STREET_STAND_IN = "1 Main Street"
# Control characters YAML cannot carry (the export would not load).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff]")
# A name the customer gives: "I'm Maya Patel", "my name is Jonas", "this is Sam Lee".
_GIVEN_NAME = re.compile(
    r"\b((?i:i['\u2019]?m|i am|my name is|my name['\u2019]s|this is|name['\u2019]s"
    r"|it['\u2019]s|call me)\s+)"
    r"([A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)"
)
_SPACES = re.compile(r"\s+")
_SINCE = re.compile(r"^(\d{1,4})([hdw])$")


class ExportError(ValueError):
    """Bad input for an export (the period, the domain file)."""


@dataclass(frozen=True)
class Said:
    """A customer message worth a look, with what the bot and the agent made of it."""

    conversation_id: str
    text: str
    intent: str | None
    confidence: float | None
    why: str  # "fallback", "low_confidence" or "before_handoff"
    disposition: str | None = None
    customer_name: str | None = None


@dataclass(frozen=True)
class Skeleton:
    """A conversation the agent said the bot should have handled."""

    conversation_id: str
    disposition: str | None
    turns: Sequence[tuple[str, str | None]]  # (text, the bot's intent)
    customer_name: str | None = None


def parse_since(value: str) -> tuple[int, str]:
    """``7d``, ``24h`` or ``2w`` -> (amount, unit); ExportError otherwise."""
    found = _SINCE.match(value.strip().lower())
    if not found or int(found.group(1)) == 0:
        raise ExportError(
            f"--since {value!r}: give a period like 24h, 7d or 2w (hours, days, weeks)."
        )
    return int(found.group(1)), found.group(2)


def domain_intents(path: Path) -> set[str]:
    """The intents of a Rasa domain file (ExportError when it cannot be read)."""
    try:
        domain = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ExportError(f"cannot read the domain {path}: {exc}") from exc
    intents = domain.get("intents") if isinstance(domain, dict) else None
    if not isinstance(intents, list):
        raise ExportError(f"{path} has no intents: is it a Rasa domain file?")
    return {next(iter(i)) if isinstance(i, dict) else str(i) for i in intents}


def mask(text: str, customer_name: str | None = None) -> str | None:
    """``text`` with personal data replaced by stand-ins; None when it held a card number."""
    masked = redact(_CONTROL.sub(" ", text), emails=True, phones=True)
    if CARD in masked:
        return None
    masked = _IBAN.sub("[iban]", masked)
    masked = _STREET.sub("[street]", masked)
    masked = _POSTCODE.sub(POSTCODE_STAND_IN, masked)
    masked = _DUTCH_POSTCODE.sub(POSTCODE_STAND_IN, masked)
    masked = _GROUPED_DIGITS.sub(
        lambda m: m.group(0) if _DATE.fullmatch(m.group(0)) else "12345", masked
    )
    masked = _LONG_DIGITS.sub("12345", masked)
    # The stand-ins last: their own digits must not be masked again.
    for marker, stand_in in (
        (EMAIL, EMAIL_STAND_IN),
        (PHONE, PHONE_STAND_IN),
        ("[iban]", IBAN_STAND_IN),
        ("[street]", STREET_STAND_IN),
    ):
        masked = masked.replace(marker, stand_in)
    masked = _GIVEN_NAME.sub(lambda m: m.group(1) + NAME_STAND_IN, masked)
    for part in (customer_name or "").split():
        if len(part) >= 2:
            masked = re.sub(rf"\b{re.escape(part)}\b", NAME_STAND_IN, masked, flags=re.I)
    # Rasa reads "[text](entity)" in examples: brackets stay text.
    masked = masked.replace("[", "(").replace("]", ")")
    return _SPACES.sub(" ", masked).strip() or None


def _key(text: str) -> str:
    return _SPACES.sub(" ", text.lower()).strip(" .!?")


def nlu_yaml(said: Iterable[Said], intents: set[str], header: str) -> tuple[str, dict[str, int]]:
    """The NLU file and a summary (examples per intent, and ``to sort``)."""
    sorted_in: dict[str, Counter[str]] = defaultdict(Counter)
    firsts: dict[str, str] = {}
    origins: dict[str, Counter[str]] = defaultdict(Counter)
    to_sort: dict[str, Counter[str]] = defaultdict(Counter)
    for item in said:
        if item.why == "before_handoff" and item.intent in CONVERSATIONAL_INTENTS:
            continue  # "yes", "a person please": nothing to learn
        text = mask(item.text, item.customer_name)
        if text is None:
            continue
        key = _key(text)
        firsts.setdefault(key, text)
        if item.intent in intents and item.intent not in NOT_TOPICS:
            sorted_in[item.intent][key] += 1
            origins[item.intent][item.why] += 1
        else:
            group = f"wrap-up: {item.disposition}" if item.disposition else "no wrap-up"
            to_sort[group][key] += 1
    lines = [header, 'version: "3.1"', "", "nlu:"]
    summary: dict[str, int] = {}
    for intent in sorted(sorted_in):
        counts = sorted_in[intent]
        why = ", ".join(f"{n} {w.replace('_', ' ')}" for w, n in sorted(origins[intent].items()))
        lines.append(f"  # the bot's reading; {why}")
        lines.append(f"  - intent: {intent}")
        lines.append("    examples: |")
        for key, _n in counts.most_common():
            lines.append(f"      - {_example(firsts[key])}")
        summary[intent] = len(counts)
    if not sorted_in:
        lines[-1] = "nlu: []"
    for group in sorted(to_sort):
        lines.append("")
        lines.append(f"# To sort ({group}): the bot did not know these. Move each one under the")
        lines.append("# intent it is (or a new one), then delete this block.")
        for key, n in to_sort[group].most_common():
            lines.append(f"#   - {_example(firsts[key])}" + (f"   ({n}x)" if n > 1 else ""))
        summary[f"to sort ({group})"] = len(to_sort[group])
    return "\n".join(lines) + "\n", summary


def stories_yaml(skeletons: Iterable[Skeleton], intents: set[str], header: str) -> str:
    """Test-story skeletons of the conversations the bot should have handled."""
    lines = [header, 'version: "3.1"', "", "stories:"]
    count = 0
    for skeleton in skeletons:
        turns = [(m, i) for t, i in skeleton.turns if (m := mask(t, skeleton.customer_name))]
        if not turns:
            continue  # only buttons, or nothing left once masked: nothing to write
        count += 1
        what = skeleton.disposition or "no wrap-up"
        lines.append(f"  - story: should have handled {skeleton.conversation_id[:8]} ({what})")
        lines.append("    steps:")
        for masked, intent in turns:
            lines.append("      - user: |")
            lines.append(f"          {_example(masked)}")
            if intent in intents and intent not in ("nlu_fallback",):
                lines.append(f"        intent: {intent}  # the bot's reading: check it")
            else:
                lines.append("        # intent: ?  the bot did not understand this")
            lines.append("      # - action: what should the bot have done here?")
    if not count:
        lines[-1] = "stories: []"
    return "\n".join(lines) + "\n"


def _example(text: str) -> str:
    """One example line's text: YAML-safe inside a block scalar (no line breaks)."""
    return text.replace("\n", " ")


def header(command: str, start: datetime, end: datetime) -> str:
    return (
        f"# Exported by `{command}`: customer messages of {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} UTC\n"
        "# that the bot did not handle. Personal data is masked. Review before merging into data/."
    )


def summary_lines(summary: dict[str, Any], stories: int) -> list[str]:
    total = sum(v for k, v in summary.items() if not k.startswith("to sort"))
    lines = [f"  {total} examples under known intents, {stories} test-story skeletons"]
    lines += [f"    {name}: {n}" for name, n in summary.items()]
    return lines


@dataclass(frozen=True)
class TrainingExport:
    nlu: str
    stories: str
    summary: dict[str, int]
    skeletons: int


async def export_training(
    store: TrainingSource,
    *,
    start: datetime,
    end: datetime,
    intents: set[str],
    low_confidence: float,
    command: str,
) -> TrainingExport:
    """Read the period's candidates and skeletons and write both files' text."""
    candidates = await store.training_candidates(start, end, low_confidence, BEFORE_HANDOFF)
    said = [
        Said(
            conversation_id=c["conversation_id"],
            text=c["text"],
            intent=c["intent"],
            confidence=c["confidence"],
            why=c["why"],
            disposition=c["disposition"],
            customer_name=c["customer_name"],
        )
        for c in candidates
    ]
    skeletons = [
        Skeleton(s["conversation_id"], s["disposition"], s["turns"], s["customer_name"])
        for s in await store.should_have_handled(start, end)
    ]
    top = header(command, start, end)
    nlu, summary = nlu_yaml(said, intents, top)
    return TrainingExport(nlu, stories_yaml(skeletons, intents, top), summary, len(skeletons))


class TrainingSource(Protocol):
    """What the export reads (the store's TrainingMixin)."""

    async def training_candidates(
        self, start: datetime, end: datetime, low_confidence: float, before_handoff: int
    ) -> list[dict[str, Any]]: ...

    async def should_have_handled(self, start: datetime, end: datetime) -> list[dict[str, Any]]: ...


def since_start(value: str, now: datetime) -> datetime:
    """The start of a ``--since`` period ending ``now``."""
    amount, unit = parse_since(value)
    hours = {"h": 1, "d": 24, "w": 24 * 7}[unit] * amount
    if hours > 24 * 366:
        raise ExportError(f"--since {value!r}: a year at most.")
    return now - timedelta(hours=hours)
