"""Load the SAM templates the way CloudFormation would, without AWS.

The local runtime (SageMaker emulator, gateway) reads the same `template-root.yaml` and nested
app templates that `sam deploy` ships, so local behaviour follows the templates instead of a
second, hand-kept configuration. This module parses the YAML (including the short-form tags
`!Ref`, `!Sub`, `!GetAtt`, ...), validates parameters against their declarations, evaluates
Conditions, drops resources whose condition is false, loads nested `AWS::Serverless::Application`
templates from their local `Location`, and resolves the intrinsic functions CloudFormation would:
`Ref` (parameters, pseudo parameters, resources), `Fn::Sub`, `Fn::GetAtt`, `Fn::If`,
`Fn::FindInMap`, `Fn::Join`, `Fn::Select`, `Fn::Split`, `Fn::Base64`, `Fn::GetAZs`, `Fn::Cidr`,
`Fn::ToJsonString`, `Fn::Length`, and the condition functions `Fn::Equals`, `Fn::Not`,
`Fn::And`, `Fn::Or`. A template's `Rules` are checked as CloudFormation checks them before it
creates anything: an assertion that fails under the given parameters is a `TemplateError` with
the rule's `AssertDescription`.

Resources get deterministic local physical names: the explicit name property when the template
sets one (e.g. `EndpointName`), otherwise `<stack>-<logicalid>-<hash>` in lower case, like
CloudFormation's generated names, so `Ref`/`GetAtt` between resources resolve consistently.

Example::

    from local.cfn import load_stack

    root = load_stack("template-root.yaml", {"Stage": "dev"})
    api = root.nested["InferenceApi"]
    for resource in root.walk_resources("AWS::SageMaker::Endpoint"):
        print(resource.physical_name, resource.properties["EndpointConfigName"])
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

import yaml

__all__ = [
    "Resource",
    "Stack",
    "TemplateError",
    "load_stack",
    "load_template",
]

NO_VALUE = object()
"""What `Ref: AWS::NoValue` resolves to; removed from the enclosing list or mapping."""

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"

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
# SAM's Globals section applies to these resource types, keyed by the Globals section name.
_SAM_GLOBALS: dict[str, str] = {
    "Function": "AWS::Serverless::Function",
    "Api": "AWS::Serverless::Api",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SimpleTable": "AWS::Serverless::SimpleTable",
    "StateMachine": "AWS::Serverless::StateMachine",
    "LayerVersion": "AWS::Serverless::LayerVersion",
}
# Logical ids that SAM creates implicitly and templates may reference.
_SAM_IMPLICIT_APIS: dict[str, str] = {
    "ServerlessRestApi": "AWS::ApiGateway::RestApi",
    "ServerlessHttpApi": "AWS::ApiGatewayV2::Api",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class TemplateError(ValueError):
    """A template or a parameter override is invalid; the message names the place and reason."""


# --------------------------------------------------------------------------- YAML parsing


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short-form tags into their long form."""


def _construct_short_form(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> Any:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(cast(yaml.MappingNode, node), deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        logical_id, _, attribute = value.partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_short_form)


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse one CloudFormation/SAM template file (short-form tags become long form)."""
    template_path = Path(path)
    try:
        document = yaml.load(template_path.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    except FileNotFoundError as error:
        raise TemplateError(f"{template_path}: template file not found") from error
    except yaml.YAMLError as error:
        raise TemplateError(f"{template_path}: invalid YAML: {error}") from error
    if not isinstance(document, dict) or not isinstance(document.get("Resources"), dict):
        raise TemplateError(f"{template_path}: not a template (no Resources mapping)")
    return cast(dict[str, Any], document)


# --------------------------------------------------------------------------- resolved model


@dataclass(frozen=True)
class Resource:
    """One resource whose condition holds, with intrinsics resolved."""

    logical_id: str
    type: str
    physical_name: str
    """The explicit name property, or a generated `<stack>-<logicalid>-<hash>` name."""
    ref: str
    """What `Ref` to this resource returns (a name or an ARN, as CloudFormation documents)."""
    properties: dict[str, Any]
    metadata: dict[str, Any]
    stack: Stack = field(repr=False, compare=False)


@dataclass
class Stack:
    """A loaded template: parameter values, active resources, outputs, and nested stacks."""

    name: str
    path: Path
    region: str
    account_id: str
    parameters: dict[str, Any]
    conditions: dict[str, bool]
    resources: dict[str, Resource] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    nested: dict[str, Stack] = field(default_factory=dict)
    template: dict[str, Any] = field(default_factory=dict, repr=False)
    """The parsed template (long form), for readers that need raw sections such as Globals."""
    placeholders: set[str] = field(default_factory=set)
    """Parameters that got a placeholder value (see `load_stack(placeholder_missing=True)`)."""

    def walk(self) -> Iterator[Stack]:
        """This stack, then every nested stack, depth first."""
        yield self
        for child in self.nested.values():
            yield from child.walk()

    def walk_resources(self, resource_type: str | None = None) -> Iterator[Resource]:
        """Every active resource of this stack and its nested stacks, optionally of one type."""
        for stack in self.walk():
            for resource in stack.resources.values():
                if resource_type is None or resource.type == resource_type:
                    yield resource

    def find_by_name(self, resource_type: str, physical_name: str) -> Resource:
        """The resource of `resource_type` (anywhere in the tree) with that name or Ref value."""
        for resource in self.walk_resources(resource_type):
            if physical_name in (resource.physical_name, resource.ref):
                return resource
        raise TemplateError(f"no {resource_type} named {physical_name!r} in stack {self.name}")


# --------------------------------------------------------------------------- loading


def load_stack(
    path: str | Path,
    parameter_overrides: Mapping[str, Any] | None = None,
    *,
    stack_name: str = "pressroom",
    region: str = DEFAULT_REGION,
    account_id: str = DEFAULT_ACCOUNT_ID,
    nested_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    placeholder_missing: bool = False,
) -> Stack:
    """Load a template and its nested applications, resolving every intrinsic.

    `parameter_overrides` must name declared parameters (an unknown name is an error, so a typo
    never silently falls back to a default). `nested_overrides` maps a nested application's
    logical id to extra parameter values for it (the parent's `Parameters` win over them only
    where both set the same name). `placeholder_missing` lets a nested template load on its own:
    a parameter its parent would pass, with no Default, gets the value `unset-<Name>` (0 for a
    Number) and is listed in `Stack.placeholders`; otherwise a missing value is an error.
    """
    return _StackLoader(
        Path(path),
        dict(parameter_overrides or {}),
        stack_name=stack_name,
        region=region,
        account_id=account_id,
        nested_overrides={key: dict(value) for key, value in (nested_overrides or {}).items()},
        placeholder_missing=placeholder_missing,
    ).load()


class _StackLoader:
    """Resolves one template; nested applications get their own loader."""

    def __init__(
        self,
        path: Path,
        overrides: dict[str, Any],
        *,
        stack_name: str,
        region: str,
        account_id: str,
        nested_overrides: dict[str, dict[str, Any]],
        placeholder_missing: bool = False,
    ) -> None:
        self.path = path
        self.placeholder_missing = placeholder_missing
        self.template = load_template(path)
        self.overrides = overrides
        self.stack = Stack(
            name=stack_name,
            path=path,
            region=region,
            account_id=account_id,
            parameters={},
            conditions={},
            template=self.template,
        )
        self.nested_overrides = nested_overrides
        self.declared_resources: dict[str, dict[str, Any]] = self.template["Resources"]
        self._sam_globals = self.template.get("Globals") or {}
        self._active: set[str] = set()
        self._names: dict[str, str] = {}
        self._naming: set[str] = set()
        self._resolving: set[str] = set()

    # ---- top level

    def load(self) -> Stack:
        self.stack.parameters = self._resolve_parameters()
        self._check_rules()
        self._evaluate_conditions()
        # Resources first get names (so Ref/GetAtt between them resolve), then properties.
        active = {
            logical_id: declaration
            for logical_id, declaration in self.declared_resources.items()
            if self._is_active(declaration, f"Resources.{logical_id}")
        }
        self._active = set(active)
        for logical_id in active:
            self._ensure_resource(logical_id)
        for output_name, output in (self.template.get("Outputs") or {}).items():
            if self._is_active(output, f"Outputs.{output_name}"):
                self.stack.outputs[output_name] = self._resolve(
                    output.get("Value"), f"Outputs.{output_name}.Value"
                )
        return self.stack

    def _resolve_parameters(self) -> dict[str, Any]:
        declared: dict[str, dict[str, Any]] = self.template.get("Parameters") or {}
        unknown = sorted(set(self.overrides) - set(declared))
        if unknown:
            raise TemplateError(
                f"{self.path}: unknown parameter(s) {', '.join(unknown)}; "
                f"declared: {', '.join(sorted(declared)) or 'none'}"
            )
        values: dict[str, Any] = {}
        for name, declaration in declared.items():
            if name in self.overrides:
                raw = self.overrides[name]
            elif "Default" in declaration:
                raw = declaration["Default"]
            elif self.placeholder_missing:
                values[name] = 0 if declaration.get("Type") == "Number" else f"unset-{name}"
                self.stack.placeholders.add(name)
                continue
            else:
                raise TemplateError(f"{self.path}: parameter {name} has no value and no Default")
            values[name] = _coerce_parameter(self.path, name, declaration, raw)
        return values

    def _check_rules(self) -> None:
        """Each rule whose `RuleCondition` holds must hold every one of its `Assertions`."""

        def no_conditions(name: str) -> bool:
            raise TemplateError(f"{self.path}: Rules: a rule cannot use condition {name!r}")

        for name, rule in (self.template.get("Rules") or {}).items():
            where = f"Rules.{name}"
            condition = rule.get("RuleCondition")
            if condition is not None and not self._condition_value(
                condition, f"{where}.RuleCondition", no_conditions
            ):
                continue
            for index, assertion in enumerate(rule.get("Assertions") or []):
                if not self._condition_value(
                    assertion["Assert"], f"{where}.Assertions[{index}]", no_conditions
                ):
                    description = assertion.get("AssertDescription", "an assertion failed")
                    raise TemplateError(
                        f"{self.path}: rule {name}: {' '.join(description.split())}"
                    )

    def _evaluate_conditions(self) -> None:
        declared: dict[str, Any] = self.template.get("Conditions") or {}
        evaluating: set[str] = set()

        def evaluate(name: str) -> bool:
            if name in self.stack.conditions:
                return self.stack.conditions[name]
            if name not in declared:
                raise TemplateError(f"{self.path}: unknown condition {name!r}")
            if name in evaluating:
                raise TemplateError(f"{self.path}: condition {name!r} refers to itself")
            evaluating.add(name)
            result = self._condition_value(declared[name], f"Conditions.{name}", evaluate)
            self.stack.conditions[name] = result
            return result

        for name in declared:
            evaluate(name)

    def _condition_value(self, node: Any, where: str, evaluate: Callable[[str], bool]) -> bool:
        if isinstance(node, dict) and len(node) == 1:
            ((function, argument),) = node.items()
            if function == "Condition":
                return evaluate(str(argument))
            if function == "Fn::Equals":
                left, right = self._pair(argument, where)
                return _as_text(self._resolve(left, where)) == _as_text(self._resolve(right, where))
            if function == "Fn::Not":
                return not self._condition_value(self._single(argument, where), where, evaluate)
            if function == "Fn::And":
                return all(self._condition_value(item, where, evaluate) for item in argument)
            if function == "Fn::Or":
                return any(self._condition_value(item, where, evaluate) for item in argument)
        raise TemplateError(f"{self.path}: {where}: not a condition function: {node!r}")

    def _is_active(self, declaration: Mapping[str, Any], where: str) -> bool:
        condition = declaration.get("Condition")
        if condition is None:
            return True
        if condition not in self.stack.conditions:
            raise TemplateError(f"{self.path}: {where}: unknown condition {condition!r}")
        return self.stack.conditions[condition]

    # ---- resources

    def _name_of(self, logical_id: str) -> str:
        """A resource's physical name, computed on first use (names may Ref other resources)."""
        if logical_id not in self._names:
            if logical_id in self._naming:
                raise TemplateError(f"{self.path}: the name of {logical_id} refers to itself")
            self._naming.add(logical_id)
            declaration = self.declared_resources[logical_id]
            self._names[logical_id] = self._physical_name(logical_id, declaration)
        return self._names[logical_id]

    def _physical_name(self, logical_id: str, declaration: Mapping[str, Any]) -> str:
        name_property = _name_property(str(declaration.get("Type", "")))
        properties = declaration.get("Properties") or {}
        if name_property and name_property in properties:
            return _as_text(
                self._resolve(properties[name_property], f"Resources.{logical_id}.Properties")
            )
        # Lower case: some services (RDS, S3) accept nothing else in generated names.
        digest = hashlib.sha256(f"{self.stack.name}/{logical_id}".encode()).hexdigest()[:12]
        return f"{self.stack.name}-{logical_id}-{digest}".lower()

    def _ensure_resource(self, logical_id: str) -> None:
        """Resolve a resource once; a nested application may be needed early by a GetAtt."""
        if logical_id in self.stack.resources:
            return
        if logical_id in self._resolving:
            raise TemplateError(f"{self.path}: Resources.{logical_id} depends on itself")
        self._resolving.add(logical_id)
        self._add_resource(logical_id, self.declared_resources[logical_id])

    def _add_resource(self, logical_id: str, declaration: Mapping[str, Any]) -> None:
        resource_type = str(declaration.get("Type", ""))
        where = f"Resources.{logical_id}"
        properties = self._with_globals(resource_type, declaration.get("Properties") or {})
        resolved_properties = self._resolve(properties, f"{where}.Properties")
        resolved_metadata = self._resolve(declaration.get("Metadata") or {}, f"{where}.Metadata")
        name = self._name_of(logical_id)
        resource = Resource(
            logical_id=logical_id,
            type=resource_type,
            physical_name=name,
            ref=self._ref_value(resource_type, name),
            properties=resolved_properties,
            metadata=resolved_metadata,
            stack=self.stack,
        )
        self.stack.resources[logical_id] = resource
        if resource_type == "AWS::Serverless::Application":
            self._load_nested(resource)

    def _with_globals(self, resource_type: str, properties: Mapping[str, Any]) -> dict[str, Any]:
        for section, target_type in _SAM_GLOBALS.items():
            if target_type == resource_type and section in self._sam_globals:
                return _merge_sam_globals(self._sam_globals[section], properties)
        return dict(properties)

    def _load_nested(self, application: Resource) -> None:
        location = application.properties.get("Location")
        if not isinstance(location, str):
            raise TemplateError(
                f"{self.path}: Resources.{application.logical_id}.Location must be a local path "
                "to load it locally (not an ApplicationId/SemanticVersion mapping)"
            )
        parameters = dict(self.nested_overrides.get(application.logical_id, {}))
        parameters.update(application.properties.get("Parameters") or {})
        loader = _StackLoader(
            (self.path.parent / location).resolve(),
            parameters,
            stack_name=f"{self.stack.name}-{application.logical_id}",
            region=self.stack.region,
            account_id=self.stack.account_id,
            nested_overrides={},
        )
        self.stack.nested[application.logical_id] = loader.load()

    def _ref_value(self, resource_type: str, name: str) -> str:
        if resource_type in _LAYER_TYPES:
            return self._arn(resource_type, f"{name}:1")  # a layer's Ref is a version ARN
        if resource_type in _REF_IS_ARN:
            return self._arn(resource_type, name)
        return name

    def _arn(self, resource_type: str, name: str) -> str:
        _, service_name, type_name = [*resource_type.split("::"), "", ""][:3]
        service, prefix = _ARN_SERVICE.get(
            resource_type, (service_name.lower(), f"{type_name.lower()}/")
        )
        region = "" if service in _GLOBAL_SERVICES else self.stack.region
        partition = "aws"
        if resource_type == "AWS::SSM::Parameter" and not name.startswith("/"):
            name = "/" + name
        if resource_type == "AWS::S3::Bucket":
            return f"arn:{partition}:s3:::{name}"  # bucket ARNs name no region or account
        return f"arn:{partition}:{service}:{region}:{self.stack.account_id}:{prefix}{name}"

    # ---- intrinsic functions

    def _resolve(self, node: Any, where: str) -> Any:
        if isinstance(node, list):
            items = (self._resolve(item, where) for item in node)
            return [item for item in items if item is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key,) = node
            if key == "Ref" or key.startswith("Fn::"):
                return self._intrinsic(key, node[key], where)
        resolved = {key: self._resolve(value, f"{where}.{key}") for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not NO_VALUE}

    def _intrinsic(self, function: str, argument: Any, where: str) -> Any:
        handler = self._INTRINSICS.get(function)
        if handler is None:
            raise TemplateError(f"{self.path}: {where}: unsupported intrinsic {function}")
        return handler(self, argument, where)

    def _ref(self, argument: Any, where: str) -> Any:
        name = _as_text(self._resolve(argument, where))
        pseudo = self._pseudo_parameter(name)
        if pseudo is not None:
            return pseudo
        if name in self.stack.parameters:
            return self.stack.parameters[name]
        if name in self._active:
            resource_type = self.declared_resources[name]["Type"]
            return self._ref_value(resource_type, self._name_of(name))
        return self._implicit_or_missing(name, where)

    def _pseudo_parameter(self, name: str) -> Any:
        stack = self.stack
        values: dict[str, Any] = {
            "AWS::Region": stack.region,
            "AWS::AccountId": stack.account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": stack.name,
            "AWS::StackId": self._arn("AWS::CloudFormation::Stack", f"{stack.name}/local"),
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
            _as_text(part) for part in self._pair(self._resolve(argument, where), where)
        )
        declared_type = self.declared_resources.get(logical_id, {}).get("Type")
        if declared_type == "AWS::Serverless::Application" and logical_id in self._active:
            self._ensure_resource(logical_id)
        if logical_id in self.stack.nested and attribute.startswith("Outputs."):
            outputs = self.stack.nested[logical_id].outputs
            output = attribute.removeprefix("Outputs.")
            if output not in outputs:
                raise TemplateError(
                    f"{self.path}: {where}: nested stack {logical_id} has no output {output!r}"
                )
            return outputs[output]
        if logical_id not in self._active:
            if logical_id in _SAM_IMPLICIT_APIS:
                return f"local-{logical_id.lower()}-{attribute}"
            raise TemplateError(f"{self.path}: {where}: GetAtt on unknown resource {logical_id!r}")
        resource_type = self.declared_resources[logical_id]["Type"]
        name = self._name_of(logical_id)
        if attribute.endswith("Arn"):  # Arn, DBClusterArn, ...
            return self._arn(resource_type, name)
        if attribute in (_name_property(resource_type), "Name"):
            return name
        return f"{name}.{attribute}"

    def _sub(self, argument: Any, where: str) -> str:
        if isinstance(argument, list):
            text, variables = self._pair(argument, where)
            local_values = {
                key: self._resolve(value, f"{where}.{key}") for key, value in variables.items()
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
                return _as_text(local_values[variable])
            if "." in variable and not variable.startswith("AWS::"):
                return _as_text(self._get_att(variable.split(".", 1), where))
            return _as_text(self._ref(variable, where))

        return _SUB_VARIABLE.sub(substitute, text)

    def _if(self, argument: Any, where: str) -> Any:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError(f"{self.path}: {where}: Fn::If needs [condition, then, else]")
        condition, when_true, when_false = argument
        if condition not in self.stack.conditions:
            raise TemplateError(f"{self.path}: {where}: unknown condition {condition!r}")
        # Only the chosen branch is resolved: the other may Ref resources that do not exist.
        chosen = when_true if self.stack.conditions[condition] else when_false
        return self._resolve(chosen, where)

    def _find_in_map(self, argument: Any, where: str) -> Any:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError(f"{self.path}: {where}: Fn::FindInMap needs [map, key, key]")
        map_name, top_key, second_key = (_as_text(self._resolve(a, where)) for a in argument)
        try:
            return self.template["Mappings"][map_name][top_key][second_key]
        except (KeyError, TypeError) as error:
            raise TemplateError(
                f"{self.path}: {where}: Fn::FindInMap found no {map_name}/{top_key}/{second_key}"
            ) from error

    def _join(self, argument: Any, where: str) -> str:
        delimiter, items = self._pair(argument, where)
        values = self._resolve(items, where)
        if not isinstance(values, list):
            raise TemplateError(f"{self.path}: {where}: Fn::Join needs a list to join")
        return _as_text(delimiter).join(_as_text(value) for value in values)

    def _select(self, argument: Any, where: str) -> Any:
        index, items = self._pair(argument, where)
        values = self._resolve(items, where)
        position = int(_as_text(self._resolve(index, where)))
        if not isinstance(values, list) or not 0 <= position < len(values):
            raise TemplateError(f"{self.path}: {where}: Fn::Select index {position} out of range")
        return values[position]

    def _split(self, argument: Any, where: str) -> list[str]:
        delimiter, text = self._pair(argument, where)
        return _as_text(self._resolve(text, where)).split(_as_text(delimiter))

    def _base64(self, argument: Any, where: str) -> str:
        text = _as_text(self._resolve(argument, where))
        return base64.b64encode(text.encode()).decode()

    def _get_azs(self, argument: Any, where: str) -> list[str]:
        region = _as_text(self._resolve(argument, where)) or self.stack.region
        return [f"{region}{zone}" for zone in "abc"]

    def _cidr(self, argument: Any, where: str) -> list[str]:
        if not isinstance(argument, list) or len(argument) != 3:
            raise TemplateError(f"{self.path}: {where}: Fn::Cidr needs [ipBlock, count, cidrBits]")
        block, count, bits = (_as_text(self._resolve(a, where)) for a in argument)
        network = ipaddress.ip_network(block)
        subnets = network.subnets(new_prefix=network.max_prefixlen - int(bits))
        return [str(subnet) for subnet, _ in zip(subnets, range(int(count)), strict=False)]

    def _to_json_string(self, argument: Any, where: str) -> str:
        return json.dumps(self._resolve(argument, where), separators=(",", ":"))

    def _length(self, argument: Any, where: str) -> int:
        values = self._resolve(argument, where)
        if not isinstance(values, list):
            raise TemplateError(f"{self.path}: {where}: Fn::Length needs a list")
        return len(values)

    def _condition_function(self, argument: Any, where: str) -> bool:
        raise TemplateError(f"{self.path}: {where}: condition functions belong in Conditions")

    _INTRINSICS: ClassVar[dict[str, Callable[[_StackLoader, Any, str], Any]]] = {
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


# --------------------------------------------------------------------------- helpers


def _name_property(resource_type: str) -> str:
    return _NAME_PROPERTIES.get(resource_type, resource_type.rsplit("::", 1)[-1] + "Name")


def _as_text(value: Any) -> str:
    """CloudFormation compares and substitutes values as strings (booleans in lower case)."""
    if value is NO_VALUE:
        raise TemplateError("AWS::NoValue used where a value is required")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    raise TemplateError(f"expected a scalar, got {value!r}")


def _coerce_parameter(path: Path, name: str, declaration: Mapping[str, Any], raw: Any) -> Any:
    """Validate a parameter value against its declaration; Number parameters become numbers."""
    parameter_type = str(declaration.get("Type", "String"))
    where = f"{path}: parameter {name}"
    if parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<"):
        items = raw if isinstance(raw, list) else str(raw).split(",")
        return [str(item).strip() for item in items]
    text = _as_text(raw)
    allowed = declaration.get("AllowedValues")
    if allowed is not None and text not in {_as_text(value) for value in allowed}:
        raise TemplateError(f"{where}: {text!r} is not one of {allowed}")
    if parameter_type == "Number":
        try:
            number = float(text)
        except ValueError as error:
            raise TemplateError(f"{where}: {text!r} is not a number") from error
        if "MinValue" in declaration and number < float(declaration["MinValue"]):
            raise TemplateError(f"{where}: {text} is below MinValue {declaration['MinValue']}")
        if "MaxValue" in declaration and number > float(declaration["MaxValue"]):
            raise TemplateError(f"{where}: {text} is above MaxValue {declaration['MaxValue']}")
        return int(number) if number.is_integer() else number
    pattern = declaration.get("AllowedPattern")
    if pattern is not None and re.fullmatch(str(pattern), text) is None:
        raise TemplateError(f"{where}: {text!r} does not match AllowedPattern {pattern}")
    if "MinLength" in declaration and len(text) < int(declaration["MinLength"]):
        raise TemplateError(f"{where}: shorter than MinLength {declaration['MinLength']}")
    if "MaxLength" in declaration and len(text) > int(declaration["MaxLength"]):
        raise TemplateError(f"{where}: longer than MaxLength {declaration['MaxLength']}")
    return text


def _merge_sam_globals(globals_section: Any, properties: Mapping[str, Any]) -> dict[str, Any]:
    """SAM's Globals rules: the resource wins for scalars, maps merge, lists concatenate."""
    merged: dict[str, Any] = dict(globals_section)
    for key, value in properties.items():
        current = merged.get(key)
        if isinstance(current, dict) and isinstance(value, dict) and not _is_intrinsic(value):
            merged[key] = _merge_sam_globals(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            merged[key] = current + value
        else:
            merged[key] = value
    return merged


def _is_intrinsic(node: Mapping[str, Any]) -> bool:
    if len(node) != 1:
        return False
    (key,) = node
    return key in ("Ref", "Condition") or key.startswith("Fn::")
