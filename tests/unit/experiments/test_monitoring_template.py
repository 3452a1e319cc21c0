"""The inference API template's experiment monitoring, resolved by the local template loader:
the dashboard charts only metrics the code emits, every variant has its two alarms, and the
realtime endpoint rolls a deployment back on exactly those alarms."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.cfn import Resource, load_stack

TEMPLATE = Path(__file__).resolve().parents[3] / "apps" / "inference-api" / "template.yaml"
CODE = Path(__file__).resolve().parents[3] / "layers" / "common" / "pressroom_common"


def resources(hosting_mode: str, instances: int = 1) -> dict[str, Resource]:
    stack = load_stack(
        TEMPLATE,
        {
            "HostingMode": hosting_mode,
            "RealtimeInstanceCount": instances,
            "HeadlineBaseModelDataUrl": "s3://pressroom-models/headline-base/model.tar.gz",
            "HeadlineLiteModelDataUrl": "s3://pressroom-models/headline-lite/model.tar.gz",
        },
        placeholder_missing=True,
    )
    return {resource.logical_id: resource for resource in stack.walk_resources()}


def emitted_metric_names() -> set[str]:
    """Every metric name the layer passes to record_variant_metric / record_metric."""
    source = "\n".join(path.read_text() for path in CODE.rglob("*.py"))
    return set(re.findall(r'record_(?:variant_)?metric\(\s*"(\w+)"', source)) | set(
        re.findall(r'metric = "(\w+)" if .* else "(\w+)"', source)[0]
    )


def dashboard_metrics(body: dict[str, Any]) -> set[str]:
    return {
        row[1]
        for widget in body["widgets"]
        for row in widget["properties"].get("metrics", [])
        if isinstance(row[0], str)
    }


def test_the_dashboard_charts_only_metrics_the_code_emits() -> None:
    dashboard = resources("realtime")["ExperimentDashboard"]
    body = json.loads(dashboard.properties["DashboardBody"])

    charted = dashboard_metrics(body)

    assert {"VotesUp", "VotesDown", "Invocations", "ModelLatency", "Errors"} <= charted
    assert charted <= emitted_metric_names()


@pytest.mark.parametrize(
    ("hosting_mode", "endpoints"),
    [
        ("realtime", {"A": "pressroom-dev-headline", "B": "pressroom-dev-headline"}),
        ("serverless", {"A": "pressroom-dev-headline-base", "B": "pressroom-dev-headline-lite"}),
    ],
)
def test_each_variant_has_a_5xx_rate_and_a_p95_latency_alarm_on_its_endpoint(
    hosting_mode: str, endpoints: dict[str, str]
) -> None:
    found = resources(hosting_mode)
    for variant, endpoint in endpoints.items():
        for alarm in (f"Variant{variant}ErrorRateAlarm", f"Variant{variant}LatencyAlarm"):
            stats = [
                m["MetricStat"] for m in found[alarm].properties["Metrics"] if "MetricStat" in m
            ]
            for stat in stats:
                dimensions = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
                assert dimensions == {"EndpointName": endpoint, "VariantName": variant}, alarm


def test_a_realtime_deployment_rolls_back_on_the_variant_alarms() -> None:
    found = resources("realtime", instances=2)
    config = found["GeneratorRealtimeEndpoint"].properties["DeploymentConfig"]

    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY"
    assert routing["CanarySize"] == {"Type": "INSTANCE_COUNT", "Value": 1}
    rollback_alarms = {
        alarm["AlarmName"] for alarm in config["AutoRollbackConfiguration"]["Alarms"]
    }
    variant_alarms = {
        resource.properties["AlarmName"]
        for resource in found.values()
        if resource.type == "AWS::CloudWatch::Alarm"
    }
    assert rollback_alarms == variant_alarms and len(variant_alarms) == 4


def test_one_instance_per_variant_shifts_all_at_once_since_a_canary_needs_two() -> None:
    config = resources("realtime", instances=1)["GeneratorRealtimeEndpoint"].properties

    routing = config["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "ALL_AT_ONCE"


def test_each_realtime_variant_autoscales_on_invocations_per_instance() -> None:
    found = resources("realtime", instances=2)
    endpoint = found["GeneratorRealtimeEndpoint"].properties["EndpointName"]
    targets = {
        resource.properties["ResourceId"]: resource
        for resource in found.values()
        if resource.type == "AWS::ApplicationAutoScaling::ScalableTarget"
    }
    assert set(targets) == {f"endpoint/{endpoint}/variant/{variant}" for variant in "AB"}
    for target in targets.values():
        assert target.properties["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
        assert target.properties["MinCapacity"] == 2  # never below the deployed instances
        assert target.properties["MaxCapacity"] >= target.properties["MinCapacity"]
    policies = [
        resource.properties
        for resource in found.values()
        if resource.type == "AWS::ApplicationAutoScaling::ScalingPolicy"
    ]
    assert len(policies) == 2
    for policy in policies:
        tracking = policy["TargetTrackingScalingPolicyConfiguration"]
        metric = tracking["PredefinedMetricSpecification"]["PredefinedMetricType"]
        assert metric == "SageMakerVariantInvocationsPerInstance"
        assert tracking["TargetValue"] > 0


def test_serverless_endpoints_have_no_instance_autoscaling() -> None:
    found = resources("serverless")
    assert not [r for r in found.values() if r.type.startswith("AWS::ApplicationAutoScaling")]
