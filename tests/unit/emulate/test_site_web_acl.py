"""The site's web ACL in the templates, resolved by the local template loader: request limits per
reader (X-User-Id) and per client IP on /api/, 429 in the API's error shape, and off unless
EnableWaf says otherwise."""

from __future__ import annotations

import json
from typing import Any

from local.cfn import Resource, Stack, load_template
from local.emulate.sagemaker.endpoints import load_local_stacks
from local.paths import APPS_DIR, DEFAULT_MODELS_ROOT, ROOT_TEMPLATE

FRONTEND = APPS_DIR / "frontend" / "template.yaml"
API_PATHS = {
    "ByteMatchStatement": {
        "FieldToMatch": {"UriPath": {}},
        "PositionalConstraint": "STARTS_WITH",
        "SearchString": "/api/",
        "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
    }
}


def _root(**overrides: Any) -> Stack:
    [root] = load_local_stacks("smoke", DEFAULT_MODELS_ROOT, None, overrides)
    return root


def _only(root: Stack, resource_type: str) -> Resource:
    (resource,) = root.walk_resources(resource_type)
    return resource


def test_without_enable_waf_there_is_no_web_acl_as_in_dev() -> None:
    root = _root()

    assert list(root.walk_resources("AWS::WAFv2::WebACL")) == []
    distribution = _only(root, "AWS::CloudFront::Distribution")
    assert "WebACLId" not in distribution.properties["DistributionConfig"]


def test_the_distribution_carries_a_cloudfront_web_acl_when_enabled() -> None:
    root = _root(EnableWaf="true")

    acl = _only(root, "AWS::WAFv2::WebACL")
    distribution = _only(root, "AWS::CloudFront::Distribution")
    assert acl.properties["Scope"] == "CLOUDFRONT"
    assert acl.physical_name == "pressroom-dev-readers"
    assert distribution.properties["DistributionConfig"]["WebACLId"].endswith(
        f":webacl/{acl.physical_name}"
    )
    assert acl.properties["DefaultAction"] == {"Allow": {}}


def test_one_rule_per_reader_and_one_per_client_ip_take_the_root_parameters() -> None:
    acl = _only(
        _root(EnableWaf="true", ReaderRateLimit=150, ClientIpRateLimit=1500), "AWS::WAFv2::WebACL"
    )

    rules = {rule["Name"]: rule for rule in acl.properties["Rules"]}
    assert [rule["Name"] for rule in sorted(rules.values(), key=lambda r: r["Priority"])] == [
        "per-reader",
        "per-client-ip",
    ]
    assert rules["per-reader"]["Statement"] == {
        "RateBasedStatement": {
            "Limit": 150,
            "EvaluationWindowSec": 300,
            "AggregateKeyType": "CUSTOM_KEYS",
            "CustomKeys": [
                {
                    "Header": {
                        "Name": "x-user-id",
                        "TextTransformations": [{"Priority": 0, "Type": "NONE"}],
                    }
                }
            ],
            "ScopeDownStatement": API_PATHS,
        }
    }
    assert rules["per-client-ip"]["Statement"] == {
        "RateBasedStatement": {
            "Limit": 1500,
            "EvaluationWindowSec": 300,
            "AggregateKeyType": "IP",
            "ScopeDownStatement": API_PATHS,
        }
    }


def test_a_blocked_request_gets_429_in_the_apis_error_shape() -> None:
    acl = _only(_root(EnableWaf="true"), "AWS::WAFv2::WebACL")

    for rule in acl.properties["Rules"]:
        custom = rule["Action"]["Block"]["CustomResponse"]
        assert custom["ResponseCode"] == 429
        body = acl.properties["CustomResponseBodies"][custom["CustomResponseBodyKey"]]
        assert body["ContentType"] == "APPLICATION_JSON"
        error = json.loads(body["Content"])["error"]
        assert error["code"] == "throttled"
        assert error["message"]


def test_every_rule_and_the_acl_publish_metrics_and_sample_requests() -> None:
    acl = _only(_root(EnableWaf="true"), "AWS::WAFv2::WebACL")

    configs = [acl.properties["VisibilityConfig"]] + [
        rule["VisibilityConfig"] for rule in acl.properties["Rules"]
    ]
    assert all(c["CloudWatchMetricsEnabled"] and c["SampledRequestsEnabled"] for c in configs)
    assert len({c["MetricName"] for c in configs}) == len(configs)


def test_an_address_gets_more_room_than_a_reader_and_the_defaults_have_one_value() -> None:
    root = load_template(ROOT_TEMPLATE)["Parameters"]
    frontend = load_template(FRONTEND)["Parameters"]

    assert root["ClientIpRateLimit"]["Default"] > root["ReaderRateLimit"]["Default"]
    for name in ("EnableWaf", "ReaderRateLimit", "ClientIpRateLimit"):
        assert frontend[name]["Default"] == root[name]["Default"], name
