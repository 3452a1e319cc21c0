"""The generate function's configuration: the shared settings, the experiment's routing, and
where the models are served and how long each call may take."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pressroom_common.experiment.settings import RoutingSettings
from pressroom_common.platform.settings import ApiSettings, ReaderKeySettings, StoreSettings

HostingMode = Literal["realtime", "serverless"]


class GenerateSettings(ApiSettings, StoreSettings, ReaderKeySettings, RoutingSettings):
    """Configuration of the generate function (`VARIANTS` is JSON: name → `VariantConfig`)."""

    hosting_mode: HostingMode = "realtime"
    classifier_endpoint_name: str | None = None

    # API Gateway gives up after 29 s; answering 504 well before that keeps the error ours.
    generate_deadline_s: float = Field(default=20.0, gt=0, le=27)
    model_connect_timeout_s: float = Field(default=2.0, gt=0)
    # One generator attempt; shorter than the deadline so a slow variant leaves time to fall back.
    model_attempt_timeout_s: float = Field(default=12.0, gt=0)
    model_max_attempts: int = Field(default=3, ge=1, le=10)
    classifier_timeout_s: float = Field(default=2.0, gt=0)
    health_timeout_s: float = Field(default=3.0, gt=0)
