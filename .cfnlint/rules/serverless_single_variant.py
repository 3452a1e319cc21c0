"""cfn-lint rules on serverless SageMaker EndpointConfigs.

E9101: exactly one ProductionVariant. SageMaker rejects a serverless endpoint config with more
than one variant only at deploy time (which is why serverless hosting gives each variant its own
endpoint); this rule catches it at lint time.
E9102: no DataCaptureConfig, which serverless endpoints do not support (data capture is for
instance-backed endpoints).
Loaded through `.cfnlintrc` (append_rules).
"""

from typing import Any, ClassVar

from cfnlint.rules import CloudFormationLintRule, RuleMatch


class ServerlessEndpointSingleVariant(CloudFormationLintRule):
    id = "E9101"
    shortdesc = "Serverless SageMaker endpoint configs take one production variant"
    description = (
        "An AWS::SageMaker::EndpointConfig whose variants use ServerlessConfig must have "
        "exactly one ProductionVariant: serverless endpoints support no weighted variants"
    )
    source_url = "https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html"
    tags: ClassVar[list[str]] = ["resources", "sagemaker", "pressroom"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for name, resource in cfn.get_resources(["AWS::SageMaker::EndpointConfig"]).items():
            variants = (resource.get("Properties") or {}).get("ProductionVariants")
            if not isinstance(variants, list) or len(variants) < 2:
                continue
            if is_serverless(variants):
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "ProductionVariants"],
                        f"{name}: a serverless endpoint config has {len(variants)} "
                        "ProductionVariants; SageMaker allows exactly one",
                    )
                )
        return matches


class ServerlessEndpointNoDataCapture(CloudFormationLintRule):
    id = "E9102"
    shortdesc = "Serverless SageMaker endpoint configs take no data capture"
    description = (
        "An AWS::SageMaker::EndpointConfig whose variants use ServerlessConfig cannot have a "
        "DataCaptureConfig: serverless endpoints do not support data capture"
    )
    source_url = "https://docs.aws.amazon.com/sagemaker/latest/dg/serverless-endpoints.html"
    tags: ClassVar[list[str]] = ["resources", "sagemaker", "pressroom"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        matches = []
        for name, resource in cfn.get_resources(["AWS::SageMaker::EndpointConfig"]).items():
            properties = resource.get("Properties") or {}
            variants = properties.get("ProductionVariants")
            if "DataCaptureConfig" in properties and is_serverless(variants):
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "DataCaptureConfig"],
                        f"{name}: serverless endpoints do not support data capture",
                    )
                )
        return matches


def is_serverless(variants: Any) -> bool:
    return isinstance(variants, list) and any(
        isinstance(v, dict) and "ServerlessConfig" in v for v in variants
    )
