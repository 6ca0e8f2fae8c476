"""One error hierarchy for the whole service.

Each class's docstring is its default message. `UserInputError` and its subclasses are
expected failures: the API turns them into `UserError` data with a field path and a code.
Anything else that reaches the API is a bug and is masked.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence


class ErrorCode(enum.StrEnum):
    INVALID = "INVALID"
    NOT_FOUND = "NOT_FOUND"
    NAME_TAKEN = "NAME_TAKEN"
    CONFLICT = "CONFLICT"
    DISABLED = "DISABLED"
    EXPIRED = "EXPIRED"
    TOO_LARGE = "TOO_LARGE"


class SchedulerError(Exception):
    """An error in gql-scheduler."""

    def __init__(self, message: str | None = None) -> None:
        self.message = message or (self.__doc__ or "").strip()
        super().__init__(self.message)


class Unavailable(SchedulerError):
    """The database cannot be reached now; try again shortly."""


class UserInputError(SchedulerError):
    """The input is invalid."""

    code = ErrorCode.INVALID

    def __init__(self, message: str | None = None, *, field: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.field: tuple[str, ...] | None = tuple(field) if field is not None else None

    def under(self, *prefix: str) -> UserInputError:
        """Return a copy whose field path starts with `prefix` (for nested inputs)."""
        copy = type(self)(self.message, field=(*prefix, *(self.field or ())))
        return copy


class InvalidInput(UserInputError):
    """The input is invalid."""


class NotFound(UserInputError):
    """No such object."""

    code = ErrorCode.NOT_FOUND


class NameTaken(UserInputError):
    """That name is already taken."""

    code = ErrorCode.NAME_TAKEN


class Conflict(UserInputError):
    """The object is not in a state that allows this."""

    code = ErrorCode.CONFLICT


class Disabled(UserInputError):
    """This feature is disabled on this server."""

    code = ErrorCode.DISABLED


class Expired(UserInputError):
    """What was asked for is no longer kept."""

    code = ErrorCode.EXPIRED


class TooLarge(UserInputError):
    """The input is larger than this server accepts."""

    code = ErrorCode.TOO_LARGE


class InputErrors(SchedulerError):
    """The input has errors."""

    def __init__(self, errors: Iterable[UserInputError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(error.message for error in self.errors) or None)


class ErrorCollector:
    """Gathers every problem in an input so that a client sees all of them at once."""

    def __init__(self) -> None:
        self.errors: list[UserInputError] = []

    def add(self, error: UserInputError, *prefix: str) -> None:
        self.errors.append(error.under(*prefix) if prefix else error)

    def extend(self, errors: Iterable[UserInputError], *prefix: str) -> None:
        for error in errors:
            self.add(error, *prefix)

    def raise_if_any(self) -> None:
        if self.errors:
            raise InputErrors(self.errors)
