"""Alembic migrations of the conversation record (run them with ``Store.migrate()``)."""
