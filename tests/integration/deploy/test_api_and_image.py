"""The REST API as SAM deploys it (one throttled stage, no stray `Stage`, no usage plan) and the
serving image (built from models/serving/Dockerfile, named by the templates, pushed by CI)."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

from local.cfn import load_stack, load_template
from local.paths import REPO_ROOT, ROOT_TEMPLATE
from tests.integration.deploy.policies import TOOLS_PYTHON, transformed

INFERENCE_API = REPO_ROOT / "apps" / "inference-api" / "template.yaml"
DOCKERFILE = REPO_ROOT / "models" / "serving" / "Dockerfile"
IMAGE_SCRIPT = REPO_ROOT / ".github" / "scripts" / "inference-image.sh"
MODELS = {
    "HeadlineBaseModelDataUrl": "s3://artifacts/models/headline-base/v1/model.tar.gz",
    "HeadlineBaseModelVersion": "v1",
    "HeadlineLiteModelDataUrl": "s3://artifacts/models/headline-lite/v2/model.tar.gz",
    "HeadlineLiteModelVersion": "v2",
    "NewsClassifierModelDataUrl": "s3://artifacts/models/news-classifier/v3/model.tar.gz",
    "NewsClassifierModelVersion": "v3",
}
needs_tools = pytest.mark.skipif(
    not TOOLS_PYTHON.exists(), reason="needs .venv-tools (make tools): aws-sam-translator"
)


@needs_tools
def test_the_api_deploys_to_its_one_throttled_stage_only() -> None:
    resources = transformed(INFERENCE_API)["Resources"]
    stages = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Stage"]
    deployments = [r for r in resources.values() if r["Type"] == "AWS::ApiGateway::Deployment"]

    # Without OpenApiVersion the deployment also creates a stage named "Stage" (StageName on
    # the AWS::ApiGateway::Deployment), with no throttling and no access log.
    assert [deployment["Properties"].get("StageName") for deployment in deployments] == [None]
    (stage,) = stages
    assert stage["Properties"]["StageName"] == {"Ref": "Stage"}
    (settings,) = stage["Properties"]["MethodSettings"]
    assert settings["ResourcePath"] == "/*"
    assert settings["HttpMethod"] == "*"
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(settings)


@needs_tools
def test_no_usage_plan_or_api_key_that_no_method_would_require() -> None:
    types = {resource["Type"] for resource in transformed(INFERENCE_API)["Resources"].values()}
    assert not types & {
        "AWS::ApiGateway::UsagePlan",
        "AWS::ApiGateway::UsagePlanKey",
        "AWS::ApiGateway::ApiKey",
    }
    # The template says why: browsers call the API directly, so a key would be public.
    assert "No usage plan or API keys" in INFERENCE_API.read_text()


def test_the_image_tag_is_the_dockerfiles_content_hash() -> None:
    expected = "serving-" + hashlib.sha256(DOCKERFILE.read_bytes()).hexdigest()[:16]
    parameters = load_template(ROOT_TEMPLATE)["Parameters"]

    assert parameters["InferenceImageTag"]["Default"] == expected, (
        "models/serving/Dockerfile changed: set template-root.yaml's InferenceImageTag "
        f"default to {expected} (CI pushes the image under that tag)"
    )


def test_the_image_installs_the_pinned_serving_packages() -> None:
    pins = {
        name: version
        for name, version in (
            str(dependency).split("==")
            for dependency in tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"][
                "dependencies"
            ]
        )
    }
    serving = ("transformers", "onnxruntime", "onnxruntime-genai")
    installed = dict(
        re.findall(
            r"\b(transformers|onnxruntime|onnxruntime-genai)==([0-9.]+)", DOCKERFILE.read_text()
        )
    )

    assert installed == {name: pins[name] for name in serving}
    # The base is the DLC the templates served before, from AWS's registry.
    assert re.search(
        r"^FROM \$\{DLC_REGISTRY\}/huggingface-pytorch-inference:", DOCKERFILE.read_text(), re.M
    )


@pytest.mark.parametrize(("mode", "isolated"), [("realtime", True), ("serverless", False)])
def test_every_model_serves_the_image_and_realtime_ones_run_without_network(
    mode: str, isolated: bool
) -> None:
    stack = load_stack(ROOT_TEMPLATE, {**MODELS, "HostingMode": mode}, account_id="111122223333")
    parameters = load_template(ROOT_TEMPLATE)["Parameters"]
    image = (
        "111122223333.dkr.ecr.us-east-1.amazonaws.com/"
        f"{parameters['InferenceImageRepository']['Default']}:"
        f"{parameters['InferenceImageTag']['Default']}"
    )
    isolation = {}
    for model in stack.walk_resources("AWS::SageMaker::Model"):
        assert model.properties["PrimaryContainer"]["Image"] == image
        isolation[model.metadata["Pressroom"]["Model"]] = model.properties["EnableNetworkIsolation"]
    # Serverless Inference does not support network isolation; the classifier is serverless.
    assert isolation == {
        "headline-base": isolated,
        "headline-lite": isolated,
        "news-classifier": False,
    }


def _fake(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/usr/bin/env bash\n" + script)
    path.chmod(0o755)


def _run_image_script(
    tmp_path: Path, *, in_ecr: bool, root: Path = ROOT_TEMPLATE
) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    _fake(
        bin_dir,
        "aws",
        f'echo "aws $*" >>{calls}\n'
        'case "$1 $2" in\n'
        '  "sts get-caller-identity") echo 111122223333 ;;\n'
        f'  "ecr describe-images") exit {0 if in_ecr else 254} ;;\n'
        '  "ecr get-login-password") echo token ;;\n'
        "esac\n",
    )
    _fake(bin_dir, "docker", f'cat >/dev/null; echo "docker $*" >>{calls}\n')
    work = tmp_path / "repo"
    (work / "models" / "serving").mkdir(parents=True, exist_ok=True)
    (work / "models" / "serving" / "Dockerfile").write_bytes(DOCKERFILE.read_bytes())
    (work / "template-root.yaml").write_text(root.read_text())
    return subprocess.run(
        ["bash", str(IMAGE_SCRIPT)],
        cwd=work,
        env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
             "AWS_REGION": "us-east-1", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary")},
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip


def test_ci_skips_an_image_that_ecr_already_has(tmp_path: Path) -> None:
    completed = _run_image_script(tmp_path, in_ecr=True)

    assert completed.returncode == 0, completed.stderr
    assert "is already in ECR" in completed.stdout
    assert "docker" not in (tmp_path / "calls").read_text()


def test_ci_builds_and_pushes_the_tag_the_template_names(tmp_path: Path) -> None:
    completed = _run_image_script(tmp_path, in_ecr=False)

    assert completed.returncode == 0, completed.stderr
    tag = load_template(ROOT_TEMPLATE)["Parameters"]["InferenceImageTag"]["Default"]
    image = f"111122223333.dkr.ecr.us-east-1.amazonaws.com/pressroom-inference:{tag}"
    docker = [
        line for line in (tmp_path / "calls").read_text().splitlines() if line.startswith("docker")
    ]
    assert docker[-2].startswith(
        "docker build --build-arg DLC_REGISTRY=763104351884.dkr.ecr.us-east-1.amazonaws.com "
        f"--tag {image} "
    )
    assert docker[-1] == f"docker push {image}"


def test_ci_refuses_a_template_that_names_another_tag(tmp_path: Path) -> None:
    stale = tmp_path / "template-root.yaml"
    stale.write_text(
        re.sub(
            r"Default: serving-[0-9a-f]{16}",
            "Default: serving-0000000000000000",
            ROOT_TEMPLATE.read_text(),
        )
    )

    completed = _run_image_script(tmp_path, in_ecr=True, root=stale)

    assert completed.returncode == 1
    assert "InferenceImageTag is serving-0000000000000000" in completed.stderr


def test_sagemaker_may_read_every_alarm_that_rolls_an_endpoint_back() -> None:
    stack = load_stack(ROOT_TEMPLATE, {**MODELS, "HostingMode": "realtime"})
    alarms = [
        alarm["AlarmName"]
        for endpoint in stack.walk_resources("AWS::SageMaker::Endpoint")
        for alarm in endpoint.properties.get("DeploymentConfig", {})
        .get("AutoRollbackConfiguration", {})
        .get("Alarms", [])
    ]
    assert len(alarms) == 4
    for model in stack.walk_resources("AWS::SageMaker::Model"):
        if model.metadata["Pressroom"]["Model"] == "news-classifier":
            continue  # serverless, no deployment guardrails
        role_arn = str(model.properties["ExecutionRoleArn"])
        (role,) = (
            role
            for role in stack.walk_resources("AWS::IAM::Role")
            if role_arn.endswith(f":role/{role.physical_name}")
        )
        readable = [
            resource
            for policy in role.properties["Policies"]
            for statement in policy["PolicyDocument"]["Statement"]
            if "cloudwatch:DescribeAlarms" in statement["Action"]
            for resource in [statement["Resource"]]
        ]
        for alarm in alarms:
            arn = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{alarm}"
            assert any(fnmatch.fnmatchcase(arn, pattern) for pattern in readable), alarm
