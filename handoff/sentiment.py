"""A small lexicon-based sentiment score for customer-service conversations.

Each customer message gets a score from a hand-written lexicon of customer-service language
(angry, frustrated, let down vs happy, grateful, relieved), adjusted for

* negation — "not happy", "isn't working", "never helpful" flip and soften the next words;
* intensifiers and diminishers — "very", "really", "so", "absolutely" vs "a bit", "slightly";
* emphasis — words in ALL CAPS, "!!!" and "???";
* contrast — after "but" the clause counts more than before it.

The raw sum is squashed to [-1, 1]; messages are then averaged with recent ones weighing more, so
the score says how the customer feels *now*. Only messages that carry sentiment take part in the
average: a neutral "SN100234" does not water down "this is ridiculous".
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Literal

SentimentLabel = Literal["negative", "neutral", "positive"]

NEGATIVE_THRESHOLD = -0.2
POSITIVE_THRESHOLD = 0.2
RECENCY_DECAY = 0.75  # weight of a message relative to the one after it
_SQUASH_ALPHA = 8.0

# --- lexicon ---------------------------------------------------------------------------------
# Word lists are written as "word valence" pairs (valence from about -4, furious, to +4, delighted);
# multi-word entries as one entry per line, the valence last.


def _pairs(text: str) -> dict[str, float]:
    """Parse whitespace-separated "word valence" pairs, ignoring "#" comment lines."""
    tokens = [
        t for line in text.splitlines() if not line.lstrip().startswith("#") for t in line.split()
    ]
    return {tokens[i]: float(tokens[i + 1]) for i in range(0, len(tokens), 2)}


def _lines(text: str) -> dict[tuple[str, ...], float]:
    """Parse one "several words valence" entry per line."""
    out: dict[tuple[str, ...], float] = {}
    for line in text.splitlines():
        *words, value = line.split() or ["0"]
        if words:
            out[tuple(words)] = float(value)
    return out


_NEGATIVE = _pairs(
    """
    # anger
    angry -3  furious -3.5  livid -3.5  outraged -3.5  mad -2.5  pissed -3  fuming -3.5
    infuriating -3.5  infuriated -3.5  hate -3  hated -3  hates -3  disgusted -3  disgusting -3
    disgrace -3  disgraceful -3  outrageous -3  unacceptable -3  ridiculous -2.5  absurd -2.5
    insane -2  shocking -2.5  appalling -3  appalled -3  sue -2.5  lawyer -2.5  lawsuit -3
    scam -3.5  scammed -3.5  fraud -3  ripoff -3  robbery -3  stole -2.5  stolen -2  liar -3
    liars -3  lied -3  lying -2.5  damn -2  dammit -2.5  wtf -3  crap -2.5  crappy -2.5  shit -3
    shitty -3  bullshit -3.5  fucking -3  fuck -3.5  bs -2.5
    # frustration
    frustrated -2.5  frustrating -2.5  frustration -2.5  annoyed -2  annoying -2  irritated -2
    irritating -2  sick -1  tired -1  exhausted -1.5  hopeless -2.5  helpless -2  pointless -2.5
    waste -2.5  wasted -2.5  wasting -2.5  nightmare -3  hassle -1.5  ugh -2  argh -2  sigh -1
    seriously -1  again -0.5  still -0.3  ages -1  forever -1  endless -1.5  nobody -1
    ignored -2.5  ignoring -2.5  excuses -2  excuse -1  stupid -2.5  dumb -2  idiot -3
    idiotic -3  clueless -2.5  incompetent -3  incompetence -3  unprofessional -2.5  rude -2.5
    joke -1.5
    # disappointment and quality
    disappointed -2.5  disappointing -2.5  disappointment -2.5  upset -2.5  unhappy -2.5
    dissatisfied -2.5  sad -2  worried -1.5  concerned -1  confused -1  confusing -1  regret -2
    sorry -0.3  terrible -3  horrible -3  awful -3  dreadful -3  worst -3.5  worse -2  bad -2
    poor -2  poorly -2  useless -3  rubbish -2.5  garbage -3  junk -2.5  trash -2.5  pathetic -3
    shoddy -2.5  cheap -1  faulty -2  defective -2  broken -1.5  broke -1.5  damaged -1.5
    unreliable -2  unusable -2.5  worthless -3  fail -1.5  failed -1.5  fails -1.5  failure -2
    problem -0.5  problems -0.7  issue -0.3  issues -0.5  wrong -1  late -1  delayed -1
    missing -1  lost -1  refund -0.5  cancel -0.5  complaint -2  complain -2  complaining -2
    unfortunately -1  annoyance -2  inconvenience -1.5  inconvenient -1.5
    """
)

_POSITIVE = _pairs(
    """
    # gratitude
    thanks 1.5  thank 1.5  thx 1.5  ty 1  cheers 1.5  grateful 2.5  appreciate 2  appreciated 2
    appreciation 2  thankful 2.5
    # happiness and relief
    happy 2.5  glad 2  pleased 2.5  delighted 3.5  thrilled 3.5  satisfied 2  relieved 2
    relief 2  love 3  loved 3  loving 2.5  loves 3  enjoy 2  yay 2.5  hooray 2.5  phew 1.5
    finally 0.5  lifesaver 3
    # praise
    great 3  good 1.9  nice 1.8  fine 0.8  ok 0.3  okay 0.3  cool 1.5  awesome 3  amazing 3
    excellent 3.2  perfect 3  perfectly 2.5  fantastic 3.2  wonderful 3.2  brilliant 3
    superb 3.2  outstanding 3.3  lovely 2.5  best 3  better 1.5  helpful 2.5  kind 2  friendly 2
    patient 1.5  quick 1.5  quickly 1.2  fast 1.5  easy 1.5  smooth 1.5  impressed 2.5
    impressive 2.5  recommend 2  reliable 1.5
    # things getting fixed
    fixed 2  solved 2  resolved 2  works 1.2  working 1  worked 1.5  sorted 1.5  helped 2
    success 2  successful 2
    """
)

LEXICON: dict[str, float] = {**_NEGATIVE, **_POSITIVE}

# Multi-word expressions, matched before single words; their words are then not scored again.
PHRASES = _lines(
    """
    thanks for nothing -3
    thank you for nothing -3
    fed up -3
    sick of -2.5
    sick and tired -3
    had enough -2.5
    waste of time -3
    waste of money -3
    rip off -3
    give up -2
    giving up -2
    no help -2
    no use -2
    talk to a manager -1.5
    speak to a manager -1.5
    speak to your manager -1.5
    last straw -3
    not good enough -2.5
    what a joke -3
    are you kidding -2.5
    you kidding me -2.5
    doesn't work -1.5
    does not work -1.5
    don't work -1.5
    didn't work -1.5
    not working -1.5
    isn't working -1.5
    wasn't working -1.5
    aren't working -1.5
    won't work -1.5
    stopped working -1.5
    well done 2.5
    thank you 2
    thank you so much 3
    thanks a lot 2.5
    much appreciated 2.5
    made my day 3
    you're a star 3
    all good 1.5
    no problem 1
    no problems 1
    no worries 1.5
    not bad 1
    kind of you 2
    """
)
_MAX_PHRASE = max(len(p) for p in PHRASES)

EMOTICONS = _pairs(
    """
    :) 1.5  :-) 1.5  :D 2.5  :-D 2.5  =) 1.5  ;) 1  <3 2.5
    :( -2  :-( -2  :'( -2.5  >:( -3  :/ -1  :-/ -1
    🙂 1.5  😊 2  😀 2  😃 2  😄 2.5  😁 2.5  👍 1.5  🙏 1.5  ❤ 2.5  ❤️ 2.5  🎉 2.5  😍 3  🥰 3
    🙁 -2  ☹ -2  ☹️ -2  😞 -2  😢 -2.5  😭 -2.5  😠 -3
    😡 -3.5  🤬 -3.5  👎 -2  😤 -2.5  🙄 -2  😒 -2
    """
)

NEGATORS = frozenset(
    """
    not no never nothing none nobody neither nor without hardly barely cannot cant dont doesnt
    didnt isnt wasnt arent werent wont wouldnt couldnt shouldnt havent hasnt hadnt aint
    """.split()
)
_NEGATION_SCOPE = 3  # words after a negator that it flips
_NEGATION_FACTOR = -0.75  # "not happy" is negative, but less so than "unhappy"
_NEGATED_NEGATIVE_FACTOR = -0.3  # "not angry" is only mildly positive

INTENSIFIERS = _pairs(
    """
    very 1.5  really 1.4  so 1.4  too 1.3  extremely 1.8  incredibly 1.7  totally 1.5
    absolutely 1.6  completely 1.5  utterly 1.7  super 1.5  truly 1.4  seriously 1.4  such 1.3
    most 1.3  highly 1.4  deeply 1.5  beyond 1.5  fucking 1.6  bloody 1.5  damn 1.4
    insanely 1.7  entirely 1.4  especially 1.3  particularly 1.3  way 1.3  quite 1.1
    # diminishers
    slightly 0.6  somewhat 0.7  bit 0.6  little 0.7  fairly 0.8  rather 0.8  kinda 0.7
    sorta 0.7  almost 0.7  mildly 0.6
    """
)
# Two-word modifiers, checked before the lexicon ("kind of broken" is not "kind").
MODIFIER_PHRASES = _lines(
    """
    kind of 0.7
    sort of 0.7
    a bit 0.6
    a little 0.7
    a lot 1.3
    so much 1.4
    way too 1.6
    """
)
_INTENSIFIER_SCOPE = 2  # an intensifier affects a sentiment word at most this many words later

_CAPS_FACTOR = 1.5  # a sentiment word in ALL CAPS inside a mixed-case message
_SHOUT_FACTOR = 1.3  # the whole message is in capitals
_SHOUT_BIAS = -1.0  # shouting with no sentiment words is, in customer service, frustration
_EXCLAIM_STEP, _EXCLAIM_MAX = 0.15, 4
_QUESTION_STEP, _QUESTION_MAX = 0.1, 3
_BEFORE_BUT, _AFTER_BUT = 0.5, 1.5

_EMOTICON_RE = "|".join(re.escape(e) for e in sorted(EMOTICONS, key=len, reverse=True))
# Emoticons only count when not glued to a word ("https://" is not ":/").
_TOKEN_RE = re.compile(rf"(?<![\w:/])({_EMOTICON_RE})|([A-Za-z]+(?:'[A-Za-z]+)*)|([.,;:!?]+)")
_CLAUSE_BREAK = frozenset(".,;:!?")


def _normal(word: str) -> str:
    return word.lower()


def _is_negator(word: str) -> bool:
    w = word.lower()
    return w in NEGATORS or w.endswith("n't")


def _tokens(text: str) -> list[tuple[str, str]]:
    """(kind, token) pairs: kind is "emo", "word" or "punct"."""
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    out: list[tuple[str, str]] = []
    for m in _TOKEN_RE.finditer(text):
        if m.group(1):
            out.append(("emo", m.group(1)))
        elif m.group(2):
            out.append(("word", m.group(2)))
        else:
            out.append(("punct", m.group(3)))
    return out


def _squash(raw: float) -> float:
    return raw / math.sqrt(raw * raw + _SQUASH_ALPHA)


def message_score(text: str) -> float:
    """Sentiment of one message in [-1, 1]; 0.0 when it carries none."""
    tokens = _tokens(text)
    words = [t for kind, t in tokens if kind == "word"]
    letters = [w for w in words if len(w) > 1]
    shouting = (
        len(letters) >= 2
        and sum(len(w) for w in letters if w.isupper()) >= 0.7 * sum(len(w) for w in letters)
        and sum(1 for w in letters if w.isupper()) >= 2
    )
    lowered = [_normal(t) if kind == "word" else t for kind, t in tokens]

    contributions: list[float] = []  # one per scored item, in order
    but_index: int | None = None  # index into contributions where the "but" clause starts
    negate_left = 0
    boost = 1.0
    boost_left = 0
    i = 0
    while i < len(tokens):
        kind, tok = tokens[i]
        low = lowered[i]
        if kind == "punct":
            if any(ch in _CLAUSE_BREAK for ch in tok):
                negate_left, boost_left, boost = 0, 0, 1.0
            i += 1
            continue
        if kind == "emo":
            contributions.append(EMOTICONS[tok])
            i += 1
            continue
        # a multi-word expression starting here?
        phrase_len, phrase_value = 0, 0.0
        for n in range(min(_MAX_PHRASE, len(tokens) - i), 1, -1):
            window = tokens[i : i + n]
            if all(k == "word" for k, _ in window):
                key = tuple(lowered[i : i + n])
                if key in PHRASES:
                    phrase_len, phrase_value = n, PHRASES[key]
                    break
        if low == "but" and not phrase_len:
            but_index = len(contributions)
            negate_left, boost_left, boost = 0, 0, 1.0
            i += 1
            continue
        modifier = MODIFIER_PHRASES.get(tuple(lowered[i : i + 2])) if i + 1 < len(tokens) else None
        if modifier is not None and not phrase_len:
            boost, boost_left = modifier, _INTENSIFIER_SCOPE + 1
            i += 2
            negate_left = max(0, negate_left - 2)
            continue
        if phrase_len:
            value = phrase_value
            span = tokens[i : i + phrase_len]
            is_caps = any(t.isupper() and len(t) > 1 for _, t in span)
            if negate_left and not _is_negator(tok):
                value *= _negation_factor(value)
            i += phrase_len
        elif low in LEXICON and not (low in INTENSIFIERS and _next_is_sentiment(lowered, i)):
            value = LEXICON[low]
            is_caps = tok.isupper() and len(tok) > 1
            if negate_left:
                value *= _negation_factor(value)
            i += 1
        else:
            if _is_negator(tok):
                negate_left = _NEGATION_SCOPE + 1
            elif low in INTENSIFIERS:
                boost, boost_left = INTENSIFIERS[low], _INTENSIFIER_SCOPE + 1
                if tok.isupper() and len(tok) > 1 and not shouting:
                    boost *= 1.2
            i += 1
            negate_left = max(0, negate_left - 1)
            boost_left = max(0, boost_left - 1)
            if not boost_left:
                boost = 1.0
            continue
        if boost_left:
            value *= boost
            boost, boost_left = 1.0, 0
        if is_caps and not shouting:
            value *= _CAPS_FACTOR
        negate_left = max(0, negate_left - 1)
        contributions.append(value)

    if but_index is not None:
        contributions = [
            c * (_BEFORE_BUT if k < but_index else _AFTER_BUT) for k, c in enumerate(contributions)
        ]
    raw = sum(contributions)
    if shouting:
        raw = raw * _SHOUT_FACTOR if raw else _SHOUT_BIAS
    if raw:
        exclaims = min(text.count("!"), _EXCLAIM_MAX)
        questions = min(text.count("?"), _QUESTION_MAX) if text.count("?") > 1 else 0
        raw *= 1 + _EXCLAIM_STEP * exclaims + _QUESTION_STEP * questions
    return _squash(raw) if raw else 0.0


def _negation_factor(value: float) -> float:
    return _NEGATED_NEGATIVE_FACTOR if value < 0 else _NEGATION_FACTOR


def _next_is_sentiment(lowered: list[str], i: int) -> bool:
    """True when the word after position i is a lexicon word ("so bad": "so" only intensifies)."""
    return i + 1 < len(lowered) and lowered[i + 1] in LEXICON


def sentiment(texts: Sequence[str]) -> float:
    """How the customer feels, from their messages (oldest first), in [-1, 1].

    Each message is scored with :func:`message_score`; the messages that carry sentiment are
    averaged with weight ``RECENCY_DECAY ** age`` (age 0 = the newest message), so a customer who
    was angry but is now thankful ends up positive. Button payloads ("/affirm") are ignored.
    Returns 0.0 when no message carries sentiment.
    """
    items = [t for t in texts if t and not t.lstrip().startswith("/")]
    total = weight_sum = 0.0
    n = len(items)
    for index, text in enumerate(items):
        score = message_score(text)
        if not score:
            continue
        weight = RECENCY_DECAY ** (n - 1 - index)
        total += weight * score
        weight_sum += weight
    if not weight_sum:
        return 0.0
    return max(-1.0, min(1.0, total / weight_sum))


def label(score: float) -> SentimentLabel:
    """Map a score to "negative" (below -0.2), "positive" (above 0.2) or "neutral"."""
    if score < NEGATIVE_THRESHOLD:
        return "negative"
    if score > POSITIVE_THRESHOLD:
        return "positive"
    return "neutral"
