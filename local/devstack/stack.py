"""The whole Pressroom request path on one machine and one origin: no AWS account, no Docker.

`LocalStack` starts the SageMaker Runtime emulator (endpoints from the templates), opens and
migrates the feedback store, and serves on one port: every `/api` route of the templates through
the local gateway (real handlers in-process) and the static site at `/`.

Example::

    with LocalStack("smoke", database_url="sqlite:///build/local/demo.db") as stack:
        print(stack.url)  # http://127.0.0.1:<port>/ ; POST {url}api/generate ...
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from local.cfn import DEFAULT_REGION
from local.champion import CHAMPION_VERSION_PARAMETER, ChampionError, champion_parameters
from local.devstack.reader_key import DEFAULT_READER_KEY_FILE, ensure_reader_key
from local.devstack.site import site_mount
from local.devstack.summary import served_models, summary_panel
from local.emulate.gateway import Gateway, discover_apis
from local.emulate.sagemaker import Emulator
from local.emulate.sagemaker.emulator import StartupProgress
from local.emulate.sagemaker.endpoints import load_local_stacks
from local.emulate.waf import WebAcl, WebAclFilter, discover_web_acl
from local.paths import DEFAULT_CAPTURE_ROOT, DEFAULT_DATABASE_URL, DEFAULT_MODELS_ROOT, SITE_DIR
from local.plumbing.logfile import DEFAULT_LOG_FILE, LogFile
from local.plumbing.server import BackgroundServer, Service
from local.registry import DEFAULT_REGISTRY_ROOT
from local.rounds.state import (
    ROUND_FILE,
    RoundRefused,
    describe_round,
    load_round,
    round_parameters,
)

# WAF's bounds on a rate-based rule's Limit (the templates' MinValue and MaxValue).
WAF_MIN_LIMIT = 10
WAF_MAX_LIMIT = 2_000_000_000
# botocore signs every request; the emulator checks no signature, so any credentials do.
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


def serve_gateways(
    gateways: list[Gateway], host: str, port: int, site_dir: Path | None
) -> BackgroundServer:
    routes: list[BaseRoute] = [route for gateway in gateways for route in gateway.routes()]
    if site_dir is not None:
        routes.append(site_mount(site_dir))
    return BackgroundServer(Starlette(routes=routes), host, port)


class LocalStack(Service):
    """Emulator + store + gateway + site; a context manager with `.url`.

    `parameter_overrides` go to the root template (e.g. `HostingMode`, `ApiThrottlingRateLimit`,
    `VariantAWeight`, or an experiment round's `local.rounds.state.round_parameters`) and
    so reach both the emulator and the functions' environment; `registry_root` is the local
    model registry a round's challenger is served from; `reader_key_file` holds the reader key
    (created on first start; see `local.devstack.reader_key`);
    `function_environment` adds variables to every function (e.g. a shorter
    `GENERATE_DEADLINE_S`), after the local wiring of `function_overrides()`. `emulator`, when
    given, is a running emulator of the same templates and overrides to share; otherwise the
    stack starts (and stops) its own with `emulator_options`. `log_path`, when given, is the
    log file (see `local.plumbing.logfile`) that receives what the functions write (their log and
    metric lines), the API's access log and, for an emulator of its own, the model workers'
    output; without it the functions write to this process's stdout. `capture_root` is where an
    emulator of its own writes the endpoints' data capture (see `Emulator`).

    The site's web ACL applies when the templates create it: with `EnableWaf=true` in
    `parameter_overrides` (what `pressroom up` passes unless told `--no-waf`); otherwise, as in
    a dev deployment, there is none, and harnesses that send many requests from 127.0.0.1 are
    not limited per address.
    """

    def __init__(
        self,
        profile: str = "full",
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        database_url: str = DEFAULT_DATABASE_URL,
        reader_key_file: Path = DEFAULT_READER_KEY_FILE,
        models_root: Path = DEFAULT_MODELS_ROOT,
        registry_root: Path = DEFAULT_REGISTRY_ROOT,
        parameter_overrides: Mapping[str, Any] | None = None,
        site_dir: Path | None = SITE_DIR,
        instances_per_function: int = 4,
        emulator_options: Mapping[str, Any] | None = None,
        emulator: Emulator | None = None,
        function_environment: Mapping[str, str] | None = None,
        log_path: Path | None = None,
        capture_root: Path | None = DEFAULT_CAPTURE_ROOT,
    ) -> None:
        self.profile = profile
        self.capture_root = capture_root
        self.log_path = log_path
        self.log_file: LogFile | None = None
        self.database_url = database_url
        self.reader_key_file = reader_key_file
        self._host = host
        self._port = port
        self._models_root = models_root
        self._registry_root = registry_root
        self._overrides = dict(parameter_overrides or {})
        self._site_dir = site_dir
        self._instances = instances_per_function
        self._emulator_options = dict(emulator_options or {})
        self._function_environment = dict(function_environment or {})
        # A running emulator passed in is shared (e.g. by a test session) and left running.
        self.emulator: Emulator | None = emulator
        self._owns_emulator = emulator is None
        self.gateways: list[Gateway] = []
        self._server: BackgroundServer | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the local stack is not running")
        return f"{self._server.origin}/"

    def start(self) -> None:
        from pressroom_common.feedback.store import open_store

        try:
            if self.log_path is not None:
                self.log_file = LogFile(self.log_path)
            _prepare_sqlite_directory(self.database_url)
            open_store(self.database_url, migrate=True)
            ensure_reader_key(self.reader_key_file)
            if self._owns_emulator:
                self.emulator = Emulator(
                    self.profile,
                    models_root=self._models_root,
                    registry_root=self._registry_root,
                    parameter_overrides=self._overrides,
                    log_file=self.log_file,
                    capture_root=self.capture_root,
                    **self._emulator_options,
                )
                self.emulator.start()
            self.gateways = self.build_gateways(self._overrides, self._function_environment)
            self._server = serve_gateways(self.gateways, self._host, self._port, self._site_dir)
            self._server.start()
        except BaseException:
            self.stop()
            raise

    @property
    def web_acl(self) -> WebAcl | None:
        """The web ACL the running stack applies, if the templates create one."""
        edges = [gateway.edge for gateway in self.gateways if gateway.edge is not None]
        return edges[0].web_acl if edges else None

    def function_overrides(self) -> dict[str, str]:
        """What the local runtime changes in every function's environment."""
        if self.emulator is None:
            raise RuntimeError("the local stack is not running")
        return {
            **LOCAL_CREDENTIALS,
            **self.emulator.client_environment,
            "DATABASE_URL": self.database_url,
            # The key file stands in for the template's Secrets Manager secret.
            "READER_KEY_FILE": str(self.reader_key_file),
            "READER_KEY_SECRET_ID": "",
        }

    def build_gateways(
        self, parameter_overrides: Mapping[str, Any], function_environment: Mapping[str, str]
    ) -> list[Gateway]:
        """Gateways for every REST API of the templates, over this stack's emulator and store.

        Tests use it to serve the same routes with other settings (a tighter throttle, a short
        deadline) without starting a second emulator.
        """
        [root] = load_local_stacks(self.profile, self._models_root, None, parameter_overrides)
        environment = {**self.function_overrides(), **function_environment}
        web_acl = discover_web_acl(root)
        # One filter per origin: the distribution counts a reader's requests to every API.
        edge = WebAclFilter(web_acl) if web_acl is not None else None
        return [
            Gateway(
                api,
                region=DEFAULT_REGION,
                environment_overrides=environment,
                instances_per_function=self._instances,
                log_file=self.log_file,
                edge=edge,
            )
            for api in discover_apis(root)
        ]

    @contextmanager
    def alternate_gateway(
        self,
        parameter_overrides: Mapping[str, Any] | None = None,
        function_environment: Mapping[str, str] | None = None,
    ) -> Iterator[str]:
        """The same routes on a second port with other template parameters or function variables
        (a tighter throttle, a short deadline), over this stack's emulator and store; yields the
        URL. Fault and limit checks use it to change one thing without restarting the stack."""
        gateways = self.build_gateways(
            {**self._overrides, **(parameter_overrides or {})}, function_environment or {}
        )
        server = serve_gateways(gateways, self._host, 0, site_dir=None)
        try:
            server.start()
            yield f"{server.origin}/"
        finally:
            server.stop()
            for gateway in gateways:
                gateway.close()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        for gateway in self.gateways:
            gateway.close()
        self.gateways = []
        if self._owns_emulator and self.emulator is not None:
            self.emulator.stop()
            self.emulator = None
        if self.log_file is not None:
            self.log_file.close()
            self.log_file = None


def _prepare_sqlite_directory(database_url: str) -> None:
    """SQLite creates the file but not its folder (e.g. build/local/ on a fresh clone)."""
    prefix = "sqlite:///"
    if database_url.startswith(prefix):
        Path(database_url.removeprefix(prefix)).parent.mkdir(parents=True, exist_ok=True)


commands = typer.Typer()


@commands.command()
def up(
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8080, help="Port of the site and the API (0 = any free port)."),
    profile: str = typer.Option("full", help="Model profile: full (the demo) or smoke (tiny)."),
    database_url: str = typer.Option(
        DEFAULT_DATABASE_URL, help="Feedback store: sqlite:///path or postgresql+psycopg://..."
    ),
    log_file: Annotated[
        Path,
        typer.Option(
            help="Where the functions' log and metric lines, the access log and the model "
            "workers' output go (read it with `pressroom logs`)."
        ),
    ] = DEFAULT_LOG_FILE,
    waf: Annotated[
        bool,
        typer.Option(
            help="Apply the site's web ACL, as prod does: /api/ requests per reader "
            "(X-User-Id) and per client IP are limited, 429 past the limits."
        ),
    ] = True,
    reader_rate_limit: Annotated[
        int | None,
        typer.Option(
            min=WAF_MIN_LIMIT,
            max=WAF_MAX_LIMIT,
            help="Requests per 5 minutes per X-User-Id (default: the template's ReaderRateLimit).",
        ),
    ] = None,
    client_ip_rate_limit: Annotated[
        int | None,
        typer.Option(
            min=WAF_MIN_LIMIT,
            max=WAF_MAX_LIMIT,
            help="Requests per 5 minutes per client IP (default: the template's "
            "ClientIpRateLimit).",
        ),
    ] = None,
) -> None:
    """Run Pressroom on this machine: models, SageMaker emulator, API and site on one origin.

    When an experiment round is running (`pressroom round start`), variant B serves its
    challenger at the round's share, routed by Thompson sampling on the round's votes."""
    edge = edge_parameters(waf, reader_rate_limit, client_ip_rate_limit)
    console = Console(stderr=True)
    _ensure_models(profile, console)
    champion = _champion_overrides(profile, console)
    experiment = _round_overrides(console)
    stack = _start_stack(
        console,
        profile,
        host=host,
        port=port,
        database_url=database_url,
        log_file=log_file,
        parameter_overrides={**edge, **champion, **experiment},
    )
    _serve_until_interrupted(stack, console, profile=profile, log_file=log_file)


def _ensure_models(profile: str, console: Console) -> None:
    """Build the profile's models that are missing or stale."""
    from training.artifacts import ensure_artifacts

    console.print(f"[bold]Models[/] ({profile} profile): building what is missing")
    ensure_artifacts(profile, root=DEFAULT_MODELS_ROOT, console=console)


def _champion_overrides(profile: str, console: Console) -> dict[str, str]:
    """Variant A's parameters: the champion a round promoted, else the built headline-base."""
    try:
        champion = champion_parameters(profile)
    except ChampionError as error:
        console.print(f"[red]Cannot serve the champion[/]: {error}")
        raise typer.Exit(1) from None
    if champion:
        console.print(
            f"[bold]Champion[/]: headline-base {champion[CHAMPION_VERSION_PARAMETER]}, "
            "promoted by a round, from the local model registry"
        )
    return champion


def _round_overrides(console: Console) -> dict[str, str]:
    """The running experiment round's parameters (none without a round); a refusal exits 1."""
    experiment_round = load_round()
    if experiment_round is None:
        return {}
    try:
        overrides = round_parameters(experiment_round)
    except RoundRefused as refusal:
        console.print(
            f"[red]Cannot serve the experiment round[/] ({ROUND_FILE}): {refusal}; "
            "end it with `pressroom round end --keep champion`"
        )
        raise typer.Exit(1) from None
    console.print(f"[bold]Experiment round[/]: {describe_round(experiment_round)}")
    return overrides


def _start_stack(
    console: Console,
    profile: str,
    *,
    host: str,
    port: int,
    database_url: str,
    log_file: Path,
    parameter_overrides: dict[str, Any],
) -> LocalStack:
    """Start the stack behind a progress bar over the model workers loading."""
    with startup_progress(console) as on_progress:
        stack = LocalStack(
            profile,
            host=host,
            port=port,
            database_url=database_url,
            parameter_overrides=parameter_overrides,
            log_path=log_file,
            emulator_options={"on_progress": on_progress},
        )
        stack.start()
    return stack


def _serve_until_interrupted(
    stack: LocalStack, console: Console, *, profile: str, log_file: Path
) -> None:
    """Print the summary panel and serve until Ctrl-C, then stop the stack."""
    try:
        assert stack.emulator is not None
        models = served_models(stack.emulator.endpoints)
        limits = stack.web_acl.describe() if stack.web_acl is not None else None
        console.print(summary_panel(stack.url, models, log_file, profile=profile, limits=limits))
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("Stopping…")
    finally:
        stack.stop()


def edge_parameters(
    waf: bool, reader_rate_limit: int | None, client_ip_rate_limit: int | None
) -> dict[str, Any]:
    """The root parameters for `pressroom up`'s web ACL options: on unless `--no-waf` (the
    template leaves it off, as dev deploys do), a limit only where one is given."""
    if not waf:
        given = [
            option
            for option, value in (
                ("--reader-rate-limit", reader_rate_limit),
                ("--client-ip-rate-limit", client_ip_rate_limit),
            )
            if value is not None
        ]
        if given:
            raise typer.BadParameter(
                "a limit of the web ACL, which --no-waf turns off", param_hint=" and ".join(given)
            )
        return {"EnableWaf": "false"}
    limits = {"ReaderRateLimit": reader_rate_limit, "ClientIpRateLimit": client_ip_rate_limit}
    return {
        "EnableWaf": "true",
        **{name: value for name, value in limits.items() if value is not None},
    }


@contextmanager
def startup_progress(console: Console) -> Iterator[StartupProgress]:
    """A progress bar over the model workers loading, then a spinner while the functions load."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("Loading the models into the SageMaker emulator", total=None)

        def on_progress(ready: int, total: int, label: str) -> None:
            progress.update(task, completed=ready, total=total)
            if label:
                elapsed = progress.tasks[task].elapsed or 0.0
                progress.console.print(f"[green]loaded[/] {label} in {elapsed:.0f}s")
            if ready == total:
                progress.update(task, description="Starting the store and the API gateway")

        yield on_progress
