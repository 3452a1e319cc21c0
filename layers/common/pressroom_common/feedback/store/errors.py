"""The store's errors, as the API's domain errors so that they map to HTTP in one place."""

from pressroom_common.platform.errors import DependencyUnavailable, NotFound


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
