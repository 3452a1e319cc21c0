"""The feedback function's flows: a vote (identify the reader → check their vote token → record →
count it) and the experiment's statistics (the store's totals → the report).

The mirror of `generation.service.GenerationService`: the routes hand over the request and the
reader's id, and the reader's hash, the token check and the metrics all happen here.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from aws_lambda_powertools.metrics import MetricUnit

from pressroom_common.experiment.report import StatsReport, build_report
from pressroom_common.feedback.contracts import FeedbackRequest, FeedbackResponse
from pressroom_common.feedback.store import FeedbackStore
from pressroom_common.platform.errors import VoteNotAllowed
from pressroom_common.platform.observability import logger, record_metric, record_variant_metric
from pressroom_common.platform.readers import ReaderKeys
from pressroom_common.records import Vote


def stats_report(
    store: FeedbackStore, *, since: datetime | None, weights: Mapping[str, float]
) -> StatsReport:
    """`GET /api/stats`' report over the generations `store` holds since `since` (None: all)."""
    return build_report(store.experiment_totals(since), since=since, weights=weights)


class FeedbackService:
    def __init__(
        self,
        store: FeedbackStore,
        reader_keys: ReaderKeys,
        *,
        weights: Mapping[str, float],
        round_started_at: datetime | None,
    ) -> None:
        """`weights` are the ones the fixed-weight router splits traffic by; `round_started_at`
        is the start of the experiment round (`EXPERIMENT_STARTED_AT`; None for all time)."""
        self._store = store
        self._reader_keys = reader_keys
        self._weights = dict(weights)
        self._round_started_at = round_started_at

    def vote(self, request: FeedbackRequest, reader_id: str | None) -> FeedbackResponse:
        """Record the reader's vote, or raise `VoteNotAllowed` with nothing stored.

        The token is checked before the store is touched, so a refused vote costs no database
        call; the store checks again that the generation was served to this reader.
        """
        user_hash = self._reader_keys.reader_hash(reader_id)
        try:
            self._reader_keys.check_vote(request.generation_id, user_hash, request.vote_token)
        except VoteNotAllowed as refused:
            # Refusals are what stuffing looks like: counted, for an alarm or a dashboard.
            record_metric("VotesRefused", 1, MetricUnit.Count)
            logger.info("vote refused", extra={"field": refused.field, "reason": refused.message})
            raise
        stored = self._store.record_vote(request.generation_id, user_hash, request.vote)
        # Votes cast per variant, for the dashboard (a replaced vote is cast again).
        metric = "VotesUp" if stored.vote is Vote.UP else "VotesDown"
        record_variant_metric(metric, 1, MetricUnit.Count, variant=stored.variant)
        return FeedbackResponse.model_validate(stored.model_dump())

    def stats(self, since: datetime | None) -> StatsReport:
        """The report over the generations created since `since`: by default (None) the current
        round, which a promoted challenger starts, so the votes of the round before do not
        count."""
        window = self._round_started_at if since is None else since
        return stats_report(self._store, since=window, weights=self._weights)
