"""The dispatcher: from the events queue into the PostgreSQL event log, and out to the edges."""
