"""CLI commands for data, training, evaluation and packaging."""

import typer

commands = typer.Typer()


@commands.command()
def data() -> None:
    """Build the headline corpus and print its summary."""
    raise NotImplementedError
