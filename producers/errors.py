"""The root of every error the notification pipeline raises on purpose.

Each message says what went wrong and what the operator can do about it; the CLI prints it
without a traceback.
"""


class NotifyError(Exception):
    """Base class of the pipeline's own errors."""


class ConfigurationError(NotifyError):
    """A setting is missing or cannot be used."""


class BrokerUnavailable(NotifyError):
    """RabbitMQ cannot be reached or refused the connection."""


class DatabaseUnavailable(NotifyError):
    """PostgreSQL cannot be reached or refused the connection."""


class DatabaseNotMigrated(NotifyError):
    """The database's schema is not the one this version of the code was written for."""


class PublishError(NotifyError):
    """The broker did not confirm a publish in time, or refused it."""
