"""How the human side reads the bot's intents: which name a customer's problem and which do
not. One definition for the handoff's topic, the designers' export and the quality alerts."""

from __future__ import annotations

# Understood, and saying nothing of the problem: yes, no, hello, a person please, ...
CONVERSATIONAL_INTENTS = frozenset(
    {"affirm", "deny", "greet", "goodbye", "thanks", "inform", "request_human", "bot_challenge"}
)
# The bot could not tell what the customer meant.
NOT_UNDERSTOOD = frozenset({"nlu_fallback", "out_of_scope"})
# Neither names a topic.
NOT_TOPICS = CONVERSATIONAL_INTENTS | NOT_UNDERSTOOD
