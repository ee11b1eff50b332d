"""The engine's plain core: types and models, errors, wire frames, state machine, policy, tokens.

Nothing here imports anything of ours except ``bot.config`` (settings are plain data); every
other layer builds on it (the import-linter contracts in ``.importlinter`` check that).
"""
