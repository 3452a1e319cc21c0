"""`make sam-local`: the generated template and env-vars file against the real templates and
against SAM CLI's own reading of them, the handlers importing with those values, and clear
messages when Docker or PostgreSQL is missing."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from local.cfn import Stack, load_template
from local.emulate.functions import load_handler
from local.emulate.sagemaker.endpoints import endpoint_specs, load_local_stacks
from local.ops import sam_local
from local.ops.build_checks import LAMBDA_LIKE_ENVIRONMENT
from local.paths import DEFAULT_MODELS_ROOT, REPO_ROOT
from tests.integration.deploy.policies import TOOLS_PYTHON

EMULATOR = "http://host.docker.internal:8081"
DATABASE = "postgresql+psycopg://pressroom@host.docker.internal:5432/pressroom"
# Every route of the API: (method, path, the function that serves it).
API_ROUTES = [
    ("get", "/api/health", "GenerateFunction"),
    ("get", "/api/openapi.json", "GenerateFunction"),
    ("get", "/api/stats", "FeedbackFunction"),
    ("options", "/api/{proxy+}", "GenerateFunction"),
    ("post", "/api/feedback", "FeedbackFunction"),
    ("post", "/api/generate", "GenerateFunction"),
]
# The functions the API routes to, and the template that declares each.
API_FUNCTIONS = {
    "GenerateFunction": REPO_ROOT / "apps" / "inference-api" / "template.yaml",
    "FeedbackFunction": REPO_ROOT / "apps" / "feedback" / "template.yaml",
}


@pytest.fixture(scope="module")
def root() -> Stack:
    [stack] = load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, {"HostingMode": "realtime"})
    return stack


@pytest.fixture(scope="module")
def local_api(root: Stack, tmp_path_factory: pytest.TempPathFactory) -> sam_local.LocalApi:
    return sam_local.local_api(
        root,
        emulator_url=EMULATOR,
        database_url=DATABASE,
        driver_directory=tmp_path_factory.mktemp("postgres-driver"),
    )


def declared_variables(template: Path, function: str) -> set[str]:
    properties = load_template(template)["Resources"][function]["Properties"]
    return set(properties["Environment"]["Variables"])


def test_each_function_gets_a_value_for_every_variable_it_declares(
    local_api: sam_local.LocalApi,
) -> None:
    resources = local_api.template["Resources"]
    assert set(local_api.env_vars) == set(API_FUNCTIONS)
    for function, app_template in API_FUNCTIONS.items():
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        # SAM CLI overrides only what the template declares: the app's variables, plus the
        # emulator's endpoints and the local reader key, which the generated template declares.
        assert set(variables) == declared_variables(app_template, function) | {
            *sam_local.EMULATOR_VARIABLES,
            *sam_local.READER_KEY_VARIABLES,
        }
        assert set(local_api.env_vars[function]) == set(variables)
        values = local_api.env_vars[function]
        assert values["DATABASE_URL"] == DATABASE
        assert (values["READER_KEY_FILE"], values["READER_KEY_SECRET_ID"]) == (
            sam_local.CONTAINER_READER_KEY,
            "",
        )
        assert {values[name] for name in sam_local.EMULATOR_VARIABLES} == {EMULATOR}
        assert all(isinstance(value, str) and "unset-" not in value for value in values.values())


def test_the_variants_name_the_endpoints_the_emulator_serves(
    root: Stack, local_api: sam_local.LocalApi
) -> None:
    variants = json.loads(local_api.env_vars["GenerateFunction"]["VARIANTS"])
    served = {spec.name for spec in endpoint_specs([root], "smoke", DEFAULT_MODELS_ROOT)}
    assert {variant["endpoint_name"] for variant in variants.values()} <= served
    assert local_api.env_vars["GenerateFunction"]["CLASSIFIER_ENDPOINT_NAME"] in served


def test_every_route_of_the_api_is_an_event_of_its_function(
    local_api: sam_local.LocalApi,
) -> None:
    routes = sorted(
        (event["Properties"]["Method"], event["Properties"]["Path"], function)
        for function, resource in local_api.template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
        for event in resource["Properties"]["Events"].values()
    )
    assert routes == API_ROUTES


@pytest.mark.parametrize("function", sorted(API_FUNCTIONS))
def test_every_handler_imports_with_its_env_vars_and_the_layers_reader_key(
    local_api: sam_local.LocalApi, function: str, tmp_path: Path
) -> None:
    properties = local_api.template["Resources"][function]["Properties"]
    sam_local.write(local_api, tmp_path / "sam-local", reader_key_file=tmp_path / "reader-key")
    layer = Path(
        local_api.template["Resources"][sam_local.DRIVER_LAYER]["Properties"]["ContentUri"]
    )
    key_in_layer = layer / sam_local.READER_KEY_NAME
    assert key_in_layer.read_bytes() == (tmp_path / "reader-key").read_bytes()
    # What the Lambda runtime sets in the container (region, credentials), then the file's,
    # with the layer's key where the container finds it under /opt.
    environment = {
        **LAMBDA_LIKE_ENVIRONMENT,
        **local_api.env_vars[function],
        "READER_KEY_FILE": str(key_in_layer),
    }
    handler = load_handler(Path(properties["CodeUri"]), properties["Handler"], environment)
    assert callable(handler)


@pytest.mark.skipif(not TOOLS_PYTHON.exists(), reason="needs .venv-tools (make tools): SAM CLI")
def test_sam_cli_reads_the_template_and_env_vars_as_intended(
    local_api: sam_local.LocalApi, tmp_path: Path
) -> None:
    template, env_vars = sam_local.write(local_api, tmp_path, tmp_path / "reader-key")
    driver = local_api.template["Resources"][sam_local.DRIVER_LAYER]["Properties"]["ContentUri"]
    assert (Path(driver) / "requirements.txt").read_text().startswith("psycopg[binary]==")
    completed = subprocess.run(
        [str(TOOLS_PYTHON), str(Path(__file__).with_name("samcli_probe.py")), template, env_vars],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    report = json.loads(completed.stdout)

    for function, values in local_api.env_vars.items():
        seen = report["functions"][function]
        # The layers resolve (the root template's does not), with the local PostgreSQL driver.
        assert seen["layers"] == ["CommonLayer", sam_local.DRIVER_LAYER]
        assert {name: seen["environment"][name] for name in values} == values
    assert sorted(tuple(route) for route in report["routes"]) == sorted(
        (method.upper(), path, function) for method, path, function in API_ROUTES
    )


def test_without_docker_it_says_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(sam_local.SamLocalError, match="Docker is not installed"):
        sam_local.check_docker()


def test_with_a_stopped_docker_daemon_it_says_so(tmp_path: Path) -> None:
    docker = tmp_path / "docker"
    docker.write_text(
        "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.'"
        " >&2\nexit 1\n"
    )
    docker.chmod(0o755)
    with pytest.raises(sam_local.SamLocalError, match=r"daemon does not answer.*Cannot connect"):
        sam_local.check_docker(str(docker))


def test_a_sqlite_store_is_refused_with_the_reason() -> None:
    with pytest.raises(sam_local.SamLocalError, match="own /tmp"):
        sam_local.check_database_url("sqlite:////tmp/pressroom.db")


def test_containers_reach_the_hosts_loopback_services_by_the_hosts_name() -> None:
    assert (
        sam_local.container_url("postgresql+psycopg://me:secret@127.0.0.1:5432/db?sslmode=off")
        == "postgresql+psycopg://me:secret@host.docker.internal:5432/db?sslmode=off"
    )
    assert sam_local.container_url("postgresql://db.internal:5432/db") == (
        "postgresql://db.internal:5432/db"
    )


@pytest.mark.postgres
def test_the_store_is_migrated_before_the_containers_use_it(postgres_url: str) -> None:
    assert sam_local.migrate(postgres_url).startswith("schema at ")

    engine = sa.create_engine(postgres_url)
    try:
        assert {"generations", "votes"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
