"""cfn-lint rule E9101: a serverless SageMaker EndpointConfig has exactly one ProductionVariant.

SageMaker rejects a serverless endpoint config with more than one variant only at deploy time
(which is why serverless hosting gives each variant its own endpoint); this rule catches it at
lint time. Loaded through `.cfnlintrc` (append_rules).
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
            if any(isinstance(v, dict) and "ServerlessConfig" in v for v in variants):
                matches.append(
                    RuleMatch(
                        ["Resources", name, "Properties", "ProductionVariants"],
                        f"{name}: a serverless endpoint config has {len(variants)} "
                        "ProductionVariants; SageMaker allows exactly one",
                    )
                )
        return matches
