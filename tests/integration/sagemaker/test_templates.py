"""The SageMaker resources of the real templates, resolved by local.cfn as CloudFormation
would, and the intrinsic functions the resolver supports (short-form YAML tags included)."""

import json
from pathlib import Path
from typing import Any

import pytest

from local.cfn import Stack, TemplateError, load_stack
from local.emulate.sagemaker.endpoints import endpoint_specs, load_local_stacks
from local.paths import APPS_DIR, DEFAULT_MODELS_ROOT

INFERENCE_API = APPS_DIR / "inference-api" / "template.yaml"
CLASSIFIER = APPS_DIR / "classifier" / "template.yaml"
GENERATOR_PARAMETERS = {
    "HeadlineBaseModelDataUrl": "s3://pressroom-models/headline-base/v1/model.tar.gz",
    "HeadlineBaseModelVersion": "v1",
    "HeadlineLiteModelDataUrl": "s3://pressroom-models/headline-lite/v2/model.tar.gz",
    "HeadlineLiteModelVersion": "v2",
}
CLASSIFIER_PARAMETERS = {
    "NewsClassifierModelDataUrl": "s3://pressroom-models/news-classifier/v3/model.tar.gz",
    "NewsClassifierModelVersion": "v3",
    "PermissionsBoundary": "arn:aws:iam::123456789012:policy/pressroom-deploy/boundary",
    "InferenceImageRepository": "pressroom-inference",
    "InferenceImageTag": "serving-0123456789abcdef",
}


def _generator_stack(**overrides: Any) -> Stack:
    return load_stack(
        INFERENCE_API, {**GENERATOR_PARAMETERS, **overrides}, placeholder_missing=True
    )


def _types(stack: Stack) -> list[str]:
    return sorted(resource.type for resource in stack.resources.values())


def test_realtime_mode_has_one_endpoint_with_weighted_variants_a_and_b() -> None:
    stack = _generator_stack(HostingMode="realtime", VariantAWeight=4, VariantBWeight=1)

    (endpoint,) = stack.walk_resources("AWS::SageMaker::Endpoint")
    config = stack.find_by_name(
        "AWS::SageMaker::EndpointConfig", endpoint.properties["EndpointConfigName"]
    )
    variants = config.properties["ProductionVariants"]
    assert [(v["VariantName"], v["InitialVariantWeight"]) for v in variants] == [("A", 4), ("B", 1)]
    models = [stack.find_by_name("AWS::SageMaker::Model", v["ModelName"]) for v in variants]
    assert [m.metadata["Pressroom"]["Model"] for m in models] == ["headline-base", "headline-lite"]
    assert stack.outputs["VariantAEndpointName"] == stack.outputs["VariantBEndpointName"]


def test_an_update_keeps_the_instance_counts_autoscaling_set_but_takes_the_new_weights() -> None:
    stack = _generator_stack(HostingMode="realtime")

    targets = list(stack.walk_resources("AWS::ApplicationAutoScaling::ScalableTarget"))
    scaled = {target.properties["ResourceId"].split("/")[1] for target in targets}
    assert len(targets) == 2 and len(scaled) == 1  # both variants of the one endpoint
    for name in scaled:
        endpoint = stack.find_by_name("AWS::SageMaker::Endpoint", name)
        # Without it, each update resets every variant to its InitialInstanceCount.
        assert endpoint.properties.get("RetainAllVariantProperties") is True
        # An experiment round's weights come from the new config.
        assert endpoint.properties["ExcludeRetainedVariantProperties"] == [
            {"VariantPropertyType": "DesiredWeight"}
        ]


def test_serverless_mode_has_one_single_variant_endpoint_per_model() -> None:
    stack = _generator_stack(HostingMode="serverless", ServerlessMaxConcurrency=7)

    endpoints = list(stack.walk_resources("AWS::SageMaker::Endpoint"))
    assert len(endpoints) == 2
    for endpoint in endpoints:
        config = stack.find_by_name(
            "AWS::SageMaker::EndpointConfig", endpoint.properties["EndpointConfigName"]
        )
        (variant,) = config.properties["ProductionVariants"]
        assert variant["ServerlessConfig"]["MaxConcurrency"] == 7
        assert "InstanceType" not in variant
    assert stack.outputs["VariantAEndpointName"] != stack.outputs["VariantBEndpointName"]


def test_models_take_their_artifact_and_version_from_parameters() -> None:
    stack = _generator_stack()

    model = stack.resources["HeadlineLiteModel"].properties
    container = model["PrimaryContainer"]
    assert container["ModelDataUrl"] == GENERATOR_PARAMETERS["HeadlineLiteModelDataUrl"]
    assert container["Environment"]["PRESSROOM_MODEL_VERSION"] == "v2"
    # The serving image from this account's ECR (models/serving/Dockerfile, built in CI).
    assert container["Image"] == (
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/unset-InferenceImageRepository"
        ":unset-InferenceImageTag"
    )
    # No fixed physical name: CloudFormation must be free to replace models and configs.
    assert "ModelName" not in model


def test_execution_role_reads_only_the_two_artifacts() -> None:
    stack = _generator_stack()

    (policy,) = stack.resources["GeneratorExecutionRole"].properties["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["ReadModelArtifacts"]["Action"] == "s3:GetObject"
    assert statements["ReadModelArtifacts"]["Resource"] == [
        "arn:aws:s3:::pressroom-models/headline-base/v1/model.tar.gz",
        "arn:aws:s3:::pressroom-models/headline-lite/v2/model.tar.gz",
    ]


CHALLENGER = {
    "ChallengerModelDataUrl": "s3://pressroom-models/headline-base/v9/model.tar.gz",
    "ChallengerModelVersion": "v9",
}


@pytest.mark.parametrize("mode", ["realtime", "serverless"])
def test_a_challenger_takes_variant_bs_place_in_both_modes(mode: str) -> None:
    stack = _generator_stack(HostingMode=mode, **CHALLENGER)

    served = {}
    for config in stack.walk_resources("AWS::SageMaker::EndpointConfig"):
        for variant in config.properties["ProductionVariants"]:
            model = stack.find_by_name("AWS::SageMaker::Model", variant["ModelName"])
            container = model.properties["PrimaryContainer"]
            served[variant["VariantName"]] = (
                model.metadata["Pressroom"]["Model"],
                container["ModelDataUrl"],
                container["Environment"]["PRESSROOM_MODEL_VERSION"],
                {tag["Key"]: tag["Value"] for tag in model.properties["Tags"]},
            )
    assert served["A"][:3] == (
        "headline-base",
        GENERATOR_PARAMETERS["HeadlineBaseModelDataUrl"],
        "v1",
    )
    assert served["B"] == (
        "headline-base",
        CHALLENGER["ChallengerModelDataUrl"],
        "v9",
        {
            "pressroom:model": "headline-base",
            "pressroom:model-version": "v9",
            "pressroom:role": "challenger",
        },
    )
    variants = json.loads(
        stack.resources["GenerateFunction"].properties["Environment"]["Variables"]["VARIANTS"]
    )
    assert (variants["B"]["model_name"], variants["B"]["model_version"]) == ("headline-base", "v9")


def test_without_a_challenger_variant_b_serves_headline_lite() -> None:
    stack = _generator_stack()

    assert "ChallengerModel" not in stack.resources
    variants = json.loads(
        stack.resources["GenerateFunction"].properties["Environment"]["Variables"]["VARIANTS"]
    )
    assert (variants["B"]["model_name"], variants["B"]["model_version"]) == ("headline-lite", "v2")


def test_execution_role_reads_the_challengers_artifact_too() -> None:
    stack = _generator_stack(**CHALLENGER)

    (policy,) = stack.resources["GeneratorExecutionRole"].properties["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["ReadModelArtifacts"]["Resource"][-1] == (
        "arn:aws:s3:::pressroom-models/headline-base/v9/model.tar.gz"
    )


def test_both_functions_learn_when_the_experiment_round_started() -> None:
    started = {"ExperimentStartedAt": "2026-05-01T09:30:00+00:00"}
    [root] = load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, started)
    [default_root] = load_local_stacks("smoke", DEFAULT_MODELS_ROOT)

    def started_at(stack: Stack) -> dict[str, str]:
        return {
            function.logical_id: function.properties["Environment"]["Variables"][
                "EXPERIMENT_STARTED_AT"
            ]
            for function in stack.walk_resources("AWS::Serverless::Function")
            if function.logical_id in ("GenerateFunction", "FeedbackFunction")
        }

    assert started_at(root) == {
        "GenerateFunction": "2026-05-01T09:30:00+00:00",
        "FeedbackFunction": "2026-05-01T09:30:00+00:00",
    }
    assert set(started_at(default_root).values()) == {""}
    with pytest.raises(TemplateError, match="ExperimentStartedAt"):
        load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, {"ExperimentStartedAt": "today"})


def test_classifier_is_serverless_and_publishes_its_endpoint_name() -> None:
    with_provisioning = load_stack(
        CLASSIFIER, {**CLASSIFIER_PARAMETERS, "ClassifierProvisionedConcurrency": 2}
    )
    without = load_stack(CLASSIFIER, CLASSIFIER_PARAMETERS)

    def serverless_config(stack: Stack) -> dict[str, Any]:
        config = stack.resources["ClassifierEndpointConfig"].properties
        return dict(config["ProductionVariants"][0]["ServerlessConfig"])

    assert serverless_config(with_provisioning)["ProvisionedConcurrency"] == 2
    assert "ProvisionedConcurrency" not in serverless_config(without)
    name = without.outputs["ClassifierEndpointName"]
    parameter = without.resources["ClassifierEndpointNameParameter"].properties
    assert parameter == {
        "Name": "/pressroom/dev/sagemaker/classifier/endpoint-name",
        "Type": "String",
        "Description": parameter["Description"],
        "Value": name,
    }


def test_invalid_parameter_values_are_refused_naming_the_parameter() -> None:
    with pytest.raises(TemplateError, match="HostingMode"):
        _generator_stack(HostingMode="provisioned")
    with pytest.raises(TemplateError, match="HeadlineBaseModelDataUrl"):
        _generator_stack(HeadlineBaseModelDataUrl="https://example.com/model.tar.gz")
    with pytest.raises(TemplateError, match="VariantAWeight"):
        _generator_stack(VariantAWeight=-1)
    with pytest.raises(TemplateError, match="unknown parameter"):
        _generator_stack(HostingMod="realtime")


@pytest.mark.parametrize("mode", ["realtime", "serverless"])
def test_root_template_yields_the_emulated_endpoints_in_both_modes(mode: str) -> None:
    stacks = load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, {"HostingMode": mode})

    specs = endpoint_specs(stacks, "smoke", DEFAULT_MODELS_ROOT)

    served = sorted((variant.name, variant.model_name) for s in specs for variant in s.variants)
    assert served == [
        ("A", "headline-base"),
        ("AllTraffic", "news-classifier"),
        ("B", "headline-lite"),
    ]
    generator_endpoints = [s for s in specs if s.variants[0].model_name != "news-classifier"]
    assert len(generator_endpoints) == (1 if mode == "realtime" else 2)
    assert all(s.serverless == (mode == "serverless") for s in generator_endpoints)


# ---- data capture (realtime only: serverless endpoints do not support it)


def test_realtime_generator_captures_every_json_request_and_answer_into_its_bucket() -> None:
    stack = _generator_stack(HostingMode="realtime")

    config = stack.resources["GeneratorRealtimeEndpointConfig"].properties
    bucket = stack.resources["CaptureBucket"].physical_name
    assert bucket == "pressroom-dev-capture-123456789012"  # pressroom-<stage>-...: IAM scopes it
    assert config["DataCaptureConfig"] == {
        "EnableCapture": True,
        "InitialSamplingPercentage": 100,
        "DestinationS3Uri": f"s3://{bucket}/capture",
        "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
        "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
    }
    assert (
        _generator_stack(CaptureSamplingPercentage=5)
        .resources["GeneratorRealtimeEndpointConfig"]
        .properties["DataCaptureConfig"]["InitialSamplingPercentage"]
        == 5
    )
    (spec,) = endpoint_specs([stack], "smoke", DEFAULT_MODELS_ROOT)
    assert spec.capture is not None and spec.capture.sampling_percentage == 100


def test_serverless_mode_captures_nothing_and_has_no_capture_bucket() -> None:
    stack = _generator_stack(HostingMode="serverless")

    configs = list(stack.walk_resources("AWS::SageMaker::EndpointConfig"))
    assert len(configs) == 2
    assert all("DataCaptureConfig" not in config.properties for config in configs)
    assert "AWS::S3::Bucket" not in _types(stack)
    (policy,) = stack.resources["GeneratorExecutionRole"].properties["Policies"]
    assert "WriteDataCapture" not in {s["Sid"] for s in policy["PolicyDocument"]["Statement"]}
    assert all(
        spec.capture is None for spec in endpoint_specs([stack], "smoke", DEFAULT_MODELS_ROOT)
    )


def test_the_capture_bucket_is_private_encrypted_tls_only_and_expires_its_data() -> None:
    stack = _generator_stack(HostingMode="realtime", CaptureRetentionDays=7)

    bucket = stack.resources["CaptureBucket"].properties
    assert bucket["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ["BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"], True
    )
    (encryption,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    (rule,) = bucket["LifecycleConfiguration"]["Rules"]
    assert (rule["Status"], rule["ExpirationInDays"]) == ("Enabled", 7)
    policy = stack.resources["CaptureBucketPolicy"].properties
    assert policy["Bucket"] == "pressroom-dev-capture-123456789012"
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert (statement["Effect"], statement["Principal"], statement["Action"]) == (
        "Deny",
        "*",
        "s3:*",
    )
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert statement["Resource"] == [
        "arn:aws:s3:::pressroom-dev-capture-123456789012",
        "arn:aws:s3:::pressroom-dev-capture-123456789012/*",
    ]


def test_the_execution_role_may_only_put_objects_under_the_capture_prefix() -> None:
    stack = _generator_stack(HostingMode="realtime")

    (policy,) = stack.resources["GeneratorExecutionRole"].properties["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    writes = [s for s in statements if any(a.startswith("s3:Put") for a in _actions(s))]
    assert writes == [
        {
            "Sid": "WriteDataCapture",
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::pressroom-dev-capture-123456789012/capture/*",
        }
    ]
    destination = stack.resources["GeneratorRealtimeEndpointConfig"].properties[
        "DataCaptureConfig"
    ]["DestinationS3Uri"]
    assert writes[0]["Resource"] == "arn:aws:s3:::" + destination.removeprefix("s3://") + "/*"


def _actions(statement: dict[str, Any]) -> list[str]:
    actions = statement["Action"]
    return [actions] if isinstance(actions, str) else list(actions)


# ---- the resolver itself, on a small template that uses every supported intrinsic

PARENT = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Env: {Type: String, Default: dev, AllowedValues: [dev, prod]}
  Sizes: {Type: CommaDelimitedList, Default: "small,large"}
Mappings:
  Regions:
    us-east-1: {Short: use1}
Conditions:
  IsProd: !Equals [!Ref Env, prod]
  IsDev: !Not [!Condition IsProd]
  DevInUse1: !And [!Condition IsDev, !Equals [!Ref "AWS::Region", us-east-1]]
  Either: !Or [!Condition IsProd, !Condition DevInUse1]
Resources:
  Child:
    Type: AWS::Serverless::Application
    Properties:
      Location: child.yaml
      Parameters:
        Prefix: !Join ["-", [!Ref Env, !FindInMap [Regions, !Ref "AWS::Region", Short]]]
  Bucket:
    Type: AWS::S3::Bucket
    Condition: IsProd
    Properties: {BucketName: prod-bucket}
  Topic:
    Type: AWS::SNS::Topic
    Properties:
      TopicName: !Sub
        - "${Prefix}-${Size}-${AWS::AccountId}-${!Literal}"
        - Prefix: !GetAtt Child.Outputs.Prefixed
          Size: !Select [1, !Ref Sizes]
      Tags: !If [IsProd, [{Key: bucket, Value: !Ref Bucket}], !Ref "AWS::NoValue"]
Outputs:
  TopicArn:
    Value: !GetAtt Topic.Arn
  Both: {Condition: Either, Value: !Split [",", "a,b"]}
  Cidrs: {Value: !Cidr ["10.0.0.0/16", 2, 8]}
"""
CHILD = """
Parameters:
  Prefix: {Type: String}
Resources:
  Queue:
    Type: AWS::SQS::Queue
Outputs:
  Prefixed: {Value: !Sub "${Prefix}-${Queue}"}
"""


def test_resolver_handles_nested_apps_conditions_and_every_intrinsic(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(PARENT)
    (tmp_path / "child.yaml").write_text(CHILD)

    stack = load_stack(tmp_path / "parent.yaml", stack_name="demo")

    queue = stack.nested["Child"].resources["Queue"].physical_name
    assert stack.nested["Child"].parameters == {"Prefix": "dev-use1"}
    assert "Bucket" not in stack.resources  # its condition is false
    topic = stack.resources["Topic"]
    assert topic.properties == {
        "TopicName": f"dev-use1-{queue}-large-123456789012-${{Literal}}",
    }
    assert stack.outputs["TopicArn"] == (
        f"arn:aws:sns:us-east-1:123456789012:dev-use1-{queue}-large-123456789012-${{Literal}}"
    )
    assert stack.outputs["Both"] == ["a", "b"]
    assert stack.outputs["Cidrs"] == ["10.0.0.0/24", "10.0.1.0/24"]
    assert stack.conditions == {"IsProd": False, "IsDev": True, "DevInUse1": True, "Either": True}


def test_resolver_reports_a_ref_to_a_resource_whose_condition_is_false(tmp_path: Path) -> None:
    (tmp_path / "parent.yaml").write_text(PARENT.replace("!If [IsProd, ", "!If [IsDev, "))
    (tmp_path / "child.yaml").write_text(CHILD)

    with pytest.raises(TemplateError, match="Ref to Bucket, whose condition is false"):
        load_stack(tmp_path / "parent.yaml")


def test_emulator_hosts_only_the_named_endpoints_and_refuses_unknown_ones() -> None:
    from local.emulate.sagemaker import Emulator

    generator_only = Emulator("smoke", only_endpoints=["pressroom-dev-headline"])
    assert generator_only.endpoint_names == ["pressroom-dev-headline"]
    with pytest.raises(ValueError, match="only_endpoints: no endpoint nope"):
        Emulator("smoke", only_endpoints=["nope"])
