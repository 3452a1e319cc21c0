"""`pressroom sagemaker`: the SageMaker Runtime emulator on its own.

For users with Docker who run `sam local start-api`: the functions reach the emulator through
`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` (botocore's per-service endpoint variable); `make
sam-local` writes the env-vars file that sets it, with every other variable the functions need.
"""

from __future__ import annotations

import json
import threading
from typing import Annotated

import typer
from rich.console import Console

commands = typer.Typer()


@commands.command("sagemaker")
def serve_emulator(
    profile: Annotated[str, typer.Option(help="model artifacts to serve: full or smoke")] = "full",
    host: Annotated[str, typer.Option(help="address to bind; keep it local")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to bind (0 = any free port)")] = 8081,
    hosting_mode: Annotated[
        str, typer.Option(help="realtime (weighted variants) or serverless (endpoint per model)")
    ] = "realtime",
    seed: Annotated[int | None, typer.Option(help="seed of the weighted variant choice")] = None,
) -> None:
    """Serve the SageMaker Runtime emulator for the templates' endpoints until Ctrl-C."""
    from local.cfn import TemplateError
    from local.emulate.sagemaker import Emulator, WorkerStartError

    console = Console(stderr=True)
    try:
        emulator = Emulator(
            profile,
            host=host,
            port=port,
            parameter_overrides={"HostingMode": hosting_mode},
            seed=seed,
        )
        with console.status(f"Loading {len(emulator.endpoints)} endpoint(s) ({profile} models)"):
            emulator.start()
    except (TemplateError, FileNotFoundError, WorkerStartError) as error:
        console.print(f"[red]Cannot start the emulator:[/] {error}")
        raise typer.Exit(1) from error
    try:
        for name, spec in emulator.endpoints.items():
            variants = ", ".join(
                f"{v.name}={v.model_name} (weight {v.weight:g})" for v in spec.variants
            )
            console.print(f"[bold]{name}[/]: {variants}")
        console.print(
            f"[bold green]SageMaker Runtime emulator[/] at {emulator.url}\n"
            "The functions reach it with:\n"
            + json.dumps(emulator.client_environment, indent=2)
            + "\n`make sam-local DATABASE_URL=...` writes the complete env-vars file for "
            "`sam local start-api`.\nPress Ctrl-C to stop."
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        console.print("Stopping…")
    finally:
        emulator.stop()
