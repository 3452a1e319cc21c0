"""The feedback function's configuration: the shared settings and the experiment's weights and
round."""

from __future__ import annotations

from pressroom_common.experiment.settings import VariantWeightSettings
from pressroom_common.platform.settings import ApiSettings, ReaderKeySettings, StoreSettings


class FeedbackSettings(ApiSettings, StoreSettings, ReaderKeySettings, VariantWeightSettings):
    """Configuration of the feedback function (`VARIANT_WEIGHTS` is JSON: name → weight)."""
