"""One Powertools Logger per function, and per-variant metrics (CloudWatch EMF).

The service name and the metrics namespace come from `POWERTOOLS_SERVICE_NAME` and
`POWERTOOLS_METRICS_NAMESPACE`, which every template sets; the namespace falls back to
"Pressroom" so a function never fails for want of one.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.metrics import MetricUnit, single_metric

METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Pressroom")

logger = Logger()


def record_variant_metric(name: str, value: float, unit: MetricUnit, *, variant: str) -> None:
    """Emit one metric with a `variant` dimension, flushed at once.

    One request may touch two variants (a fallback), so per-variant metrics cannot share one
    request-wide dimension set; `single_metric` writes its own EMF record.
    """
    with single_metric(name=name, unit=unit, value=value, namespace=METRICS_NAMESPACE) as metric:
        metric.add_dimension(name="variant", value=variant)


def record_metric(name: str, value: float, unit: MetricUnit) -> None:
    """Emit one metric with only the service dimension, flushed at once."""
    with single_metric(name=name, unit=unit, value=value, namespace=METRICS_NAMESPACE):
        pass
