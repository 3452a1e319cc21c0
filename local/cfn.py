"""Load the SAM templates the way CloudFormation would, without AWS.

The local runtime (SageMaker emulator, gateway) reads the same `template-root.yaml` and nested
app templates that `sam deploy` ships, so local behaviour follows the templates instead of a
second, hand-kept configuration. This module parses the YAML (including the short-form tags
`!Ref`, `!Sub`, `!GetAtt`, ...), validates parameters against their declarations, evaluates
Conditions, drops resources whose condition is false, loads nested `AWS::Serverless::Application`
templates from their local `Location`, and resolves the intrinsic functions CloudFormation would
(`Ref`, `Fn::Sub`, `Fn::GetAtt`, `Fn::If`, ... and the condition functions; they are evaluated
in `local.cfn_intrinsics`). A template's `Rules` are checked as CloudFormation checks them before
it creates anything: an assertion that fails under the given parameters is a `TemplateError` with
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

import hashlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import yaml

from local.cfn_intrinsics import NO_VALUE as NO_VALUE  # also importable from here
from local.cfn_intrinsics import (
    Intrinsics,
    TemplateError,
    as_text,
    name_property,
    ref_value,
)

__all__ = [
    "Resource",
    "Stack",
    "TemplateError",
    "load_stack",
    "load_template",
]

DEFAULT_REGION = "us-east-1"
DEFAULT_ACCOUNT_ID = "123456789012"

# SAM's Globals section applies to these resource types, keyed by the Globals section name.
_SAM_GLOBALS: dict[str, str] = {
    "Function": "AWS::Serverless::Function",
    "Api": "AWS::Serverless::Api",
    "HttpApi": "AWS::Serverless::HttpApi",
    "SimpleTable": "AWS::Serverless::SimpleTable",
    "StateMachine": "AWS::Serverless::StateMachine",
    "LayerVersion": "AWS::Serverless::LayerVersion",
}


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
    """Resolves one template; nested applications get their own loader.

    The steps (`load`): parameter values, the template's Rules, its Conditions, then each
    active resource (its properties resolved by `Intrinsics`), then the Outputs. The loader is
    the intrinsics' `StackScope`: it says which resources exist and names them on demand.
    """

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
        self.active: set[str] = set()
        """The logical ids of the resources whose condition holds."""
        self._names: dict[str, str] = {}
        self._naming: set[str] = set()
        self._resolving: set[str] = set()
        self.intrinsics = Intrinsics(self)

    # ---- top level

    def load(self) -> Stack:
        self.stack.parameters = self._resolve_parameters()
        self._check_rules()
        self._evaluate_conditions()
        self._add_resources()
        self._add_outputs()
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
            if condition is not None and not self.intrinsics.condition(
                condition, f"{where}.RuleCondition", no_conditions
            ):
                continue
            for index, assertion in enumerate(rule.get("Assertions") or []):
                if not self.intrinsics.condition(
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
            result = self.intrinsics.condition(declared[name], f"Conditions.{name}", evaluate)
            self.stack.conditions[name] = result
            return result

        for name in declared:
            evaluate(name)

    def _add_resources(self) -> None:
        # Resources first get names (so Ref/GetAtt between them resolve), then properties.
        active = {
            logical_id: declaration
            for logical_id, declaration in self.declared_resources.items()
            if self._is_active(declaration, f"Resources.{logical_id}")
        }
        self.active = set(active)
        for logical_id in active:
            self._ensure_resource(logical_id)

    def _add_outputs(self) -> None:
        for output_name, output in (self.template.get("Outputs") or {}).items():
            if self._is_active(output, f"Outputs.{output_name}"):
                self.stack.outputs[output_name] = self.intrinsics.resolve(
                    output.get("Value"), f"Outputs.{output_name}.Value"
                )

    def _is_active(self, declaration: Mapping[str, Any], where: str) -> bool:
        condition = declaration.get("Condition")
        if condition is None:
            return True
        if condition not in self.stack.conditions:
            raise TemplateError(f"{self.path}: {where}: unknown condition {condition!r}")
        return self.stack.conditions[condition]

    # ---- resources

    def name_of(self, logical_id: str) -> str:
        """A resource's physical name, computed on first use (names may Ref other resources)."""
        if logical_id not in self._names:
            if logical_id in self._naming:
                raise TemplateError(f"{self.path}: the name of {logical_id} refers to itself")
            self._naming.add(logical_id)
            declaration = self.declared_resources[logical_id]
            self._names[logical_id] = self._physical_name(logical_id, declaration)
        return self._names[logical_id]

    def _physical_name(self, logical_id: str, declaration: Mapping[str, Any]) -> str:
        name_key = name_property(str(declaration.get("Type", "")))
        properties = declaration.get("Properties") or {}
        if name_key and name_key in properties:
            return as_text(
                self.intrinsics.resolve(properties[name_key], f"Resources.{logical_id}.Properties")
            )
        # Lower case: some services (RDS, S3) accept nothing else in generated names.
        digest = hashlib.sha256(f"{self.stack.name}/{logical_id}".encode()).hexdigest()[:12]
        return f"{self.stack.name}-{logical_id}-{digest}".lower()

    def nested_outputs(self, logical_id: str) -> Mapping[str, Any] | None:
        """The outputs of nested application `logical_id`, loaded first if a GetAtt needs it
        before its turn; None when it is not a nested application of this stack."""
        declared_type = self.declared_resources.get(logical_id, {}).get("Type")
        if declared_type == "AWS::Serverless::Application" and logical_id in self.active:
            self._ensure_resource(logical_id)
        nested = self.stack.nested.get(logical_id)
        return None if nested is None else nested.outputs

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
        resolved_properties = self.intrinsics.resolve(properties, f"{where}.Properties")
        resolved_metadata = self.intrinsics.resolve(
            declaration.get("Metadata") or {}, f"{where}.Metadata"
        )
        name = self.name_of(logical_id)
        resource = Resource(
            logical_id=logical_id,
            type=resource_type,
            physical_name=name,
            ref=ref_value(
                resource_type, name, region=self.stack.region, account_id=self.stack.account_id
            ),
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


# --------------------------------------------------------------------------- helpers


def _coerce_parameter(path: Path, name: str, declaration: Mapping[str, Any], raw: Any) -> Any:
    """Validate a parameter value against its declaration; Number parameters become numbers."""
    parameter_type = str(declaration.get("Type", "String"))
    where = f"{path}: parameter {name}"
    if parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<"):
        items = raw if isinstance(raw, list) else str(raw).split(",")
        return [str(item).strip() for item in items]
    text = as_text(raw)
    allowed = declaration.get("AllowedValues")
    if allowed is not None and text not in {as_text(value) for value in allowed}:
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
