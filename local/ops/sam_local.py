"""`make sam-local`: the API's functions in Lambda containers (`sam local start-api`), calling the
SageMaker Runtime emulator (`pressroom sagemaker`) and a PostgreSQL feedback store.

`sam local start-api` cannot run the real root template as it is:
- a nested app's `Layers: [!Ref CommonLayerArn]` receives the root's `!Ref CommonLayer`, which
  SAM CLI resolves to the bare name `CommonLayer` ("CommonLayer is an Invalid Layer Arn");
- `POST /api/feedback` and `GET /api/stats` are integrations, in the inference-api's API, with a
  function ARN that another nested stack passes in, which SAM CLI cannot follow;
- `--env-vars` only overrides variables a function declares: no template declares the emulator's
  endpoint variables, and the values SAM CLI cannot resolve (VARIANTS, a `!Sub` over endpoint
  names) reach the function as "";
- every container has its own /tmp, so a SQLite store would be a separate, unmigrated database
  per container.

So this writes, under build/sam-local/, `template.yaml`: the common layer, each function behind
the API (code, handler, runtime, memory, timeout and every environment variable exactly as its
app template declares them, resolved by `local.cfn` the way the local gateway resolves
them, plus the two emulator endpoint variables) and one API with every route as an `Api` event;
and `env.json`: for each function a value for every variable it declares, pointing at the
emulator and at the PostgreSQL store (migrated first). On AWS the functions reach Aurora through
the Data API, so the common layer carries no PostgreSQL driver; a second, local-only layer adds
psycopg (pyproject.toml's pin) for the direct connection, and carries the local reader key
(`pressroom up`'s, which stands in for the Secrets Manager secret) to `/opt/python/reader-key`.
Then it builds that template, imports each built handler with those values and only its layers
(`local.ops.build_checks`), and starts `sam local start-api`.

Run: `make sam-local DATABASE_URL=postgresql+psycopg://user@127.0.0.1:5432/pressroom`, with the
emulator started first: `.venv/bin/pressroom sagemaker --host 0.0.0.0 --port 8081`.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
import yaml
from rich.console import Console

from local.cfn import Stack
from local.devstack.reader_key import DEFAULT_READER_KEY_FILE, ensure_reader_key
from local.emulate.gateway import discover_apis
from local.emulate.sagemaker.endpoints import load_local_stacks
from local.ops.build_checks import BuiltFunction, check_import
from local.paths import BUILD_DIR, DEFAULT_MODELS_ROOT, REPO_ROOT

OUTPUT_DIRECTORY = BUILD_DIR / "sam-local"
SAM = REPO_ROOT / ".venv-tools" / "bin" / "sam"
LAYER_DIRECTORY = REPO_ROOT / "layers" / "common"
# How a container reaches the host: Docker Desktop defines it; on Linux `sam local` maps it to
# the host gateway (--add-host host.docker.internal:host-gateway, below).
CONTAINER_HOST = "host.docker.internal"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# botocore's per-service endpoint variables: the runtime (InvokeEndpoint) and the control plane
# (DescribeEndpoint, the health check).
EMULATOR_VARIABLES = ("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_SAGEMAKER")
POSTGRES_SCHEMES = frozenset({"postgresql", "postgresql+psycopg"})
DRIVER_LAYER = "PostgresDriverLayer"
# The local-only layer's copy of the reader key, where a container finds it (layers unpack
# under /opt, a python layer's files under /opt/python).
READER_KEY_NAME = "reader-key"
CONTAINER_READER_KEY = f"/opt/python/{READER_KEY_NAME}"
READER_KEY_VARIABLES = {"READER_KEY_FILE": CONTAINER_READER_KEY, "READER_KEY_SECRET_ID": ""}


class SamLocalError(Exception):
    """Something `sam local` needs is missing; the message says what and what to do."""


@dataclass(frozen=True)
class LocalApi:
    """What `sam local start-api` gets: the template and the env-vars file's content."""

    template: dict[str, Any]
    env_vars: dict[str, dict[str, str]]


def check_docker(docker: str | None = None) -> None:
    """Raise `SamLocalError` saying what is missing unless a Docker daemon answers."""
    docker = docker or shutil.which("docker")
    if docker is None:
        raise SamLocalError(
            "Docker is not installed (no `docker` on PATH). `sam local` runs every function "
            "in a Lambda container, so it needs Docker; without it, `make up` serves the same "
            "handlers, templates and routes in one process."
        )
    try:
        completed = subprocess.run(  # noqa: S603 - the docker CLI found on PATH
            [docker, "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SamLocalError(f"`docker info` did not answer ({error})") from error
    if completed.returncode != 0:
        said = (completed.stderr.strip().splitlines() or ["no output"])[-1]
        raise SamLocalError(
            f"Docker is installed but its daemon does not answer (`docker info`: {said}). "
            "Start Docker (or give your user access to its socket), then run this again."
        )


def container_url(url: str, host: str = CONTAINER_HOST) -> str:
    """`url` as a container sees it: a loopback host becomes the host's name from inside."""
    parts = urlsplit(url)
    if parts.hostname not in LOOPBACK_HOSTS:
        return url
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=f"{credentials}@{netloc}" if credentials else netloc))


def check_database_url(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in POSTGRES_SCHEMES:
        raise SamLocalError(
            f"DATABASE_URL must be a PostgreSQL URL (postgresql+psycopg://user@host:port/db), "
            f"not {scheme or 'empty'}: every function container has its own /tmp, so a SQLite "
            "file there would be a separate, unmigrated database per container."
        )


def migrate(url: str) -> str:
    """Bring the store at `url` (as the host reaches it) to the newest schema; describe it."""
    from pressroom_common.feedback.store import StoreUnavailableError, open_store

    try:
        store = open_store(url)
    except Exception as error:
        raise SamLocalError(f"cannot open the feedback store at {url}: {error}") from error
    try:
        result = store.migrate()
    except StoreUnavailableError as error:
        raise SamLocalError(f"the feedback store at {url} does not answer: {error}") from error
    finally:
        store.engine.dispose()
    revision = ",".join(result.revisions)
    if result.ahead:
        return f"schema {revision} (newer than this code's {result.code_head}; left as it is)"
    return f"schema at {revision}"


def emulator_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def postgres_driver_requirement(pyproject: Path = REPO_ROOT / "pyproject.toml") -> str:
    """The project's pinned psycopg, e.g. `psycopg[binary]==3.3.9`."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return next(str(item) for item in dependencies if str(item).startswith("psycopg"))


def _layer(content: Path) -> dict[str, Any]:
    return {
        "Type": "AWS::Serverless::LayerVersion",
        "Properties": {
            "ContentUri": str(content),
            "CompatibleRuntimes": ["python3.11"],
            "CompatibleArchitectures": ["x86_64"],
        },
        "Metadata": {"BuildMethod": "python3.11", "BuildArchitecture": "x86_64"},
    }


def local_api(
    root: Stack,
    *,
    emulator_url: str,
    database_url: str,
    layer_directory: Path = LAYER_DIRECTORY,
    driver_directory: Path = OUTPUT_DIRECTORY / "postgres-driver",
) -> LocalApi:
    """The `sam local` template and env-vars for the API of the loaded root stack.

    `emulator_url` and `database_url` are as the containers reach them; `driver_directory` is
    where `write` puts the requirements of the local-only PostgreSQL driver layer.
    """
    (api,) = discover_apis(root)
    resources: dict[str, Any] = {
        "CommonLayer": _layer(layer_directory),
        DRIVER_LAYER: _layer(driver_directory),
        api.logical_id: {
            "Type": "AWS::Serverless::Api",
            "Properties": {"StageName": api.stage, "OpenApiVersion": "3.0.1"},
        },
    }
    declared = {
        resource.logical_id: resource.properties
        for resource in root.walk_resources("AWS::Serverless::Function")
    }
    env_vars: dict[str, dict[str, str]] = {}
    for number, route in enumerate(sorted(api.routes, key=lambda r: (r.resource, r.method))):
        function = route.function
        if function.logical_id not in resources:
            properties = declared[function.logical_id]
            variables = {
                **function.environment,
                **dict.fromkeys(EMULATOR_VARIABLES, emulator_url),
                **READER_KEY_VARIABLES,
            }
            resources[function.logical_id] = {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": str(function.code_dir),
                    "Handler": function.handler,
                    "Runtime": properties.get("Runtime", "python3.11"),
                    "Architectures": properties.get("Architectures", ["x86_64"]),
                    "MemorySize": function.memory_mb,
                    "Timeout": int(function.timeout_s),
                    "Layers": [{"Ref": "CommonLayer"}, {"Ref": DRIVER_LAYER}],
                    "Environment": {"Variables": variables},
                    "Events": {},
                },
            }
            local = {"DATABASE_URL": database_url}
            env_vars[function.logical_id] = {
                name: local.get(name, value) for name, value in variables.items()
            }
        events = resources[function.logical_id]["Properties"]["Events"]
        events[f"Route{number}"] = {
            "Type": "Api",
            "Properties": {
                "RestApiId": {"Ref": api.logical_id},
                "Path": route.resource,
                "Method": route.method.lower(),
            },
        }
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Transform": "AWS::Serverless-2016-10-31",
        "Description": (
            "Generated by `make sam-local` (local/ops/sam_local.py) from template-root.yaml and "
            "the app templates, for `sam local start-api` only; never deployed."
        ),
        "Resources": resources,
    }
    return LocalApi(template, env_vars)


def write(
    local: LocalApi, directory: Path, reader_key_file: Path = DEFAULT_READER_KEY_FILE
) -> tuple[Path, Path]:
    """Write the template, the env-vars file, and the local-only layer's requirements and
    reader key (created first if `pressroom up` never ran)."""
    directory.mkdir(parents=True, exist_ok=True)
    driver = Path(local.template["Resources"][DRIVER_LAYER]["Properties"]["ContentUri"])
    driver.mkdir(parents=True, exist_ok=True)
    (driver / "requirements.txt").write_text(postgres_driver_requirement() + "\n")
    shutil.copyfile(ensure_reader_key(reader_key_file), driver / READER_KEY_NAME)
    template_path, env_path = directory / "template.yaml", directory / "env.json"
    template_path.write_text(yaml.safe_dump(local.template, sort_keys=False), encoding="utf-8")
    env_path.write_text(json.dumps(local.env_vars, indent=2) + "\n", encoding="utf-8")
    return template_path, env_path


def check_built_imports(local: LocalApi, build_dir: Path, python: str) -> list[str]:
    """Import each built handler with its env-vars values and only its layer; the failures."""
    failures = []
    for logical_id, variables in local.env_vars.items():
        handler = local.template["Resources"][logical_id]["Properties"]["Handler"]
        layer = build_dir / DRIVER_LAYER / "python"
        function = BuiltFunction(
            logical_id,
            str(handler),
            build_dir / logical_id,
            (build_dir / "CommonLayer" / "python", layer),
            {**variables, "READER_KEY_FILE": str(layer / READER_KEY_NAME)},  # /opt, on the host
        )
        result = check_import(function, python)
        if not result.ok:
            failures.append(f"{logical_id}: {result.detail}")
    return failures


def main(
    database_url: Annotated[
        str,
        typer.Option(
            envvar="DATABASE_URL",
            help="PostgreSQL feedback store as this machine reaches it "
            "(postgresql+psycopg://user:password@127.0.0.1:5432/pressroom); migrated first.",
        ),
    ] = "",
    emulator_port: Annotated[
        int, typer.Option(help="Port of `pressroom sagemaker` (started with --host 0.0.0.0).")
    ] = 8081,
    hosting_mode: Annotated[
        str, typer.Option(help="realtime or serverless: as the emulator was started.")
    ] = "realtime",
    profile: Annotated[str, typer.Option(help="Models the emulator serves: full or smoke.")] = (
        "full"
    ),
    port: Annotated[int, typer.Option(help="Port of `sam local start-api`.")] = 3000,
    prepare_only: Annotated[
        bool, typer.Option("--prepare-only", help="Write, build and check; do not start the API.")
    ] = False,
) -> None:
    """Run the API's functions with `sam local start-api` against the emulator and PostgreSQL."""
    console = Console(stderr=True)
    try:
        check_docker()
        if not database_url:
            raise SamLocalError(
                "no feedback store: pass DATABASE_URL=postgresql+psycopg://user@127.0.0.1:5432/db"
            )
        check_database_url(database_url)
        console.print(f"feedback store: {migrate(database_url)}")
        if not emulator_listening("127.0.0.1", emulator_port):
            console.print(
                f"[yellow]nothing listens on port {emulator_port}:[/] start the emulator with "
                f"`.venv/bin/pressroom sagemaker --host 0.0.0.0 --port {emulator_port} "
                f"--hosting-mode {hosting_mode} --profile {profile}` (generation answers 503 "
                "until it runs)"
            )
        [root] = load_local_stacks(
            profile, DEFAULT_MODELS_ROOT, None, {"HostingMode": hosting_mode}
        )
        local = local_api(
            root,
            emulator_url=f"http://{CONTAINER_HOST}:{emulator_port}",
            database_url=container_url(database_url),
            driver_directory=OUTPUT_DIRECTORY / "postgres-driver",
        )
        template_path, env_path = write(local, OUTPUT_DIRECTORY)
        console.print(f"wrote {template_path.relative_to(REPO_ROOT)} and {env_path.name}")
        build_dir = OUTPUT_DIRECTORY / "build"
        sam_environment = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
        _run(
            [str(SAM), "build", "-t", str(template_path), "--build-dir", str(build_dir),
             "--cache-dir", str(OUTPUT_DIRECTORY / "cache"), "--cached"],
            sam_environment,
        )  # fmt: skip
        python = shutil.which("python3.11")
        if python is None:
            raise SamLocalError("python3.11 is not on PATH (the Lambda runtime to import against)")
        failures = check_built_imports(local, build_dir, python)
        if failures:
            raise SamLocalError("a built function does not import: " + "; ".join(failures))
        command = [
            str(SAM), "local", "start-api", "-t", str(build_dir / "template.yaml"),
            "--env-vars", str(env_path), "--port", str(port),
            "--add-host", f"{CONTAINER_HOST}:host-gateway",
        ]  # fmt: skip
        console.print("start: " + " ".join(command))
        if not prepare_only:
            _run(command, sam_environment)
    except SamLocalError as error:
        console.print(f"[red]sam local:[/] {error}")
        raise typer.Exit(2) from error


def _run(command: list[str], environment: dict[str, str]) -> None:
    completed = subprocess.run(command, env=environment, check=False)  # noqa: S603 - our tools
    if completed.returncode != 0:
        raise SamLocalError(f"`{' '.join(command[:3])} ...` failed ({completed.returncode})")


if __name__ == "__main__":
    typer.run(main)
