"""CloudFormation's intrinsic functions, evaluated in one stack as `local.cfn` loads it.

`Intrinsics.resolve` walks a template node and replaces every intrinsic with its value, as
CloudFormation would: `Ref` (parameters, pseudo parameters, resources), `Fn::Sub`, `Fn::GetAtt`,
`Fn::If`, `Fn::FindInMap`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::Base64`, `Fn::GetAZs`,
`Fn::Cidr`, `Fn::ToJsonString`, `Fn::Length`; `Ref: AWS::NoValue` removes the enclosing item.
`Intrinsics.condition` evaluates the condition functions `Fn::Equals`, `Fn::Not`, `Fn::And`,
`Fn::Or`, which only `Conditions` and `Rules` may hold.

The functions read the stack they resolve in through `StackScope`, which the loader in
`local.cfn` provides: its parameter values, conditions and mappings, which resources exist, and
their physical names (computed on first use, since a name may `Ref` another resource). What
`Ref` and `GetAtt` return for a resource (its name or an ARN) follows CloudFormation's documented
return values (`ref_value`, `arn`).

`local.cfn` imports this module, never the other way round, so the pieces both use live here:
`TemplateError`, `NO_VALUE`, `as_text`, `name_property`.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, ClassVar, Protocol

NO_VALUE = object()
"""What `Ref: AWS::NoValue` resolves to; removed from the enclosing list or mapping."""

# The property that holds a resource's explicit physical name where it is not `<Type>Name`
# (`EndpointName`, `FunctionName`, `BucketName`, ...).
_NAME_PROPERTIES: dict[str, str] = {
    "AWS::Serverless::Function": "FunctionName",
    "AWS::Serverless::LayerVersion": "LayerName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::SSM::Parameter": "Name",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::RDS::DBCluster": "DBClusterIdentifier",
    "AWS::RDS::DBInstance": "DBInstanceIdentifier",
    "AWS::WAFv2::WebACL": "Name",
}
# Types whose `Ref` is the ARN rather than the name (CloudFormation's documented return values).
_REF_IS_ARN: frozenset[str] = frozenset(
    {
        "AWS::SageMaker::Endpoint",
        "AWS::SageMaker::EndpointConfig",
        "AWS::SageMaker::Model",
        "AWS::SecretsManager::Secret",
        "AWS::Lambda::LayerVersion",
        "AWS::Serverless::LayerVersion",
        "AWS::Serverless::Application",
        "AWS::CloudFormation::Stack",
    }
)
_LAYER_TYPES = frozenset({"AWS::Lambda::LayerVersion", "AWS::Serverless::LayerVersion"})
# The ARN service segment of the types above, and of the types whose GetAtt Arn is asked for.
_ARN_SERVICE: dict[str, tuple[str, str]] = {
    "AWS::SageMaker::Endpoint": ("sagemaker", "endpoint/"),
    "AWS::SageMaker::EndpointConfig": ("sagemaker", "endpoint-config/"),
    "AWS::SageMaker::Model": ("sagemaker", "model/"),
    "AWS::SecretsManager::Secret": ("secretsmanager", "secret:"),
    "AWS::Lambda::LayerVersion": ("lambda", "layer:"),
    "AWS::Serverless::LayerVersion": ("lambda", "layer:"),
    "AWS::Lambda::Function": ("lambda", "function:"),
    "AWS::Serverless::Function": ("lambda", "function:"),
    "AWS::IAM::Role": ("iam", "role/"),
    "AWS::Serverless::Application": ("cloudformation", "stack/"),
    "AWS::CloudFormation::Stack": ("cloudformation", "stack/"),
    "AWS::Logs::LogGroup": ("logs", "log-group:"),
    "AWS::SSM::Parameter": ("ssm", "parameter"),
    "AWS::SNS::Topic": ("sns", ""),
    "AWS::SQS::Queue": ("sqs", ""),
    "AWS::RDS::DBCluster": ("rds", "cluster:"),
    "AWS::RDS::DBInstance": ("rds", "db:"),
}
_GLOBAL_SERVICES = frozenset({"iam", "s3"})
# Logical ids that SAM creates implicitly and templates may reference.
_SAM_IMPLICIT_APIS: dict[str, str] = {
    "ServerlessRestApi": "AWS::ApiGateway::RestApi",
    "ServerlessHttpApi": "AWS::ApiGatewayV2::Api",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """A template or a parameter override is invalid; the message names the place and reason."""


class StackValues(Protocol):
    """The stack being loaded, as far as the intrinsics read it (`local.cfn.Stack` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def path(self) -> Path: ...
    @property
    def region(self) -> str: ...
    @property
    def account_id(self) -> str: ...
    @property
    def template(self) -> Mapping[str, Any]: ...
    @property
    def parameters(self) -> Mapping[str, Any]: ...
    @property
    def conditions(self) -> Mapping[str, bool]: ...


class StackScope(Protocol):
    """What the intrinsics ask of the loader of their stack."""

    @property
    def stack(self) -> StackValues: ...
    @property
    def active(self) -> AbstractSet[str]:
        """The logical ids of the resources whose condition holds."""
        ...

    def name_of(self, logical_id: str) -> str:
        """An active resource's physical name."""
        ...

    def nested_outputs(self, logical_id: str) -> Mapping[str, Any] | None:
        """The outputs of nested application `logical_id` (loaded first if need be), or None
        when it is not one."""
        ...


class Intrinsics:
    """Evaluates the intrinsic functions of one stack's template."""

    def __init__(self, scope: StackScope) -> None:
        self.scope = scope
        self.stack = scope.stack
        self.path = scope.stack.path
        self.declared_resources: Mapping[str, Any] = scope.stack.template["Resources"]

    def resolve(self, node: Any, where: str) -> Any:
        """`node` with every intrinsic replaced by its value (`where` names it in errors)."""
        if isinstance(node, list):
            items = (self.resolve(item, where) for item in node)
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key,) = node
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, node[key], where)
        resolved = {key: self.resolve(value, f"{where}.{key}") for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def condition(self, node: Any, where: str, evaluate: Callable[[str], bool]) -> bool:
        """The value of a condition function; `evaluate` gives that of a named `Condition`."""
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Condition":
                return evaluate(str(argument))
            if function == "Fn::Equals":
                left, right = self._pair(argument, where)
                return as_text(self.resolve(left, where)) == as_text(self.resolve(right, where))
            if function == "Fn::Not":
                return not self.condition(self._single(argument, where), where, evaluate)
            if function == "Fn::And":
                return all(self.condition(item, where, evaluate) for item in argument)
            if function == "Fn::Or":
                return any(self.condition(item, where, evaluate) for item in argument)
        raise TemplateError(f"{self.path}: {where}: not a condition function: {node!r}")

    # ---- the functions

    def _intrinsic(self, function: str, argument: Any, where: str) -> Any:
        handler = self._FUNCTIONS.get(function)
        if handler is None:
            raise TemplateError(f"{self.path}: {where}: unsupported intrinsic {function}")
        return handler(self, argument, where)

    def _ref(self, argument: Any, where: str) -> Any:
        name = as_text(self.resolve(argument, where))
        pseudo = self._pseudo_parameter(name)
        if pseudo is not None:
            return pseudo
        if name in self.stack.parameters:
            return self.stack.parameters[name]
        if name in self.scope.active:
            resource_type = self.declared_resources[name]["Type"]
            return ref_value(
                resource_type,
                self.scope.name_of(name),
                region=self.stack.region,
                account_id=self.stack.account_id,
            )
        return self._implicit_or_missing(name, where)

    def _pseudo_parameter(self, name: str) -> Any:
        stack = self.stack
        values: dict[str, Any] = {
            "AWS::Region": stack.region,
            "AWS::AccountId": stack.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack.name,
            "AWS::StackId": arn(
                "AWS::CloudFormation::Stack",
                f"{stack.name}/local",
                region=stack.region,
                account_id=stack.account_id,
            ),
            "AWS::NotificationARNs": [],
            "AWS::NoValue": NO_VALUE,
        }
        return values.get(name)

    def _implicit_or_missing(self, name: str, where: str) -> str:
        """Names SAM creates (implicit APIs, function roles) resolve; anything else is an error."""
        if name in _SAM_IMPLICIT_APIS:
            return f"local-{name.lower()}"
        function_id = name.removesuffix("Role")
        function = self.declared_resources.get(function_id, {})
        if (
            name.endswith("Role")
            and function.get("Type") == "AWS::Serverless::Function"
            and "Role" not in (function.get("Properties") or {})
        ):
            return f"{self.stack.name}-{name}"
        if name in self.declared_resources:
            raise TemplateError(
                f"{self.path}: {where}: Ref to {name}, whose condition is false in this stack"
            )
        raise TemplateError(f"{self.path}: {where}: Ref to unknown parameter or resource {name!r}")

    def _get_att(self, argument: Any, where: str) -> Any:
        if isinstance(argument, str):
            argument = argument.split(".", 1)
        logical_id, attribute = (
            as_text(part) for part in self._pair(self.resolve(argument, where), where)
        )
        outputs = self.scope.nested_outputs(logical_id)
        if outputs is not None and attribute.startswith("Outputs."):
            output = attribute.removeprefix("Outputs.")
            if output not in outputs:
                raise TemplateError(
                    f"{self.path}: {where}: nested stack {logical_id} has no output {output!r}"
                )
            return outputs[output]
        if logical_id not in self.scope.active:
            if logical_id in _SAM_IMPLICIT_APIS:
                return f"local-{logical_id.lower()}-{attribute}"
            raise TemplateError(f"{self.path}: {where}: GetAtt on unknown resource {logical_id!r}")
        resource_type = self.declared_resources[logical_id]["Type"]
        name = self.scope.name_of(logical_id)
        if attribute.endswith("Arn"):  # Arn, DBClusterArn, ...
            return arn(
                resource_type, name, region=self.stack.region, account_id=self.stack.account_id
            )
        if attribute in (name_property(resource_type), "Name"):
            return name
        return f"{name}.{attribute}"

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, list):
            text, variables = self._pair(argument, where)
            local_values = {
                key: self.resolve(value, f"{where}.{key}") for key, value in variables.items()
            }
        else:
            text, local_values = argument, {}
        if not isinstance(text, str):
            raise TemplateError(f"{self.path}: {where}: Fn::Sub needs a string")

        def substitute(match: re.Match[str]) -> str:
            variable = match.group(1)
            if variable.startswith("!"):
                return "${" + variable[1:] + "}"
            if variable in local_values:
                return as_text(local_values[variable])
            if "." in variable and not variable.startswith("AWS::"):
                return as_text(self._get_att(variable.split(".", 1), where))
            return as_text(self._ref(variable, where))

        return _SUB_VARIABLE.sub(substitute, text)

    def _if(self, argument: Any, where: str) -> Any:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError(f"{self.path}: {where}: Fn::If needs [condition, then, else]")
        condition, when_true, when_false = argument
        if condition not in self.stack.conditions:
            raise TemplateError(f"{self.path}: {where}: unknown condition {condition!r}")
        # Only the chosen branch is resolved: the other may Ref resources that do not exist.
        chosen = when_true if self.stack.conditions[condition] else when_false
        return self.resolve(chosen, where)

    def _find_in_map(self, argument: Any, where: str) -> Any:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError(f"{self.path}: {where}: Fn::FindInMap needs [map, key, key]")
        map_name, top_key, second_key = (as_text(self.resolve(a, where)) for a in argument)
        try:
            return self.stack.template["Mappings"][map_name][top_key][second_key]
        except (KeyError, TypeError) as error:
            raise TemplateError(
                f"{self.path}: {where}: Fn::FindInMap found no {map_name}/{top_key}/{second_key}"
            ) from error

    def _join(self, argument: Any, where: str) -> str:
        delimiter, items = self._pair(argument, where)
        values = self.resolve(items, where)
        if not isinstance(values, list):
            raise TemplateError(f"{self.path}: {where}: Fn::Join needs a list to join")
        return as_text(delimiter).join(as_text(value) for value in values)

    def _select(self, argument: Any, where: str) -> Any:
        index, items = self._pair(argument, where)
        values = self.resolve(items, where)
        position = int(as_text(self.resolve(index, where)))
        if not isinstance(values, list) or not 0 <= position < len(values):
            raise TemplateError(f"{self.path}: {where}: Fn::Select index {position} out of range")
        return values[position]

    def _split(self, argument: Any, where: str) -> list[str]:
        delimiter, text = self._pair(argument, where)
        return as_text(self.resolve(text, where)).split(as_text(delimiter))

    def _base64(self, argument: Any, where: str) -> str:
        text = as_text(self.resolve(argument, where))
        return base64.b64encode(text.encode()).decode()

    def _get_azs(self, argument: Any, where: str) -> list[str]:
        region = as_text(self.resolve(argument, where)) or self.stack.region
        return [f"{region}{zone}" for zone in "abc"]

    def _cidr(self, argument: Any, where: str) -> list[str]:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError(f"{self.path}: {where}: Fn::Cidr needs [ipBlock, count, cidrBits]")
        block, count, bits = (as_text(self.resolve(a, where)) for a in argument)
        network = ipaddress.ip_network(block)
        subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
        return [str(subnet) for subnet, _ in zip(subnets, range(int(count)), strict=False)]

    def _to_json_string(self, argument: Any, where: str) -> str:
        return json.dumps(self.resolve(argument, where), separators=(",", ":"))

    def _length(self, argument: Any, where: str) -> int:
        values = self.resolve(argument, where)
        if not isinstance(values, list):
            raise TemplateError(f"{self.path}: {where}: Fn::Length needs a list")
        return len(values)

    def _condition_function(self, argument: Any, where: str) -> bool:
        raise TemplateError(f"{self.path}: {where}: condition functions belong in Conditions")

    _FUNCTIONS: ClassVar[dict[str, Callable[[Intrinsics, Any, str], Any]]] = {
        "Ref": _ref,
        "Fn::GetAtt": _get_att,
        "Fn::Sub": _sub,
        "Fn::If": _if,
        "Fn::FindInMap": _find_in_map,
        "Fn::Join": _join,
        "Fn::Select": _select,
        "Fn::Split": _split,
        "Fn::Base64": _base64,
        "Fn::GetAZs": _get_azs,
        "Fn::Cidr": _cidr,
        "Fn::ToJsonString": _to_json_string,
        "Fn::Length": _length,
        "Fn::Equals": _condition_function,
        "Fn::Not": _condition_function,
        "Fn::And": _condition_function,
        "Fn::Or": _condition_function,
    }

    # ---- argument shapes

    def _pair(self, argument: Any, where: str) -> tuple[Any, Any]:
        if not isinstance(argument, list) or len(argument) != 2:
            raise TemplateError(f"{self.path}: {where}: expected a two-item list, got {argument!r}")
        return argument[0], argument[1]

    def _single(self, argument: Any, where: str) -> Any:
        if isinstance(argument, list) and len(argument) == 1:
            return argument[0]
        raise TemplateError(f"{self.path}: {where}: Fn::Not needs a one-item list")


# --------------------------------------------------------------------------- return values


def ref_value(resource_type: str, name: str, *, region: str, account_id: str) -> str:
    """What `Ref` to a resource named `name` returns: its name, or an ARN for some types."""
    if resource_type in _LAYER_TYPES:
        # a layer's Ref is a version ARN
        return arn(resource_type, f"{name}:1", region=region, account_id=account_id)
    if resource_type in _REF_IS_ARN:
        return arn(resource_type, name, region=region, account_id=account_id)
    return name


def arn(resource_type: str, name: str, *, region: str, account_id: str) -> str:
    """The ARN of the resource of `resource_type` named `name`."""
    _, service_name, type_name = [*resource_type.split("::"), "", ""][:3]
    service, prefix = _ARN_SERVICE.get(
        resource_type, (service_name.lower(), f"{type_name.lower()}/")
    )
    if service in _GLOBAL_SERVICES:
        region = ""
    partition = "aws"
    if resource_type == "AWS::SSM::Parameter" and not name.startswith("/"):
        name = "/" + name
    if resource_type == "AWS::S3::Bucket":
        return f"arn:{partition}:s3:::{name}"  # bucket ARNs name no region or account
    return f"arn:{partition}:{service}:{region}:{account_id}:{prefix}{name}"


def name_property(resource_type: str) -> str:
    """The property that holds a resource's explicit physical name (`EndpointName`, ...)."""
    return _NAME_PROPERTIES.get(resource_type, resource_type.rsplit("::", 1)[-1] + "Name")


def as_text(value: Any) -> str:
    """CloudFormation compares and substitutes values as strings (booleans in lower case)."""
    if value is NO_VALUE:
        raise TemplateError("AWS::NoValue used where a value is required")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TemplateError(f"expected a scalar, got {value!r}")
