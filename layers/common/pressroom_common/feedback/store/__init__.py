"""The feedback store: generations, votes and experiment statistics over one SQL schema.

`open_store(url)` serves SQLite (local), PostgreSQL, and Aurora Serverless v2 through the RDS
Data API; the Alembic migrations in `migrations/` are the only definition of the schema.
"""

from pressroom_common.experiment.report import (
    CredibleInterval,
    ExperimentVerdict,
    LatencyPercentiles,
    StatsReport,
    VariantStats,
)
from pressroom_common.feedback.contracts import (
    FeedbackRequest,
    FeedbackResponse,
    GenerationRecord,
    Vote,
    VoteRecord,
)
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

__all__ = [
    "CredibleInterval",
    "ExperimentVerdict",
    "FeedbackRequest",
    "FeedbackResponse",
    "FeedbackStore",
    "GenerationNotFoundError",
    "GenerationRecord",
    "LatencyPercentiles",
    "StatsReport",
    "StoreFailedError",
    "StoreUnavailableError",
    "TrafficBucket",
    "VariantStats",
    "Vote",
    "VoteRecord",
    "VotedGeneration",
    "open_store",
]
