"""The feedback store: generations, votes and the experiment's totals over one SQL schema.

`open_store(url)` serves SQLite (local), PostgreSQL, and Aurora Serverless v2 through the RDS
Data API; the Alembic migrations in `migrations/` are the only definition of the schema. What it
keeps is declared in `pressroom_common.records`; the report it aggregates for is built by
`pressroom_common.experiment.report`.
"""

from pressroom_common.feedback.store.errors import (
    GenerationNotFoundError,
    StoreFailedError,
    StoreUnavailableError,
)
from pressroom_common.feedback.store.store import (
    FeedbackStore,
    TrafficBucket,
    VotedGeneration,
    open_store,
)
from pressroom_common.records import GenerationRecord, Vote, VoteRecord

__all__ = [
    "FeedbackStore",
    "GenerationNotFoundError",
    "GenerationRecord",
    "StoreFailedError",
    "StoreUnavailableError",
    "TrafficBucket",
    "Vote",
    "VoteRecord",
    "VotedGeneration",
    "open_store",
]
