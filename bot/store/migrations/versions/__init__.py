"""Migration scripts; alembic finds them by file name, not by import."""
