"""`pressroom publish`, `pressroom promote` and `pressroom release-parameters`: the commands over
`local.ops.publish`, which holds what they do (upload, register, approve, choose what to serve).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import boto3
import typer
from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

from local.ops.deploy import (
    ModelParameters,
    clean_failure,
    console,
    environment_config,
    model_parameters,
    serving_container,
)
from local.ops.publish import (
    APPROVED_ONLY_ENVIRONMENTS,
    CHALLENGER_GROUP,
    PackagedModel,
    Publication,
    PublishError,
    artifact_key,
    challenger_round,
    default_group_name,
    deployed_round,
    newest_servable_package,
    promote,
    publish,
    release_parameters,
)
from local.paths import DEFAULT_MODELS_ROOT
from local.registry import APPROVED, PENDING
from local.rounds.state import DEFAULT_SHARE, MAX_SHARE

commands = typer.Typer()


@commands.command("publish")
def publish_command(
    models: Annotated[
        list[str] | None,
        typer.Argument(help="Models to publish (default: every packaged model of the profile)."),
    ] = None,
    profile: Annotated[str, typer.Option(help="Build profile to publish from.")] = "full",
    bucket: Annotated[
        str,
        typer.Option(envvar="PRESSROOM_ARTIFACT_BUCKET", help="Artifact bucket (infra stack)."),
    ] = "",
    model_package_group: Annotated[
        str | None, typer.Option(help="Model package group (default: pressroom-<model>).")
    ] = None,
    models_root: Annotated[Path, typer.Option(help="Where packaged models live.")] = (
        DEFAULT_MODELS_ROOT
    ),
    approve: Annotated[
        bool,
        typer.Option(
            "--approve",
            help="Register new packages as Approved instead of PendingManualApproval "
            "(a person's shortcut for `pressroom promote`; the CI role may not use it).",
        ),
    ] = False,
) -> None:
    """Upload packaged models to S3 and register them in the SageMaker Model Registry."""
    with clean_failure():
        if not bucket:
            raise PublishError("--bucket (or PRESSROOM_ARTIFACT_BUCKET) is required")
        names = models or sorted(path.name for path in (models_root / profile).glob("*/"))
        if not names:
            raise PublishError(f"no packaged models under {models_root / profile}")
        if model_package_group and len(names) > 1:
            raise PublishError("--model-package-group needs exactly one model")
        session = boto3.session.Session()
        region = _region(session)
        s3, sagemaker = session.client("s3"), session.client("sagemaker")
        # The serving image a package declares is in this account's ECR repository.
        account_id = str(session.client("sts").get_caller_identity()["Account"])
        parameters = model_parameters()
        for name in names:
            model = PackagedModel.load(models_root / profile / name)
            with _upload_progress(model) as on_bytes:
                publication = publish(
                    model,
                    bucket=bucket,
                    group=model_package_group or default_group_name(name),
                    container=_container(model, bucket, region, account_id),
                    s3=s3,
                    sagemaker=sagemaker,
                    approval_status=APPROVED if approve else PENDING,
                    on_bytes=on_bytes,
                )
            _report(publication, parameters.get(name))


@commands.command("promote")
def promote_command(
    model: Annotated[str, typer.Argument(help="Model name, e.g. headline-base.")],
    version: Annotated[str, typer.Argument(help="Version (the manifest's content hash).")],
    model_package_group: Annotated[
        str | None, typer.Option(help="Model package group (default: pressroom-<model>).")
    ] = None,
) -> None:
    """Approve a published model version, so that prod may serve it."""
    with clean_failure():
        sagemaker = boto3.session.Session().client("sagemaker")
        package = promote(
            sagemaker, group=model_package_group or default_group_name(model), version=version
        )
        console.print(f"[green]approved[/] {model} {version}: {package['ModelPackageArn']}")


@commands.command("release-parameters")
def release_parameters_command(
    env: Annotated[str, typer.Option(help="samconfig.toml environment (dev, prod).")],
    challenger: Annotated[
        str | None,
        typer.Option(
            help=f"Version of a headline-base challenger in {CHALLENGER_GROUP}: serve it on "
            "variant B in an experiment round (Thompson sampling from --share)."
        ),
    ] = None,
    share: Annotated[
        float, typer.Option(help=f"The challenger's first share of traffic, in (0, {MAX_SHARE}].")
    ] = DEFAULT_SHARE,
    end_round: Annotated[
        bool,
        typer.Option(
            "--end-round", help="End the stack's experiment round: variant B serves headline-lite."
        ),
    ] = False,
) -> None:
    """Print `sam deploy --parameter-overrides` for ENV: its own, plus the models it may serve
    and its experiment round: the `--challenger` given, else the one the stack serves now
    (unless `--end-round`)."""
    with clean_failure():
        config = environment_config(env)
        session = boto3.session.Session(region_name=config.region)
        sagemaker = session.client("sagemaker")
        parameters = model_parameters()
        approved_only = env in APPROVED_ONLY_ENVIRONMENTS
        packages = {
            name: newest_servable_package(
                sagemaker, default_group_name(name), approved_only=approved_only
            )
            for name in parameters
        }
        if challenger is not None and end_round:
            raise PublishError("--challenger starts a round and --end-round ends one: give one")
        cloudformation = session.client("cloudformation")
        experiment_round = None
        if challenger is None and not end_round:
            experiment_round = deployed_round(cloudformation, config.stack_name)
        elif challenger is not None:
            experiment_round = challenger_round(
                sagemaker,
                cloudformation,
                stack_name=config.stack_name,
                version=challenger,
                share=share,
                approved_only=approved_only,
                now=datetime.now(UTC),
            )
        typer.echo(
            release_parameters(config.parameter_overrides, parameters, packages, experiment_round)
        )


def _container(model: PackagedModel, bucket: str, region: str, account_id: str) -> dict[str, Any]:
    return serving_container(
        model.name,
        model_data_url=f"s3://{bucket}/{artifact_key(model.name, model.version)}",
        version=model.version,
        region=region,
        account_id=account_id,
    )


def _report(publication: Publication, parameters: ModelParameters | None) -> None:
    state = "uploaded" if publication.uploaded else "already in S3"
    registry = "registered" if publication.registered else "already registered"
    console.print(
        f"[green]{publication.name} {publication.version}[/]: {state}, {registry} "
        f"({publication.model_package_arn})"
    )
    # The artifact URI, in the form the templates take it (stdout, for scripts).
    if parameters is None:
        typer.echo(publication.model_data_url)
    else:
        typer.echo(
            f"{parameters.data_url}={publication.model_data_url} "
            f"{parameters.version}={publication.version}"
        )


@contextmanager
def _upload_progress(model: PackagedModel) -> Iterator[Callable[[int], None]]:
    columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(
            f"{model.name} {model.version}", total=model.tarball.stat().st_size
        )
        yield lambda sent: progress.advance(task, sent)


def _region(session: boto3.session.Session) -> str:
    region: str | None = session.region_name
    if not region:
        raise PublishError("no AWS region: set AWS_REGION (or a profile with a region)")
    return region
