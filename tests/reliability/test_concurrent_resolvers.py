"""Two function instances resolving at once in one process each see their own event.

Powertools keeps the current event on its `BaseRouter` class; the API's resolver
(`pressroom_common.platform.api.JsonApiResolver`) keeps it per thread, as Lambda's
one-event-per-process model does. Without that, a feedback call validated the body of a
generate call that arrived meanwhile (found by the load run).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pressroom_common.platform.api import JsonApiResolver
from pydantic import BaseModel

from local.emulate.events import proxy_event
from tests.fixtures.lambda_context import lambda_context


class Named(BaseModel):
    name: str


def app_echoing(path: str, both_inside: threading.Barrier) -> JsonApiResolver:
    app = JsonApiResolver(enable_validation=True)

    @app.post(path)
    def echo(body: Named) -> dict[str, Any]:
        both_inside.wait(timeout=10)  # the other app has resolved its own event by now
        return {"name": body.name, "path": app.current_event.path}

    return app


def test_concurrent_resolvers_each_answer_from_their_own_event() -> None:
    both_inside = threading.Barrier(2)
    apps = {path: app_echoing(path, both_inside) for path in ("/api/one", "/api/two")}

    def call(path: str) -> str:
        event = proxy_event("POST", path, body=f'{{"name": "{path}"}}'.encode(), request_id=path)
        return str(apps[path].resolve(event, lambda_context("generate"))["body"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(call, apps))

    assert answers == [
        '{"name":"/api/one","path":"/api/one"}',
        '{"name":"/api/two","path":"/api/two"}',
    ]
