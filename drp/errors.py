"""One exception hierarchy. Each message says what is wrong and how to put it right, in one
line; the shells map the classes to exit statuses and HTTP statuses in one place."""

from __future__ import annotations


class DrpError(Exception):
    """Base class: a refused action. Nothing was changed."""

    exit_code = 1
    http_status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(DrpError):
    """A configuration or organisation file is wrong."""


class BadValue(DrpError):
    """A value given on the command line or in a form is malformed. `field`, when given, names
    the input (as the service layer calls it), so each shell can point at its own option or
    form field without reading the message."""

    http_status = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DrpError):
    """No such record, or one the person may not see (the two are indistinguishable)."""

    http_status = 404


class NotPermitted(DrpError):
    """The person's roles do not allow the action on this record."""

    http_status = 403


class InvalidTransition(DrpError):
    """The action is not possible from the alert's current stage or status."""

    http_status = 409


class Conflict(DrpError):
    """Someone else changed the record while this action was under way."""

    http_status = 409
