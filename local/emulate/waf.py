"""The edge in front of the API: the rate-based rules of the site's AWS WAF web ACL.

As CloudFront's web ACL is in front of API Gateway, a `WebAclFilter` applies the rate-based
rules of the web ACL that the stack's distribution names (`discover_web_acl`): per `X-User-Id`,
per client IP, answering with the rule's custom response (429 in the API's error shape) before
the gateway sees the request.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from local.cfn import Resource, Stack, TemplateError
from local.emulate.throttling import KeyedTokenBuckets, Throttle

# WAF's evaluation windows (EvaluationWindowSec) and its default one.
WAF_WINDOWS_S = (60, 120, 300, 600)
WAF_DEFAULT_WINDOW_S = 300
_WAF_CONTENT_TYPES = {
    "APPLICATION_JSON": "application/json",
    "TEXT_PLAIN": "text/plain",
    "TEXT_HTML": "text/html",
}
# WAF prefixes the headers of a custom response so they cannot pass for the origin's.
_WAF_HEADER_PREFIX = "x-amzn-waf-"


@dataclass(frozen=True)
class UriPathMatch:
    """A `ByteMatchStatement` on `UriPath`: the scope-down statement the gateway emulates."""

    constraint: str
    """EXACTLY, STARTS_WITH, ENDS_WITH or CONTAINS."""
    search: str
    lowercase: bool

    def matches(self, path: str) -> bool:
        text = path.lower() if self.lowercase else path
        if self.constraint == "EXACTLY":
            return text == self.search
        if self.constraint == "STARTS_WITH":
            return text.startswith(self.search)
        if self.constraint == "ENDS_WITH":
            return text.endswith(self.search)
        return self.search in text


@dataclass(frozen=True)
class BlockResponse:
    status: int
    body: str
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RateRule:
    """A rate-based rule: at most `limit` requests per `window_s` seconds per key."""

    name: str
    priority: int
    limit: int
    window_s: int
    headers: tuple[str, ...]
    """Lower-case names of the headers in the key (custom keys), in order."""
    lowercase_headers: tuple[bool, ...]
    by_ip: bool
    scope: UriPathMatch | None
    block: BlockResponse | None
    """The answer past the limit; None for a Count action (counted, never blocked)."""

    def key(self, path: str, headers: Mapping[str, str], client_ip: str) -> tuple[str, ...] | None:
        """The aggregation key of a request, or None when the rule does not count it."""
        if self.scope is not None and not self.scope.matches(path):
            return None
        parts = []
        for name, lowercase in zip(self.headers, self.lowercase_headers, strict=True):
            value = headers.get(name)
            if value is None:  # WAF leaves out a request that lacks a key component
                return None
            parts.append(value.lower() if lowercase else value)
        if self.by_ip:
            parts.append(client_ip)
        return tuple(parts)

    def describe(self) -> str:
        """E.g. `200 per 5 min per x-user-id`."""
        keys = [*self.headers, *(["client IP"] if self.by_ip else [])] or ["everyone"]
        return f"{self.limit} per {self.window_s // 60} min per {' + '.join(keys)}"


@dataclass(frozen=True)
class WebAcl:
    name: str
    rules: tuple[RateRule, ...]
    """Its rate-based rules in priority order; other rules are not emulated."""

    def describe(self) -> str:
        return ", ".join(rule.describe() for rule in self.rules if rule.block is not None)


def discover_web_acl(root: Stack) -> WebAcl | None:
    """The web ACL that the stack tree's CloudFront distribution names in `WebACLId`, if any.

    The local origin stands for that one distribution (site and `/api` together), so its
    web ACL applies to every request; two distributions with web ACLs cannot be told apart.
    """
    named = {
        str(config["WebACLId"])
        for distribution in root.walk_resources("AWS::CloudFront::Distribution")
        if "WebACLId" in (config := distribution.properties.get("DistributionConfig") or {})
    }
    # WebACLId holds the ACL's ARN, which ends with its name.
    acls = [
        acl
        for acl in root.walk_resources("AWS::WAFv2::WebACL")
        if any(arn.endswith(f"/{acl.physical_name}") for arn in named)
    ]
    if len(named) > 1 or len(acls) > 1:
        raise TemplateError(
            "the local origin stands for one CloudFront distribution; web ACLs named: "
            + ", ".join(sorted(named))
        )
    if named and not acls:
        raise TemplateError(f"WebACLId {next(iter(named))}: no AWS::WAFv2::WebACL of that name")
    return _web_acl(acls[0]) if acls else None


def _web_acl(acl: Resource) -> WebAcl:
    bodies = acl.properties.get("CustomResponseBodies") or {}
    rules = []
    for index, rule in enumerate(acl.properties.get("Rules") or []):
        statement = (rule.get("Statement") or {}).get("RateBasedStatement")
        if statement is not None:
            where = f"{acl.logical_id}.Rules[{index}] ({rule.get('Name')})"
            rules.append(_rate_rule(rule, statement, bodies, where))
    return WebAcl(acl.physical_name, tuple(sorted(rules, key=lambda rule: rule.priority)))


def _rate_rule(
    rule: Mapping[str, Any], statement: Mapping[str, Any], bodies: Mapping[str, Any], where: str
) -> RateRule:
    limit = int(statement["Limit"])
    if limit < 1:
        raise TemplateError(f"{where}.Limit: {limit} requests; it must be at least 1")
    window_s = int(statement.get("EvaluationWindowSec", WAF_DEFAULT_WINDOW_S))
    if window_s not in WAF_WINDOWS_S:
        raise TemplateError(
            f"{where}.EvaluationWindowSec: {window_s}; WAF takes one of {list(WAF_WINDOWS_S)}"
        )
    aggregate = str(statement.get("AggregateKeyType"))
    headers: list[tuple[str, bool]] = []
    by_ip = aggregate == "IP"
    if aggregate == "CUSTOM_KEYS":
        for key in statement.get("CustomKeys") or []:
            if set(key) == {"Header"}:
                name = str(key["Header"]["Name"]).lower()
                headers.append((name, _lowercases(key["Header"], f"{where}.CustomKeys.Header")))
            elif set(key) == {"IP"}:
                by_ip = True
            else:
                raise TemplateError(
                    f"{where}.CustomKeys: {sorted(key)} is not emulated locally (Header, IP are)"
                )
    elif aggregate not in ("IP", "CONSTANT"):
        raise TemplateError(
            f"{where}.AggregateKeyType: {aggregate} is not emulated locally "
            "(IP, CUSTOM_KEYS and CONSTANT are)"
        )
    return RateRule(
        name=str(rule.get("Name")),
        priority=int(rule.get("Priority", 0)),
        limit=limit,
        window_s=window_s,
        headers=tuple(name for name, _ in headers),
        lowercase_headers=tuple(lowercase for _, lowercase in headers),
        by_ip=by_ip,
        scope=_scope_down(statement.get("ScopeDownStatement"), f"{where}.ScopeDownStatement"),
        block=_rule_action(rule.get("Action") or {}, bodies, f"{where}.Action"),
    )


def _lowercases(component: Mapping[str, Any], where: str) -> bool:
    """Whether the text transformations lower-case the text (NONE and LOWERCASE are emulated)."""
    kinds = {str(step.get("Type")) for step in component.get("TextTransformations") or []}
    if not kinds <= {"NONE", "LOWERCASE"}:
        raise TemplateError(
            f"{where}.TextTransformations: {sorted(kinds)}; only NONE and LOWERCASE are emulated"
        )
    return "LOWERCASE" in kinds


def _scope_down(statement: Mapping[str, Any] | None, where: str) -> UriPathMatch | None:
    if statement is None:
        return None
    match: Mapping[str, Any] = statement.get("ByteMatchStatement") or {}
    if set(statement) != {"ByteMatchStatement"} or "UriPath" not in match.get("FieldToMatch", {}):
        raise TemplateError(f"{where}: only a ByteMatchStatement on UriPath is emulated locally")
    constraint = str(match["PositionalConstraint"])
    if constraint not in ("EXACTLY", "STARTS_WITH", "ENDS_WITH", "CONTAINS"):
        raise TemplateError(f"{where}.PositionalConstraint: {constraint} is not emulated locally")
    lowercase = _lowercases(match, where)
    search = str(match["SearchString"])
    return UriPathMatch(constraint, search.lower() if lowercase else search, lowercase)


def _rule_action(
    action: Mapping[str, Any], bodies: Mapping[str, Any], where: str
) -> BlockResponse | None:
    if set(action) == {"Count"}:
        return None
    if set(action) != {"Block"}:
        raise TemplateError(f"{where}: {sorted(action)}; a rate-based rule may Block or Count")
    custom = (action["Block"] or {}).get("CustomResponse")
    if custom is None:  # WAF's own answer
        return BlockResponse(403, "Request blocked.", "text/html")
    key = custom.get("CustomResponseBodyKey")
    if key is not None and key not in bodies:
        raise TemplateError(f"{where}.CustomResponseBodyKey: no CustomResponseBodies entry {key!r}")
    body = bodies[key] if key is not None else {"Content": "", "ContentType": "TEXT_PLAIN"}
    content_type = _WAF_CONTENT_TYPES.get(str(body["ContentType"]))
    if content_type is None:
        raise TemplateError(
            f"CustomResponseBodies.{key}.ContentType: {body['ContentType']}; "
            f"WAF takes one of {sorted(_WAF_CONTENT_TYPES)}"
        )
    return BlockResponse(
        status=int(custom["ResponseCode"]),
        body=str(body["Content"]),
        content_type=content_type,
        headers=tuple(
            (_WAF_HEADER_PREFIX + str(header["Name"]).lower(), str(header["Value"]))
            for header in custom.get("ResponseHeaders") or []
        ),
    )


class WebAclFilter:
    """A web ACL's rate-based rules over live requests, in priority order: the first rule whose
    key is past its limit answers. Thread-safe; one per origin, shared by its gateways.

    Each key gets a token bucket of `limit` tokens refilled over the window: the rule's rate.
    WAF itself counts a sliding window and checks it about every 10 s, so on AWS a key can
    briefly pass the limit before the block starts, and stays blocked until its rate drops.
    """

    def __init__(self, web_acl: WebAcl, clock: Any = time.monotonic) -> None:
        self.web_acl = web_acl
        self._counters = [
            (
                rule,
                KeyedTokenBuckets(Throttle(rule.limit / rule.window_s, rule.limit), clock),
            )
            for rule in web_acl.rules
        ]

    def blocked(
        self, path: str, headers: Mapping[str, str], client_ip: str
    ) -> tuple[RateRule, BlockResponse] | None:
        for rule, counter in self._counters:
            key = rule.key(path, headers, client_ip)
            if key is not None and not counter.try_acquire(key) and rule.block is not None:
                return rule, rule.block
        return None
