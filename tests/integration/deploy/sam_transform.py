"""Print, as JSON, what the SAM transform makes of each template given on the command line.

Run with the template tools' interpreter (`.venv-tools/bin/python`, which has aws-sam-translator):
the tests start it as a subprocess, because the project's virtualenv does not carry SAM. Local
code locations become placeholder S3 URIs first, as `sam package` would make them; nothing is
read from AWS (no managed policy is looked up: the templates name none by short name).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

PACKAGED = {
    "AWS::Serverless::Function": ("CodeUri", "s3://packages/function.zip"),
    "AWS::Serverless::LayerVersion": ("ContentUri", "s3://packages/layer.zip"),
    "AWS::Serverless::Application": ("Location", "https://s3.amazonaws.com/packages/app.yaml"),
}


class NoManagedPolicies:
    """The managed-policy loader SAM asks when a policy is named by its short name."""

    def load(self) -> dict[str, str]:
        return {}


def packaged(template: dict[str, Any]) -> dict[str, Any]:
    for resource in template.get("Resources", {}).values():
        key, uri = PACKAGED.get(resource.get("Type"), (None, None))
        if key and isinstance(resource.get("Properties", {}).get(key), str):
            resource["Properties"][key] = uri
    return template


def main(paths: list[str]) -> None:
    transformed = {
        path: transform(packaged(yaml_parse(Path(path).read_text())), {}, NoManagedPolicies())
        for path in paths
    }
    json.dump(transformed, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
