import typer

from local.reliability.suite import main

typer.run(main)
