"""The error taxonomy every connector uses (CONVENTIONS.md "Errors")."""

from __future__ import annotations


class ConnectorError(Exception):
    """Base class. Messages carry ids, never personal data or secrets."""


class RetriableError(ConnectorError):
    """429, 5xx, timeouts, dropped connections: try again later."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class FatalError(ConnectorError):
    """Other 4xx, authentication, configuration: a person must act."""


class DataError(ConnectorError):
    """A record breaks a rule: it goes to quarantine, the run goes on."""
