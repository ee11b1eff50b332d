"""Redaction of personal data in free text: payment card numbers, e-mail addresses, phone numbers.

Used on everything a customer typed before it reaches a handoff packet, an agent notification or a
log line. The rules are deliberately conservative about what they eat:

* a card number is 13-19 digits, optionally grouped with single spaces or dashes, and it is only
  replaced when it passes the Luhn check — order numbers, tracking numbers and other long ids that
  fail the check survive;
* a phone number is an international ``+CC …`` number (8-15 digits) or a national number with
  7-12 digits grouped by spaces, dashes, dots or parentheses — order numbers (4-6 digits),
  serials such as ``SN123456``, dates (``2026-11-23``, ``23.11.2026``), times, prices and IP
  addresses are left alone.

``redact_value`` applies :func:`redact` to every string inside nested dicts and lists, and
:func:`structlog_redactor` is a structlog processor doing the same for every log event.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from structlog.typing import EventDict, WrappedLogger

CARD = "[card]"
EMAIL = "[email]"
PHONE = "[phone]"

# --- e-mail ---------------------------------------------------------------------------------------

_EMAIL_RE = re.compile(
    r"(?<![\w.%+\-])[\w.%+\-]+@[^\W_](?:[\w\-]*[^\W_])?(?:\.[^\W_](?:[\w\-]*[^\W_])?)*\.[^\W\d_]{2,}"
)

# --- cards ----------------------------------------------------------------------------------------

# A run of digit groups separated by single spaces or dashes, not glued to a word, a "+", a decimal
# point or another digit. Card numbers are looked for inside the run (see _redact_card_run).
_DIGIT_RUN_RE = re.compile(r"(?<![\w+.,])(?<!\d[ \-])\d+(?:[ \-]\d+)*(?![\w])")
_CARD_MIN_DIGITS, _CARD_MAX_DIGITS = 13, 19


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check used by payment cards."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_card(digits: str) -> bool:
    return _CARD_MIN_DIGITS <= len(digits) <= _CARD_MAX_DIGITS and luhn_valid(digits)


def _redact_card_run(match: re.Match[str]) -> str:
    """Replace the Luhn-valid card numbers inside one run of digit groups.

    The whole run is tried first; otherwise windows of consecutive groups, the longest first at
    each position, so "order 1001 card 4111 1111 1111 1111" style text keeps the neighbours.
    """
    run = match.group(0)
    parts = re.split(r"([ \-])", run)  # groups at even indexes, separators at odd ones
    groups = parts[0::2]
    seps = parts[1::2]
    if _is_card("".join(groups)):
        return CARD
    if len(groups) == 1:
        return run
    out: list[str] = []
    i = 0
    while i < len(groups):
        found = 0
        for j in range(len(groups), i, -1):
            digits = "".join(groups[i:j])
            if len(digits) > _CARD_MAX_DIGITS:
                continue
            if len(digits) < _CARD_MIN_DIGITS:
                break
            if luhn_valid(digits):
                found = j
                break
        if found:
            out.append(CARD)
            if found < len(groups):
                out.append(seps[found - 1])
            i = found
        else:
            out.append(groups[i])
            if i < len(seps):
                out.append(seps[i])
            i += 1
    return "".join(out)


# --- things that look like phone numbers but are not ----------------------------------------------

_PROTECT_RE = re.compile(
    r"""
      (?<![\w.\-])\d{4}-\d{2}-\d{2}[T\x20]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?
        (?:Z|[+\-]\d{2}:?\d{2})?(?![\w])                              # ISO timestamps
    | (?<![\w.\-])\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}(?![\w]|[\-/.]\d)      # 2026-11-23, 2026.11.23
    | (?<![\w.\-])\d{1,2}[\-/.]\d{1,2}[\-/.](?:\d{4}|\d{2})(?![\w]|[\-/.]\d)  # 23.11.2026, 11-23-26
    | (?<![\w.:])\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?![\w:])         # 15:00, 15:00:30.5
    | (?<![\w.])\d{1,3}(?:\.\d{1,3}){3}(?![\w.])                     # 192.168.1.10
    | [$€£¥]\s?\d{1,3}(?:[,.\s]\d{3})*(?:[.,]\d{1,2})?(?![\w])      # $1,299.00  € 59
    | (?<![\w.])\d+(?:[.,]\d{1,2})?\s?(?:USD|EUR|GBP|dollars?|euros?|pounds?)\b  # 59.00 EUR
    """,
    re.VERBOSE | re.IGNORECASE,
)

# --- phones ---------------------------------------------------------------------------------------

# Candidate: optional "+" or "(", then digits and parentheses with single separators between them.
_PHONE_CANDIDATE_RE = re.compile(r"(?<![\w+\-])(?:\+|\()?\d(?:[\d()]|[ .\-](?=[\d(]))*(?![\w])")
_PHONE_CONTEXT_RE = re.compile(
    r"\b(?:phone|call|tel|telephone|mobile|cell|whats ?app|sms|text me|reach me|ring me|fax)\b",
    re.IGNORECASE,
)
_MAX_PROTECTED = 0x1000  # sentinel characters stay inside the Unicode private use area
_NATIONAL_MIN, _NATIONAL_MAX = 7, 12
_INTERNATIONAL_MIN, _INTERNATIONAL_MAX = 8, 15


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
            if depth > 1:
                return False
        elif ch == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _looks_like_phone(candidate: str, before: str) -> bool:
    core = candidate.rstrip(")") if candidate.count(")") > candidate.count("(") else candidate
    if not _balanced(core):
        return False
    digits = re.sub(r"\D", "", core)
    if core.startswith("+"):
        return _INTERNATIONAL_MIN <= len(digits) <= _INTERNATIONAL_MAX
    if not _NATIONAL_MIN <= len(digits) <= _NATIONAL_MAX:
        return False
    groups = re.split(r"[ .\-()]+", core.strip("()"))
    groups = [g for g in groups if g]
    if "(" in core or len(groups) == 1:
        return True
    if len(groups) == 2 and "." in core and len(groups[1]) <= 2:
        return False  # a decimal number such as 1234567.89
    # A list of order numbers ("1001 1002") is not a phone number, unless the customer says so.
    if all(4 <= len(g) <= 6 for g in groups) and not groups[0].startswith("0"):
        return bool(_PHONE_CONTEXT_RE.search(before[-30:]))
    return True


def _redact_phones(text: str) -> str:
    out: list[str] = []
    last = 0
    for m in _PHONE_CANDIDATE_RE.finditer(text):
        candidate = m.group(0)
        start, end = m.start(), m.end()
        # An unmatched trailing ")" belongs to the surrounding prose: "(call 555 123 4567)".
        while candidate.endswith(")") and candidate.count(")") > candidate.count("("):
            candidate = candidate[:-1]
            end -= 1
        if _looks_like_phone(candidate, text[:start]):
            out.append(text[last:start])
            out.append(PHONE)
            last = end
    out.append(text[last:])
    return "".join(out)


# --- public API -----------------------------------------------------------------------------------


def redact(text: str, *, emails: bool = True, phones: bool = True) -> str:
    """Return ``text`` with Luhn-valid card numbers, e-mail addresses and phone numbers replaced.

    The replacements are ``[card]``, ``[email]`` and ``[phone]``. Everything else — order numbers,
    serial numbers, dates, times, prices — is returned unchanged. Cards are always replaced;
    ``emails`` and ``phones`` can be turned off (customer messages keep them unless configured).
    """
    if not text or not any(ch.isdigit() or ch == "@" for ch in text):
        return text
    if emails:
        text = _EMAIL_RE.sub(EMAIL, text)
    text = _DIGIT_RUN_RE.sub(_redact_card_run, text)
    if not phones or not any(ch.isdigit() for ch in text):
        return text
    # Hide dates, times, prices and IP addresses from the phone matcher, then put them back.
    protected: list[str] = []

    def _protect(m: re.Match[str]) -> str:
        if len(protected) >= _MAX_PROTECTED:
            return m.group(0)
        protected.append(m.group(0))
        return f"\ue000{chr(0xE100 + len(protected) - 1)}\ue001"

    text = _PROTECT_RE.sub(_protect, text)
    text = _redact_phones(text)
    if protected:
        text = re.sub("\ue000(.)\ue001", lambda m: protected[ord(m.group(1)) - 0xE100], text)
    return text


def redact_value(obj: Any, *, escape: bool = False) -> Any:
    """Redact every string inside ``obj``: nested dicts, lists, tuples and sets are rebuilt.

    Dict keys are kept as they are. An integer that is a Luhn-valid card number becomes
    ``"[card]"``; other values (numbers, booleans, None, datetimes…) are returned unchanged.
    With ``escape``, strings also get their control characters escaped (for a log line).
    """
    if isinstance(obj, str):
        return escape_controls(redact(obj)) if escape else redact(obj)
    if isinstance(obj, Mapping):
        return {k: redact_value(v, escape=escape) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_value(v, escape=escape) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_value(v, escape=escape) for v in obj)
    if isinstance(obj, set | frozenset):
        return type(obj)(redact_value(v, escape=escape) for v in obj)
    if isinstance(obj, int) and not isinstance(obj, bool) and _is_card(str(abs(obj))):
        return CARD
    return obj


_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def escape_controls(text: str) -> str:
    """``text`` with control characters (CR, LF, ESC, ...) written as ``\\xNN`` escapes, so a
    value in a log line can never start a forged line or drive a terminal."""
    return _CONTROL_RE.sub(lambda m: f"\\x{ord(m.group(0)):02x}", text)


def structlog_redactor(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: redacts every string value (also nested ones) of the event dict and
    escapes control characters in them (``exception`` keeps its line breaks: it is ours).

    Put it before the renderer, e.g.
    ``structlog.configure(processors=[..., structlog_redactor, JSONRenderer()])``.
    """
    for key, value in event_dict.items():
        event_dict[key] = redact_value(value, escape=key != "exception")
    return event_dict
