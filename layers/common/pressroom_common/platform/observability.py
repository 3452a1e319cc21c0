"""One Powertools Logger, Tracer and Metrics per function, and per-variant metrics (CloudWatch EMF).

The handlers wear the three's decorators, as Powertools documents them: the Lambda context and
API Gateway's request id (the correlation id) on every log line, an X-Ray segment per invocation
(`tracer.capture_method` adds subsegments for the SageMaker calls and the store's), and the
`ColdStart` metric. The service name and the metrics namespace come from
`POWERTOOLS_SERVICE_NAME` and `POWERTOOLS_METRICS_NAMESPACE`, which every template sets; the
namespace falls back to "Pressroom" so a function never fails for want of one.

Tracing runs in Lambda only: Powertools turns it off outside Lambda (the local runtime, `sam
local`, tests) and with `POWERTOOLS_TRACE_DISABLED=true`, so the same handlers run without X-Ray.
"""

from __future__ import annotations

import os
import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric

METRICS_NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Pressroom")

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=METRICS_NAMESPACE)
# The metrics below are records of their own (a request may touch two variants): the set that
# `metrics.log_metrics` flushes after each invocation holds the cold start only, so the warning
# Powertools gives when it is empty says nothing.
warnings.filterwarnings("ignore", "No application metrics to publish", UserWarning)


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
