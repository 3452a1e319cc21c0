"""Which endpoints and variants the emulator hosts, read from the SAM templates.

The templates are the single source of truth: every active `AWS::SageMaker::Endpoint` becomes
an emulated endpoint, its EndpointConfig's ProductionVariants become variants (with their
`InitialVariantWeight`, or serverless config), and each variant's `AWS::SageMaker::Model`
names its packaged model through `Metadata: {Pressroom: {Model: <model-name>}}`, which maps to
`<models_root>/<profile>/<model-name>/model` locally. A model whose `ModelDataUrl` is a registry
URL (`registry_artifact_url`, e.g. an experiment round's challenger) serves that version from
the local model registry instead. The EndpointConfig's `DataCaptureConfig`, when enabled, says
what the emulator captures (`local.emulate.sagemaker.capture`). A config's
`ShadowProductionVariants` (one at most, beside one production variant, as SageMaker allows)
becomes the endpoint's `shadow`: it answers a copy of the production variant's requests, and
what it answers is captured, never returned.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local import registry
from local.cfn import Resource, Stack, TemplateError, load_stack, load_template
from local.emulate.sagemaker.capture import CaptureSpec
from local.paths import ROOT_TEMPLATE
from training.definitions import MODEL_NAMES

LOCAL_ARTIFACT_BUCKET = "pressroom-local-artifacts"
# Model data URLs under this prefix name a version in the local model registry.
REGISTRY_ARTIFACTS = f"s3://{LOCAL_ARTIFACT_BUCKET}/registry/"


@dataclass(frozen=True)
class VariantSpec:
    """One production variant: the model it serves and its share of the endpoint's traffic."""

    name: str
    model_name: str
    artifact_dir: Path
    weight: float
    max_concurrency: int | None
    """Serverless MaxConcurrency (None on instance-backed variants)."""
    memory_mb: int | None
    """Serverless MemorySizeInMB (None on instance-backed variants)."""
    challenger: bool = False
    """An experiment round's challenger (`Metadata.Pressroom.Challenger`), not the model's own."""


@dataclass(frozen=True)
class EndpointSpec:
    """One endpoint and its variants, in template order."""

    name: str
    config_name: str
    variants: tuple[VariantSpec, ...]
    serverless: bool
    capture: CaptureSpec | None = None
    """The config's enabled DataCaptureConfig (None: nothing is captured)."""
    shadow: VariantSpec | None = None
    """The config's shadow variant (None: no shadow); never one of `variants`."""

    def variant(self, name: str) -> VariantSpec:
        """A production variant, or the shadow, by name."""
        for variant in self.hosted:
            if variant.name == name:
                return variant
        raise KeyError(name)

    @property
    def hosted(self) -> tuple[VariantSpec, ...]:
        """Every variant the endpoint runs: the production variants, then the shadow."""
        return self.variants if self.shadow is None else (*self.variants, self.shadow)

    @property
    def shadow_share(self) -> float:
        """The share of requests copied to the shadow: its weight over the production
        variant's, at most all of them (0 without a shadow)."""
        if self.shadow is None:
            return 0.0
        production = sum(variant.weight for variant in self.variants)
        return min(1.0, self.shadow.weight / production) if production > 0 else 0.0


def parameter_stem(model_name: str) -> str:
    """`headline-base` -> `HeadlineBase`: the prefix of a model's template parameters."""
    return "".join(part.capitalize() for part in model_name.split("-"))


def local_model_parameters(profile: str, models_root: Path) -> dict[str, str]:
    """`<Stem>ModelDataUrl` / `<Stem>ModelVersion` values for every model, for local loading.

    The URL is the S3 key the artifact would have (templates validate it as an S3 URI); the
    version is the content hash from the artifact's manifest.json, or `unbuilt`.
    """
    values: dict[str, str] = {}
    for model_name in MODEL_NAMES:
        stem = parameter_stem(model_name)
        manifest_path = models_root / profile / model_name / "manifest.json"
        version = "unbuilt"
        if manifest_path.is_file():
            version = str(json.loads(manifest_path.read_text(encoding="utf-8"))["version"])
        values[f"{stem}ModelDataUrl"] = (
            f"s3://{LOCAL_ARTIFACT_BUCKET}/{profile}/{model_name}/{version}/model.tar.gz"
        )
        values[f"{stem}ModelVersion"] = version
    return values


def registry_artifact_url(name: str, version: str) -> str:
    """The model data URL that serves `name` `version` from the local model registry."""
    return f"{REGISTRY_ARTIFACTS}{name}/{version}/model.tar.gz"


def load_local_stacks(
    profile: str,
    models_root: Path,
    templates: Sequence[Path] | None = None,
    parameter_overrides: Mapping[str, Any] | None = None,
) -> list[Stack]:
    """Load the root template (or the given `templates`) for local use.

    Each template gets the local model parameters it declares, then `parameter_overrides`
    (only the names it declares, so one override set serves several templates).
    """
    overrides = {**local_model_parameters(profile, models_root), **(parameter_overrides or {})}
    stacks = []
    for template in templates or [ROOT_TEMPLATE]:
        declared = _declared_parameters(template)
        stacks.append(
            load_stack(
                template, {key: value for key, value in overrides.items() if key in declared}
            )
        )
    return stacks


def endpoint_specs(
    stacks: Iterable[Stack],
    profile: str,
    models_root: Path,
    registry_root: Path = registry.DEFAULT_REGISTRY_ROOT,
) -> list[EndpointSpec]:
    """Every endpoint the stacks (and their nested stacks) define, with resolved variants;
    registry URLs resolve in `registry_root`."""
    specs: list[EndpointSpec] = []
    for stack in stacks:
        for endpoint in stack.walk_resources("AWS::SageMaker::Endpoint"):
            config = stack.find_by_name(
                "AWS::SageMaker::EndpointConfig", str(endpoint.properties["EndpointConfigName"])
            )
            variants = tuple(
                _variant_spec(stack, declaration, profile, models_root, registry_root)
                for declaration in config.properties.get("ProductionVariants", [])
            )
            if not variants:
                raise TemplateError(f"{config.logical_id}: no ProductionVariants")
            shadows = tuple(
                _variant_spec(stack, declaration, profile, models_root, registry_root)
                for declaration in config.properties.get("ShadowProductionVariants", [])
            )
            serverless = any(v.max_concurrency is not None for v in (*variants, *shadows))
            if shadows and (len(shadows) > 1 or len(variants) > 1 or serverless):
                raise TemplateError(
                    f"{config.logical_id}: a shadow variant needs an instance-backed endpoint "
                    "with one production variant, and SageMaker allows one shadow variant"
                )
            specs.append(
                EndpointSpec(
                    name=endpoint.physical_name,
                    config_name=config.physical_name,
                    variants=variants,
                    serverless=serverless,
                    capture=CaptureSpec.from_config(config.properties.get("DataCaptureConfig")),
                    shadow=shadows[0] if shadows else None,
                )
            )
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise TemplateError(f"endpoint name(s) defined twice: {', '.join(duplicates)}")
    return specs


def _variant_spec(
    stack: Stack,
    declaration: Mapping[str, Any],
    profile: str,
    models_root: Path,
    registry_root: Path,
) -> VariantSpec:
    model = stack.find_by_name("AWS::SageMaker::Model", str(declaration["ModelName"]))
    model_name = model.metadata.get("Pressroom", {}).get("Model")
    if model_name not in MODEL_NAMES:
        raise TemplateError(
            f"{model.logical_id}: Metadata.Pressroom.Model must be one of {MODEL_NAMES}, "
            f"got {model_name!r}"
        )
    serverless = declaration.get("ServerlessConfig")
    return VariantSpec(
        name=str(declaration["VariantName"]),
        model_name=model_name,
        artifact_dir=_artifact_dir(model, model_name, profile, models_root, registry_root),
        weight=float(declaration.get("InitialVariantWeight", 1.0)),
        max_concurrency=int(serverless["MaxConcurrency"]) if serverless else None,
        memory_mb=int(serverless["MemorySizeInMB"]) if serverless else None,
        challenger=bool(model.metadata["Pressroom"].get("Challenger", False)),
    )


def _artifact_dir(
    model: Resource, model_name: str, profile: str, models_root: Path, registry_root: Path
) -> Path:
    """The unpacked artifact a model serves: a registered version its URL names, or else the
    built model of `profile`."""
    url = str(model.properties["PrimaryContainer"]["ModelDataUrl"])
    if not url.startswith(REGISTRY_ARTIFACTS):
        return models_root / profile / model_name / "model"
    # Name the parameter that set the URL, so the error says what to change.
    declared = model.stack.template["Resources"][model.logical_id]["Properties"]
    source = declared["PrimaryContainer"]["ModelDataUrl"]
    parameter = source["Ref"] if isinstance(source, dict) and "Ref" in source else "ModelDataUrl"
    name, version, _ = url.removeprefix(REGISTRY_ARTIFACTS).split("/", 2)
    if name != model_name:
        raise TemplateError(
            f"{model.logical_id}: {parameter} {url} names {name}, but the model serves "
            f"{model_name} (Metadata.Pressroom.Model)"
        )
    registered = registry.find(name, version, registry_root)
    if registered is None:
        raise TemplateError(
            f"{model.logical_id}: {parameter} {url}: {name} version {version} is not "
            f"registered in {registry_root} (`pressroom retrain` registers challengers)"
        )
    return registered.model_dir


def _declared_parameters(template: Path) -> set[str]:
    return set(load_template(template).get("Parameters") or {})
