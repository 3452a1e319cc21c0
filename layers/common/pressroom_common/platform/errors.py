"""Domain errors: each one carries the HTTP status and the stable code that the API answers with.

Code anywhere in the layer raises these; `pressroom_common.platform.api` turns them into
`{"error": {"code", "message", "details"}}` in one place.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, ClassVar


class DomainError(Exception):
    """Base of every error a user may see; subclasses fix the status and the code."""

    status: ClassVar[HTTPStatus] = HTTPStatus.INTERNAL_SERVER_ERROR
    code: ClassVar[str] = "internal_error"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ValidationError(DomainError):
    status = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "validation_error"


class NotFound(DomainError):
    status = HTTPStatus.NOT_FOUND
    code = "not_found"


class VoteNotAllowed(DomainError):
    """A vote by anyone but the reader the generation was served to, or without its token."""

    status = HTTPStatus.FORBIDDEN
    code = "vote_not_allowed"

    def __init__(self, field: str, reason: str, *, location: str = "body") -> None:
        # The shape of a validation error's details, so clients read both alike.
        super().__init__(
            f"{field}: {reason}", details=[{"field": field, "location": location, "reason": reason}]
        )
        self.field = field


class Throttled(DomainError):
    status = HTTPStatus.TOO_MANY_REQUESTS
    code = "throttled"


class DependencyFailed(DomainError):
    """A dependency answered, but with an error (a model error, a bad response)."""

    status = HTTPStatus.BAD_GATEWAY
    code = "dependency_failed"


class DependencyUnavailable(DomainError):
    """A dependency could not be reached or refuses work (down, not ready, overloaded)."""

    status = HTTPStatus.SERVICE_UNAVAILABLE
    code = "dependency_unavailable"


class DependencyTimeout(DomainError):
    """A dependency did not answer within our deadline."""

    status = HTTPStatus.GATEWAY_TIMEOUT
    code = "dependency_timeout"
