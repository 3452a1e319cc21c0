import typer

from qa.reliability.suite import main

typer.run(main)
