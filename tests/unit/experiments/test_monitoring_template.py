"""The experiment monitoring (apps/monitoring), resolved by the local template loader: the
dashboard charts only metrics the code emits, every variant has its two alarms on the endpoint
the inference API serves it from, and the realtime endpoint (apps/inference-api, wired to the
monitoring app's outputs in template-root.yaml) rolls a deployment back on exactly those
alarms."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from local.cfn import Resource, Stack, load_stack, load_template
from local.paths import APPS_DIR, ROOT_TEMPLATE

MONITORING = APPS_DIR / "monitoring" / "template.yaml"
INFERENCE_API = APPS_DIR / "inference-api" / "template.yaml"
CODE = Path(__file__).resolve().parents[3] / "layers" / "common" / "pressroom_common"
MODELS = {
    "HeadlineBaseModelDataUrl": "s3://pressroom-models/headline-base/model.tar.gz",
    "HeadlineBaseModelVersion": "v1",
    "HeadlineLiteModelDataUrl": "s3://pressroom-models/headline-lite/model.tar.gz",
    "HeadlineLiteModelVersion": "v2",
}
ROLLBACK_ALARM_PARAMETERS = (
    "VariantAErrorRateAlarmName",
    "VariantALatencyAlarmName",
    "VariantBErrorRateAlarmName",
    "VariantBLatencyAlarmName",
)


def by_id(stack: Stack) -> dict[str, Resource]:
    return {resource.logical_id: resource for resource in stack.walk_resources()}


def monitoring(hosting_mode: str) -> dict[str, Resource]:
    return by_id(load_stack(MONITORING, {"HostingMode": hosting_mode}))


def inference_api(hosting_mode: str, instances: int = 1) -> dict[str, Resource]:
    """The inference API on its own (its alarm-name parameters get placeholders)."""
    stack = load_stack(
        INFERENCE_API,
        {
            "HostingMode": hosting_mode,
            "RealtimeInstanceCount": instances,
            "HeadlineBaseModelDataUrl": MODELS["HeadlineBaseModelDataUrl"],
            "HeadlineLiteModelDataUrl": MODELS["HeadlineLiteModelDataUrl"],
        },
        placeholder_missing=True,
    )
    return by_id(stack)


def root(hosting_mode: str, instances: int = 1) -> Stack:
    """The root stack, every app wired as CloudFormation would wire it."""
    return load_stack(
        ROOT_TEMPLATE,
        {
            **MODELS,
            "NewsClassifierModelDataUrl": "s3://pressroom-models/news-classifier/model.tar.gz",
            "NewsClassifierModelVersion": "v3",
            "HostingMode": hosting_mode,
        },
        nested_overrides={"InferenceApi": {"RealtimeInstanceCount": instances}},
    )


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
    dashboard = monitoring("realtime")["ExperimentDashboard"]
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
    found = monitoring(hosting_mode)
    # The alarms name the endpoints by convention: they must be the ones the API serves from.
    served = root(hosting_mode).nested["InferenceApi"].outputs
    assert {variant: served[f"Variant{variant}EndpointName"] for variant in "AB"} == endpoints
    for variant, endpoint in endpoints.items():
        for alarm in (f"Variant{variant}ErrorRateAlarm", f"Variant{variant}LatencyAlarm"):
            stats = [
                m["MetricStat"] for m in found[alarm].properties["Metrics"] if "MetricStat" in m
            ]
            for stat in stats:
                dimensions = {d["Name"]: d["Value"] for d in stat["Metric"]["Dimensions"]}
                assert dimensions == {"EndpointName": endpoint, "VariantName": variant}, alarm


def test_a_realtime_deployment_rolls_back_on_the_variant_alarms() -> None:
    stack = root("realtime", instances=2)
    found = by_id(stack.nested["InferenceApi"])
    config = found["GeneratorRealtimeEndpoint"].properties["DeploymentConfig"]

    routing = config["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "CANARY"
    assert routing["CanarySize"] == {"Type": "INSTANCE_COUNT", "Value": 1}
    rollback_alarms = {
        alarm["AlarmName"] for alarm in config["AutoRollbackConfiguration"]["Alarms"]
    }
    variant_alarms = {
        resource.properties["AlarmName"]
        for resource in stack.walk_resources("AWS::CloudWatch::Alarm")
    }
    assert rollback_alarms == variant_alarms and len(variant_alarms) == 4
    assert {r.stack.name for r in stack.walk_resources("AWS::CloudWatch::Alarm")} == {
        stack.nested["Monitoring"].name
    }


def test_the_api_takes_its_rollback_alarms_from_the_monitoring_app_so_it_deploys_after_it() -> None:
    passed = load_template(ROOT_TEMPLATE)["Resources"]["InferenceApi"]["Properties"]["Parameters"]
    outputs = load_template(MONITORING)["Outputs"]

    for parameter in ROLLBACK_ALARM_PARAMETERS:
        # A GetAtt on the monitoring app's output: CloudFormation creates that app first.
        assert passed[parameter] == {"Fn::GetAtt": ["Monitoring", f"Outputs.{parameter}"]}
        assert outputs[parameter]["Value"] == {"Ref": parameter.removesuffix("Name")}


def test_one_instance_per_variant_shifts_all_at_once_since_a_canary_needs_two() -> None:
    config = inference_api("realtime", instances=1)["GeneratorRealtimeEndpoint"].properties

    routing = config["DeploymentConfig"]["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing["Type"] == "ALL_AT_ONCE"


def test_each_realtime_variant_autoscales_on_invocations_per_instance() -> None:
    found = inference_api("realtime", instances=2)
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
    found = inference_api("serverless")
    assert not [r for r in found.values() if r.type.startswith("AWS::ApplicationAutoScaling")]
