"""Print, as JSON, what `sam local start-api` would make of a template and an env-vars file:
each function's layers, code and resolved environment, and each route's function.

Run with the template tools' interpreter (`.venv-tools/bin/python`); it uses SAM CLI's own
providers and its environment resolution, the code paths `sam local start-api` takes before it
starts any container, so it needs no Docker.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("SAM_CLI_TELEMETRY", "0")

from samcli.commands.local.lib.local_lambda import LocalLambdaRunner
from samcli.lib.providers.api_provider import ApiProvider
from samcli.lib.providers.sam_function_provider import SamFunctionProvider
from samcli.lib.providers.sam_stack_provider import SamLocalStackProvider


def main(template: str, env_vars_file: str) -> None:
    stacks, _ = SamLocalStackProvider.get_stacks(template)
    functions = SamFunctionProvider(stacks)
    runner = LocalLambdaRunner(
        local_runtime=None,  # type: ignore[arg-type]  # never invoked here
        function_provider=functions,
        cwd=str(Path(template).parent),
        real_path=str(Path(template).parent),
        env_vars_values=json.loads(Path(env_vars_file).read_text()),
    )
    report = {
        "functions": {
            function.name: {
                "layers": [layer.name for layer in function.layers],
                "codeuri": function.codeuri,
                "handler": function.handler,
                "environment": runner._make_env_vars(function).resolve(),
            }
            for function in functions.get_all()
        },
        "routes": sorted(
            [method, route.path, route.function_name]
            for route in ApiProvider(stacks).routes
            for method in route.methods
        ),
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:3])
