"""samconfig.toml and the templates, read as `make deploy`, `make logs` and publish read them."""

from __future__ import annotations

import tomllib
from dataclasses import astuple
from pathlib import Path

import pytest

from local.cfn import load_template
from local.ops.deploy import (
    DISTRIBUTION_OUTPUT,
    ROOT_TEMPLATE,
    SAMCONFIG,
    SITE_BUCKET_OUTPUT,
    DeployError,
    ModelParameters,
    environment_config,
    log_names,
    model_parameters,
)
from local.paths import REPO_ROOT

SAM_COMMANDS = ("build", "validate", "deploy", "logs", "sync", "delete")


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_each_environment_is_complete_on_its_own(environment: str) -> None:
    config = tomllib.loads(SAMCONFIG.read_text())

    assert config["version"] == 0.1
    assert "default" not in config
    assert sorted(config[environment]) == sorted(SAM_COMMANDS)
    deploy = config[environment]["deploy"]["parameters"]
    assert deploy["capabilities"] == "CAPABILITY_IAM CAPABILITY_AUTO_EXPAND"
    assert deploy["resolve_s3"] is True
    assert f"Stage={environment}" in deploy["parameter_overrides"].split()
    # Every command that names a stack names this environment's own.
    for command in ("deploy", "logs", "sync", "delete"):
        assert (
            config[environment][command]["parameters"]["stack_name"] == f"pressroom-{environment}"
        )


def test_prod_confirms_every_change_set_and_dev_does_not() -> None:
    config = tomllib.loads(SAMCONFIG.read_text())

    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True
    assert config["dev"]["deploy"]["parameters"]["confirm_changeset"] is False


def test_environment_config_gives_the_stack_region_and_overrides() -> None:
    config = environment_config("prod")

    assert (config.stack_name, config.region) == ("pressroom-prod", "us-east-1")
    assert "HostingMode=realtime" in config.parameter_overrides.split()


def test_an_unknown_environment_lists_the_known_ones() -> None:
    with pytest.raises(DeployError, match=r"no environment 'staging'; known: dev, prod"):
        environment_config("staging")


def test_an_environment_without_a_stack_name_is_refused(tmp_path: Path) -> None:
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text('version = 0.1\n[qa.deploy.parameters]\nregion = "eu-west-1"\n')

    with pytest.raises(DeployError, match=r"\[qa.deploy.parameters\] lacks stack_name"):
        environment_config("qa", samconfig)


def test_the_templates_name_the_parameters_of_every_served_model() -> None:
    assert model_parameters() == {
        "headline-base": ModelParameters("HeadlineBaseModelDataUrl", "HeadlineBaseModelVersion"),
        "headline-lite": ModelParameters("HeadlineLiteModelDataUrl", "HeadlineLiteModelVersion"),
        "news-classifier": ModelParameters(
            "NewsClassifierModelDataUrl", "NewsClassifierModelVersion"
        ),
    }


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_a_deploy_gives_every_required_root_parameter_and_only_declared_ones(
    environment: str,
) -> None:
    declared = load_template(ROOT_TEMPLATE)["Parameters"]
    required = {name for name, declaration in declared.items() if "Default" not in declaration}
    given = {
        token.split("=", 1)[0]
        for token in environment_config(environment).parameter_overrides.split()
    }
    from_registry = {
        name for parameters in model_parameters().values() for name in astuple(parameters)
    }

    assert given | from_registry <= set(declared)
    assert required <= given | from_registry


def test_a_root_that_passes_a_literal_instead_of_its_parameter_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "template-root.yaml"
    root.write_text(
        "Resources:\n"
        "  Classifier:\n"
        "    Type: AWS::Serverless::Application\n"
        "    Properties:\n"
        f"      Location: {REPO_ROOT / 'apps/classifier/template.yaml'}\n"
        "      Parameters:\n"
        "        NewsClassifierModelDataUrl: s3://bucket/fixed.tar.gz\n"
    )

    with pytest.raises(DeployError, match=r"Classifier/.*expected a Ref to a parameter"):
        model_parameters(root)


def test_log_names_are_the_apps_functions_under_its_nested_stack() -> None:
    assert "InferenceApi/GenerateFunction" in log_names("inference-api")


def test_log_names_of_an_unknown_app_list_the_apps() -> None:
    with pytest.raises(DeployError, match=r"no app 'web'.*inference-api"):
        log_names("web")


def test_the_root_stack_outputs_what_the_site_upload_reads() -> None:
    outputs = load_template(ROOT_TEMPLATE)["Outputs"]

    assert {SITE_BUCKET_OUTPUT, DISTRIBUTION_OUTPUT} <= set(outputs)


def test_log_names_of_an_app_without_functions_say_so() -> None:
    with pytest.raises(DeployError, match="'classifier' has no Lambda functions"):
        log_names("classifier")


def test_prod_turns_the_sites_web_acl_on_and_dev_leaves_it_off() -> None:
    config = tomllib.loads(SAMCONFIG.read_text())

    def overrides(environment: str, command: str) -> list[str]:
        return str(config[environment][command]["parameters"]["parameter_overrides"]).split()

    for command in ("deploy", "sync"):
        assert "EnableWaf=true" in overrides("prod", command)
        # Dev keeps the template's default (off): a web ACL costs $5 a month and up.
        assert not any(token.startswith("EnableWaf=") for token in overrides("dev", command))
    assert load_template(ROOT_TEMPLATE)["Parameters"]["EnableWaf"]["Default"] == "false"
