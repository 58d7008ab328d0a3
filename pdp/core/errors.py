"""The core's exception tree.

::

    CoreError                       root: everything the core raises on purpose
    ├── PolicyValidationError       a policy document, bundle data or test file is invalid
    │   └── TestDefinitionError     a bundle test file is invalid
    ├── InputValidationError        a decision input does not match its query's schema
    │   └── PolicyQueryError        a policy list request (filter, order_by, page...) is invalid
    └── UnknownQueryError           the query name is not one of ``QUERIES``

Evaluation never raises: a problem with an input *value* during evaluation becomes a violation in
the decision. These exceptions are for the parse/compile steps the shells run before evaluating.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class FieldError(NamedTuple):
    """One problem with one field; ``path`` is dotted, e.g. ``rule.allowed_countries.0``."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path or '<root>'}: {self.message}"


def _describe(errors: Iterable[FieldError]) -> str:
    return "; ".join(str(error) for error in errors)


class CoreError(Exception):
    """Root of every exception the policy core raises."""


class PolicyValidationError(CoreError):
    """A policy document (or bundle data) is invalid; ``errors`` name each offending field."""

    def __init__(self, source: str, errors: list[FieldError]) -> None:
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {_describe(errors)}")


class TestDefinitionError(PolicyValidationError):
    """A bundle test file is invalid; ``errors`` name each offending field."""

    __test__ = False  # not a pytest test class, despite the name


class InputValidationError(CoreError):
    """A decision input is invalid for its query; shells answer 400 / INVALID_ARGUMENT."""

    def __init__(self, errors: list[FieldError], message: str | None = None) -> None:
        self.errors = errors
        super().__init__(message or f"invalid input: {_describe(errors)}")


class PolicyQueryError(InputValidationError):
    """A policy list request is invalid; ``errors`` holds the one offending field.

    A kind of InputValidationError, so every shell that answers a bad input with 400 /
    INVALID_ARGUMENT answers a bad filter, order_by, page_size or page_token the same way.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__([FieldError(field, message)], f"invalid {field}: {message}")


class UnknownQueryError(CoreError):
    """The query name is not one the core answers; shells answer 404 / NOT_FOUND."""

    def __init__(self, query: str, known: Iterable[str]) -> None:
        self.query = query
        super().__init__(f"unknown query {query!r}; known queries: {', '.join(known)}")
