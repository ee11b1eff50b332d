"""Gateway core: app factory, conversation model, state machine, Rasa client, stores, CLI."""
