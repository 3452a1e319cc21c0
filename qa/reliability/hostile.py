"""Hostile and malformed requests through the gateway: each answered 4xx with a clear message,
and none leaves a record behind.

Injection strings in constrained fields are rejected; in the free-text prompt they are valid
input, so they are served and stored verbatim (the store binds parameters; the site renders
text as text), which `injection_round_trip` checks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx

from local.emulate.gateway import MAX_PAYLOAD_BYTES
from qa.reliability.outcome import Expectation, expect
from qa.reliability.records import partial_generations, row_counts, stored_prompts

AREA = "hostile input"
SQL_INJECTION = "'; DROP TABLE generations; --"
SCRIPT_INJECTION = "<script>alert(document.cookie)</script>"


@dataclass(frozen=True)
class HostileRequest:
    name: str
    method: str
    path: str
    content: bytes = b""
    content_type: str = "application/json"
    query: dict[str, str] = field(default_factory=dict)
    status: int = 422
    field: str | None = None
    """The field the error details must name (validation errors)."""


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


HOSTILE_REQUESTS = (
    HostileRequest(
        "body over API Gateway's 10 MB",
        "POST",
        "/api/generate",
        _json({"prompt": "x" * (MAX_PAYLOAD_BYTES + 1)}),
        status=413,
    ),
    HostileRequest(
        "1 MB prompt", "POST", "/api/generate", _json({"prompt": "x" * 2**20}), field="prompt"
    ),
    HostileRequest(
        "text/plain body",
        "POST",
        "/api/generate",
        _json({"prompt": "Plain"}),
        content_type="text/plain",
        status=415,
        field="Content-Type",
    ),
    HostileRequest(
        "XML body",
        "POST",
        "/api/feedback",
        b"<vote>up</vote>",
        content_type="application/xml",
        status=415,
        field="Content-Type",
    ),
    HostileRequest(
        "invalid UTF-8", "POST", "/api/generate", b'{"prompt": "\xff\xfe caf\xe9"}', status=400
    ),
    HostileRequest(
        "lone UTF-16 surrogate",
        "POST",
        "/api/feedback",
        b'{"generation_id": "\\ud800", "vote": "up"}',
        field="generation_id",
    ),
    HostileRequest("malformed JSON", "POST", "/api/generate", b'{"prompt": ', field="body"),
    HostileRequest(
        "JSON nested 100,000 deep",
        "POST",
        "/api/generate",
        b"[" * 100_000 + b"]" * 100_000,
        field="body",
    ),
    HostileRequest(
        "integer of 5,000 digits",
        "POST",
        "/api/generate",
        b'{"prompt": "Big", "max_new_tokens": 1' + b"0" * 5000 + b"}",
        field="body",
    ),
    HostileRequest(
        "max_new_tokens 10^30",
        "POST",
        "/api/generate",
        _json({"prompt": "Big", "max_new_tokens": 10**30}),
        field="max_new_tokens",
    ),
    HostileRequest(
        "temperature NaN",
        "POST",
        "/api/generate",
        b'{"prompt": "Hot", "temperature": NaN}',
        field="temperature",
    ),
    HostileRequest(
        "top_p Infinity",
        "POST",
        "/api/generate",
        b'{"prompt": "Hot", "top_p": Infinity}',
        field="top_p",
    ),
    HostileRequest(
        "seed -1e308",
        "POST",
        "/api/generate",
        _json({"prompt": "Seed", "seed": -1e308}),
        field="seed",
    ),
    HostileRequest(
        "NUL in the prompt",
        "POST",
        "/api/generate",
        _json({"prompt": "a\x00b"}),
        field="prompt",
    ),
    HostileRequest(
        "NUL in generation_id",
        "POST",
        "/api/feedback",
        _json({"generation_id": "a\x00b", "vote": "up"}),
        field="generation_id",
    ),
    HostileRequest(
        "SQL injection as variant",
        "POST",
        "/api/generate",
        _json({"prompt": "Pick", "variant": SQL_INJECTION}),
        field="variant",
    ),
    HostileRequest(
        "SQL injection as generation_id",
        "POST",
        "/api/feedback",
        _json({"generation_id": "' OR '1'='1", "vote": "up"}),
        status=403,
        field="X-User-Id",
    ),
    HostileRequest(
        "SQL injection as vote_token",
        "POST",
        "/api/feedback",
        _json({"generation_id": "g", "vote": "up", "vote_token": SQL_INJECTION}),
        status=403,
        field="X-User-Id",
    ),
    HostileRequest(
        "vote_token of 10,000 characters",
        "POST",
        "/api/feedback",
        _json({"generation_id": "g", "vote": "up", "vote_token": "t" * 10_000}),
        field="vote_token",
    ),
    HostileRequest(
        "SQL injection as since",
        "GET",
        "/api/stats",
        query={"since": "2026-01-01' OR 1=1 --"},
        field="since",
    ),
    HostileRequest(
        "script as vote",
        "POST",
        "/api/feedback",
        _json({"generation_id": "g", "vote": SCRIPT_INJECTION}),
        field="vote",
    ),
    HostileRequest(
        "unknown field",
        "POST",
        "/api/generate",
        _json({"prompt": "Extra", "admin": True}),
        field="admin",
    ),
    HostileRequest("JSON array body", "POST", "/api/feedback", _json([1, 2]), field="body"),
    HostileRequest("empty body", "POST", "/api/generate", b"", field="body"),
    HostileRequest("unknown route", "GET", "/api/admin", status=404),
    HostileRequest("wrong method", "DELETE", "/api/generate", status=404),
)


@dataclass(frozen=True)
class HostileAnswer:
    request: HostileRequest
    status: int
    code: str | None
    message: str
    fields: tuple[str, ...]

    @property
    def as_expected(self) -> bool:
        named = self.request.field is None or self.request.field in self.fields
        return self.status == self.request.status and bool(self.message) and named


def send(client: httpx.Client, request: HostileRequest) -> HostileAnswer:
    response = client.request(
        request.method,
        request.path,
        content=request.content or None,
        params=request.query,
        headers={"Content-Type": request.content_type} if request.content else {},
    )
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return HostileAnswer(request, response.status_code, None, "", ())
    details = error.get("details") if isinstance(error.get("details"), list) else []
    return HostileAnswer(
        request,
        response.status_code,
        error.get("code"),
        str(error.get("message") or ""),
        tuple(str(detail.get("field")) for detail in details),
    )


def hostile_requests(base_url: str, database_url: str) -> list[Expectation]:
    """Send every hostile request; each must get its 4xx, with a message and the field named,
    and the store must hold exactly what it held before."""
    before = row_counts(database_url)
    with httpx.Client(base_url=base_url, timeout=120) as client:
        answers = [send(client, request) for request in HOSTILE_REQUESTS]
    after = row_counts(database_url)
    expectations = [
        expect(
            AREA,
            f"{answer.request.name}: {answer.request.status}",
            answer.as_expected,
            f"{answer.status} {answer.code}: {answer.message[:70]}",
        )
        for answer in answers
    ]
    expectations.append(
        expect(
            AREA,
            "rejected requests store nothing",
            after == before and partial_generations(database_url) == 0,
            f"generations {before.generations}→{after.generations}, "
            f"votes {before.votes}→{after.votes}, partial records "
            f"{partial_generations(database_url)}",
        )
    )
    return expectations


def injection_round_trip(base_url: str, database_url: str) -> Expectation:
    """Injection strings as prompts are text: served as JSON, stored byte for byte."""
    prompts = [f"{SQL_INJECTION} [hostile]", f"{SCRIPT_INJECTION} [hostile]"]
    with httpx.Client(base_url=base_url, timeout=120) as client:
        responses = [
            client.post(
                "/api/generate", json={"prompt": prompt, "variant": "B", "max_new_tokens": 2}
            )
            for prompt in prompts
        ]
    stored = stored_prompts(database_url, prompts)
    served = all(
        response.status_code == httpx.codes.OK
        and response.headers.get("content-type", "").startswith("application/json")
        and response.json()["prompt"] == prompt
        for response, prompt in zip(responses, prompts, strict=True)
    )
    return expect(
        AREA,
        "SQL / script injection as a prompt: 200, stored verbatim, tables intact",
        served and set(stored) == set(prompts),
        f"statuses {[r.status_code for r in responses]}, stored {len(stored)}/{len(prompts)}",
    )
