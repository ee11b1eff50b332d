"""The conversation pipeline, one module per step of a customer message's way.

``intake`` (the one inbound path of every channel) → ``scheduler`` (one conversation at a time,
in order, retried) → ``bot_turn`` (Rasa, CSAT, outage fallbacks) → a handoff through the
``HandoffDesk`` port, or replies through ``outbound`` (store, fan out, wake the outbox).
``records`` holds the compare-and-set helpers every step uses. ``bot/service.py`` is the thin
facade over them.
"""
