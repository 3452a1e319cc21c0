"""What a `sam deploy` of one environment needs beyond samconfig.toml, read from the templates.

- Which root parameters carry each model's artifact URL and version: found from the templates
  (each `AWS::SageMaker::Model` names its model in `Metadata.Pressroom.Model`, and its
  `ModelDataUrl` / `PRESSROOM_MODEL_VERSION` are Refs that the root passes through), so a renamed
  parameter never needs a second edit here.
- The serving container a model package declares: the same Image and Environment the app template
  gives its `AWS::SageMaker::Model`, resolved by `local.cfn`.
- The site upload: `apps/frontend/site` synced to the bucket the stack outputs, then a CloudFront
  invalidation.
- The `sam logs --name` arguments for one app's functions in the nested stack.
"""

from __future__ import annotations

import hashlib
import mimetypes
import shlex
import tomllib
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Annotated, Any

import boto3
import typer
from botocore.exceptions import BotoCoreError, ClientError
from rich.console import Console

from local.cfn import DEFAULT_ACCOUNT_ID, TemplateError, load_stack, load_template
from local.paths import REPO_ROOT, ROOT_TEMPLATE, SITE_DIR

SAMCONFIG = REPO_ROOT / "samconfig.toml"
# Root stack outputs the site upload reads (template-root.yaml re-exports the frontend's).
SITE_BUCKET_OUTPUT = "SiteBucketName"
DISTRIBUTION_OUTPUT = "SiteDistributionId"


class DeployError(Exception):
    """Deploy configuration or state that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class ModelParameters:
    """The root template parameters that carry one model's artifact."""

    data_url: str
    version: str


@dataclass(frozen=True)
class EnvironmentConfig:
    """The parts of one samconfig.toml environment that code outside SAM needs."""

    name: str
    stack_name: str
    region: str
    parameter_overrides: str


def environment_config(name: str, samconfig: Path = SAMCONFIG) -> EnvironmentConfig:
    try:
        config = tomllib.loads(samconfig.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise DeployError(f"{samconfig}: cannot read it: {error}") from error
    environments = sorted(key for key, value in config.items() if isinstance(value, dict))
    if name not in environments:
        raise DeployError(f"{samconfig}: no environment {name!r}; known: {', '.join(environments)}")
    deploy = config[name].get("deploy", {}).get("parameters", {})
    missing = [key for key in ("stack_name", "region") if not isinstance(deploy.get(key), str)]
    if missing:
        raise DeployError(f"{samconfig}: [{name}.deploy.parameters] lacks {', '.join(missing)}")
    overrides = deploy.get("parameter_overrides", "")
    if isinstance(overrides, list):
        overrides = " ".join(overrides)
    return EnvironmentConfig(name, deploy["stack_name"], deploy["region"], str(overrides))


def parse_overrides(text: str) -> dict[str, str]:
    """`Key=Value Key2='a b'` (samconfig's `parameter_overrides`) as a mapping."""
    pairs = shlex.split(text)
    malformed = [pair for pair in pairs if "=" not in pair]
    if malformed:
        raise DeployError(f"parameter overrides: {', '.join(malformed)} is not Key=Value")
    return dict(pair.split("=", 1) for pair in pairs)


def model_parameters(root: Path = ROOT_TEMPLATE) -> dict[str, ModelParameters]:
    """For each served model, the root parameters that carry its artifact URL and version."""
    found: dict[str, ModelParameters] = {}
    for app_id, passed, nested in nested_applications(root):
        for logical_id, resource, model in _served_models(nested):
            container = resource["Properties"]["PrimaryContainer"]
            where = f"{app_id}/{logical_id}"
            parameters = ModelParameters(
                data_url=_root_parameter(passed, container.get("ModelDataUrl"), where),
                version=_root_parameter(
                    passed, container.get("Environment", {}).get("PRESSROOM_MODEL_VERSION"), where
                ),
            )
            if found.setdefault(model, parameters) != parameters:
                raise DeployError(f"{where}: {model} takes other parameters than elsewhere")
    return found


def serving_container(
    model: str,
    *,
    model_data_url: str,
    version: str,
    region: str,
    account_id: str = DEFAULT_ACCOUNT_ID,
    root: Path = ROOT_TEMPLATE,
) -> dict[str, Any]:
    """The Image and Environment the templates serve `model` with, in `region` of `account_id`
    (the serving image lives in that account's ECR repository)."""
    parameters = model_parameters(root)
    if model not in parameters:
        raise DeployError(f"no AWS::SageMaker::Model serves {model!r} in {root} or its apps")
    # Every model's parameters get this artifact: only `model`'s own container is read.
    overrides = {}
    for model_parameter in parameters.values():
        overrides[model_parameter.data_url] = model_data_url
        overrides[model_parameter.version] = version
    stack = load_stack(root, overrides, region=region, account_id=account_id)
    for resource in stack.walk_resources("AWS::SageMaker::Model"):
        if resource.metadata.get("Pressroom", {}).get("Model") == model:
            container = dict(resource.properties["PrimaryContainer"])
            container.pop("ModelDataUrl", None)
            return container
    raise DeployError(f"{model!r} is served by no active AWS::SageMaker::Model in {root}")


def log_names(app: str, root: Path = ROOT_TEMPLATE) -> list[str]:
    """`NestedStack/Function` ids of one app's Lambda functions, as `sam logs --name` takes them."""
    apps = []
    for app_id, _, nested in nested_applications(root):
        apps.append(nested.parent.name)
        if nested.parent.name != app:
            continue
        names = [
            f"{app_id}/{logical_id}"
            for logical_id, resource in load_template(nested)["Resources"].items()
            if resource.get("Type") in ("AWS::Serverless::Function", "AWS::Lambda::Function")
        ]
        if not names:
            raise DeployError(f"app {app!r} has no Lambda functions, so no logs to follow")
        return names
    raise DeployError(f"no app {app!r} in {root}; apps: {', '.join(sorted(apps))}")


@dataclass(frozen=True)
class SiteSync:
    uploaded: list[str]
    deleted: list[str]
    unchanged: int
    invalidation_id: str | None


def publish_site(
    site: Path, *, bucket: str, distribution_id: str, s3: Any, cloudfront: Any
) -> SiteSync:
    """Make the bucket hold exactly the site's files; invalidate CloudFront if anything changed.

    Unchanged files (same MD5 as the object's ETag: every object here is a single-part upload)
    are skipped, so a re-run uploads nothing and invalidates nothing.
    """
    local = {PurePosixPath(path.relative_to(site)).as_posix(): path for path in _files(site)}
    if not local:
        raise DeployError(f"{site}: no files to publish")
    remote = {
        item["Key"]: item["ETag"].strip('"')
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for item in page.get("Contents", [])
    }
    uploaded = []
    for key, path in sorted(local.items()):
        body = path.read_bytes()
        if remote.get(key) == hashlib.md5(body, usedforsecurity=False).hexdigest():
            continue
        content_type = mimetypes.guess_type(key)[0] or "application/octet-stream"
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
        uploaded.append(key)
    deleted = sorted(set(remote) - set(local))
    for start in range(0, len(deleted), 1000):  # DeleteObjects takes at most 1000 keys
        batch = [{"Key": key} for key in deleted[start : start + 1000]]
        s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
    invalidation_id = None
    if uploaded or deleted:
        invalidation_id = cloudfront.create_invalidation(
            DistributionId=distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]},
                "CallerReference": f"pressroom-site-{uuid.uuid4()}",
            },
        )["Invalidation"]["Id"]
    unchanged = len(local) - len(uploaded)
    return SiteSync(uploaded, deleted, unchanged, invalidation_id)


def stack_outputs(cloudformation: Any, stack_name: str, *names: str) -> dict[str, str]:
    """The named outputs of a deployed stack; a missing one is an error naming it."""
    stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {item["OutputKey"]: item["OutputValue"] for item in stacks[0].get("Outputs", [])}
    missing = [name for name in names if name not in outputs]
    if missing:
        raise DeployError(f"stack {stack_name} has no output {', '.join(missing)}: deploy it first")
    return {name: outputs[name] for name in names}


def nested_applications(root: Path) -> Iterator[tuple[str, Mapping[str, Any], Path]]:
    """(logical id, parameters the root passes, nested template path) of each nested app."""
    for app_id, resource in load_template(root)["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Application":
            continue
        properties = resource.get("Properties", {})
        location = properties.get("Location")
        if not isinstance(location, str):
            raise DeployError(f"{root}: {app_id}.Location must be a local template path")
        yield app_id, properties.get("Parameters", {}), root.parent / location


def _served_models(nested: Path) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Each model's own `AWS::SageMaker::Model`; a round's challenger (`Challenger: true`) is
    another version of a model, carried by the Challenger* parameters instead."""
    for logical_id, resource in load_template(nested)["Resources"].items():
        pressroom = resource.get("Metadata", {}).get("Pressroom", {})
        model = pressroom.get("Model")
        if (
            resource.get("Type") == "AWS::SageMaker::Model"
            and isinstance(model, str)
            and not pressroom.get("Challenger")
        ):
            yield logical_id, resource, model


def _root_parameter(passed: Mapping[str, Any], node: Any, where: str) -> str:
    nested_parameter = _ref_name(node, where)
    return _ref_name(passed.get(nested_parameter), f"{where} (root Parameters.{nested_parameter})")


def _ref_name(node: Any, where: str) -> str:
    if isinstance(node, dict) and isinstance(node.get("Ref"), str):
        return str(node["Ref"])
    raise DeployError(f"{where}: expected a Ref to a parameter, found {node!r}")


def _files(directory: Path) -> Iterator[Path]:
    return (path for path in sorted(directory.rglob("*")) if path.is_file())


# --------------------------------------------------------------------------- commands

commands = typer.Typer()
console = Console(stderr=True)


@commands.command("publish-site")
def publish_site_command(
    env: Annotated[str, typer.Option(help="samconfig.toml environment (dev, prod).")],
) -> None:
    """Upload apps/frontend/site to ENV's bucket and invalidate its CloudFront cache."""
    with clean_failure():
        config = environment_config(env)
        session = boto3.session.Session(region_name=config.region)
        outputs = stack_outputs(
            session.client("cloudformation"),
            config.stack_name,
            SITE_BUCKET_OUTPUT,
            DISTRIBUTION_OUTPUT,
        )
        result = publish_site(
            SITE_DIR,
            bucket=outputs[SITE_BUCKET_OUTPUT],
            distribution_id=outputs[DISTRIBUTION_OUTPUT],
            s3=session.client("s3"),
            cloudfront=session.client("cloudfront"),
        )
        console.print(
            f"[green]site[/] s3://{outputs[SITE_BUCKET_OUTPUT]}: {len(result.uploaded)} uploaded, "
            f"{len(result.deleted)} deleted, {result.unchanged} unchanged; "
            f"invalidation {result.invalidation_id or 'not needed'}"
        )


@commands.command("log-names")
def log_names_command(
    app: Annotated[str, typer.Argument(help="App folder under apps/, e.g. inference-api.")],
) -> None:
    """Print `--name NestedStack/Function` for each of APP's functions (for `sam logs`)."""
    with clean_failure():
        typer.echo(" ".join(f"--name {name}" for name in log_names(app)))


@contextmanager
def clean_failure() -> Iterator[None]:
    """Known failures end a command with a one-line reason on stderr, not a traceback."""
    try:
        yield
    except (DeployError, TemplateError, BotoCoreError, ClientError) as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from error
