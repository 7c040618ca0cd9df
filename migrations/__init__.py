"""Alembic migrations of the notification database, generated from ``dispatcher.schema``."""
