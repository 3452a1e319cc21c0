"""The reader key in the templates: one secret, read by the two HTTP functions and nothing else."""

from __future__ import annotations

from typing import Any

from pressroom_common.platform.readers import MIN_SECRET_BYTES

from local.cfn import load_template
from local.paths import APPS_DIR, ROOT_TEMPLATE

FEEDBACK = load_template(APPS_DIR / "feedback" / "template.yaml")
INFERENCE_API = load_template(APPS_DIR / "inference-api" / "template.yaml")


def statements(template: dict[str, Any], function: str) -> list[dict[str, Any]]:
    policies = template["Resources"][function]["Properties"].get("Policies", [])
    return [statement for policy in policies for statement in policy.get("Statement", [])]


def reads(template: dict[str, Any], function: str, secret: dict[str, Any]) -> bool:
    return any(
        statement.get("Action") == "secretsmanager:GetSecretValue"
        and statement.get("Resource") == secret
        for statement in statements(template, function)
    )


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    return dict(template["Resources"][function]["Properties"]["Environment"]["Variables"])


def test_the_reader_key_is_a_generated_secret_long_enough_for_its_hmacs() -> None:
    secret = FEEDBACK["Resources"]["ReaderKeySecret"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    generated = secret["Properties"]["GenerateSecretString"]
    assert generated["PasswordLength"] >= MIN_SECRET_BYTES
    assert "SecretString" not in secret["Properties"]  # never a value in the template


def test_the_feedback_function_reads_the_key_and_the_migrations_do_not() -> None:
    key = {"Ref": "ReaderKeySecret"}
    assert environment(FEEDBACK, "FeedbackFunction")["READER_KEY_SECRET_ID"] == key
    assert reads(FEEDBACK, "FeedbackFunction", key)
    assert "READER_KEY_SECRET_ID" not in environment(FEEDBACK, "MigrationsFunction")
    assert not reads(FEEDBACK, "MigrationsFunction", key)


def test_the_generate_function_reads_the_same_key_passed_down_by_the_root() -> None:
    key = {"Ref": "ReaderKeySecretArn"}
    assert environment(INFERENCE_API, "GenerateFunction")["READER_KEY_SECRET_ID"] == key
    assert reads(INFERENCE_API, "GenerateFunction", key)
    root = load_template(ROOT_TEMPLATE)
    passed = root["Resources"]["InferenceApi"]["Properties"]["Parameters"]["ReaderKeySecretArn"]
    assert passed == {"Fn::GetAtt": ["Feedback", "Outputs.ReaderKeySecretArn"]}
    assert FEEDBACK["Outputs"]["ReaderKeySecretArn"]["Value"] == {"Ref": "ReaderKeySecret"}
