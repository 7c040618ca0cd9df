"""The socket edge: WebSockets and the REST API, fed by the delivery exchange and PostgreSQL."""
