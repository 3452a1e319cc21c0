"""The store's errors, as the API's domain errors so that they map to HTTP in one place."""

from pressroom_common.platform.errors import DependencyUnavailable, DomainError, NotFound


class GenerationNotFoundError(NotFound):
    """A vote names a generation that was never recorded (404)."""

    code = "generation_not_found"

    def __init__(self, generation_id: str) -> None:
        super().__init__(
            f"generation_id: no generation {generation_id!r} was recorded",
            details={"field": "generation_id"},
        )
        self.generation_id = generation_id


class StoreUnavailableError(DependencyUnavailable):
    """The database could not be reached or refused work; nothing was written (503)."""

    code = "database_unavailable"

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"The feedback database is unavailable; {operation} was not stored. Try again shortly."
        )


class StoreFailedError(DomainError):
    """AWS refused the database call for a reason retrying cannot fix: a missing permission, a
    wrong ARN or secret, a statement it rejects (500). `cause` holds AWS's own words for the
    log and the deployer; the answer names only the error code, never an ARN or account."""

    code = "database_error"

    def __init__(self, operation: str, aws_code: str, cause: str) -> None:
        super().__init__(
            f"The feedback database refused {operation} ({aws_code}); this is not an outage, "
            "so retrying will not help. See the request id.",
            details={"aws_error_code": aws_code},
        )
        self.aws_code = aws_code
        self.cause = cause
