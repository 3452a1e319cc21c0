"""The packaged smoke artifacts: layout, manifest, and the serving contract via the hooks."""

import json
import shutil
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import transformers
import yaml
from pressroom_common.generation.contracts import ClassifierAnswer

from models.serving.inference import (
    CALIBRATION_CONFIG_KEY,
    ENGINE_CONFIG,
    ENGINE_DIR,
    InvalidRequestError,
    classifier_logits,
    has_word,
    input_fn,
    load_generator,
    load_model,
    model_fn,
    output_fn,
    predict_fn,
    softmax,
)
from training.artifacts import Artifact, ensure_artifacts
from training.compare import REFERENCE, compare_generators, generator_names
from training.data import LABELS
from training.definitions import load_definition
from training.evaluate import SAMPLE_PROMPTS, markdown_table
from training.package import content_version, export_onnx

GENERATORS = generator_names()
# Each generator's engine weights (ONNX Runtime GenAI's MatMulNBits, weight-only).
ENGINE_PRECISION = {"headline-base": "int8", "headline-lite": "int4"}
MANIFEST_FIELDS = {
    "name",
    "version",
    "base_model",
    "data_fingerprint",
    "metrics",
    "created_at",
    "profile",
}


def _invoke(model: object, body: dict[str, object]) -> list[dict[str, Any]]:
    data = input_fn(json.dumps(body).encode(), "application/json")
    return json.loads(output_fn(predict_fn(data, model), "application/json"))


@pytest.mark.parametrize("name", [*GENERATORS, "news-classifier"])
def test_artifact_has_the_sagemaker_layout_and_a_manifest(
    smoke_artifacts: dict[str, Artifact], name: str
) -> None:
    artifact = smoke_artifacts[name]
    assert set(artifact.manifest) >= MANIFEST_FIELDS
    assert artifact.manifest["name"] == name and artifact.manifest["profile"] == "smoke"
    model_files = {
        p.relative_to(artifact.directory).as_posix()
        for p in artifact.directory.rglob("*")
        if p.is_file()
    }
    assert {
        "config.json",
        "model.safetensors",
        "README.md",
        "code/inference.py",
        "code/requirements.txt",
    } <= model_files
    assert (artifact.directory / "README.md").read_text().startswith("---\n")
    # Nothing for the container to pip-install at start: the serving image holds it all.
    requirements = (artifact.directory / "code/requirements.txt").read_text().splitlines()
    assert all(line.startswith("#") for line in requirements)
    assert f"#   transformers=={transformers.__version__}" in requirements
    with tarfile.open(artifact.tarball) as archive:
        members = {m.name for m in archive.getmembers() if m.isfile()}
    assert members == model_files
    assert ("model.onnx" in model_files) == (name == "news-classifier")
    engine_files = {f"{ENGINE_DIR}/{ENGINE_CONFIG}", f"{ENGINE_DIR}/model.onnx"}
    assert (engine_files <= model_files) == (name in GENERATORS)


@pytest.mark.parametrize("name", GENERATORS)
def test_a_generator_artifact_holds_its_engine_and_says_how_it_is_served(
    smoke_artifacts: dict[str, Artifact], name: str
) -> None:
    artifact = smoke_artifacts[name]
    precision = ENGINE_PRECISION[name]
    definition = load_definition(name, "smoke")
    assert definition.engine is not None and definition.engine.precision == precision
    engine_dir = artifact.directory / ENGINE_DIR
    assert (engine_dir / ENGINE_CONFIG).is_file() and (engine_dir / "model.onnx").is_file()
    graph = onnx.load(str(engine_dir / "model.onnx"), load_external_data=False).graph
    bits = {
        attribute.i
        for node in graph.node
        if node.op_type == "MatMulNBits"
        for attribute in node.attribute
        if attribute.name == "bits"
    }
    assert bits == {int(precision.removeprefix("int"))}, "every projection at the card's precision"
    metrics = artifact.manifest["metrics"]
    assert metrics["served_bits_per_char"] > 0 and metrics["test_bits_per_char"] > 0
    card = (artifact.directory / "README.md").read_text()
    assert "ONNX Runtime GenAI" in card and f"weights {precision}" in card
    card_metrics = {m["name"]: m["value"] for m in _card_metrics(artifact)}
    assert card_metrics["bits per character (test, as served)"] == metrics["served_bits_per_char"]
    loaded = model_fn(str(artifact.directory))
    assert (loaded.runtime, loaded.model) == ("onnxruntime-genai", None)


def test_unchanged_artifacts_are_not_rebuilt(smoke_artifacts: dict[str, Artifact]) -> None:
    root = smoke_artifacts["headline-lite"].directory.parents[2]
    again = ensure_artifacts("smoke", ["headline-lite"], root=root)
    assert again["headline-lite"].manifest == smoke_artifacts["headline-lite"].manifest


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_answers_one_single_line_headline_per_input(
    smoke_artifacts: dict[str, Artifact], name: str
) -> None:
    model = model_fn(str(smoke_artifacts[name].directory))
    single = _invoke(
        model, {"inputs": "Government plans", "parameters": {"max_new_tokens": 6, "seed": 1}}
    )
    assert len(single) == 1 and set(single[0]) == {"generated_text"}
    batch = _invoke(
        model,
        {
            "inputs": ["Stocks", "A much longer prompt about football"],
            "parameters": {"max_new_tokens": 6, "seed": 1},
        },
    )
    assert len(batch) == 2
    for item, prompt in zip(batch, ["Stocks", "A much longer prompt about football"], strict=True):
        text = item["generated_text"]
        assert isinstance(text, str) and "\n" not in text and text == text.strip()
        assert text.startswith(prompt)  # return_full_text defaults to true


@pytest.mark.parametrize("name", GENERATORS)
def test_generation_is_reproducible_with_a_seed_and_can_omit_the_prompt(
    smoke_artifacts: dict[str, Artifact], name: str
) -> None:
    model = model_fn(str(smoke_artifacts[name].directory))
    parameters = {"max_new_tokens": 8, "seed": 42, "temperature": 1.5, "top_k": 0, "top_p": 1.0}
    first = _invoke(model, {"inputs": "Scientists", "parameters": parameters})
    second = _invoke(model, {"inputs": "Scientists", "parameters": parameters})
    assert first == second
    greedy = {"max_new_tokens": 8, "do_sample": False}
    full = _invoke(model, {"inputs": "Scientists", "parameters": greedy})[0]["generated_text"]
    tail = _invoke(
        model, {"inputs": "Scientists", "parameters": {**greedy, "return_full_text": False}}
    )[0]["generated_text"]
    assert has_word(tail), repr(tail)
    assert full == "Scientists" + tail


@pytest.mark.parametrize("name", [*GENERATORS, "news-classifier"])
def test_bad_requests_raise_invalid_request_naming_the_field(
    smoke_artifacts: dict[str, Artifact], name: str
) -> None:
    model = model_fn(str(smoke_artifacts[name].directory))
    with pytest.raises(InvalidRequestError, match=r"^inputs: "):
        predict_fn({"inputs": []}, model)
    if name in GENERATORS:
        with pytest.raises(
            InvalidRequestError,
            match=r"^parameters\.max_new_tokens: must be an integer from 1 to 64",
        ):
            predict_fn({"inputs": "x", "parameters": {"max_new_tokens": 500}}, model)


def test_classifier_answers_a_label_and_score_per_input(
    smoke_artifacts: dict[str, Artifact],
) -> None:
    model = model_fn(str(smoke_artifacts["news-classifier"].directory))
    assert model.runtime == "onnxruntime"
    answer = _invoke(
        model, {"inputs": ["Stocks fall as oil rises", "Chelsea win the cup", "New phone unveiled"]}
    )
    assert len(answer) == 3
    for item in answer:
        # A category where the calibrated score reaches the packaged threshold, else none
        assert set(item) == {"label", "score"} and item["label"] in (*LABELS, None)
        assert 1 / len(LABELS) - 1e-9 <= item["score"] <= 1
        assert (item["label"] is None) == (item["score"] < model.calibration.threshold)
    (alone,) = _invoke(model, {"inputs": "Stocks fall as oil rises"})
    # Int8 ONNX quantizes each MatMul's input with one scale per batch: a headline's score
    # moves slightly with its batch neighbours.
    assert alone["label"] == answer[0]["label"]
    assert alone["score"] == pytest.approx(answer[0]["score"], abs=0.01)


CLASSIFIED = ["Stocks fall as oil rises", "Chelsea win the cup", "New phone unveiled", "MPs vote"]


def served_with(directory: Path, destination: Path, **calibration: float) -> str:
    """The artifact in `directory`, served with another calibration (its files linked)."""
    destination.mkdir()
    for path in directory.iterdir():
        if path.name != "config.json":
            (destination / path.name).symlink_to(path)
    config = json.loads((directory / "config.json").read_text())
    config[CALIBRATION_CONFIG_KEY] = calibration
    (destination / "config.json").write_text(json.dumps(config))
    return str(destination)


def test_the_classifier_abstains_below_its_threshold_through_the_hooks(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    # Given the classifier served with a threshold between its least and most sure headline
    directory = smoke_artifacts["news-classifier"].directory
    labelling_all = model_fn(served_with(directory, tmp_path / "all", temperature=1, threshold=0))
    scores = [a["score"] for a in _invoke(labelling_all, {"inputs": CLASSIFIED})]
    assert min(scores) < max(scores)
    threshold = (min(scores) + max(scores)) / 2
    strict = model_fn(
        served_with(directory, tmp_path / "strict", temperature=1, threshold=threshold)
    )

    # When the same headlines go through the hooks
    answers = _invoke(strict, {"inputs": CLASSIFIED})

    # Then a headline below the threshold gets no label, one above it its category, and each
    # keeps its confidence; the API reads both answers
    assert [a["score"] for a in answers] == pytest.approx(scores)
    assert [a["label"] is None for a in answers] == [score < threshold for score in scores]
    assert any(a["label"] is None for a in answers) and any(a["label"] for a in answers)
    for answer in answers:
        ClassifierAnswer.model_validate(answer)


def test_the_served_score_is_the_probability_at_the_packaged_temperature(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    directory = smoke_artifacts["news-classifier"].directory
    plain = model_fn(served_with(directory, tmp_path / "plain", temperature=1, threshold=0))
    scaled = model_fn(served_with(directory, tmp_path / "scaled", temperature=0.5, threshold=0))

    answers = _invoke(scaled, {"inputs": CLASSIFIED})

    expected = softmax(classifier_logits(plain, CLASSIFIED), 0.5).max(axis=1)
    assert [a["score"] for a in answers] == pytest.approx(expected.tolist())


def test_the_artifact_carries_its_calibration_and_records_it(
    smoke_artifacts: dict[str, Artifact],
) -> None:
    artifact = smoke_artifacts["news-classifier"]
    served = json.loads((artifact.directory / "config.json").read_text())[CALIBRATION_CONFIG_KEY]
    recorded = artifact.manifest["metrics"]["calibration"]
    target = load_definition("news-classifier", "smoke").calibration
    assert target is not None
    assert served["precision_target"] == recorded["precision_target"] == target.precision_target
    assert round(served["temperature"], 4) == recorded["temperature"]
    assert round(served["threshold"], 4) == recorded["threshold"]
    assert recorded["validation_nll_after"] <= recorded["validation_nll_before"]
    assert {"test_ece_before", "test_ece_after"} <= set(recorded)
    assert set(recorded["at_threshold"]) == {
        "bbc_test",
        "other_publishers_test",
        "held_out_publishers",
    }
    assert model_fn(str(artifact.directory)).calibration.threshold == served["threshold"]
    assert "## Calibration and abstention" in (artifact.directory / "README.md").read_text()


def test_the_onnx_export_gives_pytorchs_predictions(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    directory: Path = smoke_artifacts["news-classifier"].directory
    torch_model = load_model(directory, prefer_onnx=False)
    for path in directory.iterdir():
        if path.name != "model.onnx":
            (tmp_path / path.name).symlink_to(path)
    export_onnx(torch_model.model, torch_model.tokenizer, tmp_path / "model.onnx")
    onnx = load_model(tmp_path)
    assert (onnx.runtime, torch_model.runtime) == ("onnxruntime", "pytorch")
    headlines = [
        "Ink helps drive democracy in Asia",
        "Chelsea sack manager after cup exit",
        "Oscar nominations announced",
        "Chip maker profits soar on strong demand for phones and laptops this quarter",
        "MPs vote on budget",
    ]
    from_onnx = predict_fn({"inputs": headlines}, onnx)
    from_torch = predict_fn({"inputs": headlines}, torch_model)
    assert [p["label"] for p in from_onnx] == [p["label"] for p in from_torch]
    np.testing.assert_allclose(
        [p["score"] for p in from_onnx], [p["score"] for p in from_torch], rtol=0, atol=1e-5
    )


def test_the_served_onnx_model_keeps_pytorchs_macro_f1(
    smoke_artifacts: dict[str, Artifact],
) -> None:
    artifact = smoke_artifacts["news-classifier"]
    served = artifact.manifest["metrics"]["onnx"]
    for split in ("validation", "test"):
        assert served[f"{split}_macro_f1"] >= served[f"pytorch_{split}_macro_f1"]
    card = {m["name"]: m["value"] for m in _card_metrics(artifact)}
    assert card[f"macro-F1 (BBC test, served ONNX {served['weights']})"] == served["test_macro_f1"]
    operators = {
        node.op_type for node in onnx.load(str(artifact.directory / "model.onnx")).graph.node
    }
    assert ("MatMulInteger" in operators) == (served["weights"] == "int8")
    assert (artifact.directory / "model.safetensors").is_file(), "PyTorch weights stay too"


def _card_metrics(artifact: Artifact) -> list[dict[str, object]]:
    front_matter = (artifact.directory / "README.md").read_text().split("---\n")[1]
    return yaml.safe_load(front_matter)["model-index"][0]["results"][0]["metrics"]


def test_a_stale_artifact_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = ensure_artifacts("smoke", ["headline-lite"], root=tmp_path)["headline-lite"]
    first_weights = (first.directory / "model.safetensors").read_bytes()
    marker = first.directory / "marker"
    marker.touch()
    assert ensure_artifacts("smoke", ["headline-lite"], root=tmp_path)["headline-lite"] == first
    assert marker.exists(), "an up-to-date artifact is left alone"
    # Any change to the definition, the code or the data changes the build key.
    monkeypatch.setattr("training.artifacts.build_key", lambda *_: "changed")
    rebuilt = ensure_artifacts("smoke", ["headline-lite"], root=tmp_path)["headline-lite"]
    assert not marker.exists(), "a stale artifact is rebuilt from scratch"
    # Same seed, same data, same code: the retrained weights are the same, byte for byte.
    assert (rebuilt.directory / "model.safetensors").read_bytes() == first_weights
    # ...so the version (a hash of the served files, not of the timestamped card) is kept.
    assert rebuilt.manifest["version"] == first.manifest["version"]
    assert not list((tmp_path / "smoke").glob(".headline-lite.*")), "no staging leftovers"


def test_the_version_hashes_the_served_files_but_not_the_model_card(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(smoke_artifacts["news-classifier"].directory, copy)
    version = content_version(copy)
    assert version == smoke_artifacts["news-classifier"].manifest["version"]
    (copy / "README.md").write_text("trained at another time\n")
    assert content_version(copy) == version
    for served in ("model.safetensors", "model.onnx", "tokenizer.json", "code/inference.py"):
        with (copy / served).open("ab") as handle:
            handle.write(b" ")
        assert content_version(copy) != version, served
        version = content_version(copy)


def test_the_challenger_serves_variant_a_weights_at_another_precision(
    smoke_artifacts: dict[str, Artifact],
) -> None:
    base, lite = smoke_artifacts["headline-base"], smoke_artifacts["headline-lite"]
    same_weights = (base.directory / "model.safetensors").read_bytes() == (
        lite.directory / "model.safetensors"
    ).read_bytes()
    assert same_weights, "B is derived from A's packaged weights, not trained apart"
    assert lite.manifest["training"]["derived_from"] == {
        "name": "headline-base",
        "version": base.manifest["version"],
    }
    # The same weights, converted at int8 and at int4: the engines differ, and so do the
    # scores they give the same text.
    base_engine, lite_engine = base.directory / ENGINE_DIR, lite.directory / ENGINE_DIR
    assert (base_engine / "model.onnx.data").read_bytes() != (
        lite_engine / "model.onnx.data"
    ).read_bytes()
    served_a, served_b = model_fn(str(base.directory)), model_fn(str(lite.directory))
    assert served_a.headline_context == served_b.headline_context is not None
    assert served_a.engine is not None and served_b.engine is not None
    prompt_ids = served_a.tokenizer("Stocks fall as", add_special_tokens=False)["input_ids"]
    logits_a, logits_b = served_a.engine.start(prompt_ids), served_b.engine.start(prompt_ids)
    assert logits_a.shape == logits_b.shape and not np.array_equal(logits_a, logits_b)
    card = (lite.directory / "README.md").read_text()
    assert "## Side by side with headline-base" in card and base.manifest["version"][:8] in card


def test_a_generator_without_its_engine_is_refused_naming_the_directory(
    smoke_artifacts: dict[str, Artifact], tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    shutil.copytree(
        smoke_artifacts["headline-lite"].directory, copy, ignore=shutil.ignore_patterns("engine")
    )
    with pytest.raises(ValueError, match=f"no decode engine in {ENGINE_DIR}/"):
        model_fn(str(copy))
    with pytest.raises(ValueError, match=f"no decode engine in {ENGINE_DIR}/"):
        load_generator(copy, threads=1)


def test_evaluate_compares_both_variants_side_by_side_through_their_served_models(
    smoke_artifacts: dict[str, Artifact],
) -> None:
    root = smoke_artifacts["headline-base"].directory.parents[2]
    results = compare_generators(root, "smoke", timing_rounds=1)
    # The fp32 PyTorch weights every variant is converted from, then each served variant.
    assert [r.name for r in results] == [REFERENCE, *GENERATORS]
    reference, variants = results[0], {r.name: r for r in results[1:]}
    for result in results:
        assert result.metrics["ms_per_token_1_thread"] > 0
        assert set(result.samples) == set(SAMPLE_PROMPTS)
    for name, result in variants.items():
        assert result.version == smoke_artifacts[name].manifest["version"]
        assert 0 <= result.metrics["no_word_share"] <= 1
        # The engine scores the test text as the fp32 weights do, up to its precision.
        fp32, served = result.metrics["test_bits_per_char"], result.metrics["served_bits_per_char"]
        assert abs(served - fp32) < 0.5, (name, fp32, served)
    table = markdown_table(results)
    assert "| bits/char (test, fp32) |" in table and "| bits/char (test, served) |" in table
    assert f"speed-up per token over {REFERENCE}" in table
    # headline-base's fp32 weights are the reference: the same figure on the same test set.
    base = variants["headline-base"].metrics
    assert reference.metrics["test_bits_per_char"] == base["test_bits_per_char"]
    # int4 weights score the test text other than the fp32 weights they were converted from.
    lite = variants["headline-lite"].metrics
    assert lite["served_bits_per_char"] != lite["test_bits_per_char"]
