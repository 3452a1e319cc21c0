"""The `pressroom` command: one entry point for everything a user does.

Each area keeps its commands next to its code and exposes them as a `typer.Typer` named
`commands`; this module only gathers them, importing lazily-heavy modules inside the commands.
"""

import typer

from local.devstack.logview import commands as logview_commands
from local.devstack.stack import commands as stack_commands
from local.emulate.sagemaker.cli import commands as sagemaker_commands
from local.experiment.cli import commands as experiment_commands
from local.experiment.ground_truth import commands as ground_truth_commands
from local.experiment.rounds import commands as round_commands
from local.ops.deploy import commands as deploy_commands
from local.ops.preflight import commands as preflight_commands
from local.ops.publish_cli import commands as publish_commands
from local.ops.retrain_job import commands as retrain_job_commands
from local.retrain import commands as retrain_commands
from training.cli import commands as training_commands

app = typer.Typer(
    help="Pressroom: headline models, A/B tested with human feedback, on AWS or on one machine.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(training_commands)
app.add_typer(retrain_commands)
app.add_typer(publish_commands)
app.add_typer(retrain_job_commands)
app.add_typer(deploy_commands)
app.add_typer(preflight_commands)
app.add_typer(stack_commands)
app.add_typer(logview_commands)
app.add_typer(sagemaker_commands)
app.add_typer(experiment_commands)
app.add_typer(round_commands)
app.add_typer(ground_truth_commands)
